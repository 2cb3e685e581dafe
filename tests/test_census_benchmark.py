"""The Census-income benchmark: a short real training, early stopping, the command's outputs, sizes, bad arguments.

The real files live in ../shared/data/census-income beside the repository; the tests that need them are skipped
when they are absent. Every training here uses a few thousand rows and one to three epochs.
"""
import csv
import dataclasses
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import cli
from mmoe_np.experiments import census, census_runs
from mmoe_np.optim import scheduled_lr

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "census-income"
needs_data = pytest.mark.skipif(not (DATA_DIR / "census-income.data.gz").is_file()
                                or not (DATA_DIR / "census-income.test.gz").is_file(),
                                reason=f"Census-income files not found in {DATA_DIR}")


@pytest.fixture(scope="module")
def data():
    return mn.data.load_census_income(DATA_DIR, group=1)


def subset(data, n_train, n_eval=None):
    """The first n_train training rows (and n_eval validation/test rows) of a CensusIncome."""
    e = slice(None, n_eval)
    return dataclasses.replace(data, X_train=data.X_train[:n_train], Y_train=data.Y_train[:n_train],
                               X_val=data.X_val[e], Y_val=data.Y_val[e], X_test=data.X_test[e], Y_test=data.Y_test[e])


def run_cli(argv):
    """``mmoe-np`` with ``argv``; returns the exit status."""
    return cli.main(argv)


# ---------------------------------------------------------------- training on the real data


@needs_data
def test_short_mmoe_training_beats_auc_085_on_income(data):
    sizes = census.census_sizes(data.n_features, models="mmoe")["MMoE"]
    assert sizes == {"n_experts": 8, "expert_units": (16,), "tower_units": (8,)}
    result = census.train_runs("MMoE", subset(data, 20_000), sizes, runs=1, epochs=3, batch_size=256, patience=3)
    [run] = result.runs
    assert run.test_auc.shape == (2,)
    assert run.test_auc[0] > 0.85, f"income test AUC {run.test_auc[0]:.4f}"
    assert run.test_auc[1] > 0.85, f"never-married test AUC {run.test_auc[1]:.4f}"


@needs_data
def test_early_stopping_restores_the_best_validation_auc(data):
    # A large learning rate on few rows makes task 1's validation AUC peak and then fall, so the best epoch is not
    # the last one; the restored model must score exactly the best epoch's AUC again.
    small = subset(data, 4_000, n_eval=5_000)
    result = census.train_runs("Shared-Bottom", small, {"bottom_units": (32,), "tower_units": (8,)}, runs=1,
                               epochs=8, batch_size=128, lr=0.03, patience=2)
    [run] = result.runs
    history = run.val_auc_history
    assert history.shape == (run.epochs, 2)
    assert run.best_epoch == int(np.argmax(history[:, 0]))
    assert run.best_epoch < run.epochs - 1, "this setting should overshoot; pick another to test the restore"
    np.testing.assert_array_equal(run.val_auc, history[run.best_epoch])
    np.testing.assert_array_equal(census.task_aucs(result.first_model, small.X_val, small.Y_val), run.val_auc)
    np.testing.assert_array_equal(census.task_aucs(result.first_model, small.X_test, small.Y_test), run.test_auc)


@needs_data
def test_command_writes_table_csv_json_and_gate_plot(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(["census", "--data-dir", str(DATA_DIR), "--models", "mmoe, shared-bottom", "--runs", "2",
                    "--epochs", "1", "--train-rows", "3000", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| model | params (paper count) | income>50K test AUC | never_married test AUC |" in printed
    assert "| Shared-Bottom |" in printed and "| MMoE |" in printed

    with (out / "group1.csv").open() as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == census.CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == ["Shared-Bottom", "MMoE"]  # the paper's order, not the order asked
    for row in rows[1:]:
        assert row[1] == "2" and 0.5 <= float(row[4]) <= 1 and 0.5 <= float(row[6]) <= 1

    summary = json.loads((out / "group1.json").read_text())
    assert set(summary) == {"benchmark", "settings", "task_names", "wall_seconds", "load_average", "models",
                            "comparisons", "environment"}
    assert {"mmoe_np", "git_commit", "numpy", "blas", "thread_variables"} <= summary["environment"].keys()
    assert summary["task_names"] == ["income>50K", "never_married"]
    assert summary["settings"]["n_train"] == 3000 and summary["settings"]["group"] == 1
    mmoe = summary["models"][1]
    assert mmoe["model"] == "MMoE" and mmoe["params"] == mn.count_params(mn.MMoE(486, ("binary",) * 2))
    assert mmoe["params_paper"] == 486 * 16 * 8 + 16 * 8 * 2  # the paper's count for 486 inputs
    assert len(mmoe["runs"]) == 2 and [r["seed"] for r in mmoe["runs"]] == [0, 1]
    assert set(mmoe["runs"][0]) == {"seed", "test_auc", "val_auc", "best_epoch", "task_best_epochs", "epochs",
                                    "seconds", "val_auc_history"}
    # MMoE against the other model on the main task, paired by run: printed, and in the JSON
    [comparison] = summary["comparisons"]
    assert comparison["claim"] == "MMoE > Shared-Bottom (income>50K test AUC)"
    diffs = [a["test_auc"][0] - b["test_auc"][0] for a, b in zip(mmoe["runs"], summary["models"][0]["runs"])]
    assert comparison["interval"]["mean"] == pytest.approx(np.mean(diffs), abs=1e-12)
    assert f"MMoE > Shared-Bottom (income>50K test AUC): {comparison['verdict']} (mean difference" in printed
    # the best run of every model (by validation AUC) is saved and reloads
    for m in summary["models"]:
        assert (out / f"model-{m['model'].lower()}-group1-best.npz").is_file()
    assert (out / "group1.md").read_text().startswith("| model |")
    png = out / "gates-mmoe-group1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "gates-shared-bottom-group1.png").exists()


def test_cli_main_has_the_census_command():
    args = cli.build_parser().parse_args(["census", "--data-dir", ".", "--group", "2", "--models", "omoe",
                                          "--runs", "3"])
    assert args.command == "census" and callable(args.func)
    assert (args.group, args.models, args.runs) == (2, ["omoe"], 3)
    assert args.out == "results/census"  # like every other command: results/<command>/


# ---------------------------------------------------------------- sizes


def test_sizes_are_parameter_matched_to_mmoe():
    n_features = 40
    sizes = census.census_sizes(n_features)
    assert list(sizes) == list(census.MODELS) == list(census.KNOWN_MODELS)[:7]  # "all": the paper's seven
    counts = {name: mn.count_params(census.build_model(name, n_features, kwargs), convention="paper")
              for name, kwargs in sizes.items()}
    target = n_features * 16 * 8 + 16 * 8 * 2
    assert counts["MMoE"] == counts["OMoE"] == target
    for name, count in counts.items():
        assert abs(count - target) / target < 0.03, (name, count, target)
    assert sizes["Tensor-Factorization"]["ranks"] == (*sizes["Tensor-Factorization"]["hidden_units"] * 2, 2)
    assert sizes["L2-Constrained"]["l2_weight"] == census.DEFAULTS["l2_weight"]
    assert sizes["Single-Task"]["hidden_units"] == sizes["Cross-Stitch"]["hidden_units"]


def test_cgc_and_ple_keep_mmoes_experts_split_into_shared_and_per_task():
    sizes = census.census_sizes(40, models="mmoe, cgc, ple")
    assert sizes["CGC"] == {"n_shared_experts": 4, "n_task_experts": 2, "expert_units": (16,), "tower_units": (8,)}
    assert sizes["PLE"] == {"n_levels": 2, **sizes["CGC"]}
    cgc = census.build_model("CGC", 40, sizes["CGC"])
    assert cgc.n_shared_experts + cgc.n_tasks * cgc.n_task_experts == sizes["MMoE"]["n_experts"]
    wide = census.census_sizes(40, models="cgc", n_experts=12, expert_units=(32,))["CGC"]
    assert (wide["n_shared_experts"], wide["n_task_experts"], wide["expert_units"]) == (6, 3, (32,))
    with pytest.raises(ValueError, match="n_experts must be at least n_tasks"):
        census.census_sizes(40, models="ple", n_experts=2)


def test_size_overrides_and_model_selection():
    sizes = census.census_sizes(30, models="sharedbottom,TensorFactorization", bottom_units=(50,),
                                tf_ranks=(4, 3, 1), tf_hidden_units=(10,))
    assert list(sizes) == ["Shared-Bottom", "Tensor-Factorization"]
    assert sizes["Shared-Bottom"]["bottom_units"] == (50,)
    assert sizes["Tensor-Factorization"] == {"hidden_units": (10,), "tower_units": (8,), "ranks": (4, 3, 1)}
    assert census.parse_models("all") == census.parse_models(["All"]) == list(census.MODELS)
    assert census.parse_models(["ple", "MMoE", "cgc"]) == ["MMoE", "CGC", "PLE"]
    assert census.parse_models("all") + ["CGC", "PLE"] == census.parse_models(list(census.KNOWN_MODELS))
    assert list(census.BEYOND_PAPER) == ["CGC", "PLE"]
    with pytest.raises(ValueError, match="'all' chooses every model and stands alone"):
        census.parse_models(["all", "cgc"])
    assert census.parse_models(["MMoE", "cross stitch", "single-task"]) == ["Single-Task", "Cross-Stitch", "MMoE"]


def test_tensor_factorization_ranks_fit_the_given_widths():
    # Widths without ranks: the largest ranks every layer admits, r1 <= n_features and the widths before the last.
    sizes = census.census_sizes(30, models="tensor-factorization", tf_hidden_units=(50, 8))["Tensor-Factorization"]
    assert sizes["ranks"] == (30, 8, 2)
    census.build_model("Tensor-Factorization", 30, sizes)  # builds: the ranks fit
    sizes = census.census_sizes(30, models="tensor-factorization", tf_hidden_units=(50,))["Tensor-Factorization"]
    assert sizes["ranks"] == (30, 50, 2)
    # Given ranks too large for the dimension they factor fail here, before any data is loaded or model trained.
    for ranks, name in [((40, 3, 1), "r1"), ((4, 11, 1), "r2"), ((4, 3, 3), "r3")]:
        with pytest.raises(ValueError, match=name):
            census.census_sizes(30, models="tensor-factorization", tf_ranks=ranks, tf_hidden_units=(10,))


def fake_data(n=256, d=40, seed=0):
    """A small two-task binary problem with the attributes train_runs reads."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = (X[:, :2] + 0.5 * rng.standard_normal((n, 2)) > 0).astype(np.float32)
    return types.SimpleNamespace(X_train=X, Y_train=Y, X_val=X[:128], Y_val=Y[:128], X_test=X[128:], Y_test=Y[128:])


@pytest.fixture(scope="module")
def fake_results():
    data = fake_data()
    sizes = census.census_sizes(40, models=list(census.KNOWN_MODELS))  # the paper's seven, CGC and PLE
    return {name: census.train_runs(name, data, sizes[name], runs=3, epochs=2, batch_size=64, patience=2)
            for name in census.KNOWN_MODELS}


def test_parameter_counts_are_those_of_the_built_models(fake_results):
    for name, result in fake_results.items():
        model = census.build_model(name, 40, result.sizes)
        assert result.params_full == mn.count_params(model) == sum(a.size for a in model.params.values())
        assert result.params_paper == mn.count_params(model, convention="paper")


def test_mean_and_std_over_runs_recomputed_by_hand(fake_results, tmp_path):
    bench = census.CensusBenchmark({}, ("a", "b"), list(fake_results.values()), 1.0, {"start": None, "end": None})
    with census.write_census_csv(bench, tmp_path / "t.csv").open() as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    table = census.format_table(bench)
    for name, result in fake_results.items():
        auc = np.array([r.test_auc for r in result.runs])  # (3, 2)
        mean = auc.sum(axis=0) / 3
        std = np.sqrt(((auc - mean) ** 2).sum(axis=0) / 2)  # the sample std (ddof = 1)
        got_mean, got_std = result.mean_std("test_auc")
        np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(got_std, std, rtol=1e-12)
        row = rows[name]
        assert row["runs"] == "3" and int(row["params"]) == result.params_full
        np.testing.assert_allclose([float(row["test_auc_task1_mean"]), float(row["test_auc_task1_std"]),
                                    float(row["test_auc_task2_mean"]), float(row["test_auc_task2_std"])],
                                   [mean[0], std[0], mean[1], std[1]], atol=1e-6)
        assert f"| {name} | {result.params_full:,} ({result.params_paper:,}) | {mean[0]:.4f} ± {std[0]:.4f} " \
               f"| {mean[1]:.4f} ± {std[1]:.4f} |" in table
    one = dataclasses.replace(fake_results["MMoE"], runs=fake_results["MMoE"].runs[:1])
    np.testing.assert_array_equal(one.mean_std("test_auc")[1], [0.0, 0.0])  # one run: no spread, not NaN


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("models", ["mmoe,transformer", "", " , "])
def test_unknown_model_names_are_rejected(models):
    with pytest.raises(ValueError, match="models"):
        census.parse_models(models)


@pytest.mark.parametrize("kwargs, name", [({"group": 3}, "group"), ({"group": 0}, "group"), ({"runs": 0}, "runs"),
                                          ({"group": True}, "group"), ({"group": 1.0}, "group"),
                                          ({"recipe": "pandas"}, "recipe"), ({"tf_ranks": (2, 2)}, "tf_ranks"),
                                          ({"models": "mmoe,foo"}, "models"), ({"runs": -2}, "runs")])
def test_bad_benchmark_arguments_raise_before_loading(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        census.run_census_benchmark(tmp_path, **kwargs)  # tmp_path holds no data: the check must come first


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="data_dir .* is not a directory"):
        census.run_census_benchmark(tmp_path / "nowhere")


@pytest.mark.parametrize("argv, name", [(["--group", "3"], "--group"), (["--runs", "0"], "--runs"),
                                        (["--models", "mmoe,bert"], "--models"), (["--lr", "-1"], "--lr"),
                                        (["--data-dir", "/no/such/dir"], "--data-dir"),
                                        (["--train-rows", "0"], "--train-rows"),
                                        (["--tf-ranks", "2,2"], "--tf-ranks"),
                                        (["--dropout", "1"], "--dropout must be in [0, 1)"),
                                        (["--weight-decay", "-0.1"], "--weight-decay"),
                                        (["--models", "MMoE", "mmoe"], "--models must not repeat")])
def test_command_reports_bad_arguments(tmp_path, capsys, argv, name):
    base = ["census", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]
    assert run_cli(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np census: error:") and name in err
    assert not (tmp_path / "out").exists()


def test_command_checks_out_before_loading_or_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(census, "run_checked", lambda *a, **k: pytest.fail("ran before checking --out"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_cli(["census", "--data-dir", str(tmp_path), "--out", str(blocker / "sub")]) == 2
    assert "--out" in capsys.readouterr().err


def test_command_reports_a_missing_data_file_without_a_traceback(tmp_path, capsys):
    assert run_cli(["census", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np census: error:") and "census-income.data.gz not found" in err


def test_bad_sizes_and_training_arguments_name_the_argument():
    with pytest.raises(ValueError, match="tf_ranks"):
        census.census_sizes(30, models="tensor-factorization", tf_ranks=(2, 2))
    with pytest.raises(ValueError, match="expert_units"):
        census.census_sizes(30, expert_units=16)
    with pytest.raises(ValueError, match=r"^Tensor-Factorization \(ranks w, w, K\): no width up to 12"):
        census.census_sizes(12, models="tensor-factorization")  # r1 = w <= 12 inputs cannot reach MMoE's size
    X, Y = np.zeros((4, 3), np.float32), np.array([[0, 1]] * 4, np.float32)
    tiny = types.SimpleNamespace(X_train=X, Y_train=Y, X_val=X, Y_val=Y, X_test=X, Y_test=Y)
    with pytest.raises(ValueError, match="patience"):
        census.train_runs("MMoE", tiny, {"n_experts": 2}, patience=0)


def test_standardize_non_binary_uses_training_statistics_only():
    @dataclasses.dataclass(frozen=True)
    class Splits:
        X_train: np.ndarray
        X_val: np.ndarray
        X_test: np.ndarray

    train = np.array([[0, 1, 10.0], [1, 0, 20.0], [1, 1, 30.0], [0, 0, 40.0]], np.float32)
    other = np.array([[1, 0, 25.0], [0, 1, 55.0]], np.float32)
    scaled = census.standardize_non_binary(Splits(train, other, other))
    mean, std = 25.0, np.sqrt(125.0)  # of the training column 10, 20, 30, 40 (ddof=0)
    np.testing.assert_array_equal(scaled.X_train[:, :2], train[:, :2])  # one-hot columns are left alone
    np.testing.assert_allclose(scaled.X_train[:, 2], (train[:, 2] - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(scaled.X_val[:, 2], (other[:, 2] - mean) / std, rtol=1e-6)
    np.testing.assert_array_equal(scaled.X_test, scaled.X_val)
    assert train[0, 2] == 10.0 and scaled.X_train.dtype == np.float32  # the input is not modified


# ---------------------------------------------------------------- per-task best epochs, paired comparisons, best run


def test_per_task_best_epochs_and_runs_cut_short():
    history = np.array([[0.90, 0.80], [0.92, 0.85], [0.91, 0.86]])  # task 1 best at epoch 2, task 2 still rising
    run = census.RunResult(seed=0, test_auc=np.zeros(2), val_auc=history[1], best_epoch=1, epochs=3, seconds=1.0,
                           val_auc_history=history)
    np.testing.assert_array_equal(run.task_best_epochs, [1, 2])
    done = dataclasses.replace(run, val_auc_history=np.array([[0.90, 0.86], [0.92, 0.85], [0.91, 0.84]]))
    result = census.ModelResult("MMoE", {}, 1, 1, runs=[run, done, run])
    np.testing.assert_array_equal(result.still_improving(), [0, 2])  # task 2 cut short in runs 1 and 3
    bench = census.CensusBenchmark({}, ("a", "b"), [result], 1.0, {"start": None, "end": None})
    assert "| epochs (best a / b) | b cut short |" in census.format_table(bench)
    assert "| 3.0 (2.0 / 2.3) | 2 of 3 |" in census.format_table(bench)  # 1-based means: (2+2+2)/3, (3+1+3)/3


def test_gate_plots_of_cgc_and_ple_are_their_gate_reports(fake_results, tmp_path, monkeypatch):
    from mmoe_np.experiments import figures

    drawn = {}
    original = figures.plot_gate_report

    def recording(report, path, **kwargs):
        drawn[Path(path).name] = report
        return original(report, path, **kwargs)

    monkeypatch.setattr(figures, "plot_gate_report", recording)
    models = [fake_results[name] for name in ("MMoE", "CGC", "PLE")]
    bench = census.CensusBenchmark({"group": 1}, ("a", "b"), models, 1.0, {"start": None, "end": None},
                                   X_test=fake_data().X_test)
    written = {p.name for p in bench.write(tmp_path / "out")}
    assert {"gates-mmoe-group1.png", "gates-cgc-group1.png", "gates-ple-group1.png"} <= written
    assert set(drawn) == {"gates-cgc-group1.png", "gates-ple-group1.png"}  # MMoE keeps its distributions plot
    for name in ("cgc", "ple"):
        report = drawn[f"gates-{name}-group1.png"]
        assert report.expert_labels == ["shared 1", "shared 2", "shared 3", "shared 4", "own 1", "own 2"]
        assert report.utilisation.shape == (2, 6) and report.n_rows == 128
        assert (tmp_path / "out" / f"gates-{name}-group1.png").read_bytes()[:4] == b"\x89PNG"


def test_paired_comparisons_of_mmoe_with_every_other_model(fake_results):
    bench = census.CensusBenchmark({}, ("a", "b"), list(fake_results.values()), 1.0, {"start": None, "end": None})
    verdicts = bench.comparisons()
    others = [name for name in census.KNOWN_MODELS if name != "MMoE"]
    assert [v.claim for v in verdicts] == [f"MMoE > {name} (a test AUC)" for name in others]
    mmoe = np.array([r.test_auc[0] for r in fake_results["MMoE"].runs])
    for v, name in zip(verdicts, others):
        other = np.array([r.test_auc[0] for r in fake_results[name].runs])
        expected = mn.experiments.stats.verdict(mmoe - other, "greater")
        assert (v.outcome, v.interval) == (expected.outcome, expected.interval)
    assert census.format_comparisons(bench).splitlines() == [v.line() for v in verdicts]
    without = census.CensusBenchmark({}, ("a", "b"), [fake_results["OMoE"]], 1.0, {"start": None, "end": None})
    assert without.comparisons() == [] and census.format_comparisons(without) == ""


def test_the_best_run_by_validation_auc_is_kept_and_reloads(tmp_path):
    data = fake_data()
    result = census.train_runs("OMoE", data, {"n_experts": 2, "expert_units": (4,)}, runs=3, epochs=2,
                               batch_size=64, keep_best=True)
    assert result.best_run == int(np.argmax([r.val_auc[0] for r in result.runs]))
    best = result.runs[result.best_run]
    bench = census.CensusBenchmark({"group": 1}, ("a", "b"), [result], 1.0, {"start": None, "end": None})
    paths = bench.write(tmp_path, plots=False)
    assert [p.name for p in paths] == ["group1.md", "group1.csv", "group1.json", "model-omoe-group1-best.npz"]
    model = mn.load(tmp_path / "model-omoe-group1-best.npz")
    assert model.seed == best.seed
    assert mn.checkpoint_info(tmp_path / "model-omoe-group1-best.npz")["data"] == {
        "dataset": "census-income", "group": 1, "recipe": None, "split_seed": None,
        "numeric": result.training.get("numeric"), "standardize": False, "train_rows": None, "n_features": None,
        "task_names": ["a", "b"]}
    p = model.predict(data.X_test)
    np.testing.assert_array_equal([mn.metrics.roc_auc(data.Y_test[:, k], p[:, k]) for k in range(2)], best.test_auc)


def tuned_file(tmp_path, n_features=40):
    doc = {"format": census.TUNED_FORMAT,
           "data": {"group": 1, "recipe": "paper", "split_seed": 0, "dtype": "float32", "n_features": n_features},
           "models": {"Shared-Bottom": {"sizes": {"bottom_units": [16], "tower_units": [8]}, "lr": 3e-3,
                                       "batch_size": 64, "epochs": 2, "patience": 1, "numeric": None},
                      "MMoE": {"sizes": {"n_experts": 3, "expert_units": [8], "tower_units": [4]}, "lr": 2e-3,
                               "batch_size": 32, "epochs": 3, "patience": 2, "numeric": None}}}
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(doc))
    return path


def test_runs_in_worker_processes_match_the_runs_in_this_process(tmp_path):
    data = fake_data(n=400)
    source = census.ArraySource(data.X_train, data.Y_train, data.X_val, data.Y_val, data.X_test, data.Y_test)
    s = census.check_settings(tmp_path, config=tuned_file(tmp_path), runs=2)
    assert s["plan"]["MMoE"] == {"sizes": {"n_experts": 3, "expert_units": (8,), "tower_units": (4,)}, "lr": 2e-3,
                                 "batch_size": 32, "epochs": 3, "patience": 2, "numeric": None,
                                 "weight_decay": 0.0, "dropout": 0.0, "schedule": "constant"}  # an older config
    here = census.run_checked(s, source=source)
    there = census.run_checked({**s, "workers": 2}, source=source)
    for a, b in zip(here.models, there.models):
        assert (a.name, a.sizes, a.training, a.best_run) == (b.name, b.sizes, b.training, b.best_run)
        np.testing.assert_allclose([r.test_auc for r in a.runs], [r.test_auc for r in b.runs], atol=1e-5)
        assert a.best_model is not None and b.best_model is not None and b.first_model is not None
    assert [m.name for m in here.models] == ["Shared-Bottom", "MMoE"]
    assert here.models[1].training["lr"] == 2e-3 and here.models[1].runs[0].epochs <= 3
    assert "epochs" not in here.settings and here.settings["config"] == str(tmp_path / "tuned.json")


# ---------------------------------------------------------------- the regularisers: weight decay, dropout, schedule


class RecordingAdam(mn.Adam):
    """Adam that keeps itself in ``made`` and records the learning rate of every step it takes."""
    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rates = []
        RecordingAdam.made.append(self)

    def step(self, grads):
        self.rates.append(self.lr)
        return super().step(grads)


@pytest.fixture
def recording_adam(monkeypatch):
    RecordingAdam.made = []
    monkeypatch.setattr(census_runs, "Adam", RecordingAdam)
    return RecordingAdam.made


def test_fit_run_trains_with_weight_decay_dropout_and_the_cosine_schedule(recording_adam):
    data = fake_data()  # 256 training rows: batches of 100 -> 3 steps per epoch
    fitted = census.fit_run("MMoE", {"n_experts": 3, "expert_units": (8,)}, data.X_train, data.Y_train, data.X_val,
                            data.Y_val, seed=1, epochs=2, batch_size=100, lr=4e-3, patience=5, weight_decay=0.05,
                            dropout=0.2, schedule="cosine")
    [adam] = recording_adam
    assert adam.weight_decay == 0.05 and fitted.model.dropout == 0.2 and fitted.epochs == 2
    assert adam.rates == [scheduled_lr(4e-3, s, 6, "cosine") for s in range(1, 7)]  # S = 2 epochs x 3 batches
    assert adam.rates[0] == 4e-3 > adam.rates[3] > adam.rates[-1] and adam.lr == 4e-3


def test_fit_run_without_regularisers_is_the_plain_training_bit_for_bit():
    # the defaults (no decay, no dropout, constant rate) train exactly as fit_run did before they existed
    data, sizes = fake_data(), {"n_experts": 3, "expert_units": (8,)}
    for name in ("MMoE", "Cross-Stitch"):
        fitted = census.fit_run(name, sizes if name == "MMoE" else {"hidden_units": (8,)}, data.X_train, data.Y_train,
                                data.X_val, data.Y_val, seed=2, epochs=3, batch_size=64, lr=3e-3, patience=1)
        model = census.build_model(name, 40, sizes if name == "MMoE" else {"hidden_units": (8,)}, seed=2)
        stopping = mn.EarlyStopping(score=lambda m: census.task_aucs(m, data.X_val, data.Y_val)[0], mode="max",
                                    patience=1, restore_best=True)
        mn.fit(model, data.X_train, data.Y_train, optimizer=mn.Adam(model.params, lr=3e-3), epochs=3, batch_size=64,
               seed=2, early_stopping=stopping)
        for key in model.params:
            np.testing.assert_array_equal(fitted.model.params[key], model.params[key], err_msg=key)


def test_regularisers_are_checked_and_a_config_sets_them(tmp_path):
    for kwargs, message in [({"dropout": 1.0}, r"dropout must be in \[0, 1\)"), ({"weight_decay": -1}, "weight_decay"),
                            ({"schedule": "linear"}, "schedule must be one of")]:
        with pytest.raises(ValueError, match=message):
            census.run_census_benchmark(tmp_path, **kwargs)  # no data in tmp_path: checked first
        with pytest.raises(ValueError, match=message):
            census.train_runs("MMoE", fake_data(), {"n_experts": 2}, runs=1, epochs=1, **kwargs)
    s = census.check_settings(tmp_path, models="mmoe,omoe", weight_decay=1e-3, dropout=0.1, schedule="cosine")
    assert {k: s["plan"]["OMoE"][k] for k in census.REGULARISERS} == {"weight_decay": 1e-3, "dropout": 0.1,
                                                                         "schedule": "cosine"}
    with pytest.raises(ValueError, match="dropout is set by the config"):
        census.check_settings(tmp_path, config=tuned_file(tmp_path), dropout=0.1)


def test_census_config_trains_every_model_with_its_regularisers(tmp_path, monkeypatch, capsys, recording_adam):
    # mmoe-np census --config tuned.json: a model whose entry names the regularisers trains with them, one whose
    # entry predates them (Shared-Bottom here) without
    path = tuned_file(tmp_path)
    doc = json.loads(path.read_text())
    doc["models"]["MMoE"].update(weight_decay=0.01, dropout=0.25, schedule="cosine")
    path.write_text(json.dumps(doc))
    data = fake_data(n=400)
    loaded = types.SimpleNamespace(**vars(data), n_features=40, task_names=("a", "b"))
    monkeypatch.setattr(mn.data, "load_census_income", lambda *args, **kwargs: loaded)
    out = tmp_path / "out"
    assert run_cli(["census", "--data-dir", str(tmp_path), "--config", str(path), "--runs", "2", "--out", str(out),
                    "--no-plot", "--quiet"]) == 0
    capsys.readouterr()
    bench = json.loads((out / "group1.json").read_text())
    training = {m["model"]: m["training"] for m in bench["models"]}
    assert {k: training["MMoE"][k] for k in census.REGULARISERS} == {"weight_decay": 0.01, "dropout": 0.25,
                                                                        "schedule": "cosine"}
    assert {k: training["Shared-Bottom"][k] for k in census.REGULARISERS} == {"weight_decay": 0.0, "dropout": 0.0,
                                                                                 "schedule": "constant"}
    # the runs in order: Shared-Bottom's two (batch 64), then MMoE's two (batch 32, at most 3 epochs)
    assert [a.weight_decay for a in recording_adam] == [0.0, 0.0, 0.01, 0.01]
    assert all(set(a.rates) == {3e-3} for a in recording_adam[:2])
    steps = 3 * math.ceil(len(data.X_train) / 32)  # the cosine's length: epochs x batches, even if stopped early
    for adam in recording_adam[2:]:
        assert adam.rates == [scheduled_lr(2e-3, s, steps, "cosine") for s in range(1, len(adam.rates) + 1)]
    best = mn.load(out / "model-mmoe-group1-best.npz")
    assert best.dropout == 0.25 and mn.load(out / "model-shared-bottom-group1-best.npz").dropout == 0.0
