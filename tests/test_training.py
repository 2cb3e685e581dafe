"""Optimizers, fit, early stopping, replicas trained in lock-step, and a convergence test."""
import io
import re

import numpy as np
import pytest

import mmoe_np as mn
from modelcheck import data

TASKS = ("regression", "binary")


def small_mmoe(seed=0, dtype=np.float64, d=5):
    return mn.MMoE(d, TASKS, n_experts=3, expert_units=(6,), tower_units=(4,), seed=seed, dtype=dtype)


# ------------------------------------------------------------------------------------------------ optimizers
def test_adam_matches_the_textbook_update():
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal((3, 2))
    params = {"w": p0.copy()}
    opt = mn.Adam(params, lr=0.01, beta1=0.8, beta2=0.9, eps=1e-7)
    m = v = np.zeros_like(p0)
    p = p0.copy()
    for t in range(1, 6):
        g = rng.standard_normal((3, 2))
        opt.step({"w": g})
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g ** 2
        p = p - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-7)
        np.testing.assert_allclose(params["w"], p, rtol=1e-12)
    assert opt.t == 5


def test_sgd_with_and_without_momentum():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    plain = {"w": np.zeros(2)}
    opt = mn.SGD(plain, lr=0.1)
    opt.step({"w": g1})
    opt.step({"w": g2})
    np.testing.assert_allclose(plain["w"], -0.1 * (g1 + g2))
    heavy = {"w": np.zeros(2)}
    opt = mn.SGD(heavy, lr=0.1, momentum=0.9)
    opt.step({"w": g1})
    opt.step({"w": g2})
    np.testing.assert_allclose(heavy["w"], -0.1 * g1 - 0.1 * (0.9 * g1 + g2))


def test_optimizer_updates_model_params_in_place_and_keeps_dtype():
    model = small_mmoe(dtype=np.float32)
    arrays = {k: id(v) for k, v in model.params.items()}
    X, Y = data(8, 5, TASKS, 0)
    opt = mn.Adam(model.params, lr=1e-2)
    before = {k: v.copy() for k, v in model.params.items()}
    opt.step(model.loss_and_grads(X, Y)[1])
    assert {k: id(v) for k, v in model.params.items()} == arrays
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert all(not np.array_equal(before[k], model.params[k]) for k in ("experts.0.W", "gates.W", "towers.1.b"))


# ------------------------------------------------------------------------------------------------ fit
def test_fit_one_full_batch_epoch_is_one_gradient_step():
    model = small_mmoe()
    X, Y = data(16, 5, TASKS, 1)
    _, grads = model.loss_and_grads(X, Y)
    expected = {k: v - 0.05 * grads[k] for k, v in model.params.items()}
    mn.fit(model, X, Y, optimizer=mn.SGD(model.params, lr=0.05), epochs=1, batch_size=16)
    for k in expected:
        np.testing.assert_allclose(model.params[k], expected[k], rtol=1e-12)


def test_fit_history_structure():
    model = small_mmoe()
    X, Y = data(50, 5, TASKS, 2)
    Xv, Yv = data(20, 5, TASKS, 3)
    h = mn.fit(model, X, Y, epochs=4, batch_size=16, validation=(Xv, Yv), eval_every=3, seed=1)
    assert h.epochs == 4
    assert h["train_loss"].shape == (4,) and h["train_task_loss"].shape == (4, 2)
    assert h["val_loss"].shape == (4,) and h["val_task_loss"].shape == (4, 2)
    assert h.step == [3, 6, 9, 12, 15] and h["step_val_task_loss"].shape == (5, 2)  # 4 batches x 4 epochs
    np.testing.assert_allclose(h["val_loss"][-1], model.losses(Xv, Yv)[0])
    np.testing.assert_allclose(h["val_task_loss"][-1], model.losses(Xv, Yv)[1])
    np.testing.assert_allclose(h["train_loss"], h["train_task_loss"].sum(axis=1), rtol=1e-12)
    assert h.seconds > 0


def test_fit_is_reproducible_and_the_seed_changes_the_order():
    X, Y = data(40, 5, TASKS, 4)
    runs = []
    for seed in (0, 0, 1):
        model = small_mmoe()
        mn.fit(model, X, Y, epochs=2, batch_size=8, seed=seed)
        runs.append(model.params["gates.W"])
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_early_stopping_restores_the_best_parameters():
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([5.0, 3.0, 4.0, 3.5, 3.2, 1.0])
    snapshots = []

    def score(m):  # a scripted score; remember the parameters it was given
        snapshots.append({k: v.copy() for k, v in m.params.items()})
        return next(scores)

    h = mn.fit(model, X, Y, epochs=6, batch_size=8,
               early_stopping=mn.EarlyStopping(score=score, mode="min", patience=3))
    assert h.epochs == 5 and h.best_epoch == 1  # 3 epochs without improving after epoch 1
    assert h.score == [5.0, 3.0, 4.0, 3.5, 3.2]
    for k in model.params:
        np.testing.assert_array_equal(model.params[k], snapshots[1][k])


def test_early_stopping_on_a_maximised_score_and_per_replica():
    X, Y = data(32, 5, TASKS, 6)
    model = mn.stack_models([small_mmoe(seed=s) for s in range(2)])
    scores = iter([[0.5, 0.5], [0.6, 0.4], [0.55, 0.45], [0.58, 0.7], [0.5, 0.6], [0.5, 0.6]])
    snapshots = []

    def score(m):
        snapshots.append({k: v.copy() for k, v in m.params.items()})
        return np.array(next(scores))

    h = mn.fit(model, X, Y, epochs=6, batch_size=8,
               early_stopping=mn.EarlyStopping(score=score, mode="max", patience=2))
    np.testing.assert_array_equal(h.best_epoch, [1, 3])
    assert h.epochs == 6  # replica 1 improved at epoch 3, so training ran to the end
    for k in model.params:
        np.testing.assert_array_equal(model.params[k][0], snapshots[1][k][0])
        np.testing.assert_array_equal(model.params[k][1], snapshots[3][k][1])


def test_early_stopping_min_delta_ignores_small_improvements():
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([1.0, 0.95, 0.5, 0.45, 0.44])  # improvements of 0.05, 0.45, 0.05, 0.01

    h = mn.fit(model, X, Y, epochs=5, batch_size=8,
               early_stopping=mn.EarlyStopping(score=lambda m: next(scores), mode="min", patience=2, min_delta=0.1))
    assert h.best_epoch == 2 and h.epochs == 5  # only the drop to 0.5 counts; 0.45 and 0.44 are within min_delta


def test_early_stopping_without_restoring_keeps_the_last_parameters():
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([1.0, 2.0, 3.0])
    h = mn.fit(model, X, Y, epochs=3, batch_size=8,
               early_stopping=mn.EarlyStopping(score=lambda m: next(scores), patience=2, restore_best=False))
    final = {k: v.copy() for k, v in model.params.items()}
    twin = small_mmoe()
    mn.fit(twin, X, Y, epochs=3, batch_size=8)  # the same three epochs without early stopping
    assert h.best_epoch == 0 and h.epochs == 3
    for k in final:
        np.testing.assert_array_equal(final[k], twin.params[k])


def test_fit_without_shuffle_visits_the_samples_in_order():
    X, Y = data(24, 5, TASKS, 9)
    model, reference = small_mmoe(), small_mmoe()
    mn.fit(model, X, Y, optimizer=mn.SGD(model.params, lr=0.05), epochs=1, batch_size=8, shuffle=False, seed=123)
    opt = mn.SGD(reference.params, lr=0.05)
    for start in (0, 8, 16):
        opt.step(reference.loss_and_grads(X[start:start + 8], Y[start:start + 8])[1])
    for k in model.params:
        np.testing.assert_allclose(model.params[k], reference.params[k], rtol=1e-12)


def test_early_stopping_defaults_to_validation_loss():
    model = small_mmoe()
    X, Y = data(64, 5, TASKS, 7)
    Xv, Yv = data(32, 5, TASKS, 8)
    h = mn.fit(model, X, Y, epochs=5, batch_size=16, validation=(Xv, Yv), early_stopping=mn.EarlyStopping())
    assert h.score == h.val_loss
    np.testing.assert_allclose(model.losses(Xv, Yv)[0], min(h.val_loss))


def regression_mmoe(dtype=np.float32):
    return mn.MMoE(5, ("regression", "regression"), n_experts=3, expert_units=(4,), tower_units=(3,), seed=0,
                   dtype=dtype)


def test_a_diverging_fit_stops_and_restores_the_last_finite_step():
    # SGD with lr 10 on full batches (one step per epoch) overflows float32 after some steps: training must stop
    # there, with the parameters of the step before, exactly those of a run of that many steps.
    X, Y = data(32, 5, ("regression", "regression"), 1)
    model = regression_mmoe()
    h = mn.fit(model, X, Y, optimizer=mn.SGD(model.params, lr=10.0), epochs=200, batch_size=32,
               on_divergence="stop")
    match = re.fullmatch(r"diverged: non-finite (loss|gradient of '\S+') at step (\d+) \(epoch \d+\); the "
                         r"parameters are those after step (\d+), the last with a finite loss and gradient", h.stopped)
    assert match, h.stopped
    last_good = int(match.group(3))  # step last_good + 1 was finite and moved them; step last_good + 2 was not
    assert int(match.group(2)) == last_good + 2 and h.epochs == last_good + 1 < 200
    reference = regression_mmoe()
    mn.fit(reference, X, Y, optimizer=mn.SGD(reference.params, lr=10.0), epochs=last_good, batch_size=32)
    for key, value in model.params.items():
        assert np.all(np.isfinite(value)), key
        np.testing.assert_array_equal(value, reference.params[key], err_msg=key)


def test_a_diverging_fit_raises_by_default_naming_the_step(recwarn):
    X, Y = data(32, 5, ("regression", "regression"), 1)
    model = regression_mmoe()
    with pytest.raises(ValueError, match=r"fit: training diverged: non-finite .* at step \d+ .*smaller learning rate"):
        mn.fit(model, X, Y, optimizer=mn.SGD(model.params, lr=100.0), epochs=50, batch_size=32)
    assert all(np.all(np.isfinite(p)) for p in model.params.values())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # caught, not warned about


def test_early_stopping_records_why_training_stopped():
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([1.0, 2.0, 3.0, 4.0])
    h = mn.fit(model, X, Y, epochs=10, batch_size=16,
               early_stopping=mn.EarlyStopping(score=lambda m: next(scores), patience=2))
    assert h.epochs == 3 and h.stopped == "early stopping: the score did not improve for 2 epochs"
    assert mn.fit(small_mmoe(), X, Y, epochs=2, batch_size=16).stopped is None


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_keeps_the_best_checkpoint_on_disk(restore_best, tmp_path):
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([3.0, 1.0, 2.0, 2.5, 4.0])
    snapshots = []

    def score(model):  # records the parameters each score belongs to
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return next(scores)

    model = small_mmoe()
    path = tmp_path / "best.npz"
    h = mn.fit(model, X, Y, epochs=5, batch_size=16, early_stopping=mn.EarlyStopping(
        score=score, patience=3, restore_best=restore_best, checkpoint=path))
    assert h.best_epoch == 1
    best = mn.load(path)
    assert type(best) is mn.MMoE and best.config() == model.config()
    for key, value in best.params.items():
        np.testing.assert_array_equal(value, snapshots[1][key], err_msg=key)  # the epoch that scored 1.0
        np.testing.assert_array_equal(model.params[key], snapshots[1 if restore_best else -1][key])


def test_early_stopping_checkpoint_of_stacked_replicas_holds_each_replica_best(tmp_path):
    X, Y = data(32, 5, TASKS, 5)
    scores = iter([[3.0, 1.0], [1.0, 2.0], [2.0, 3.0]])  # replica 0 best at epoch 1, replica 1 at epoch 0
    snapshots = []

    def score(model):
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return np.array(next(scores))

    model = mn.stack_models([small_mmoe(seed=0), small_mmoe(seed=1)])
    mn.fit(model, X, Y, epochs=3, batch_size=16, early_stopping=mn.EarlyStopping(
        score=score, patience=5, restore_best=False, checkpoint=tmp_path / "best.npz"))
    best = mn.load(tmp_path / "best.npz")
    assert best.replica_shape == (2,)
    for key, value in best.params.items():
        np.testing.assert_array_equal(value[0], snapshots[1][key][0])
        np.testing.assert_array_equal(value[1], snapshots[0][key][1])


def test_early_stopping_checkpoint_needs_an_existing_folder(tmp_path):
    with pytest.raises(ValueError, match="checkpoint: the folder"):
        mn.EarlyStopping(checkpoint=tmp_path / "missing" / "best.npz")
    with pytest.raises(ValueError, match="checkpoint must be a file name"):
        mn.EarlyStopping(checkpoint=3)


def test_early_stopping_with_a_nan_score_every_epoch_raises():
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 5)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match="early_stopping: the score was NaN or infinite in every epoch"):
        mn.fit(model, X, Y, epochs=4, batch_size=16,
               early_stopping=mn.EarlyStopping(score=lambda m: float("nan"), patience=2))
    assert any(not np.array_equal(before[k], v) for k, v in model.params.items())  # not silently reset


@pytest.mark.parametrize("kwargs, name", [(dict(shuffle="no"), "shuffle"), (dict(shuffle=1), "shuffle"),
                                          (dict(verbose="yes"), "verbose"),
                                          (dict(on_divergence="ignore"), "on_divergence")])
def test_fit_refuses_non_boolean_flags(kwargs, name):
    X, Y = data(8, 5, TASKS, 5)
    with pytest.raises(ValueError, match=name):
        mn.fit(small_mmoe(), X, Y, epochs=1, **kwargs)


def test_early_stopping_refuses_a_non_boolean_restore_best():
    with pytest.raises(ValueError, match="restore_best must be True or False; got 'no'"):
        mn.EarlyStopping(restore_best="no")


def test_fit_verbose_reports_every_epoch_through_the_one_progress_reporter(capsys):
    model = small_mmoe()
    X, Y = data(32, 5, TASKS, 9)
    Xv, Yv = data(16, 5, TASKS, 10)
    h = mn.fit(model, X, Y, epochs=3, batch_size=16, validation=(Xv, Yv), early_stopping=mn.EarlyStopping(),
               verbose=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == h.epochs == 3
    for e, line in enumerate(lines):
        assert re.fullmatch(rf"fit: {round(100 * (e + 1) / 3)}% of the epochs, epoch {e + 1}/3, train loss \S+, "
                            r"val loss \S+, score \S+, elapsed \S+, eta \S+", line), line
        assert f"val loss {h.val_loss[e]:.5f}, score {h.score[e]:.5f}" in line


def test_progress_without_runs_and_with_a_detail():
    stream = io.StringIO()
    progress = mn.training.Progress(total_work=4, label="job", stream=stream, interval=0.0, unit="epochs")
    progress.update(work=1, detail="epoch 1/4")
    progress.update(work=1)  # the detail stays until a new one comes
    assert re.fullmatch(r"job: 25% of the epochs, epoch 1/4, elapsed \S+, eta \S+\n"
                        r"job: 50% of the epochs, epoch 1/4, elapsed \S+, eta \S+\n", stream.getvalue())


# ------------------------------------------------------------------------------------------------ replicas
@pytest.mark.parametrize("cls", [mn.SingleTask, mn.SharedBottom, mn.OMoE, mn.MMoE])
@pytest.mark.parametrize("shared_data", [True, False])
def test_replicas_train_exactly_like_separate_runs(cls, shared_data):
    R, tasks = 3, ("regression", "regression")
    sets = [data(40, 6, tasks, 10 + r) for r in range(R)]
    singles = [cls(6, tasks, seed=r) for r in range(R)]
    stacked = mn.stack_models(singles)
    if shared_data:
        X, Y = sets[0]
        sets = [sets[0]] * R
    else:
        X, Y = np.stack([s[0] for s in sets]), np.stack([s[1] for s in sets])
    h = mn.fit(stacked, X, Y, optimizer=mn.Adam(stacked.params, lr=1e-2), epochs=3, batch_size=8, seed=3)
    assert h["train_loss"].shape == (3, R)
    for r, (single, (Xr, Yr)) in enumerate(zip(singles, sets)):
        hr = mn.fit(single, Xr, Yr, optimizer=mn.Adam(single.params, lr=1e-2), epochs=3, batch_size=8, seed=3)
        np.testing.assert_allclose(h["train_loss"][:, r], hr["train_loss"], rtol=1e-10, atol=1e-12)
        for k in single.params:
            np.testing.assert_allclose(stacked.params[k][r], single.params[k], rtol=1e-10, atol=1e-12)


def test_unstack_inverts_stack():
    singles = [small_mmoe(seed=s) for s in (4, 9)]
    stacked = mn.stack_models(singles)
    assert stacked.replica_shape == (2,) and stacked.seed == (4, 9)
    back = mn.unstack_models(stacked)
    X, _ = data(5, 5, TASKS, 0)
    for a, b in zip(singles, back):
        assert b.seed == a.seed and b.replica_shape == ()
        np.testing.assert_array_equal(a.forward(X), b.forward(X))
    np.testing.assert_array_equal(stacked.forward(X)[1], singles[1].forward(X))
    np.testing.assert_array_equal(stacked.gate_weights(X)[0], singles[0].gate_weights(X))


# ------------------------------------------------------------------------------------------------ convergence
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mmoe_learns_two_related_tasks(dtype):
    # Task 1: a smooth regression; task 2: a binary label from a different direction. Both learnable by an MLP.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 8))
    w1, w2 = rng.standard_normal(8), rng.standard_normal(8)
    Y = np.column_stack([np.sin(X @ w1) + 0.5 * (X @ w1), (X @ w2 > 0)]).astype(float)
    train, test = slice(0, 3000), slice(3000, None)
    model = mn.MMoE(8, TASKS, n_experts=4, expert_units=(16,), tower_units=(8,), seed=0, dtype=dtype)
    initial, initial_tasks = model.losses(X[test], Y[test])
    h = mn.fit(model, X[train], Y[train], optimizer=mn.Adam(model.params, lr=5e-3), epochs=15, batch_size=32,
               validation=(X[test], Y[test]))
    final, final_tasks = model.losses(X[test], Y[test])
    assert final < 0.1 * initial, (initial, final)
    assert np.all(final_tasks < 0.15 * initial_tasks), (initial_tasks, final_tasks)
    assert h.val_loss[-1] < h.val_loss[0]
    accuracy = np.mean((model.forward(X[test])[:, 1] > 0) == Y[test, 1])
    assert accuracy > 0.95


# ------------------------------------------------------------------------------------------------ bad inputs, not lr
@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e30), (np.float64, 1e300)])
def test_fit_blames_X_not_the_learning_rate_when_the_first_step_is_not_finite(dtype, scale, recwarn):
    X, Y = data(16, 5, TASKS, 5)
    model = small_mmoe(dtype=dtype)
    before = {k: v.copy() for k, v in model.params.items()}
    optimizer = mn.Adam(model.params)
    with pytest.raises(ValueError, match=r"^fit: the (loss|gradient).* is not finite before any step.*X") as err:
        mn.fit(model, X * scale, Y, optimizer=optimizer, epochs=1)
    assert "learning rate" not in str(err.value) and "diverged" not in str(err.value)
    assert optimizer.t == 0 and all(np.array_equal(before[k], v) for k, v in model.params.items())
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("value", [np.nan, 1e120])
def test_fit_names_the_parameter_when_the_initial_parameters_break_the_loss(value):
    X, Y = data(16, 5, TASKS, 5)
    model = small_mmoe()
    for key in (model.params if value == 1e120 else ["experts.0.W"]):
        model.params[key][...] = value
    with pytest.raises(ValueError, match=r"^fit: .*not finite before any step.*params\['\S+'\]") as err:
        mn.fit(model, X, Y, epochs=1)
    assert "learning rate" not in str(err.value)
    if value != 1e120:
        assert "params['experts.0.W'] contains NaN or inf" in str(err.value)
    else:
        assert "X is too large" not in str(err.value) and "holds values up to 1e+120" in str(err.value)


@pytest.mark.parametrize("make, state", [(lambda p: mn.Adam(p, lr=1e12), ("m", "v")),
                                         (lambda p: mn.SGD(p, lr=3.0, momentum=0.9), ("velocity",))])
def test_a_diverging_fit_puts_the_optimizer_state_back_with_the_parameters(make, state):
    # after a divergence stop, model and optimizer are exactly those of a run of the last good number of steps
    X, Y = data(32, 5, ("regression", "regression"), 1)
    model = regression_mmoe()
    optimizer = make(model.params)
    h = mn.fit(model, X, Y, optimizer=optimizer, epochs=200, batch_size=32, on_divergence="stop")
    match = re.search(r"the parameters are (?:those after step (\d+)|the initial ones)", h.stopped)
    last_good = int(match.group(1) or 0)
    assert optimizer.t == last_good
    reference = regression_mmoe()
    ref_optimizer = make(reference.params)
    if last_good:
        mn.fit(reference, X, Y, optimizer=ref_optimizer, epochs=last_good, batch_size=32)
    for key in model.params:
        np.testing.assert_array_equal(model.params[key], reference.params[key], err_msg=key)
        for name in state:
            np.testing.assert_array_equal(getattr(optimizer, name)[key], getattr(ref_optimizer, name)[key],
                                          err_msg=f"{name}[{key!r}]")


def test_early_stopping_refuses_a_score_that_is_not_callable():
    with pytest.raises(ValueError, match=r"score must be a function of the model \(or None\); got 3"):
        mn.EarlyStopping(score=3)


def test_early_stopping_names_its_score_when_the_score_is_not_a_number():
    X, Y = data(16, 5, TASKS, 5)
    with pytest.raises(ValueError, match=r"early_stopping\.score must return a number.*got 'a'"):
        mn.fit(small_mmoe(), X, Y, epochs=2, early_stopping=mn.EarlyStopping(score=lambda m: "a"))


def test_fit_trains_with_gate_dropout_drawn_from_its_own_stream():
    # fit passes a training rng: gate dropout really drops (a model with dropout trains differently from one
    # without), the run is reproducible, and models without training randomness shuffle exactly as before
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    Y = np.column_stack([X[:, 0], X[:, 1] > 0]).astype(float)
    tasks = ("regression", "binary")

    def train(**options):
        model = mn.MMoE(5, tasks, n_experts=4, expert_units=(3,), tower_units=(2,), seed=1, **options)
        mn.fit(model, X, Y, optimizer=mn.Adam(model.params, lr=1e-2), epochs=2, batch_size=16, seed=3)
        return model

    plain, dropped, again = train(), train(gate_dropout=0.5), train(gate_dropout=0.5)
    assert any(not np.array_equal(plain.params[k], dropped.params[k]) for k in plain.params)
    assert all(np.array_equal(dropped.params[k], again.params[k]) for k in dropped.params)


def test_history_answers_in_and_names_an_unknown_record():
    history = mn.History(train_loss=[1.0, 0.5], val_loss=[1.2, 0.7])
    assert "val_loss" in history and "train_loss" in history
    assert "accuracy" not in history and 0 not in history
    np.testing.assert_array_equal(history["val_loss"], [1.2, 0.7])
    with pytest.raises(KeyError, match="no record 'accuracy'"):
        history["accuracy"]
