"""The lock-step replica trainer: R replicas == R separate runs, the data each replica sees, diverging replicas,
groups and workers, progress lines, and bad arguments."""
import io
import re

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np.experiments import lockstep as lockstep_module
from mmoe_np.data import SyntheticSpec
from mmoe_np.experiments.lockstep import ModelSpec, Run, replica_streams, train_in_groups, train_replicas
from mmoe_np.training import Progress, format_seconds

D = 6  # a small input dimension keeps every test fast; nothing below depends on d = 100
SMALL = {
    "shared-bottom": ModelSpec(mn.SharedBottom, {"bottom_units": (5,), "tower_units": (3,)}),
    "omoe": ModelSpec(mn.OMoE, {"n_experts": 3, "expert_units": (4,), "tower_units": (3,)}),
    "mmoe": ModelSpec(mn.MMoE, {"n_experts": 3, "expert_units": (4,), "tower_units": (3,)}),
}
TRAIN = dict(steps=6, batch_size=8, lr=1e-2, eval_every=2, n_test=50, eval_chunk=20)


def make_runs(n, d=D):
    """n runs with their own task pairs (correlations 1.0, 0.9, 0.5, ...) and seeds."""
    ps = [1.0, 0.9, 0.5]
    return [Run(SyntheticSpec().draw(d, ps[r % 3], 100 + r), seed=7 + r, label={"run": r}) for r in range(n)]


def record_params(trajectory):
    """A callback storing a copy of every model's parameters after every step."""
    def callback(step, models):
        trajectory.append({name: {k: v.copy() for k, v in m.params.items()} for name, m in models.items()})
    return callback


# ------------------------------------------------------------------------------------------------ equivalence
def test_replicas_follow_separate_runs_step_for_step_in_float64():
    runs = make_runs(3)
    together = []
    stacked = train_replicas(SMALL, runs, dtype=np.float64, callback=record_params(together), **TRAIN)
    assert len(together) == TRAIN["steps"]
    for r, run in enumerate(runs):
        alone = []
        single = train_replicas(SMALL, [run], dtype=np.float64, callback=record_params(alone), **TRAIN)
        for step in range(TRAIN["steps"]):
            for name in SMALL:
                for key, value in alone[step][name].items():
                    np.testing.assert_allclose(together[step][name][key][r], value[0], rtol=1e-10, atol=1e-12,
                                               err_msg=f"{name} {key} step {step + 1} replica {r}")
        for name in SMALL:
            np.testing.assert_allclose(stacked.test_loss[name][:, r], single.test_loss[name][:, 0], rtol=1e-10)
            np.testing.assert_allclose(stacked.train_loss[name][1:, r], single.train_loss[name][1:, 0], rtol=1e-10)


def test_each_replica_is_initialised_from_its_own_run_seed():
    runs = make_runs(2)
    history = train_replicas(SMALL, runs, dtype=np.float64, callback=None, **(TRAIN | {"steps": 1}))
    for r, run in enumerate(runs):
        _, _, init_seed = replica_streams(run.seed)
        assert history.models["mmoe"].seed[r] == init_seed
    # the same init seed for every model of a run, different seeds for different runs
    assert history.models["omoe"].seed == history.models["mmoe"].seed
    assert len(set(history.models["mmoe"].seed)) == 2


def test_every_replica_sees_its_own_fresh_samples_of_its_own_tasks():
    runs = make_runs(2)
    seen = []

    class Spy(mn.SharedBottom):  # records the minibatches the trainer feeds it
        def forward_backward(self, X, Y, *, backward=True, **kwargs):
            if backward:
                seen.append((X.copy(), Y.copy()))
            return super().forward_backward(X, Y, backward=backward, **kwargs)

    spec = {"spy": ModelSpec(Spy, {"bottom_units": (4,), "tower_units": ()})}
    train_replicas(spec, runs, dtype=np.float64, **(TRAIN | {"steps": 3}))
    for r, run in enumerate(runs):
        rng, _, _ = replica_streams(run.seed)
        for X, Y in seen:  # step by step: exactly run.tasks.sample(B, its training stream)
            X_r, Y_r = run.tasks.sample(TRAIN["batch_size"], rng)
            np.testing.assert_array_equal(X[r], X_r)
            np.testing.assert_array_equal(Y[r], Y_r)
    assert not np.allclose(seen[0][0], seen[1][0])  # fresh samples every step


def test_history_structure_and_learning():
    runs = make_runs(4)
    h = train_replicas(SMALL, runs, dtype=np.float32, **(TRAIN | {"steps": 60, "eval_every": 25}))
    np.testing.assert_array_equal(h.steps, [0, 25, 50, 60])
    for name in SMALL:
        assert h.test_loss[name].shape == h.train_loss[name].shape == (4, 4, 2)
        assert np.all(np.isnan(h.train_loss[name][0])) and np.all(np.isfinite(h.train_loss[name][1:]))
        assert np.all(h.test_loss[name][-1] < h.test_loss[name][0])  # every replica, both tasks: it learns
        assert h.models[name].replica_shape == (4,) and h.models[name].dtype == np.float32
    assert h.runs == runs and h.seconds > 0


def test_test_loss_matches_the_model_on_the_run_test_set():
    runs = make_runs(2)
    h = train_replicas(SMALL, runs, dtype=np.float64, **TRAIN)
    for r, run in enumerate(runs):
        _, test_rng, _ = replica_streams(run.seed)
        X_test, Y_test = run.tasks.sample(TRAIN["n_test"], test_rng)
        single = mn.unstack_models(h.models["mmoe"])[r]
        np.testing.assert_allclose(h.test_loss["mmoe"][-1, r], single.losses(X_test, Y_test)[1], rtol=1e-10)


def test_per_model_learning_rates():
    runs = make_runs(1)
    mixed = train_replicas(SMALL, runs, dtype=np.float64, **(TRAIN | {"lr": {"shared-bottom": 1e-2, "omoe": 1e-3,
                                                                            "mmoe": 1e-2}}))
    same = train_replicas(SMALL, runs, dtype=np.float64, **TRAIN)
    np.testing.assert_allclose(mixed.test_loss["mmoe"], same.test_loss["mmoe"], rtol=1e-12)
    assert not np.allclose(mixed.test_loss["omoe"][1:], same.test_loss["omoe"][1:])


# ------------------------------------------------------------------------------------------------ divergence
def poisoned(replica, step):
    """A SharedBottom whose gradient of ``replica`` turns NaN at the ``step``-th training step (a constructed
    divergence, exactly placed)."""
    calls = []

    class Poisoned(mn.SharedBottom):
        def forward_backward(self, X, Y, *, backward=True, **kwargs):
            result = super().forward_backward(X, Y, backward=backward, **kwargs)
            if backward:
                calls.append(1)
                if len(calls) == step:
                    result.grads["towers.0.W"][replica] = np.nan
            return result

    return {"sb": ModelSpec(Poisoned, {"bottom_units": (5,), "tower_units": (3,)})}


def test_a_diverging_replica_is_held_at_its_last_good_parameters_and_the_others_train_on():
    runs = make_runs(3)
    together, healthy = [], []
    h = train_replicas(poisoned(replica=1, step=3), runs, dtype=np.float64, callback=record_params(together),
                       **TRAIN)
    # the other replicas follow exactly the runs trained without the diverging one
    alone = train_replicas(poisoned(replica=99, step=0), [runs[0], runs[2]], dtype=np.float64,
                           callback=record_params(healthy), **TRAIN)
    for key, value in together[-1]["sb"].items():
        np.testing.assert_allclose(value[[0, 2]], healthy[-1]["sb"][key], rtol=1e-12, err_msg=key)
        # replica 1: from step 3 on, the parameters after step 1 (the last with a finite loss and gradient)
        for step in range(2, TRAIN["steps"]):
            np.testing.assert_array_equal(together[step]["sb"][key][1], together[0]["sb"][key][1], err_msg=key)
        assert np.all(np.isfinite(value))
    np.testing.assert_array_equal(h.diverged["sb"], [0, 3, 0])
    np.testing.assert_array_equal(alone.diverged["sb"], [0, 0])
    assert np.all(np.isfinite(h.test_loss["sb"]))
    np.testing.assert_allclose(h.test_loss["sb"][:, [0, 2]], alone.test_loss["sb"], rtol=1e-12)


def test_a_run_with_overflowing_labels_diverges_alone():
    # Labels of order 1e30 overflow the float32 MSE at the first step: that run is held at its initial parameters.
    runs = make_runs(2) + [Run(SyntheticSpec(scale=1e30).draw(D, 0.5, 3), seed=11)]
    h = train_replicas(SMALL, runs, dtype=np.float32, **TRAIN)
    for name in SMALL:
        np.testing.assert_array_equal(h.diverged[name], [0, 0, 1])
        for key, value in h.models[name].params.items():
            assert np.all(np.isfinite(value)), (name, key)
        assert np.all(h.test_loss[name][-1, :2] < h.test_loss[name][0, :2])  # the other two learn


def test_diverged_steps_survive_groups_and_workers():
    runs = make_runs(2) + [Run(SyntheticSpec(scale=1e30).draw(D, 0.5, 3), seed=11)] + make_runs(1)
    kwargs = {k: v for k, v in TRAIN.items() if k != "eval_chunk"}
    h = train_in_groups(SMALL, runs, group_size=2, workers=2, **kwargs)
    for name in SMALL:
        np.testing.assert_array_equal(h.diverged[name], [0, 0, 1, 0])


# ------------------------------------------------------------------------------------------------ groups, workers
def test_groups_and_workers_do_not_change_the_numbers():
    runs = make_runs(5)
    kwargs = dict(dtype=np.float64, **{k: v for k, v in TRAIN.items() if k != "eval_chunk"})
    whole = train_replicas(SMALL, runs, **kwargs)
    in_groups = train_in_groups(SMALL, runs, group_size=2, workers=0, **kwargs)       # 3 groups, this process
    in_workers = train_in_groups(SMALL, runs, group_size=3, workers=2, **kwargs)      # 2 spawned processes
    for h in (in_groups, in_workers):
        assert [run.seed for run in h.runs] == [run.seed for run in runs] and h.models == {}
        for name in SMALL:
            np.testing.assert_allclose(h.test_loss[name], whole.test_loss[name], rtol=1e-12)
            np.testing.assert_allclose(h.train_loss[name], whole.train_loss[name], rtol=1e-12)


def test_the_chunk_size_does_not_change_the_numbers():
    runs = make_runs(5)
    kwargs = dict(dtype=np.float64, **TRAIN)
    whole = train_replicas(SMALL, runs, chunk_size=16, **kwargs)  # one chunk
    for chunk_size in (1, 2, 3):
        h = train_replicas(SMALL, runs, chunk_size=chunk_size, **kwargs)
        for name in SMALL:
            np.testing.assert_allclose(h.test_loss[name], whole.test_loss[name], rtol=1e-12)
            np.testing.assert_allclose(h.train_loss[name], whole.train_loss[name], rtol=1e-12)
            assert h.models[name].replica_shape == (5,) and h.models[name].seed == whole.models[name].seed
            for key, p in whole.models[name].params.items():
                np.testing.assert_allclose(h.models[name].params[key], p, rtol=1e-10, atol=1e-12)


def test_runs_sharing_a_seed_share_one_draw_bit_for_bit():
    # the correlations of one run share its seed: one draw of X and the noise serves them all, and each gets
    # exactly what run.tasks.sample draws from its own stream
    spec = SyntheticSpec()
    runs = [Run(spec.draw(D, p, 5), seed=11) for p in (1.0, 0.5, 0.0)] + [Run(spec.draw(D, 0.5, 6), seed=12)]
    streams = lockstep_module.ReplicaStreams(runs, np.dtype(np.float32))
    assert list(streams.by_seed.values()) == [[0, 1, 2], [3]]
    for draw in range(2):
        X, Y = streams.batch(9)
        for r, run in enumerate(runs):
            rng, _, _ = replica_streams(run.seed)
            for _ in range(draw + 1):
                X_r, Y_r = run.tasks.sample(9, rng, np.float32)
            np.testing.assert_array_equal(X[r], X_r)
            np.testing.assert_array_equal(Y[r], Y_r)
    assert not np.array_equal(Y[0], Y[2])  # the same X, other labels
    X_test, Y_test = streams.test_set(4)
    _, test_rng, _ = replica_streams(11)
    X_r, Y_r = runs[1].tasks.sample(4, test_rng, np.float32)
    np.testing.assert_array_equal(X_test[1], X_r)
    np.testing.assert_array_equal(Y_test[1], Y_r)


def test_workers_report_progress_to_the_parent():
    stream = io.StringIO()
    runs = make_runs(4)
    progress = Progress(TRAIN["steps"] * 4, 4 * len(SMALL), label="test", stream=stream, interval=0.0)
    train_in_groups(SMALL, runs, workers=2, progress=progress, **TRAIN)
    last = stream.getvalue().strip().splitlines()[-1]
    assert last.startswith("test: 100% of the steps, runs done 12/12, elapsed ")
    assert progress.work == TRAIN["steps"] * 4


# ------------------------------------------------------------------------------------------------ progress
def test_progress_lines_show_runs_done_elapsed_and_eta():
    stream = io.StringIO()
    progress = Progress(total_work=100, total_runs=10, label="study", stream=stream, interval=0.0)
    progress.update(work=25)
    progress.update(work=25, runs=5)
    progress.close()
    lines = stream.getvalue().strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"study: 25% of the steps, runs done 0/10, elapsed \S+, eta \S+", lines[0])
    assert re.fullmatch(r"study: 50% of the steps, runs done 5/10, elapsed \S+, eta \S+", lines[1])


def test_progress_is_throttled():
    stream = io.StringIO()
    progress = Progress(total_work=1000, total_runs=1, stream=stream, interval=3600.0)
    for _ in range(1000):
        progress.update(work=1)
    assert stream.getvalue() == ""
    progress.close()
    assert stream.getvalue().count("\n") == 1 and "100% of the steps, runs done 0/1" in stream.getvalue()


def test_train_in_groups_progress_true_prints_to_stderr(capsys):
    train_in_groups(SMALL, make_runs(2), progress=True, label="demo", **TRAIN)
    err = capsys.readouterr().err
    assert "demo: 100% of the steps, runs done 6/6" in err and "eta" in err


@pytest.mark.parametrize("kwargs, name", [(dict(batch_size=0), "batch_size"), (dict(eval_every=0), "eval_every"),
                                          (dict(n_test=0), "n_test"), (dict(lr=-1.0), "lr"),
                                          (dict(lr=float("nan")), "lr"), (dict(dtype="float16"), "dtype"),
                                          (dict(chunk_size=0), "chunk_size")])
def test_train_in_groups_checks_every_setting_before_starting_workers(kwargs, name, monkeypatch):
    def no_pool(*args, **kw):
        raise AssertionError("the workers were started before the settings were checked")

    monkeypatch.setattr(lockstep_module, "map_in_workers", no_pool)
    with pytest.raises(ValueError, match=name):
        train_in_groups(SMALL, make_runs(2), workers=2, **(TRAIN | kwargs))


@pytest.mark.parametrize("seconds, text", [(4.26, "4.3s"), (75.2, "1m15s"), (3725, "1h02m05s"),
                                           (float("inf"), "?")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


# ------------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("change, name", [
    (dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(eval_every=0), "eval_every"),
    (dict(n_test=0), "n_test"), (dict(eval_chunk=-1), "eval_chunk"), (dict(lr=-1e-3), "lr"),
    (dict(lr={"mmoe": 1e-3}), "lr"), (dict(dtype=np.int32), "dtype"), (dict(chunk_size=0), "chunk_size"),
])
def test_train_replicas_rejects_bad_settings(change, name):
    with pytest.raises(ValueError, match=name):
        train_replicas(SMALL, make_runs(1), **(TRAIN | change))


def test_train_replicas_rejects_bad_models_and_runs():
    runs = make_runs(1)
    with pytest.raises(ValueError, match="models"):
        train_replicas({}, runs, **TRAIN)
    with pytest.raises(ValueError, match="models"):
        train_replicas({"mmoe": mn.MMoE}, runs, **TRAIN)
    with pytest.raises(ValueError, match="runs"):
        train_replicas(SMALL, [], **TRAIN)
    with pytest.raises(ValueError, match="runs"):
        train_replicas(SMALL, ["not a run"], **TRAIN)
    with pytest.raises(ValueError, match="n_features"):
        train_replicas(SMALL, runs + make_runs(1, d=7), **TRAIN)


@pytest.mark.parametrize("kwargs, name", [(dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
                                          (dict(seed=True), "seed"), (dict(tasks="x"), "tasks")])
def test_run_rejects_bad_fields(kwargs, name):
    fields = dict(tasks=SyntheticSpec().draw(D, 0.5, 0), seed=0) | kwargs
    with pytest.raises(ValueError, match=name):
        Run(**fields)


@pytest.mark.parametrize("change, name", [(dict(group_size=0), "group_size"), (dict(workers=-1), "workers"),
                                          (dict(workers=1.5), "workers"), (dict(steps=None), "steps")])
def test_train_in_groups_rejects_bad_settings(change, name):
    with pytest.raises(ValueError, match=name):
        train_in_groups(SMALL, make_runs(1), **(TRAIN | change))
    with pytest.raises(ValueError, match="runs"):
        train_in_groups(SMALL, [], **TRAIN)


def test_progress_rejects_bad_totals():
    with pytest.raises(ValueError, match="total_work"):
        Progress(total_work=0, total_runs=1)
    with pytest.raises(ValueError, match="total_runs"):
        Progress(total_work=1, total_runs=0)


# ------------------------------------------------------------------------------------------------ training randomness
NOISY = {
    "mmoe-gate-dropout": ModelSpec(mn.MMoE, {"n_experts": 3, "expert_units": (4,), "tower_units": (3,),
                                             "gate_dropout": 0.3, "noisy_gating": True}),
    "shared-bottom-dropout": ModelSpec(mn.SharedBottom, {"bottom_units": (5,), "tower_units": (3,), "dropout": 0.2}),
}


def test_training_randomness_is_drawn_per_replica_from_its_own_run_stream():
    # Before, the lock-step trainer never passed an rng: gate dropout, noisy gating and dropout silently did nothing.
    runs = make_runs(4)
    kwargs = dict(dtype=np.float64, **TRAIN)
    h = train_replicas(NOISY, runs, chunk_size=16, **kwargs)
    for chunk_size in (1, 3):  # the masks of a replica do not depend on its chunk
        other = train_replicas(NOISY, runs, chunk_size=chunk_size, **kwargs)
        for name in NOISY:
            np.testing.assert_allclose(other.test_loss[name], h.test_loss[name], rtol=1e-12)
    # replica r trains as run r alone does (its masks come from its own seed, not from its place in the group)
    alone = train_replicas(NOISY, runs[2:3], **kwargs)
    for name in NOISY:
        np.testing.assert_allclose(alone.test_loss[name][:, 0], h.test_loss[name][:, 2], rtol=1e-10)
    # and the randomness is applied: without it the same runs train differently
    plain = {name: ModelSpec(spec.cls, {k: v for k, v in spec.kwargs.items()
                                        if k not in ("gate_dropout", "noisy_gating", "dropout")})
             for name, spec in NOISY.items()}
    without = train_replicas(plain, runs, **kwargs)
    for name in NOISY:
        assert np.array_equal(without.test_loss[name][0], h.test_loss[name][0])  # same initial models
        assert not np.allclose(without.test_loss[name][-1], h.test_loss[name][-1], rtol=1e-6)


def test_the_noise_stream_is_independent_of_the_data_streams():
    train, test, init = replica_streams(5)
    noise = lockstep_module.noise_stream(5)
    draws = [g.standard_normal(4) for g in (train, test, noise)]
    assert not np.allclose(draws[0], draws[2]) and not np.allclose(draws[1], draws[2])
    np.testing.assert_array_equal(lockstep_module.noise_stream(5).standard_normal(4), draws[2])
