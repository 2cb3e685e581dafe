"""The Census-income tuner (mmoe_np.experiments.census_tune) and the tuned benchmark (census --config).

Most tests search a small constructed problem (:class:`census.ArraySource`, a few hundred rows, 1-3 epochs); the
tests marked ``needs_data`` tune on 2,000 real training rows and 5,000 validation rows, with the test rows
replaced by an object that fails on any use.
"""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import cli
from mmoe_np.experiments import census
from mmoe_np.experiments import census_tune as T

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "census-income"
needs_data = pytest.mark.skipif(not (DATA_DIR / "census-income.data.gz").is_file()
                                or not (DATA_DIR / "census-income.test.gz").is_file(),
                                reason=f"Census-income files not found in {DATA_DIR}")


class Poison:
    """Stands in for the test arrays: any use (indexing, shape, numpy conversion, arithmetic) fails the test; a
    slice of it is itself."""

    def __getattr__(self, name):
        raise AssertionError(f"the test rows were read ({name})")

    def __getitem__(self, key):
        if isinstance(key, slice):  # taking the first rows (CensusSource's eval_rows) reads no value
            return self
        raise AssertionError("the test rows were read (indexing)")

    def __array__(self, *args, **kwargs):
        raise AssertionError("the test rows were read (as an array)")

    def __len__(self):
        raise AssertionError("the test rows were read (len)")


def toy_source(seed=0, n=600, d=10, test=None, numeric_columns=(0,)):
    """Two binary tasks on d features; column 0 heavy-tailed (mostly 0, exponential tail) for the transforms."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[:, 0] = (rng.exponential(1000, n) * (rng.random(n) < 0.3)).astype(np.float32)
    Y = (X[:, 1:3] + 0.7 * rng.standard_normal((n, 2)) > 0).astype(np.float32)
    a, b = int(0.6 * n), int(0.8 * n)
    X_test, Y_test = (X[b:], Y[b:]) if test is None else test
    return census.ArraySource(X[:a], Y[:a], X[a:b], Y[a:b], X_test, Y_test, numeric_columns=numeric_columns)


SMALL = dict(trials=4, min_epochs=1, max_epochs=4, eta=2, patience=1)


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


# ---------------------------------------------------------------- search spaces and rungs


def test_configurations_are_reproducible_and_within_the_spaces():
    for name in census.KNOWN_MODELS:
        configs = [T.sample_config(name, i, seed=3) for i in range(300)]
        assert configs[:5] == [T.sample_config(name, i, seed=3) for i in range(5)]  # trial i is trial i
        assert T.sample_config(name, 0, seed=4) != configs[0]
        for c in configs:
            assert 1e-4 <= c["lr"] <= 1e-2 and c["batch_size"] in (256, 512, 1024, 2048)
            assert c["numeric"] in mn.data.census.NUMERIC_TRANSFORMS
            sizes = T.SPACES[name].sizes(c, 486)
            if "n_task_experts" in sizes:  # CGC, PLE: S shared + T per task, of one width, at every level
                units = (sizes["n_shared_experts"] + 2 * sizes["n_task_experts"]) * sizes["expert_units"][0]
            else:
                units = (sizes.get("n_experts", 1) * sizes.get("expert_units", (0,))[0] if "n_experts" in sizes
                         else sizes.get("bottom_units", (0,))[0] or 2 * sizes["hidden_units"][0])
            assert 0 < units <= T.UNIT_CAP, (name, c)  # every layer within the paper's 2048 units
            if name == "Tensor-Factorization":
                r1, r2, r3 = sizes["ranks"]
                assert r1 <= min(c["hidden_units"], 486) and r2 <= c["hidden_units"] and r3 in (1, 2)
        lrs = np.log10([c["lr"] for c in configs])
        assert abs(np.median(lrs) + 3) < 0.3  # log-uniform on [1e-4, 1e-2]: median near 1e-3
        assert {c["numeric"] for c in configs} == set(mn.data.census.NUMERIC_TRANSFORMS)
    assert {T.sample_config("PLE", i)["n_levels"] for i in range(50)} == {2, 3}
    assert "n_levels" not in T.SPACES["PLE"].sizes(T.sample_config("CGC", 0), 40)  # CGC: one level, its own class
    # the same (model, trial, seed) whatever else is searched; two models draw differently
    assert T.sample_config("omoe", 7) == T.sample_config("OMoE", 7) != T.sample_config("MMoE", 7)


def test_every_sampled_configuration_builds():
    for name in census.KNOWN_MODELS:
        for i in range(6):
            c = T.sample_config(name, i)
            census.build_model(name, 40, T.SPACES[name].sizes(c, 40))  # r1 clipped to the 40 features


@pytest.mark.parametrize("args, budgets", [((1, 9, 3), [1, 3, 9]), ((2, 10, 3), [2, 6, 10]), ((5, 5, 3), [5]),
                                           ((1, 4, 2), [1, 2, 4]), ((1, 10, 3), [1, 3, 9, 10])])
def test_rung_budgets(args, budgets):
    assert T.rung_budgets(*args) == budgets


@pytest.mark.parametrize("args, name", [((0, 9, 3), "min_epochs"), ((3, 2, 3), "min_epochs"), ((1, 9, 1), "eta"),
                                        ((1, 0, 3), "max_epochs")])
def test_rung_budgets_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        T.rung_budgets(*args)


# ---------------------------------------------------------------- the search and its records


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune")
    return out, T.tune(toy_source(), "mmoe,shared-bottom,tensor-factorization", out=out, **SMALL)


def test_successive_halving_records_every_trial(searched):
    out, result = searched
    names = ["Shared-Bottom", "Tensor-Factorization", "MMoE"]  # the paper's order
    assert result.settings["budgets"] == [1, 2, 4]
    for name in names:
        mine = [r for r in result.records if r["model"] == name]
        per_rung = [sorted(r["trial"] for r in mine if r["rung"] == k) for k in range(3)]
        assert [len(t) for t in per_rung] == [4, 2, 1]                  # 4 trials, then the best 1/2, then 1
        for k in (1, 2):  # the survivors of rung k are the best of rung k-1 by validation AUC
            previous = sorted((r for r in mine if r["rung"] == k - 1), key=lambda r: (-r["val_auc"], r["trial"]))
            assert per_rung[k] == sorted(r["trial"] for r in previous[:len(per_rung[k])])
        for r in mine:
            assert r["config"] == T.sample_config(name, r["trial"]) and r["seed"] == r["trial"]
            assert r["budget"] == [1, 2, 4][r["rung"]] and 1 <= r["epochs"] <= r["budget"]
            history = np.array(r["val_auc_history"])
            assert history.shape == (r["epochs"], 2)
            assert r["val_auc"] == pytest.approx(history[:, 0].max(), abs=1e-6)
            assert r["best_epoch"] == int(np.argmax(history[:, 0])) + 1
            assert (out / "trials" / f"{name.lower()}-t{r['trial']:04d}-r{r['rung']}.json").is_file()
        # the best of the last rung is the tuned model
        last = [r for r in mine if r["rung"] == 2]
        assert result.best[name] == max(last, key=lambda r: r["val_auc"])
    # CSV and JSON hold the same records
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0] == ",".join(T.TRIAL_COLUMNS) and len(rows) == 1 + len(result.records) == 1 + 3 * 7
    assert json.loads((out / "trials.json").read_text())["records"] == json.loads(json.dumps(result.records))


def test_a_trial_is_retrained_from_scratch_and_repeats_its_first_epochs(searched):
    _, result = searched
    by_key = {(r["model"], r["trial"], r["rung"]): r for r in result.records}
    repeated = 0
    for (name, trial, rung), r in by_key.items():
        if rung and r["reused_from_rung"] is None:
            before = np.array(by_key[name, trial, rung - 1]["val_auc_history"])
            np.testing.assert_array_equal(np.array(r["val_auc_history"])[:len(before)], before)
            repeated += 1
    assert repeated > 0


def test_a_trial_that_stopped_early_is_reused_not_retrained(tmp_path):
    # patience 1 with 6 epochs: some trials stop before their budget; their next rung is a copy, 0 seconds
    result = T.tune(toy_source(seed=1), "shared-bottom", out=tmp_path, trials=6, min_epochs=3, max_epochs=6, eta=2,
                    patience=1)
    reused = [r for r in result.records if r["reused_from_rung"] is not None]
    early = [r for r in result.records if r["rung"] == 0 and r["epochs"] < r["budget"]]
    survivors = {r["trial"] for r in result.records if r["rung"] == 1}
    assert {r["trial"] for r in reused} == {r["trial"] for r in early} & survivors
    for r in reused:
        first = next(x for x in result.records if x["trial"] == r["trial"] and x["rung"] == 0)
        assert r["seconds"] == 0 and r["val_auc_history"] == first["val_auc_history"]
    assert early, "no trial stopped early here; pick another seed to exercise the reuse"


def test_an_interrupted_search_resumes_with_the_same_trials(tmp_path, searched):
    _, whole = searched
    source, models = toy_source(), "mmoe,shared-bottom,tensor-factorization"
    seen = []

    def interrupt(record):
        seen.append(record)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.tune(source, models, out=tmp_path, on_record=interrupt, **SMALL)
    assert len(list((tmp_path / "trials").glob("*.json"))) == 5
    resumed = T.tune(source, models, out=tmp_path, **SMALL)
    assert resumed.trained == len(whole.records) - 5 - sum(r["reused_from_rung"] is not None for r in whole.records)
    assert without_seconds(resumed.records) == without_seconds(whole.records)
    assert without_seconds(resumed.best.values()) == without_seconds(whole.best.values())
    # a finished search run again trains nothing
    assert T.tune(source, models, out=tmp_path, **SMALL).trained == 0


def test_resuming_with_other_settings_is_refused(tmp_path):
    T.tune(toy_source(), "mmoe", out=tmp_path, trials=2, min_epochs=1, max_epochs=1)
    with pytest.raises(ValueError, match=r"other settings \(budgets, max_epochs, trials\)"):
        T.tune(toy_source(), "mmoe", out=tmp_path, trials=3, min_epochs=1, max_epochs=2)
    T.tune(toy_source(), "omoe", out=tmp_path, trials=2, min_epochs=1, max_epochs=1)  # another model: fine
    # a record whose configuration is not the one drawn now (the space changed) is refused
    record_path = tmp_path / "trials" / "mmoe-t0000-r0.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "config": {**record["config"], "lr": 0.5}}))
    with pytest.raises(ValueError, match="mmoe-t0000-r0.json holds another configuration"):
        T.tune(toy_source(), "mmoe", out=tmp_path, trials=2, min_epochs=1, max_epochs=1)


def test_the_test_rows_are_never_read(tmp_path, searched):
    # The same search with test arrays that fail on any use gives the same records.
    _, whole = searched
    poisoned = toy_source(test=(Poison(), Poison()), numeric_columns=())
    plain = toy_source(numeric_columns=())
    a = T.tune(poisoned, "mmoe,shared-bottom", out=tmp_path / "a", trials=3, min_epochs=1, max_epochs=2, eta=3)
    b = T.tune(plain, "mmoe,shared-bottom", out=tmp_path / "b", trials=3, min_epochs=1, max_epochs=2, eta=3)
    assert without_seconds(a.records) == without_seconds(b.records)


def test_trials_in_worker_processes_match_the_ones_in_this_process(tmp_path):
    source = toy_source(seed=2)
    here = T.tune(source, "mmoe,cross-stitch", out=tmp_path / "here", trials=3, min_epochs=1, max_epochs=2, eta=3)
    there = T.tune(source, "mmoe,cross-stitch", out=tmp_path / "there", trials=3, min_epochs=1, max_epochs=2, eta=3,
                   workers=2)
    key = lambda r: (r["model"], r["rung"], r["trial"])  # noqa: E731
    assert [key(r) for r in here.records] == [key(r) for r in there.records]
    np.testing.assert_allclose([r["val_auc"] for r in here.records], [r["val_auc"] for r in there.records],
                               atol=1e-5)  # BLAS threads may differ between the processes: last digits only


def test_fixed_keys_and_bad_arguments(tmp_path):
    result = T.tune(toy_source(), "omoe", out=tmp_path, trials=2, min_epochs=1, max_epochs=1,
                    fixed={"numeric": "quantile", "batch_size": 64})
    assert all(r["config"]["numeric"] == "quantile" and r["config"]["batch_size"] == 64 for r in result.records)
    for kwargs, name in [({"fixed": {"dropout": 0.1}}, "fixed"), ({"fixed": {"numeric": "log"}}, "numeric"),
                         ({"trials": 0}, "trials"), ({"models": "mmoe,bert"}, "models"), ({"workers": -1}, "workers"),
                         ({"patience": 0}, "patience"), ({"eta": 1}, "eta")]:
        kwargs = {"models": "mmoe", "trials": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            T.tune(toy_source(), kwargs.pop("models"), out=tmp_path / "bad", **kwargs)


def test_tuned_config_is_what_census_reads(searched, tmp_path):
    out, result = searched
    doc = json.loads((out / "tuned.json").read_text())
    assert doc == json.loads(json.dumps(result.tuned_config()))
    assert doc["format"] == census.TUNED_FORMAT and list(doc["models"]) == ["Shared-Bottom", "Tensor-Factorization",
                                                                             "MMoE"]
    mmoe = doc["models"]["MMoE"]
    best = result.best["MMoE"]
    assert (mmoe["lr"], mmoe["batch_size"], mmoe["numeric"]) == (best["config"]["lr"], best["config"]["batch_size"],
                                                                   best["config"]["numeric"])
    assert mmoe["epochs"] == 4 and mmoe["patience"] == 1 and mmoe["sizes"] == best["sizes"]
    # an ArraySource search has no group: census refuses it with a message naming the config
    with pytest.raises(ValueError, match="group"):
        census.read_tuned_config(out / "tuned.json")


# ---------------------------------------------------------------- on the real data, then census --config


@pytest.fixture(scope="module")
def real_tuned(tmp_path_factory):
    """A tiny search on the real data (2,000 training rows, 5,000 validation rows) whose test rows are poison."""
    out = tmp_path_factory.mktemp("real-tune")
    real_loader = mn.data.load_census_income

    def poisoned(*args, **kwargs):
        return dataclasses.replace(real_loader(*args, **kwargs), X_test=Poison(), Y_test=Poison())

    source = census.CensusSource(str(DATA_DIR), group=1, train_rows=2000, eval_rows=5000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mn.data, "load_census_income", poisoned)
        result = T.tune(source, "mmoe,shared-bottom", out=out, trials=3, min_epochs=1, max_epochs=2, eta=3,
                        fixed={"numeric": "log1p"})
    return out, result


@needs_data
def test_tuning_on_the_real_data_never_reads_the_test_rows(real_tuned):
    out, result = real_tuned
    assert len(result.records) == 2 * (3 + 1)
    assert all(0 < r["val_auc"] <= 1 and r["n_features"] == 486 for r in result.records)  # a step or two: any AUC
    tuned = census.read_tuned_config(out / "tuned.json")
    assert tuned["data"] == {"group": 1, "recipe": "paper", "split_seed": 0, "dtype": "float32", "n_features": 486}
    assert list(tuned["models"]) == ["Shared-Bottom", "MMoE"]
    assert tuned["models"]["MMoE"]["numeric"] == "log1p"


@needs_data
def test_census_trains_the_tuned_models_and_keeps_the_best_run(real_tuned, tmp_path):
    out, result = real_tuned
    s = census.check_settings(DATA_DIR, config=out / "tuned.json", runs=3, train_rows=2000)
    assert s["plan"]["MMoE"]["lr"] == result.best["MMoE"]["config"]["lr"] and s["group"] == 1
    source = census.CensusSource(str(DATA_DIR), group=1, train_rows=2000, eval_rows=5000)
    bench = census.run_checked(s, source=source)
    for m in bench.models:
        assert m.training["numeric"] == "log1p" and m.training["epochs"] == 2
        assert [r.seed for r in m.runs] == [0, 1, 2] and m.best_run is not None
        assert m.runs[m.best_run].val_auc[0] == max(r.val_auc[0] for r in m.runs)  # chosen on validation
    [verdict] = bench.comparisons()
    assert verdict.claim == "MMoE > Shared-Bottom (income>50K test AUC)" and verdict.interval.n == 3
    paths = bench.write(tmp_path, plots=False)
    assert tmp_path / "model-mmoe-group1-best.npz" in paths
    # the saved best model reloads and predicts the recorded test AUC
    data = source.load("log1p")
    for m in bench.models:
        model = mn.load(tmp_path / f"model-{m.name.lower()}-group1-best.npz")
        probabilities = model.predict(data.X_test)
        aucs = [mn.metrics.roc_auc(data.Y_test[:, k], probabilities[:, k]) for k in range(2)]
        np.testing.assert_allclose(aucs, m.runs[m.best_run].test_auc, rtol=1e-6)
    text = (tmp_path / "group1.md").read_text()
    assert "MMoE > Shared-Bottom (income>50K test AUC): " in text


@needs_data
def test_census_config_refuses_settings_that_differ_from_the_tuning(real_tuned):
    out, _ = real_tuned
    config = out / "tuned.json"
    for kwargs, name in [({"group": 2}, "group 2 differs"), ({"lr": 0.1}, "lr is set by the config"),
                         ({"n_experts": 4}, "n_experts is set by the config"),
                         ({"models": "omoe"}, r"models: \['OMoE'\] not in the config")]:
        with pytest.raises(ValueError, match=name):
            census.check_settings(DATA_DIR, config=config, **kwargs)
    assert census.check_settings(DATA_DIR, config=config, models="mmoe")["models"] == ["MMoE"]


# ---------------------------------------------------------------- the command


def test_census_tune_command_parses_and_names_bad_flags(tmp_path, capsys):
    args = cli.build_parser().parse_args(["census-tune", "--data-dir", ".", "--group", "2", "--models", "mmoe",
                                          "omoe", "--trials", "9", "--workers", "2", "--max-epochs", "6"])
    assert (args.group, args.models, args.trials, args.workers, args.max_epochs) == (2, ["mmoe", "omoe"], 9, 2, 6)
    assert args.out == "results/census-tune" and callable(args.func)
    for argv, flag in [(["--trials", "0"], "--trials"), (["--group", "3"], "--group"), (["--eta", "1"], "--eta"),
                       (["--min-epochs", "5", "--max-epochs", "2"], "--min-epochs"),
                       (["--models", "mmoe,bert"], "--models")]:
        code = cli.main(["census-tune", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")] + argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"mmoe-np census-tune: error: {flag}"), err


def test_census_command_reports_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "tuned.json"
    bad.write_text(json.dumps({"format": "something else"}))
    assert cli.main(["census", "--data-dir", str(tmp_path), "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np census: error: --config ") and "not a tuned configuration" in err
    assert not (tmp_path / "o").exists()


def test_read_tuned_config_checks_every_model(tmp_path):
    doc = {"format": census.TUNED_FORMAT, "data": {"group": 1, "recipe": "paper", "split_seed": 0,
                                                   "dtype": "float32", "n_features": 30},
           "models": {"MMoE": {"sizes": {"n_experts": 4, "expert_units": [8], "tower_units": [8]}, "lr": 1e-3,
                               "batch_size": 256, "epochs": 3, "patience": 2, "numeric": "log1p"}}}
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(doc))
    tuned = census.read_tuned_config(path)
    assert tuned["models"]["MMoE"]["sizes"] == {"n_experts": 4, "expert_units": (8,), "tower_units": (8,)}
    for change, message in [(("lr", -1), "lr must"), (("numeric", "sqrt"), "numeric must"),
                            (("sizes", {"n_experts": 0}), "n_experts"), (("epochs", None), "epochs")]:
        broken = json.loads(json.dumps(doc))
        broken["models"]["MMoE"][change[0]] = change[1]
        path.write_text(json.dumps(broken))
        with pytest.raises(ValueError, match=f"config .*, model MMoE: .*{message}"):
            census.read_tuned_config(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        census.read_tuned_config(path)
    assert math.isfinite(tuned["models"]["MMoE"]["lr"])
