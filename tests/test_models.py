"""The core models: gradients (hypothesis, float64), forward values against a naive reference, and the contract of
``loss_and_grads`` (purity, determinism, grads mirroring params), dtypes and gates."""
import copy
import re
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np.ops import softmax
from modelcheck import KINK_MARGIN, TOL, assert_gradients_match, data, hidden, jitter, seeds, task_lists, towers

n_samples = st.integers(1, 6)
n_features = st.integers(1, 5)


# ------------------------------------------------------------------------------------------------ gradients
@given(N=n_samples, d=n_features, tasks=task_lists, hidden_units=hidden, tower_units=towers, seed=seeds)
def test_single_task_gradients(N, d, tasks, hidden_units, tower_units, seed):
    model = jitter(mn.SingleTask(d, tasks, hidden_units=hidden_units, tower_units=tower_units, seed=seed), seed)
    assert_gradients_match(model, *data(N, d, tasks, seed))


@given(N=n_samples, d=n_features, tasks=task_lists, bottom_units=hidden, tower_units=towers, seed=seeds)
def test_shared_bottom_gradients(N, d, tasks, bottom_units, tower_units, seed):
    model = jitter(mn.SharedBottom(d, tasks, bottom_units=bottom_units, tower_units=tower_units, seed=seed), seed)
    assert_gradients_match(model, *data(N, d, tasks, seed))


@pytest.mark.parametrize("cls", [mn.OMoE, mn.MMoE])
@given(N=n_samples, d=n_features, tasks=task_lists, n_experts=st.integers(1, 4), expert_units=hidden,
       tower_units=towers, seed=seeds)
def test_mixture_of_experts_gradients(cls, N, d, tasks, n_experts, expert_units, tower_units, seed):
    model = cls(d, tasks, n_experts=n_experts, expert_units=expert_units, tower_units=tower_units, seed=seed)
    assert_gradients_match(jitter(model, seed), *data(N, d, tasks, seed))


@given(N=n_samples, tasks=task_lists, seed=seeds, weights=st.lists(st.floats(0, 3), min_size=3, max_size=3))
def test_task_weights_scale_each_task_loss_and_gradient(N, tasks, seed, weights):
    weights = weights[:len(tasks)]
    model = jitter(mn.MMoE(3, tasks, n_experts=2, expert_units=(3,), tower_units=(2,), seed=seed,
                           task_weights=weights), seed)
    X, Y = data(N, 3, tasks, seed)
    total, per_task = model.losses(X, Y)
    np.testing.assert_allclose(total, np.dot(weights, per_task), rtol=1e-12)
    assert_gradients_match(model, X, Y)


SMALL = {mn.SingleTask: dict(hidden_units=(3,), tower_units=(2,)),
         mn.SharedBottom: dict(bottom_units=(3,), tower_units=(2,)),
         mn.OMoE: dict(n_experts=3, expert_units=(3,), tower_units=(2,)),
         mn.MMoE: dict(n_experts=3, expert_units=(3,), tower_units=(2,))}


@pytest.mark.parametrize("cls", list(SMALL), ids=lambda c: c.__name__)
@given(N=n_samples, tasks=task_lists, n_replicas=st.integers(1, 3), seed=seeds, shared_data=st.booleans())
def test_gradients_with_stacked_replicas(cls, N, tasks, n_replicas, seed, shared_data):
    # The replica axis broadcasts; a shared X receives the sum of every replica's input gradient.
    models = [jitter(cls(3, tasks, seed=seed + r, **SMALL[cls]), seed + r) for r in range(n_replicas)]
    model = mn.stack_models(models)
    sets = [data(N, 3, tasks, seed + r) for r in range(n_replicas)]
    X, Y = sets[0] if shared_data else (np.stack([x for x, _ in sets]), np.stack([y for _, y in sets]))
    assert_gradients_match(model, X, Y)


# ------------------------------------------------------------------------------------------------ forward values
def naive_mlp(x, Ws, bs, relu_last):
    for i, (W, b) in enumerate(zip(Ws, bs)):
        x = x @ W + b
        if relu_last or i < len(Ws) - 1:
            x = np.maximum(x, 0)
    return x


def layers(model, prefix, index=None):
    Ws, bs = [], []
    while f"{prefix}.{len(Ws)}.W" in model.params:
        W, b = model.params[f"{prefix}.{len(Ws)}.W"], model.params[f"{prefix}.{len(bs)}.b"]
        Ws.append(W if index is None else W[index])
        bs.append(b if index is None else b[index])
    return Ws, bs


def naive_forward(model, X):
    """The paper's equations with explicit loops over experts and tasks: y_k = h^k(sum_e g^k(x)_e f_e(x))."""
    K = model.n_tasks
    if isinstance(model, mn.SingleTask):
        reps = [naive_mlp(X, *layers(model, "hidden", k), True) for k in range(K)]
    elif isinstance(model, mn.SharedBottom):
        reps = [naive_mlp(X, *layers(model, "bottom"), True)] * K
    else:
        experts = [naive_mlp(X, *layers(model, "experts", e), True) for e in range(model.n_experts)]
        reps = []
        for k in range(K):
            g = 0 if isinstance(model, mn.OMoE) else k
            gate = softmax(X @ model.params["gates.W"][g] + model.params["gates.b"][g])  # (N, E)
            reps.append(sum(gate[:, e:e + 1] * experts[e] for e in range(model.n_experts)))
    return np.column_stack([naive_mlp(reps[k], *layers(model, "towers", k), False)[:, 0] for k in range(K)])


@pytest.mark.parametrize("make", [
    lambda: mn.SingleTask(4, ("regression", "binary", "regression"), hidden_units=(5, 3), tower_units=(2,), seed=1),
    lambda: mn.SharedBottom(4, ("regression", "binary"), bottom_units=(6, 3), tower_units=(), seed=2),
    lambda: mn.OMoE(4, ("binary", "regression"), n_experts=3, expert_units=(5, 2), tower_units=(3,), seed=3),
    lambda: mn.MMoE(4, ("binary", "regression", "binary"), n_experts=4, expert_units=(3,), tower_units=(2, 2), seed=4),
], ids=["SingleTask", "SharedBottom", "OMoE", "MMoE"])
def test_forward_matches_naive_loops(make):
    model = jitter(make(), 0)
    X, _ = data(7, 4, model.tasks, 1)
    np.testing.assert_allclose(model.forward(X), naive_forward(model, X), rtol=1e-12, atol=1e-12)


def test_mmoe_with_one_expert_is_a_shared_bottom():
    # One expert: every gate weight is 1, so MMoE computes exactly Shared-Bottom with the expert as the bottom.
    tasks = ("regression", "binary")
    mmoe = jitter(mn.MMoE(5, tasks, n_experts=1, expert_units=(4,), tower_units=(3,), seed=0), 0)
    sb = mn.SharedBottom(5, tasks, bottom_units=(4,), tower_units=(3,))
    for name in sb.params:
        sb.params[name][...] = mmoe.params[name.replace("bottom.0", "experts.0")].reshape(sb.params[name].shape)
    X, _ = data(8, 5, tasks, 3)
    np.testing.assert_allclose(mmoe.forward(X), sb.forward(X), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ the contract
ALL_MODELS = [
    lambda **kw: mn.SingleTask(6, ("regression", "binary"), hidden_units=(8,), tower_units=(4,), **kw),
    lambda **kw: mn.SharedBottom(6, ("regression", "binary"), bottom_units=(8,), tower_units=(4,), **kw),
    lambda **kw: mn.OMoE(6, ("regression", "binary"), n_experts=3, expert_units=(4,), tower_units=(4,), **kw),
    lambda **kw: mn.MMoE(6, ("regression", "binary"), n_experts=3, expert_units=(4,), tower_units=(4,), **kw),
]
MODEL_IDS = ["SingleTask", "SharedBottom", "OMoE", "MMoE"]


@pytest.mark.parametrize("make", ALL_MODELS, ids=MODEL_IDS)
def test_loss_and_grads_is_pure_and_deterministic(make):
    model = make(seed=0)
    X, Y = data(10, 6, model.tasks, 0)
    params_before = {k: v.copy() for k, v in model.params.items()}
    X_before, Y_before = X.copy(), Y.copy()
    loss1, grads1 = model.loss_and_grads(X, Y)
    loss2, grads2 = model.loss_and_grads(X, Y)
    assert loss1 == loss2
    for name in model.params:
        np.testing.assert_array_equal(model.params[name], params_before[name])
        np.testing.assert_array_equal(grads1[name], grads2[name])
        assert grads1[name] is not model.params[name]
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)


@pytest.mark.parametrize("make", ALL_MODELS, ids=MODEL_IDS)
def test_skipping_the_input_gradient_leaves_the_parameter_gradients_alone(make):
    # Training skips dX (input_grad=False in the first layers); every parameter gradient must be bit-identical.
    model = jitter(make(seed=3), 3)
    X, Y = data(7, 6, model.tasks, 3)
    loss, grads = model.loss_and_grads(X, Y)
    loss_x, grads_x, dX = model.loss_and_grads(X, Y, input_grad=True)
    assert loss == loss_x and dX.shape == X.shape
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_x[name])


@pytest.mark.parametrize("make", ALL_MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grads_mirror_params_in_both_dtypes(make, dtype):
    model = make(seed=1, dtype=dtype)
    X, Y = data(9, 6, model.tasks, 1)
    loss, grads = model.loss_and_grads(X, Y)
    assert isinstance(loss, float) and np.isfinite(loss)
    assert list(grads) == list(model.params)
    for name, p in model.params.items():
        assert p.dtype == dtype and grads[name].dtype == dtype, name
        assert grads[name].shape == p.shape, name
        assert np.all(np.isfinite(grads[name])), name
    out = model.forward(X)
    assert out.shape == (9, 2) and out.dtype == dtype


@pytest.mark.parametrize("make", ALL_MODELS, ids=MODEL_IDS)
def test_float32_and_float64_agree(make):
    m64, m32 = make(seed=2, dtype=np.float64), make(seed=2, dtype=np.float32)
    X, Y = data(9, 6, m64.tasks, 2)
    np.testing.assert_allclose(m32.forward(X), m64.forward(X), rtol=1e-4, atol=1e-5)
    _, g32 = m32.loss_and_grads(X, Y)
    _, g64 = m64.loss_and_grads(X, Y)
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("cls", [mn.OMoE, mn.MMoE])
def test_experts_receive_different_gradients_at_initialisation(cls):
    model = cls(10, ("regression", "regression"), n_experts=4, expert_units=(8,), seed=0)
    X, Y = data(32, 10, model.tasks, 0)
    _, grads = model.loss_and_grads(X, Y)
    dW = grads["experts.0.W"]  # (E, d, h)
    for i in range(4):
        assert np.abs(dW[i]).sum() > 0
        for j in range(i):
            assert not np.allclose(dW[i], dW[j]), (i, j)
    assert not np.allclose(model.params["experts.0.W"][0], model.params["experts.0.W"][1])


def test_gate_weights_shape_and_softmax_rows():
    X, _ = data(11, 6, ("regression",) * 3, 0)
    mmoe = mn.MMoE(6, ("regression",) * 3, n_experts=5, seed=0)
    g = mmoe.gate_weights(X)
    assert g.shape == (11, 3, 5)
    np.testing.assert_allclose(g.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(g > 0)
    assert not np.allclose(g[:, 0], g[:, 1])  # independent gates differ
    omoe = mn.OMoE(6, ("regression",) * 3, n_experts=5, seed=0)
    g1 = omoe.gate_weights(X)
    assert g1.shape == (11, 3, 5) and omoe.params["gates.W"].shape == (1, 6, 5)
    np.testing.assert_array_equal(g1[:, 0], g1[:, 2])  # one gate for every task


def test_gates_stay_finite_for_huge_logits():
    model = mn.MMoE(3, ("regression", "binary"), n_experts=4, seed=0)
    model.params["gates.W"][...] = 0
    model.params["gates.b"][...] = np.array([[1e4, -1e4, 0, 0], [-1e4, -1e4, -1e4, 1e4]])
    X, Y = data(4, 3, model.tasks, 0)
    g = model.gate_weights(X)
    np.testing.assert_allclose(g[:, 0], np.tile([1, 0, 0, 0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(g[:, 1], np.tile([0, 0, 0, 1], (4, 1)), atol=1e-12)
    loss, grads = model.loss_and_grads(X, Y)
    assert np.isfinite(loss) and all(np.all(np.isfinite(v)) for v in grads.values())


def test_parameter_shapes_are_documented_ones():
    m = mn.MMoE(100, ("regression", "regression"), n_experts=8, expert_units=(16,), tower_units=(8,))
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes == {"experts.0.W": (8, 100, 16), "experts.0.b": (8, 16), "gates.W": (2, 100, 8),
                      "gates.b": (2, 8), "towers.0.W": (2, 16, 8), "towers.0.b": (2, 8),
                      "towers.1.W": (2, 8, 1), "towers.1.b": (2, 1)}
    sb = mn.SharedBottom(100, ("regression", "binary"), bottom_units=(32, 16), tower_units=())
    assert {k: v.shape for k, v in sb.params.items()} == {
        "bottom.0.W": (100, 32), "bottom.0.b": (32,), "bottom.1.W": (32, 16), "bottom.1.b": (16,),
        "towers.0.W": (2, 16, 1), "towers.0.b": (2, 1)}


def test_seed_determines_initialisation():
    a, b, c = (mn.MMoE(5, ("regression",), seed=s) for s in (7, 7, 8))
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["experts.0.W"], c.params["experts.0.W"])
    # Glorot-uniform bounds, zero biases
    limit = np.sqrt(6 / (5 + 16))
    assert np.abs(a.params["experts.0.W"]).max() <= limit and np.abs(a.params["experts.0.W"]).max() > 0.8 * limit
    assert not np.any(a.params["experts.0.b"])


def test_copy_is_deep_and_casts():
    m = mn.MMoE(4, ("regression",), seed=0)
    c = m.copy(np.float32)
    assert c.dtype == np.float32 and all(p.dtype == np.float32 for p in c.params.values())
    c.params["gates.W"] += 1
    assert not np.allclose(c.params["gates.W"], m.params["gates.W"])


def test_relu_margin_is_the_smallest_relu_input():
    # Shared-Bottom with a bottom of 4 and a tower hidden layer of 3: two ReLU layers, pre-activations by hand.
    model = jitter(mn.SharedBottom(3, ("regression",), bottom_units=(4,), tower_units=(3,), seed=0), 0)
    X, _ = data(6, 3, model.tasks, 0)
    p = model.params
    z_bottom = X @ p["bottom.0.W"] + p["bottom.0.b"]
    z_tower = np.maximum(z_bottom, 0) @ p["towers.0.W"][0] + p["towers.0.b"][0]
    expected = min(np.abs(z_bottom).min(), np.abs(z_tower).min())
    assert model.relu_margin(X) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------------ the seven models
SEVEN = {
    "SingleTask": dict(hidden_units=(5, 3), tower_units=(2,)),
    "SharedBottom": dict(bottom_units=(5,), tower_units=(2, 2)),
    "OMoE": dict(n_experts=3, expert_units=(4,), tower_units=()),
    "MMoE": dict(n_experts=2, expert_units=(4, 3), tower_units=(2,)),
    "L2Constrained": dict(hidden_units=(5,), tower_units=(2,), l2_weight=0.3, tie_towers=True),
    "CrossStitch": dict(hidden_units=(5, 3), tower_units=(2,), alpha_self=0.7),
    "TensorFactorization": dict(hidden_units=(5, 3), tower_units=(2,), ranks=(2, 2, 1)),
}


def test_model_classes_names_the_seven_models():
    assert mn.MODEL_CLASSES == {name: getattr(mn, name) for name in SEVEN}
    assert mn.models.MODEL_CLASSES is mn.MODEL_CLASSES
    assert all(issubclass(cls, mn.MultiTaskModel) for cls in mn.MODEL_CLASSES.values())


@pytest.mark.parametrize("name", list(SEVEN))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_config_rebuilds_the_same_model(name, dtype):
    model = mn.MODEL_CLASSES[name](4, ("regression", "binary"), seed=11, dtype=dtype, task_weights=(0.5, 2.0),
                                   **SEVEN[name])
    config = model.config()
    assert config["dtype"] == np.dtype(dtype).name and config["seed"] == 11
    assert config["task_weights"] == [0.5, 2.0] and config["tasks"] == ("regression", "binary")
    rebuilt = type(model)(**config)
    assert rebuilt.config() == config and repr(rebuilt) == repr(model)
    assert list(rebuilt.params) == list(model.params)
    for key, p in model.params.items():
        assert rebuilt.params[key].dtype == p.dtype
        np.testing.assert_array_equal(rebuilt.params[key], p)


def test_stack_models_compares_configurations_without_the_seed():
    stacked = mn.stack_models([mn.MMoE(4, ("regression",), seed=s, dtype=np.float32) for s in (1, 2)])
    assert stacked.seed == (1, 2) and stacked.config()["seed"] == (1, 2) and stacked.config()["dtype"] == "float32"
    with pytest.raises(ValueError, match=r"models\[1\] must have the class, configuration and dtype"):
        mn.stack_models([mn.MMoE(4, ("regression",)), mn.MMoE(4, ("regression",), dtype=np.float32)])
    with pytest.raises(ValueError, match=r"models\[1\] must have the class, configuration and dtype"):
        mn.stack_models([mn.MMoE(4, ("regression",)), mn.MMoE(4, ("regression",), task_weights=(2.0,))])


@pytest.mark.parametrize("models, i", [([1, 2], 0), ([mn.MMoE(4, ("regression",)), "MMoE"], 1), ([None], 0)])
def test_stack_models_refuses_what_is_not_a_model_by_index(models, i):
    with pytest.raises(ValueError, match=rf"models\[{i}\] must be a model such as mn.MMoE\(...\); got "):
        mn.stack_models(models)


def test_a_stacked_models_config_rebuilds_it_as_its_docstring_says():
    stacked = mn.stack_models([mn.OMoE(4, ("regression", "binary"), n_experts=2, seed=s) for s in (3, 5)])
    config = stacked.config()
    with pytest.raises(ValueError, match="seed"):
        type(stacked)(**config)  # one seed per replica: not a constructor argument
    rebuilt = mn.stack_models([type(stacked)(**{**config, "seed": s}) for s in config["seed"]])
    assert rebuilt.config() == config
    for key, p in stacked.params.items():
        np.testing.assert_array_equal(rebuilt.params[key], p)
    assert "training loss" not in mn.MMoE.evaluate.__doc__ and "loss on (X, Y)" in mn.MMoE.evaluate.__doc__


@pytest.mark.parametrize("flag", ["yes", 1, None, "False"])
def test_loss_and_grads_refuses_an_input_grad_that_is_not_a_bool(flag):
    model = mn.MMoE(4, ("regression",), n_experts=2)
    X, Y = data(5, 4, model.tasks, 0)
    with pytest.raises(ValueError, match=f"input_grad must be True or False; got {flag!r}"):
        model.loss_and_grads(X, Y, input_grad=flag)
    assert len(model.loss_and_grads(X, Y, input_grad=np.bool_(True))) == 3


# ------------------------------------------------------------------------------------------------ the mixture base
def test_mixture_of_experts_with_one_or_k_gates_is_omoe_or_mmoe():
    tasks = ("regression", "binary", "binary")
    sizes = dict(n_experts=3, expert_units=(4,), tower_units=(2,), seed=5)
    X, Y = data(6, 4, tasks, 0)
    for n_gates, cls in ((1, mn.OMoE), (3, mn.MMoE), (None, mn.MMoE)):
        general, special = mn.MixtureOfExperts(4, tasks, n_gates=n_gates, **sizes), cls(4, tasks, **sizes)
        assert general.n_gates == special.n_gates == (n_gates or 3)
        assert general.config() == {**special.config(), "n_gates": n_gates or 3} and "n_gates" not in special.config()
        for key, p in special.params.items():
            np.testing.assert_array_equal(general.params[key], p)
        (loss, grads, dX), (loss_s, grads_s, dX_s) = (m.loss_and_grads(X, Y, input_grad=True) for m in (general, special))
        assert loss == loss_s
        np.testing.assert_array_equal(dX, dX_s)
        for key in grads_s:
            np.testing.assert_array_equal(grads[key], grads_s[key])
    model = jitter(mn.MixtureOfExperts(4, tasks, n_gates=1, **sizes), 1)
    assert model.relu_margin(X) > KINK_MARGIN
    report = mn.check_gradients(model, X, Y)
    assert report.passed(TOL), str(report)


@pytest.mark.parametrize("n_gates", [0, 2, 4, True, 1.0, "1"])
def test_mixture_of_experts_gates_are_one_or_one_per_task(n_gates):
    with pytest.raises(ValueError, match=r"n_gates must be 1 .* or n_tasks = 3"):
        mn.MixtureOfExperts(4, ("regression",) * 3, n_gates=n_gates)


def test_every_cache_is_named():
    # the caches are NamedTuples all the way down (a tuple of layers for an MLP), and the ReLU walk finds them all
    tasks = ("regression", "binary")
    X, _ = data(5, 4, tasks, 0)
    for name, cls in mn.MODEL_CLASSES.items():
        model = cls(4, tasks, **SEVEN[name])
        _, cache = model._forward(X)
        assert type(cache).__name__.endswith("Cache") and hasattr(cache, "_fields"), name
        assert "towers" in cache._fields and all(hasattr(layer, "dense") for layer in cache.towers), name
        n_relus = sum(1 for _ in mn.gradcheck.relu_caches(cache))
        assert n_relus == len(getattr(model, "hidden_units", getattr(model, "bottom_units", getattr(
            model, "expert_units", ())))) + len(model.tower_units), name


# ------------------------------------------------------------------------------------------------ predict, evaluate
def test_predict_is_the_sigmoid_of_binary_logits_and_the_value_of_regressions():
    model = jitter(mn.MMoE(4, ("regression", "binary", "binary"), n_experts=2, seed=0), 0)
    X, _ = data(9, 4, model.tasks, 1)
    logits = model.forward(X)
    p = model.predict(X)
    assert p.shape == (9, 3) and p.dtype == np.float64
    np.testing.assert_array_equal(p[:, 0], logits[:, 0])
    np.testing.assert_allclose(p[:, 1:], 1 / (1 + np.exp(-logits[:, 1:])), rtol=1e-12)
    stacked = mn.stack_models([model, mn.MMoE(4, model.tasks, n_experts=2, seed=1)])
    np.testing.assert_allclose(stacked.predict(X)[0], p, rtol=1e-12)
    assert model.copy(np.float32).predict(X).dtype == np.float32


def test_evaluate_by_hand():
    model = jitter(mn.SharedBottom(3, ("binary", "regression"), bottom_units=(4,), seed=2), 2)
    X, Y = data(8, 3, model.tasks, 3)
    Y[:4, 0], Y[4:, 0] = 0, 1  # both labels
    out = model.forward(X)
    scores = model.evaluate(X, Y)
    assert set(scores) == {0, 1} and set(scores[0]) == {"loss", "auc"} and set(scores[1]) == {"loss", "mse"}
    s = 1 / (1 + np.exp(-out[:, 0]))
    bce = -np.mean(Y[:, 0] * np.log(s) + (1 - Y[:, 0]) * np.log(1 - s))
    pairs = [(i, j) for i in range(8) for j in range(8) if Y[i, 0] == 1 and Y[j, 0] == 0]
    auc = np.mean([1.0 if out[i, 0] > out[j, 0] else 0.5 if out[i, 0] == out[j, 0] else 0.0 for i, j in pairs])
    mse = np.mean((out[:, 1] - Y[:, 1]) ** 2)
    assert scores[0]["loss"] == pytest.approx(bce, rel=1e-12) and scores[0]["auc"] == pytest.approx(auc, rel=1e-12)
    assert scores[1]["loss"] == pytest.approx(mse, rel=1e-12) and scores[1]["mse"] == pytest.approx(mse, rel=1e-12)
    assert all(isinstance(v, float) for task in scores.values() for v in task.values())
    # stacked replicas: one value per replica, each its own model's
    other = jitter(mn.SharedBottom(3, model.tasks, bottom_units=(4,), seed=4), 4)
    stacked = mn.stack_models([model, other])
    both = stacked.evaluate(X, Y)
    assert both[0]["auc"].shape == (2,) and both[0]["auc"][0] == pytest.approx(auc, rel=1e-12)
    assert both[1]["mse"][1] == pytest.approx(other.evaluate(X, Y)[1]["mse"], rel=1e-12)
    Y[:, 0] = 1
    with pytest.raises(ValueError, match=r"Y: binary task 0 has only label 1"):
        model.evaluate(X, Y)


def test_every_model_lists_its_mlp_layers():
    model = mn.MMoE(4, ("regression", "binary"), n_experts=3, expert_units=(5, 2), tower_units=(3,))
    layers = model.mlp_layers("towers")
    assert [(W.shape, b.shape) for W, b in layers] == [((2, 2, 3), (2, 3)), ((2, 3, 1), (2, 1))]
    assert layers[0][0] is model.params["towers.0.W"] and len(model.mlp_layers("experts")) == 2
    assert model.mlp_layers("bottom") == []


# ------------------------------------------------------------------------------------------------ the flat buffer
def views_of_the_flat_buffer(model):
    """Every parameter is a view into model.params.flat, and together they cover every number of it exactly once."""
    flat = model.params.flat
    start = flat.__array_interface__["data"][0]
    covered = np.zeros(flat.size, dtype=f"i{flat.itemsize}")  # same item size: the views' offsets and strides fit
    for name, p in model.params.items():
        assert np.shares_memory(p, flat), name
        np.ndarray(p.shape, covered.dtype, covered, p.__array_interface__["data"][0] - start, p.strides)[...] += 1
    return np.all(covered == 1)


@pytest.mark.parametrize("name", list(SEVEN))
def test_params_and_grads_are_named_views_of_one_flat_buffer_each(name):
    model = jitter(mn.MODEL_CLASSES[name](4, ("regression", "binary"), seed=5, **SEVEN[name]), 5)
    assert views_of_the_flat_buffer(model)
    X, Y = data(6, 4, model.tasks, 5)
    _, first = model.loss_and_grads(X, Y)
    kept = {k: g.copy() for k, g in first.items()}
    model.params["towers.0.b"] += 1.0  # in place: the flat buffer changes with it
    _, second = model.loss_and_grads(X, Y)
    assert second.flat is not first.flat and second.layout is first.layout is model.params.layout
    for k in kept:  # a later call never overwrites the grads of an earlier one
        np.testing.assert_array_equal(first[k], kept[k])
    assert not np.array_equal(first["towers.0.W"], second["towers.0.W"])
    for copied in (model.copy(), model.copy(np.float32), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert views_of_the_flat_buffer(copied) and not np.shares_memory(copied.params.flat, model.params.flat)
        assert all(np.array_equal(copied.params[k], model.params[k].astype(copied.dtype)) for k in model.params)
        np.testing.assert_allclose(copied.loss_and_grads(X, Y)[0], second_loss := model.loss_and_grads(X, Y)[0],
                                   rtol=1e-6)
    stacked = mn.stack_models([model, model.copy()])
    members = {m for block in stacked.params.layout.blocks.values() for m in block}
    assert views_of_the_flat_buffer(stacked) and all(p.flags.c_contiguous for k, p in stacked.params.items()
                                                     if k not in members)
    assert all(stacked.params.segment(key).flags.c_contiguous for key in stacked.params.layout.blocks)
    singles = mn.unstack_models(stacked)
    for single in singles:
        assert views_of_the_flat_buffer(single) and single.params.layout.lead == ()
        assert all(np.array_equal(single.params[k], model.params[k]) for k in model.params)
        assert single.loss_and_grads(X, Y)[0] == second_loss


@pytest.mark.parametrize("cls, noisy", [(mn.MMoE, False), (mn.MMoE, True), (mn.OMoE, False)])
def test_the_first_layer_is_read_from_the_buffer_without_a_copy(cls, noisy):
    """experts.0.W, gates.W (gates.noise.W) are columns of one block W1 of the flat buffer, their biases of b1: the
    forward pass multiplies W1 itself; a key replaced by an array of its own is read from that array instead."""
    model = jitter(cls(4, ("regression", "binary"), n_experts=3, expert_units=(5, 2), noisy_gating=noisy, seed=1), 1)
    E, h, G = 3, 5, model.n_gates
    W1, b1 = model._first_layer()
    assert W1.shape == (4, E * h + (2 if noisy else 1) * G * E) and np.shares_memory(W1, model.params.flat)
    assert W1 is model.params.segment("W1") and b1 is model.params.segment("b1")
    blocks = ["gates", "gates.noise"] if noisy else ["gates"]
    expected = np.concatenate([model.params["experts.0.W"][e] for e in range(E)]
                              + [model.params[f"{b}.W"][g] for b in blocks for g in range(G)], axis=1)
    np.testing.assert_array_equal(W1, expected)  # expert e: columns e*h .. (e+1)*h, then the gates
    np.testing.assert_array_equal(b1, np.concatenate([model.params[f"{b}.b"].ravel() for b in ["experts.0"] + blocks]))
    X, Y = data(5, 4, model.tasks, 2)
    loss = model.loss_and_grads(X, Y)[0]
    model.params["gates.W"] = model.params["gates.W"] * 2.0  # replaced, not written into: the buffer is cut off
    assert not model.params.intact() and not np.shares_memory(model._first_layer()[0], model.params.flat)
    doubled = model.loss_and_grads(X, Y)[0]
    model.params["gates.W"] = model.params["gates.W"] / 2.0
    assert doubled != loss and model.loss_and_grads(X, Y)[0] == pytest.approx(loss, rel=1e-14)


def test_a_layout_block_puts_its_members_columns_side_by_side():
    from mmoe_np.models.flat import FlatArrays, FlatLayout
    shapes = {"a.W": (2, 3, 4), "a.b": (2, 4), "other": (5,), "g.W": (1, 3, 2), "g.b": (1, 2)}
    layout = FlatLayout(shapes, blocks={"W": ["a.W", "g.W"], "b": ["a.b", "g.b"]})
    assert layout.size == 24 + 8 + 5 + 6 + 2
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(s) for k, s in shapes.items()}
    packed = FlatArrays.of(arrays, layout)
    assert list(packed) == list(shapes)  # the names keep their order
    W = packed.segment("W")
    assert W.shape == (3, 10) and W.flags.c_contiguous
    np.testing.assert_array_equal(W, np.concatenate([arrays["a.W"][0], arrays["a.W"][1], arrays["g.W"][0]], axis=1))
    np.testing.assert_array_equal(packed.segment("b"), np.concatenate([arrays["a.b"].ravel(), arrays["g.b"].ravel()]))
    packed["g.W"][0, 1, 0] = 7.0  # a write into a member is a write into its block
    assert W[1, 8] == 7.0
    stacked = FlatArrays.stack([packed, FlatArrays.of(arrays, layout)])
    assert stacked.segment("W").shape == (2, 3, 10) and stacked["a.W"].shape == (2, 2, 3, 4)
    np.testing.assert_array_equal(stacked.unstack(0).flat, packed.flat)
    for blocks in ({"W": ["a.W", "nope"]}, {"W": ["a.W", "other"]}, {"W": ["a.W"], "V": ["a.W"]},
                   {"W": ["a.W", "a.b"]}, {"W": ["a.W", "a.W"]}):
        with pytest.raises(ValueError, match="blocks"):
            FlatLayout(shapes, blocks=blocks)


@pytest.mark.parametrize("name", ["MMoE", "SharedBottom"])
def test_a_replaced_key_is_what_copies_stacks_and_pickles_hold(name):
    """params[k] = array cuts k off the buffer; the model computes with the new array, and so must every copy."""
    model = jitter(mn.MODEL_CLASSES[name](4, ("regression", "binary"), seed=3, **SEVEN[name]), 3)
    key = "gates.W" if name == "MMoE" else "bottom.0.W"
    model.params[key] = model.params[key] * 3.0
    X, Y = data(5, 4, model.tasks, 3)
    loss = model.loss_and_grads(X, Y)[0]
    for copied in (model.copy(), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert copied.params.intact() and copied.loss_and_grads(X, Y)[0] == loss
    stacked = mn.stack_models([model, model.copy()])
    assert np.array_equal(stacked.params[key][0], model.params[key])
    singles = mn.unstack_models(stacked)
    stacked.params[key] = stacked.params[key] * 0.5  # replaced in the stack too: unstack reads the new array
    assert mn.unstack_models(stacked)[1].loss_and_grads(X, Y)[0] != loss == singles[1].loss_and_grads(X, Y)[0]
    del model.params[key]
    with pytest.raises(ValueError, match=f"lost the arrays.*{key}"):
        model.copy()


@pytest.mark.parametrize("name", ["MMoE", "SharedBottom"])
def test_a_key_replaced_by_another_shape_or_dtype_is_refused_by_every_pass_copy_and_save(name, tmp_path):
    """NumPy would broadcast a (3,) bias into a (2, 3) slot, or compute a float64 model with a float32 array, without
    a word; every public pass, copy and save refuses it, naming the key."""
    model = mn.MODEL_CLASSES[name](4, ("regression", "binary"), seed=3, **SEVEN[name])
    key = "gates.b" if name == "MMoE" else "towers.0.b"
    X, Y = data(5, 4, model.tasks, 3)
    shape = model.params[key].shape
    for bad in (np.zeros(shape[1:]), np.zeros(shape, np.float32), np.zeros(shape + (1,)), shape):
        broken = model.copy()
        broken.params[key] = bad
        for call in (lambda: broken.forward(X), lambda: broken.predict(X), lambda: broken.evaluate(X, Y),
                     lambda: broken.loss_and_grads(X, Y), lambda: mn.fit(broken, X, Y, epochs=1),
                     broken.copy, lambda: broken.save(tmp_path / "broken.npz")):
            with pytest.raises(ValueError, match=re.escape(f"params[{key!r}]")):
                call()
    assert not (tmp_path / "broken.npz").exists()
    broken.params[key] = np.ones(shape)  # the exact shape and dtype: computed with, copied and saved as it is
    assert np.array_equal(mn.load(broken.save(tmp_path / "ok.npz")).params[key], np.ones(shape))
    assert np.array_equal(broken.forward(X), broken.copy().forward(X))
    for exact in (model.copy(np.float32), mn.stack_models([model, model.copy()])):  # float32, and stacked replicas
        exact.params[key] = np.full(exact.params[key].shape, 0.5, exact.dtype)
        assert np.array_equal(exact.copy().params[key], exact.params[key]) and exact.forward(X).dtype == exact.dtype
        exact.params[key] = exact.params[key][..., :1]  # broadcastable, not exact: refused
        with pytest.raises(ValueError, match=re.escape(f"params[{key!r}]")):
            exact.forward(X)
    broken.params = dict(broken.params)
    with pytest.raises(ValueError, match="model.params must stay the model's own dict of views"):
        broken.forward(X)


def test_copying_parameters_between_buffers_of_different_layouts_goes_by_name():
    from mmoe_np.models.flat import FlatArrays, FlatLayout
    from mmoe_np.training import _copy_params
    source = FlatArrays(np.arange(5.0), FlatLayout({"a": (2,), "b": (3,)}))
    target = FlatArrays(np.zeros(5), FlatLayout({"b": (3,), "a": (2,)}))  # the same size, another order
    assert source.layout != target.layout and source.layout == FlatLayout({"a": (2,), "b": (3,)})
    _copy_params(target, source)
    assert np.array_equal(target["a"], [0.0, 1.0]) and np.array_equal(target["b"], [2.0, 3.0, 4.0])
