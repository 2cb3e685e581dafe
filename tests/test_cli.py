"""The `mmoe-np` command as a user meets it: one --models syntax everywhere, --help naming the models, errors naming
the flags, diverged runs counted, and a run interrupted by Ctrl-C (SIGINT) or killed (SIGTERM) leaving its output
folder as it was, one line on stderr and no worker process behind."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import types

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import cli
from mmoe_np.experiments import census
from mmoe_np.experiments import synthetic as S
from mmoe_np.experiments.lockstep import replica_streams

TINY = ["--runs", "2", "--steps", "4", "--batch-size", "8", "--eval-every", "2", "--n-test", "20", "--workers", "0",
        "--quiet", "--no-plot", "--correlations", "0.5"]
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ --models
@pytest.mark.parametrize("models", [["mmoe,omoe"], ["MMoE", "OMoE"], ["mmoe,", "OMOE"], ["MMoE, omoe"],
                                    ["mmoe omoe"], ["MMoE  OMoE "]])
def test_synthetic_models_commas_or_spaces_any_case(models, tmp_path, capsys):
    assert cli.main(["synthetic", "--out", str(tmp_path), "--models", *models] + TINY) == 0
    assert json.loads((tmp_path / "synthetic.json").read_text())["config"]["models"] == ["mmoe", "omoe"]


@pytest.mark.parametrize("models", [["mmoe,shared-bottom"], ["MMoE", "Shared-Bottom"], ["SharedBottom, mmoe"],
                                    ["all"]])
def test_census_models_commas_or_spaces_any_case(models, tmp_path, capsys, monkeypatch):
    chosen = []

    def stop(settings, **kwargs):  # the settings reach the run already checked; nothing is loaded
        chosen.append(settings["models"])
        raise ValueError("stopped before loading")

    monkeypatch.setattr(census, "run_checked", stop)
    assert cli.main(["census", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--models",
                     *models]) == 2
    expected = list(census.MODELS) if models == ["all"] else ["Shared-Bottom", "MMoE"]
    assert chosen == [expected]


@pytest.mark.parametrize("command, names", [("synthetic", S.MODELS), ("shared-bottom", S.MODELS),
                                            ("trainability", S.MODELS), ("census", census.MODELS)])
def test_help_lists_the_valid_model_names(command, names, capsys):
    assert cli.main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "comma" in text and "any case" in text
    for name in names:
        assert name in text, name


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("argv, flag, identifier", [
    (["census", "--train-rows", "0"], "--train-rows", "train_rows"),
    (["census", "--split-seed", "-1"], "--split-seed", "split_seed"),
    (["census", "--experts", "0"], "--experts", "n_experts"),
    (["census", "--expert-units", "0"], "--expert-units", "expert_units"),
    (["synthetic", "--n-test", "0"], "--n-test", "n_test"),
    (["synthetic", "--group-size", "0"], "--group-size", "group_size"),
    (["synthetic", "--workers", "-1"], "--workers", None),
    (["correlation", "--points", "1"], "--points", "n_points"),
])
def test_errors_name_the_flag_not_the_python_identifier(argv, flag, identifier, tmp_path, capsys):
    extra = ["--data-dir", str(tmp_path)] if argv[0] == "census" else []
    assert cli.main(argv + extra + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmoe-np {argv[0]}: error: {flag}") and err.count("\n") == 1, err
    if identifier is not None:
        assert identifier not in err


def test_paths_in_messages_are_not_rewritten(tmp_path, capsys):
    folder = tmp_path / "train_rows" / "data_dir"  # a path made of argument names
    assert cli.main(["census", "--data-dir", str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np census: error: --data-dir ") and str(folder) in err


@pytest.mark.parametrize("argv, flag, words", [
    (["synthetic", "--lr", "nope=1"], "--lr", "unknown model 'nope'"),
    (["synthetic", "--lr", "all=1"], "--lr", "'all'"),
    (["synthetic", "--lr", "mmoe=1,MMoE=2"], "--lr", "twice"),
    (["synthetic", "--models", "mmoe", "--lr", "omoe=1"], "--lr", "'omoe', which --models does not train"),
    (["synthetic", "--correlations", "2"], "--correlations", "must be a number in [-1, 1]; got 2.0"),
    (["correlation", "--correlations", "1.5"], "--correlations", "must be a number in [-1, 1]; got 1.5"),
    (["synthetic", "--correlations", "0.5", "0.5"], "--correlations", "must not repeat a value"),
    (["correlation", "--correlations", "0.5", "0.5"], "--correlations", "must not repeat a value"),
    (["synthetic", "--models", "mmoe,"], "--models", "empty name"),
    (["synthetic", "--models", "mmoe,,omoe"], "--models", "empty name"),
    (["synthetic", "--models", "mmoe", ","], "--models", "empty name"),
    (["census", "--models", "all,mmoe"], "--models", "'all'"),
    (["census", "--models", "mmoe", "all"], "--models", "'all'"),
])
def test_list_flags_are_named_in_their_errors(argv, flag, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(census, "run_checked", lambda *args, **kwargs: pytest.fail("the settings were accepted"))
    extra = {"census": ["--data-dir", str(tmp_path)], "correlation": ["--runs", "2", "--points", "10"]}
    assert cli.main(argv + extra.get(argv[0], TINY[:-2]) + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmoe-np {argv[0]}: error: {flag}") and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_lr_for_some_models_keeps_the_profiles_rate_for_the_others(tmp_path, capsys, monkeypatch):
    seen = {}

    def stop(models, correlations, **kwargs):  # what the study would train with; nothing is trained
        seen.update(models=models, lr=kwargs["lr"])
        raise ValueError("stopped before training")

    monkeypatch.setattr(S, "synthetic_study", stop)
    for profile in ("quick", "paper"):
        assert cli.main(["synthetic", "--profile", profile, "--lr", "mmoe=1e-3,OMoE=1e-2", "--out",
                         str(tmp_path)]) == 2
        assert "stopped before training" in capsys.readouterr().err
        rate = (S.PAPER if profile == "paper" else S.QUICK)["lr"]
        default = rate if not isinstance(rate, dict) else rate["shared-bottom"]
        assert seen["lr"] == {"shared-bottom": default, "omoe": 1e-2, "mmoe": 1e-3}, profile
    assert cli.main(["synthetic", "--lr", "0.5", "--out", str(tmp_path)]) == 2
    assert seen["lr"] == 0.5
    assert cli.main(["synthetic", "--help"]) == 0
    assert "mmoe=1e-3,omoe=1e-2" in " ".join(capsys.readouterr().out.split())  # the example that now works


@pytest.mark.parametrize("command", ["synthetic", "census", "census-tune", "correlation"])
def test_an_unknown_option_prints_the_subcommands_usage(command, capsys):
    assert cli.main([command, "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: mmoe-np {command} ") and "error: unrecognized arguments: --bogus" in err, err


@pytest.mark.parametrize("command", ["census", "census-tune"])
def test_the_census_help_shows_the_models_default_as_typed(command, capsys):
    assert cli.main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: all)" in text and "['all']" not in text


def test_diverged_runs_are_counted_and_recorded(tmp_path, capsys):
    # Adam with lr 1e30 throws the parameters out of float32's range within a few steps: every run diverges,
    # is held at its last good parameters, and the command still finishes and writes its results.
    argv = ["synthetic", "--out", str(tmp_path), "--models", "mmoe", "--lr", "1e30"] + TINY
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "diverged (non-finite loss or gradient; held at their last good parameters): 2 of 2 MMoE runs" in out
    doc = json.loads((tmp_path / "synthetic.json").read_text())
    assert doc["diverged"]["mmoe"]["runs"] == 2 and all(s > 0 for s in doc["diverged"]["mmoe"]["steps"][0])
    assert doc["summary"]["mmoe"]["0.5"]["diverged"] == 2


def test_synthetic_save_models_writes_one_stacked_model_per_model_and_correlation(tmp_path, capsys):
    argv = ["synthetic", "--out", str(tmp_path), "--models", "mmoe", "shared-bottom", "--save-models"] + TINY
    assert cli.main(argv[:-1] + ["1", "0.5"]) == 0  # TINY ends with --correlations 0.5: two correlations here
    final = {(r["model"], r["correlation"], int(r["run"])): float(r["final_test_mse"])
             for r in csv.DictReader((tmp_path / "synthetic-final.csv").open())}
    for model, cls in (("mmoe", mn.MMoE), ("shared-bottom", mn.SharedBottom)):
        for p in ("1", "0.5"):
            stacked = mn.load(tmp_path / f"synthetic-{model}-p{p}.npz")
            assert type(stacked) is cls and stacked.replica_shape == (2,)
            # replica i is run i: its own test set gives back the final test MSE the CSV reports
            for i, single in enumerate(mn.unstack_models(stacked)):
                run = S.make_runs((float(p),), 2, seed=0)[i]
                _, test_rng, _ = replica_streams(run.seed)
                X, Y = run.tasks.sample(20, test_rng, np.float32)
                mse = single.forward_backward(X, Y, backward=False).task_losses[0]
                assert np.isclose(mse, final[(model, p, i)], rtol=1e-4), (model, p, i)
    # a run without --save-models removes them: the folder holds one run's files
    assert cli.main(["synthetic", "--out", str(tmp_path), "--models", "mmoe"] + TINY) == 0
    assert not list(tmp_path.glob("*.npz"))


def test_census_save_models_writes_every_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 6)).astype(np.float32)
    Y = (X[:, :2] > 0).astype(np.float32)
    data = types.SimpleNamespace(X_train=X, Y_train=Y, X_val=X, Y_val=Y, X_test=X, Y_test=Y)
    sizes = census.census_sizes(6, models="mmoe")["MMoE"]
    result = census.train_runs("MMoE", data, sizes, runs=2, epochs=1, batch_size=32, keep_models=True)
    bench = census.CensusBenchmark({"group": 1}, ("a", "b"), [result], 1.0, {"start": None, "end": None}, X_test=X)
    paths = bench.write(tmp_path, plots=False)
    assert [p.name for p in paths] == ["group1.md", "group1.csv", "group1.json", "model-mmoe-group1-run1.npz",
                                       "model-mmoe-group1-run2.npz"]
    for r, run in enumerate(result.runs):
        model = mn.load(tmp_path / f"model-mmoe-group1-run{r + 1}.npz")
        assert model.seed == run.seed
        np.testing.assert_array_equal(census.task_aucs(model, X, Y), run.test_auc)
    assert census.train_runs("MMoE", data, sizes, runs=1, epochs=1, batch_size=32).trained == []


# ------------------------------------------------------------------------------------------------ Ctrl-C and SIGTERM
def children(pid):
    """The pids of the living child processes of ``pid``, read from /proc (zombies are not running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state not in "ZX":
                found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def run_and_signal(out, signum):
    """Start a long synthetic run with 2 workers writing into ``out``; once both workers train, send ``signum`` to
    the main process. Returns (exit status, stdout, stderr, the children seen while it ran)."""
    argv = [sys.executable, "-m", "mmoe_np", "synthetic", "--out", str(out), "--runs", "4", "--steps", "1000000",
            "--batch-size", "8", "--eval-every", "1000000", "--n-test", "20", "--workers", "2", "--quiet",
            "--correlations", "0.5"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        kids = children(proc.pid)
        seen.update(kids)
        workers = [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
        if len(workers) >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    time.sleep(2.0)  # the workers import numpy and start training
    seen.update(children(proc.pid))
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stdout.decode(), stderr.decode(), seen


@pytest.mark.parametrize("signum, status, word", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_signal_mid_run_stops_every_process_and_keeps_the_old_results(signum, status, word, tmp_path):
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the worker processes")
    out = tmp_path / "out"
    assert cli.main(["synthetic", "--out", str(out), "--runs", "2", "--steps", "2", "--batch-size", "8",
                     "--eval-every", "1", "--n-test", "20", "--workers", "0", "--quiet", "--correlations",
                     "1", "0.5"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["synthetic-curves.csv", "synthetic-curves.png", "synthetic-final.csv",
                              "synthetic-histograms.png", "synthetic.json"]

    code, stdout, stderr, seen = run_and_signal(out, signum)

    assert code == status, stderr
    assert stderr == f"mmoe-np synthetic: {word}\n"  # one line, no traceback from the parent or a worker
    assert stdout == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the complete old results, nothing else
    assert len(seen) >= 2
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in seen if alive(pid)], "a child process outlived the command"


@pytest.mark.parametrize("command", ["census", "census-tune"])
def test_the_census_help_states_each_default_once(command, capsys):
    assert cli.main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default [^)]*\) \(default: ", text)  # a default in the help, then argparse's again
