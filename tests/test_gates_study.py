"""The gates study (mmoe_np.experiments.gates) and `mmoe-np gates`: shapes, determinism, the pairing of the two
settings, the verdicts, the files, and bad arguments naming themselves; on a tiny configuration."""
import csv
import json

import numpy as np
import pytest

from mmoe_np.cli import main
from mmoe_np.diagnostics import gate_report
from mmoe_np.experiments import gates
from mmoe_np.experiments import synthetic as S
from mmoe_np.experiments.lockstep import TASKS, ReplicaStreams
from mmoe_np.experiments.synthetic import SIZES, make_runs
from mmoe_np.models import MMoE, stack_models
from mmoe_np.optim import Adam

TINY = dict(runs=3, steps=4, batch_size=16, n_test=64)


@pytest.fixture(scope="module")
def study():
    return gates.gates_study((1.0, 0.5), **TINY)


def test_shapes_and_values(study):
    P, N = 2, 3
    assert study.polarised.shape == study.entropy.shape == study.test_mse.shape == (2, P, N, 2)
    assert study.overlap.shape == study.diverged.shape == (2, P, N)
    assert study.utilisation.shape == (2, P, N, 2, 8)
    np.testing.assert_allclose(study.utilisation.sum(-1), 1.0, rtol=1e-5)
    assert np.all((0 <= study.overlap) & (study.overlap <= 1 + 1e-6))
    assert np.all((0 <= study.polarised) & (study.polarised <= 1))
    assert not study.diverged.any() and np.all(np.isfinite(study.test_mse))
    assert study.correlations == (1.0, 0.5) and study.n_runs == 3


def test_deterministic_and_the_settings_differ_only_by_dropout(study):
    again = gates.gates_study((1.0, 0.5), **TINY)
    for name in ("polarised", "entropy", "overlap", "utilisation", "test_mse"):
        assert np.array_equal(getattr(study, name), getattr(again, name)), name
    assert not np.array_equal(study.test_mse[0], study.test_mse[1])  # the masks changed the training


def test_the_plain_setting_is_mmoe_trained_in_lock_step_on_the_same_data(study):
    runs = make_runs((1.0, 0.5), 3, 0)
    data = ReplicaStreams(runs, np.dtype(np.float32))
    model = stack_models([MMoE(100, TASKS, seed=int(s), dtype=np.float32, **SIZES["mmoe"]) for s in data.init_seeds])
    optimizer = Adam(model.params, lr=gates.DEFAULTS["lr"])
    X_test, _ = data.test_set(TINY["n_test"])
    for _ in range(TINY["steps"]):
        X, Y = data.batch(TINY["batch_size"])
        optimizer.step(model.forward_backward(X, Y, check=False).grads)
    report = gate_report(model, X_test)
    # runs are run-major: replica i * P + j is run i at correlation j
    np.testing.assert_array_equal(report.overlap[:, 0, 1].reshape(3, 2).T, study.overlap[0])


def test_claims_and_summary(study):
    verdicts = study.claims()
    assert len(verdicts) == 2 * 2 + 2
    assert all(v.interval.n == 3 for v in verdicts)
    summary = study.summary()
    assert len(summary["rows"]) == 4 and len(summary["claims"]) == 6
    assert {r["setting"] for r in summary["rows"]} == {"plain", "dropout"}
    text = study.format()
    assert "polarised rows" in text and "overlap less at p = 0.5 than at p = 1" in text
    assert study.polarised_gates().shape == (2, 2)


def test_write(study, tmp_path):
    paths = study.write(tmp_path / "out")
    assert [p.name for p in paths] == ["gates-runs.csv", "gates.json", "gates.png"]
    doc = json.loads((tmp_path / "out" / "gates.json").read_text())
    assert doc["study"] == "gates" and doc["config"]["gate_dropout"] == 0.1
    assert {"mmoe_np", "git_commit", "numpy", "blas", "thread_variables"} <= doc["environment"].keys()
    assert np.array_equal(np.array(doc["per_run"]["overlap"]), study.overlap)
    with open(tmp_path / "out" / "gates-runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 3 * 2
    assert (tmp_path / "out" / "gates.png").stat().st_size > 10_000
    study.write(tmp_path / "out", plots=False)  # an earlier run's PNG is removed: the folder holds this run
    assert not (tmp_path / "out" / "gates.png").exists()


@pytest.mark.parametrize("kwargs, name", [
    ({"gate_dropout": 0.0}, "gate_dropout"), ({"gate_dropout": 1.0}, "gate_dropout"), ({"runs": 0}, "runs"),
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"correlations": (1.0, 1.0)}, "correlations")])
def test_bad_arguments_name_themselves(kwargs, name):
    correlations = kwargs.pop("correlations", (1.0, 0.5))
    with pytest.raises(ValueError, match=name):
        gates.gates_study(correlations, **{**TINY, **kwargs})


def test_the_command(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["gates", "--runs", "2", "--steps", "2", "--batch-size", "8", "--n-test", "32", "--out", str(out),
                 "--quiet", "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "polarised rows" in printed and "gates.json" in printed
    assert sorted(p.name for p in out.iterdir()) == ["gates-runs.csv", "gates.json"]
    assert main(["gates", "--gate-dropout", "1.5", "--out", str(tmp_path / "h"), "--quiet"]) == 2
    assert "--gate-dropout" in capsys.readouterr().err and not (tmp_path / "h").exists()


def test_cgc_and_ple_train_in_the_synthetic_study():
    study = S.synthetic_study(["cgc", "ple", "mmoe"], (1.0, 0.5), runs=2, steps=3, batch_size=8, eval_every=3,
                              n_test=16)
    assert list(study.models) == ["cgc", "ple", "mmoe"]
    for name in ("cgc", "ple"):
        assert np.all(np.isfinite(study.test_loss[name]))
    assert S.MODEL_LABELS["cgc"] == "CGC" and S.MODEL_LABELS["ple"] == "PLE"
