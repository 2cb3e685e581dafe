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
from mmoe_np.experiments import census, census_runs
from mmoe_np.experiments import census_tune as T
from mmoe_np.optim import SCHEDULES, scheduled_lr

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
            assert 1e-6 <= c["weight_decay"] <= 1e-1 and c["dropout"] in (0, 0.1, 0.2, 0.3)
            assert c["schedule"] in SCHEDULES and set(c) == set(T.TRAINING_SPACE) | set(T.SPACES[name].params)
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
        assert {c["dropout"] for c in configs} == {0, 0.1, 0.2, 0.3} and {c["schedule"] for c in configs} == {
            "constant", "cosine"}
        decays = np.log10([c["weight_decay"] for c in configs])  # log-uniform on [1e-6, 0.1]: both ends reached
        assert decays.min() < -5.8 and decays.max() > -1.2 and abs(np.median(decays) + 3.5) < 0.6
    assert {T.sample_config("PLE", i)["n_levels"] for i in range(50)} == {2, 3}
    assert "n_levels" not in T.SPACES["PLE"].sizes(T.sample_config("CGC", 0), 40)  # CGC: one level, its own class
    # the same (model, trial, seed) whatever else is searched; two models draw differently
    assert T.sample_config("omoe", 7) == T.sample_config("OMoE", 7) != T.sample_config("MMoE", 7)
    # the regularisers come from a stream of their own: the other keys are the ones drawn before they existed (a
    # search begun then resumes with the same trials)
    assert set(T.REGULARISATION_SPACE) == set(census.REGULARISERS) and set(census.REGULARISERS) <= set(T.FIT_KEYS)
    drawn = T.sample_config("MMoE", 0)
    assert {k: v for k, v in drawn.items() if k not in census.REGULARISERS} == {
        "lr": 0.001235447273369458, "batch_size": 1024, "numeric": "log1p", "n_experts": 16, "expert_units": 128}


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
    repeated = annealed = 0
    for (name, trial, rung), r in by_key.items():
        if rung and r["config"]["schedule"] == "cosine":  # a complete annealed run of each budget: retrained
            assert r["reused_from_rung"] is None and r["epochs"] > 0
            annealed += 1
        elif rung and r["reused_from_rung"] is None:
            before = np.array(by_key[name, trial, rung - 1]["val_auc_history"])
            np.testing.assert_array_equal(np.array(r["val_auc_history"])[:len(before)], before)
            repeated += 1
    assert repeated > 0 and annealed > 0


OFF = {"weight_decay": 0.0, "dropout": 0.0, "schedule": "constant"}  # the regularisers' defaults: none


@pytest.mark.parametrize("fixed", [None, OFF])
def test_a_trial_that_stopped_early_is_reused_not_retrained(tmp_path, fixed):
    # patience 1 with 6 epochs: some trials stop before their budget; their next rung is a copy, 0 seconds, unless
    # their schedule anneals over the budget (cosine): 6 epochs are then another run, trained
    result = T.tune(toy_source(seed=1), "shared-bottom", out=tmp_path, trials=6, min_epochs=3, max_epochs=6, eta=2,
                    patience=1, fixed=fixed)
    reused = [r for r in result.records if r["reused_from_rung"] is not None]
    early = [r for r in result.records if r["rung"] == 0 and r["epochs"] < r["budget"]]
    survivors = {r["trial"] for r in result.records if r["rung"] == 1}
    constant = {r["trial"] for r in early if r["config"]["schedule"] == "constant"}
    assert {r["trial"] for r in reused} == constant & survivors
    for r in reused:
        first = next(x for x in result.records if x["trial"] == r["trial"] and x["rung"] == 0)
        assert r["seconds"] == 0 and r["val_auc_history"] == first["val_auc_history"]
    annealed = [r for r in result.records if r["rung"] == 1 and r["trial"] in {x["trial"] for x in early} - constant]
    assert all(r["seconds"] > 0 for r in annealed)
    assert early, "no trial stopped early here; pick another seed to exercise the reuse"
    assert reused if fixed else annealed, "pick another seed to exercise the reuse and its cosine exception"


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
    for kwargs, name in [({"fixed": {"momentum": 0.9}}, "fixed"), ({"fixed": {"numeric": "log"}}, "numeric"),
                         ({"fixed": {"dropout": 1.0}}, r"fixed dropout must be in \[0, 1\)"),
                         ({"fixed": {"weight_decay": -1e-3}}, "fixed weight_decay"),
                         ({"fixed": {"schedule": "step"}}, "fixed schedule must be one of"),
                         ({"trials": 0}, "trials"), ({"models": "mmoe,bert"}, "models"), ({"workers": -1}, "workers"),
                         ({"patience": 0}, "patience"), ({"eta": 1}, "eta")]:
        kwargs = {"models": "mmoe", "trials": 2, **kwargs}
        with pytest.raises(ValueError, match=name):
            T.tune(toy_source(), kwargs.pop("models"), out=tmp_path / "bad", **kwargs)


def test_a_trial_trains_with_its_regularisers(tmp_path, monkeypatch):
    calls = []

    def recording_fit_run(name, *args, **kwargs):  # the trainer every trial calls, looked up when the trial runs
        calls.append((name, kwargs))
        return census_runs.fit_run(name, *args, **kwargs)

    monkeypatch.setattr(census, "fit_run", recording_fit_run)
    result = T.tune(toy_source(), "mmoe,cross-stitch", out=tmp_path, trials=4, min_epochs=1, max_epochs=1,
                    fixed={"weight_decay": 0.02})
    assert len(calls) == len(result.records) == 8
    trained = {(name, kwargs["seed"]): kwargs for name, kwargs in calls}  # trial i trains with seed i
    for record in result.records:
        c, kwargs = record["config"], trained[record["model"], record["trial"]]
        assert c == {**T.sample_config(record["model"], record["trial"]), "weight_decay": 0.02}
        assert {key: kwargs[key] for key in T.FIT_KEYS} == {key: c[key] for key in T.FIT_KEYS}
    assert {k["dropout"] for _, k in calls} > {0.0} and {k["schedule"] for _, k in calls} == {"constant", "cosine"}
    header, *rows = [line.split(",") for line in (tmp_path / "trials.csv").read_text().splitlines()]
    column = {name: header.index(name) for name in ("weight_decay", "dropout", "schedule")}
    assert [[row[i] for i in column.values()] for row in rows] == [
        ["0.02", str(r["config"]["dropout"]), r["config"]["schedule"]] for r in result.records]


def test_a_search_begun_before_the_regularisers_resumes_without_them(tmp_path):
    # Its search.json lists them in no space and its records' configurations lack them: it resumes with them held
    # at their defaults (none), training exactly the trials it would have.
    source, models, small = toy_source(), "mmoe,shared-bottom", dict(trials=3, min_epochs=1, max_epochs=2, eta=3)
    whole = T.tune(source, models, out=tmp_path / "whole", fixed=OFF, **small)
    old, seen = tmp_path / "old", []

    def interrupt(record):
        seen.append(record)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.tune(source, models, out=old, fixed=OFF, on_record=interrupt, **small)
    search = json.loads((old / "search.json").read_text())  # as the search wrote it before the regularisers
    search["fixed"] = {}
    search["space"] = {name: [k for k in keys if k not in OFF] for name, keys in search["space"].items()}
    (old / "search.json").write_text(json.dumps(search))
    for path in (old / "trials").glob("*.json"):
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "config": {k: v for k, v in record["config"].items() if k not in OFF}}))
    resumed = T.tune(source, models, out=old, **small)
    assert resumed.trained == len(whole.records) - 4 - sum(r["reused_from_rung"] is not None for r in whole.records)
    assert without_seconds(resumed.records) == without_seconds(whole.records)  # the defaults filled in
    assert all({k: r["config"][k] for k in OFF} == OFF for r in resumed.records)
    spaces = json.loads((old / "search.json").read_text())["space"]
    assert spaces == search["space"]  # still a search without them, the next time too
    assert T.tune(source, models, out=old, **small).trained == 0
    # a new search draws them
    fresh = T.tune(source, "mmoe", out=tmp_path / "fresh", trials=3, min_epochs=1, max_epochs=1)
    assert {r["config"]["schedule"] for r in fresh.records} == {"constant", "cosine"}


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
    assert {k: mmoe[k] for k in census.REGULARISERS} == {k: best["config"][k] for k in census.REGULARISERS}
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
    # each model's own settings are in its result, not (as defaults that did not apply) in the benchmark's
    assert not {"lr", "epochs", "batch_size", "size_overrides"} & set(bench.settings)
    assert bench.models[0].training["epochs"] == 2
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
                       (["--models", "mmoe,bert"], "--models"), (["--dropout", "1.0"], "--dropout must be"),
                       (["--weight-decay", "-1"], "--weight-decay must be")]:
        code = cli.main(["census-tune", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")] + argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"mmoe-np census-tune: error: {flag}"), err


def test_tuned_regularisers_go_from_census_tune_to_census_config(tmp_path, monkeypatch, capsys):
    # the commands end to end on a small stand-in for the data: census-tune fixes --dropout and --schedule and
    # searches the weight decay; tuned.json carries all three and census --config trains with them
    src = toy_source(numeric_columns=())
    loaded = src.load(None)
    loaded.n_features = loaded.X_train.shape[1]
    monkeypatch.setattr(mn.data, "load_census_income", lambda *args, **kwargs: loaded)
    out = tmp_path / "tune"
    assert cli.main(["census-tune", "--data-dir", str(tmp_path), "--models", "mmoe", "shared-bottom", "--trials", "3",
                     "--max-epochs", "1", "--workers", "0", "--dropout", "0.1", "--schedule", "cosine", "--out",
                     str(out), "--quiet"]) == 0
    assert "| weight decay | dropout | schedule |" in capsys.readouterr().out
    search = json.loads((out / "search.json").read_text())
    assert search["fixed"] == {"dropout": 0.1, "schedule": "cosine"} and "weight_decay" in search["space"]["MMoE"]
    records = json.loads((out / "trials.json").read_text())["records"]
    assert len({r["config"]["weight_decay"] for r in records}) == 6  # searched
    s = census.check_settings(tmp_path, config=out / "tuned.json", runs=1)
    for name, plan in s["plan"].items():
        config = json.loads((out / "tuned.json").read_text())["models"][name]["config"]
        assert {k: plan[k] for k in census.REGULARISERS} == {"weight_decay": config["weight_decay"], "dropout": 0.1,
                                                             "schedule": "cosine"}
    assert cli.main(["census", "--data-dir", str(tmp_path), "--config", str(out / "tuned.json"), "--runs", "1",
                     "--out", str(tmp_path / "bench"), "--no-plot", "--quiet"]) == 0
    capsys.readouterr()
    bench = json.loads((tmp_path / "bench" / "group1.json").read_text())
    assert [m["training"]["dropout"] for m in bench["models"]] == [0.1, 0.1]
    assert mn.load(tmp_path / "bench" / "model-mmoe-group1-best.npz").dropout == 0.1


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
