"""Bad input gets a ValueError that names the argument; nothing is silently broadcast or truncated."""
import ast
import re

import numpy as np
import pytest

import mmoe_np as mn

TASKS = ("regression", "binary")
CLASSES = list(mn.MODEL_CLASSES.values()) + [mn.MixtureOfExperts]


@pytest.fixture
def model():
    return mn.MMoE(4, TASKS, n_experts=2, expert_units=(3,), tower_units=(2,))


@pytest.fixture
def XY():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 4)), np.column_stack([rng.standard_normal(5), rng.integers(0, 2, 5)]).astype(float)


def with_nan(a):
    a = a.copy()
    a[1, 0] = np.nan
    return a


def with_inf(a):
    a = a.copy()
    a[0, -1] = -np.inf
    return a


BAD_X = {
    "1-D": (lambda X: X[0], r"X must be a 2-D array"),
    "3-D": (lambda X: X[None], r"X must be a 2-D array"),
    "wrong width": (lambda X: X[:, :3], r"X must have n_features=4 columns"),
    "NaN": (with_nan, r"X contains NaN or inf"),
    "inf": (with_inf, r"X contains NaN or inf"),
    "empty": (lambda X: X[:0], r"X is empty"),
    "strings": (lambda X: X.astype(str), r"X must be a real numeric array"),
    "complex": (lambda X: X + 1j, r"X must be a real numeric array"),
    "ragged list": (lambda X: [list(X[0]), list(X[1, :2])], r"X must be a numeric array .* rows of different"),
}


@pytest.mark.parametrize("case", list(BAD_X))
def test_bad_X(model, XY, case):
    make, match = BAD_X[case]
    X, Y = XY
    with pytest.raises(ValueError, match=match):
        model.forward(make(X))
    with pytest.raises(ValueError, match=match):
        model.predict(make(X))
    if case != "empty":  # with an empty X the sample count no longer matches Y
        with pytest.raises(ValueError, match=match):
            model.loss_and_grads(make(X), Y)


BAD_Y = {
    "1-D": (lambda Y: Y[:, 0], r"Y must be a 2-D array"),
    "3-D": (lambda Y: Y[None], r"Y must be a 2-D array"),
    "one column too few": (lambda Y: Y[:, :1], r"Y must have one column per task \(2\)"),
    "N mismatch": (lambda Y: Y[:4], r"X and Y must have the same number of samples; got X 5 and Y 4"),
    "NaN": (with_nan, r"Y contains NaN or inf"),
    "inf": (with_inf, r"Y contains NaN or inf"),
    "empty": (lambda Y: Y[:0], r"Y is empty"),
    "binary label 2": (lambda Y: np.where(np.arange(5)[:, None] == 2, 2.0, Y), r"Y: binary task columns \[1\]"),
    "binary label 0.5": (lambda Y: np.column_stack([Y[:, 0], np.full(5, 0.5)]), r"only 0 and 1; found \[0.5\]"),
    "binary label -1": (lambda Y: np.column_stack([Y[:, 0], -np.ones(5)]), r"only 0 and 1"),
}


@pytest.mark.parametrize("case", list(BAD_Y))
def test_bad_Y(model, XY, case):
    make, match = BAD_Y[case]
    X, Y = XY
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(X, make(Y))
    with pytest.raises(ValueError, match=match):
        model.losses(X, make(Y))
    with pytest.raises(ValueError, match=match):
        model.evaluate(X, make(Y))
    with pytest.raises(ValueError, match=match):
        mn.fit(model, X, make(Y), epochs=1)


def test_single_task_Y_must_be_2d():
    model = mn.SharedBottom(3, ("regression",))
    with pytest.raises(ValueError, match=r"Y must be 2-D of shape \(n_samples, 1\)"):
        model.loss_and_grads(np.zeros((4, 3)), np.zeros(4))


def test_regression_labels_may_be_any_real(model, XY):
    X, Y = XY
    Y = Y.copy()
    Y[:, 0] = [-7.5, 1e3, 0.25, 3, -1]
    assert np.isfinite(model.loss_and_grads(X, Y)[0])


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs, match", [
    (dict(n_features=0), "n_features must be a positive integer"),
    (dict(n_features=-3), "n_features must be a positive integer"),
    (dict(n_features=2.5), "n_features must be a positive integer"),
    (dict(tasks=()), "tasks must contain at least one task"),
    (dict(tasks=("regression", "ranking")), r"tasks: unknown task type 'ranking'"),
    (dict(tasks="regression"), "tasks must be a sequence of task types"),
    (dict(dtype=np.int32), "dtype must be float32 or float64"),
    (dict(dtype=np.float16), "dtype must be float32 or float64"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(seed=1.5), "seed must be a non-negative integer"),
    (dict(task_weights=(1.0,)), r"task_weights must have one weight per task, shape \(2,\)"),
    (dict(task_weights=(1.0, -1.0)), "task_weights must be finite and >= 0"),
    (dict(task_weights=(1.0, np.nan)), "task_weights must be finite and >= 0"),
    (dict(task_weights=("a", "b")), "task_weights must be 2 numbers"),
    (dict(dtype=None), "dtype must be float32 or float64; got None"),  # np.dtype(None) would be float64
    (dict(tasks=[np.array(["binary"])]), "tasks: unknown task type"),
])
def test_bad_common_constructor_arguments(cls, kwargs, match):
    args = dict(n_features=4, tasks=TASKS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        cls(**args)


@pytest.mark.parametrize("cls, kwargs, match", [
    (mn.MMoE, dict(n_experts=0), "n_experts must be a positive integer"),
    (mn.OMoE, dict(n_experts=-1), "n_experts must be a positive integer"),
    (mn.MMoE, dict(expert_units=()), "expert_units must name at least one hidden layer"),
    (mn.MMoE, dict(expert_units=(16, 0)), "expert_units must contain positive integers"),
    (mn.MMoE, dict(expert_units=16), r"expert_units must be a sequence of layer widths such as \(16,\)"),
    (mn.MMoE, dict(tower_units=(-8,)), "tower_units must contain positive integers"),
    (mn.SharedBottom, dict(bottom_units=()), "bottom_units must name at least one hidden layer"),
    (mn.SharedBottom, dict(bottom_units=(0,)), "bottom_units must contain positive integers"),
    (mn.SingleTask, dict(hidden_units=(3.5,)), "hidden_units must contain positive integers"),
    (mn.SingleTask, dict(hidden_units=None), "hidden_units must be a sequence"),
])
def test_bad_sizes(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(4, TASKS, **kwargs)


@pytest.mark.parametrize("cls, kwargs", [
    (mn.MMoE, dict(n_expert=3)), (mn.SharedBottom, dict(hidden_units=(3,))), (mn.SingleTask, dict(foo=1)),
    (mn.L2Constrained, dict(l2=0.1)), (mn.CrossStitch, dict(alpha=0.9)),
    (mn.TensorFactorization, dict(ranks=(1, 1, 1), rank=2)), (mn.MixtureOfExperts, dict(n_gate=1)),
    (mn.MMoE, dict(n_gates=1)), (mn.OMoE, dict(n_gates=1)),
])
def test_unknown_options_are_rejected_naming_the_class(cls, kwargs):
    unknown = [k for k in kwargs if k != "ranks"]
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__}: unknown option(s) {unknown}")):
        cls(4, TASKS, **kwargs)


@pytest.mark.parametrize("cls", [mn.MMoE, mn.OMoE, mn.MixtureOfExperts, mn.CGC, mn.PLE, mn.SharedBottom, mn.SingleTask,
                                 mn.L2Constrained, mn.CrossStitch, mn.TensorFactorization])
def test_the_unknown_option_message_lists_every_option_the_class_takes(cls):
    """MMoE and OMoE take their gate options through **kwargs; the message still lists them, and lists nothing the
    class would refuse (n_gates of MMoE, n_levels of CGC): each listed keyword is accepted, with a valid value."""
    with pytest.raises(ValueError) as err:
        cls(4, TASKS, gate_temprature=2.0)
    listed = re.search(r"expected (\[.*\])", str(err.value)).group(1)
    listed = ast.literal_eval(listed)
    assert listed == cls._known_options()
    if cls is mn.MMoE:  # written out, so a lost option fails here whatever _known_options does
        assert listed == ["n_features", "tasks", "n_experts", "expert_units", "tower_units", "gate_dropout",
                          "gate_temperature", "top_k", "noisy_gating", "balance_weight", "seed", "dtype",
                          "task_weights", "loss_weighting", "dropout"]
    gated = cls in (mn.MMoE, mn.OMoE, mn.MixtureOfExperts, mn.CGC, mn.PLE)
    assert ({"gate_temperature", "top_k", "noisy_gating", "gate_dropout", "balance_weight"} <= set(listed)) == gated
    valid = dict(n_experts=2, n_gates=2, n_shared_experts=2, n_task_experts=1, n_levels=1, expert_units=(3,),
                 bottom_units=(3,), tower_units=(2,), gate_dropout=0.1, gate_temperature=2.0, top_k=1,
                 noisy_gating=True, balance_weight=0.1, seed=1, dtype=np.float32, task_weights=(1.0, 2.0),
                 loss_weighting="fixed", dropout=0.1, hidden_units=(3,), l2_weight=0.1, tie_towers=True,
                 alpha_self=0.8, ranks=(2, 2, 1))
    for name in listed[2:]:
        cls(4, TASKS, **{name: valid[name]})


def test_fit_names_a_model_that_is_not_one():
    X, Y = np.zeros((3, 4)), np.zeros((3, 2))
    for wrong in (mn.MMoE(4, TASKS).params, None, "MMoE"):
        with pytest.raises(ValueError, match="model must be a model such as mn.MMoE"):
            mn.fit(wrong, X, Y)


def test_labels_and_range_are_checked_before_rounding_to_float32():
    model = mn.MMoE(4, ("binary",), n_experts=2, dtype=np.float32)
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"binary task columns \[0\] must contain only 0 and 1; found \[1.000000001\]"):
        model.loss_and_grads(X, np.array([[0.0], [1.0], [1 + 1e-9]]))  # 1 + 1e-9 rounds to 1 in float32
    with pytest.raises(ValueError, match="X has values beyond the range of float32"):
        model.forward(np.full((1, 4), 1e300))  # finite, but inf in float32


def test_tower_units_may_be_empty():
    model = mn.MMoE(4, TASKS, tower_units=())
    assert model.params["towers.0.W"].shape == (2, 16, 1)


def test_optimizer_arguments():
    model = mn.MMoE(4, TASKS)
    for kwargs, match in [(dict(lr=0), "lr must be a finite number > 0"), (dict(lr=-1e-3), "lr"),
                          (dict(lr=float("nan")), "lr"), (dict(beta1=1.0), "beta1 must be in"),
                          (dict(beta2=-0.1), "beta2"), (dict(eps=0), "eps")]:
        with pytest.raises(ValueError, match=match):
            mn.Adam(model.params, **kwargs)
    with pytest.raises(ValueError, match="momentum must be in"):
        mn.SGD(model.params, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="params must be a non-empty dict"):
        mn.Adam({})
    opt = mn.Adam(model.params)
    grads = {k: np.zeros_like(v) for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"grads must have the keys of params; missing \['gates.b'\]"):
        opt.step({k: v for k, v in grads.items() if k != "gates.b"})
    with pytest.raises(ValueError, match=r"grads\['gates.W'\] has shape \(4, 8\)"):
        opt.step({**grads, "gates.W": np.zeros((4, 8))})
    with pytest.raises(ValueError, match="grads must be a dict"):
        opt.step(None)
    before = {k: v.copy() for k, v in model.params.items()}
    for bad in (np.full(model.params["towers.1.b"].shape, "x"), model.params["towers.1.b"] + 1j):
        with pytest.raises(ValueError, match=r"grads\['towers.1.b'\] must be a real numeric array"):
            opt.step({**grads, "towers.1.b": bad})  # the last key: every other array is valid
    assert opt.t == 0 and all(np.array_equal(before[k], v) for k, v in model.params.items())  # nothing applied


def test_fit_arguments(model, XY):
    X, Y = XY
    for kwargs, match in [(dict(epochs=0), "epochs must be a positive integer"),
                          (dict(batch_size=0), "batch_size must be a positive integer"),
                          (dict(validation=(X,)), r"validation must be a pair \(X_val, Y_val\)"),
                          (dict(validation=(X[:, :2], Y)), r"validation=\(X_val, Y_val\): X must have n_features=4"),
                          (dict(validation=(X, Y[:3])), r"validation=\(X_val, Y_val\): X and Y must have the same"),
                          (dict(seed=-1), "seed must be"), (dict(seed="a"), "seed must be"),
                          (dict(seed=1.5), "seed must be"),
                          (dict(optimizer="adam"), "optimizer must be an optimizer"),
                          (dict(early_stopping="val"), "early_stopping must be an mn.EarlyStopping"),
                          (dict(eval_every=5), "eval_every needs validation"),
                          (dict(early_stopping=mn.EarlyStopping()), "early_stopping without a score function"),
                          (dict(optimizer=mn.Adam(mn.MMoE(4, TASKS).params)), "optimizer must have been built")]:
        with pytest.raises(ValueError, match=match):
            mn.fit(model, X, Y, **kwargs)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        mn.EarlyStopping(mode="best")
    with pytest.raises(ValueError, match="patience must be a positive integer"):
        mn.EarlyStopping(patience=0)


def test_stack_models_arguments():
    with pytest.raises(ValueError, match="models must contain at least one model"):
        mn.stack_models([])
    for wrong in (None, mn.MMoE(4, TASKS), "MMoE"):
        with pytest.raises(ValueError, match="models must be a sequence of models"):
            mn.stack_models(wrong)
    assert mn.stack_models(mn.MMoE(4, TASKS, seed=s) for s in range(2)).replica_shape == (2,)
    with pytest.raises(ValueError, match=r"models\[1\] must have the class, configuration and dtype"):
        mn.stack_models([mn.MMoE(4, TASKS), mn.MMoE(4, TASKS, n_experts=3)])
    with pytest.raises(ValueError, match=r"models\[1\] must have the class"):
        mn.stack_models([mn.MMoE(4, TASKS), mn.OMoE(4, TASKS)])
    stacked = mn.stack_models([mn.MMoE(4, TASKS, seed=s) for s in range(2)])
    with pytest.raises(ValueError, match="already stacked"):
        mn.stack_models([stacked, stacked])
    with pytest.raises(ValueError, match=r"leading axes \(3,\) do not match the replicas"):
        stacked.forward(np.zeros((3, 5, 4)))


# ---------------------------------------------------------------------------------------------------- all_finite
from hypothesis import given, settings, strategies as st  # noqa: E402

from mmoe_np._validation import all_finite  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), block=st.integers(1, 16), bad=st.lists(st.integers(0, 59), max_size=3),
       value=st.sampled_from([np.nan, np.inf, -np.inf]), dtype=st.sampled_from([np.float32, np.float64]),
       transposed=st.booleans())
def test_all_finite_in_blocks_is_isfinite_all(n, block, bad, value, dtype, transposed):
    """A bad value anywhere, at a block's first or last number too, is found; contiguous or not."""
    a = np.arange(n * 2, dtype=dtype).reshape(n, 2)
    for i in bad:
        a.flat[i % a.size] = value
    a = a.T if transposed else a
    assert all_finite(a, block=block) == bool(np.isfinite(a).all())


def test_all_finite_takes_integers_and_names_X_in_fit():
    assert all_finite(np.arange(5)) and not all_finite(np.array([1.0, np.nan]))
    X = np.zeros((3000, 400))
    X[2999, 399] = np.inf  # in the last block of 2^20 numbers
    model = mn.MMoE(400, TASKS, n_experts=2, expert_units=(2,))
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        mn.fit(model, X, np.zeros((3000, 2)), optimizer=mn.Adam(model.params), epochs=1)
