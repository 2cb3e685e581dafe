"""Every functional op: forward values against the definition, backward against central differences."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np import ops
from modelcheck import KINK_MARGIN, TOL

dims = st.integers(1, 5)
lead_shapes = st.sampled_from([(), (1,), (3,), (2, 1)])   # no leading axes, a stack axis, a replica axis...
replica_shapes = st.sampled_from([(), (2,)])               # one model, or a replica axis


def normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def assert_op(forward, backward, inputs, **constants):
    report = mn.check_op(forward, backward, inputs, **constants)
    assert report.passed(TOL), str(report)


# ------------------------------------------------------------------------------------------------ dense, relu, mlp
@given(lead=lead_shapes, B=dims, d_in=dims, d_out=dims, seed=st.integers(0, 10**6), broadcast_x=st.booleans())
def test_dense_gradients(lead, B, d_in, d_out, seed, broadcast_x):
    # x may be shared by every stacked layer / replica (its leading axes are 1): its gradient must be summed back
    x_lead = tuple(1 for _ in lead) if broadcast_x else lead
    rng = np.random.default_rng(seed)
    inputs = dict(x=rng.standard_normal(x_lead + (B, d_in)), W=rng.standard_normal(lead + (d_in, d_out)),
                  b=rng.standard_normal(lead + (d_out,)))
    assert_op(ops.dense_forward, ops.dense_backward, inputs)


def test_dense_forward_is_affine_map_per_stacked_layer():
    x, W, b = normal(0, 1, 4, 3), normal(1, 2, 3, 5), normal(2, 2, 5)
    y, _ = ops.dense_forward(x, W, b)
    for s in range(2):
        np.testing.assert_allclose(y[s], x[0] @ W[s] + b[s], rtol=1e-12)


@given(shape=st.lists(dims, min_size=1, max_size=3), seed=st.integers(0, 10**6))
def test_relu_gradients_away_from_kink(shape, seed):
    z = normal(seed, *shape)
    assume(np.abs(z).min() > KINK_MARGIN)
    assert_op(ops.relu_forward, ops.relu_backward, dict(z=z))


@given(B=dims, sizes=st.lists(dims, min_size=2, max_size=4), stack=st.integers(1, 3), relu_last=st.booleans(),
       seed=st.integers(0, 10**6))
def test_mlp_gradients(B, sizes, stack, relu_last, seed):
    rng = np.random.default_rng(seed)
    n_layers = len(sizes) - 1
    inputs = {"x": rng.standard_normal((1, B, sizes[0]))}
    for i in range(n_layers):
        inputs[f"W{i}"] = rng.standard_normal((stack, sizes[i], sizes[i + 1]))
        inputs[f"b{i}"] = rng.standard_normal((stack, sizes[i + 1]))

    def forward(x, **p):
        return ops.mlp_forward(x, [(p[f"W{i}"], p[f"b{i}"]) for i in range(n_layers)], relu_last)

    def backward(dy, cache):
        dx, layer_grads = ops.mlp_backward(dy, cache)
        return (dx, *[g for pair in layer_grads for g in pair])

    _, cache = forward(**inputs)
    assume(min(np.abs(c.relu.pre_activation).min() for c in cache if c.relu is not None) > KINK_MARGIN
           if any(c.relu is not None for c in cache) else True)
    assert_op(forward, backward, inputs)


@given(N=dims, K=st.integers(1, 3), h=dims, units=st.lists(dims, max_size=2), shared=st.booleans(),
       seed=st.integers(0, 10**6))
def test_towers_gradients_and_layout(N, K, h, units, shared, seed):
    # K towers in one stacked MLP with a linear output of width 1; a shared input gets the sum over the towers
    rng = np.random.default_rng(seed)
    sizes = (h, *units, 1)
    inputs = {"z": rng.standard_normal((1 if shared else K, N, h))}
    for i in range(len(sizes) - 1):
        inputs[f"W{i}"] = rng.standard_normal((K, sizes[i], sizes[i + 1]))
        inputs[f"b{i}"] = rng.standard_normal((K, sizes[i + 1]))

    def forward(z, **p):
        return ops.towers_forward(z, [(p[f"W{i}"], p[f"b{i}"]) for i in range(len(sizes) - 1)])

    def backward(dout, cache):
        dz, layer_grads = ops.towers_backward(dout, cache)
        return (dz, *[g for pair in layer_grads for g in pair])

    out, cache = forward(**inputs)
    assert out.shape == (N, K)
    for k in range(K):
        y, _ = ops.mlp_forward(inputs["z"][0 if shared else k], [(inputs[f"W{i}"][k], inputs[f"b{i}"][k])
                                                                 for i in range(len(sizes) - 1)], relu_last=False)
        np.testing.assert_allclose(out[:, k], y[:, 0], rtol=1e-12)
    assume(all(np.abs(c.relu.pre_activation).min() > KINK_MARGIN for c in cache if c.relu is not None))
    assert_op(forward, backward, inputs)


# ------------------------------------------------------------------------------------------------ softmax and gates
@given(lead=lead_shapes, n=dims, seed=st.integers(0, 10**6), scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_softmax_gradients(lead, n, seed, scale):
    assert_op(ops.softmax_forward, ops.softmax_backward, dict(z=scale * normal(seed, *lead, 3, n)))


def test_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]])
    for dtype in (np.float32, np.float64):
        p = ops.softmax(z.astype(dtype))
        assert p.dtype == dtype and np.all(np.isfinite(p))
        np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]], atol=1e-7)
        dz = ops.softmax_backward(np.ones_like(p) * np.array([1.0, -2.0, 3.0], dtype), p)
        assert np.all(np.isfinite(dz))


@pytest.mark.parametrize("shape", [(3, 8), (700, 2, 8), (9000, 1), (600, 40), (2, 700, 3)])
def test_last_axis_reductions_equal_numpys_on_both_paths(shape):
    # few rows or a long axis: NumPy's reduction; many short rows: one elementwise call per column
    a = normal(0, *shape)
    np.testing.assert_array_equal(ops.last_axis_reduce(np.maximum, a), a.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(ops.last_axis_reduce(np.add, a), a.sum(axis=-1, keepdims=True), rtol=1e-13, atol=1e-13)


def test_softmax_and_its_vjp_over_many_rows_match_the_definition():
    z = 3 * normal(1, 4096, 2, 8)  # enough rows for the column-wise reductions
    dp = normal(2, 4096, 2, 8)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(ops.softmax(z), p, rtol=1e-13)
    np.testing.assert_allclose(ops.softmax_backward(dp, p), p * (dp - (dp * p).sum(axis=-1, keepdims=True)),
                               rtol=1e-12, atol=1e-15)


def test_dense_backward_of_one_sample_is_the_outer_product_exactly():
    x, W, dy = normal(3, 2, 1, 5), normal(4, 2, 5, 7), normal(5, 2, 1, 7)  # B = 1, two stacked layers
    _, cache = ops.dense_forward(x, W, np.zeros((2, 7)))
    _, dW, _ = ops.dense_backward(dy, cache)
    np.testing.assert_array_equal(dW, np.swapaxes(x, -1, -2) @ dy)  # one product per entry: bit for bit


@given(B=dims, d=dims, G=st.integers(1, 3), E=dims, seed=st.integers(0, 10**6))
def test_gate_gradients_and_rows_sum_to_one(B, d, G, E, seed):
    rng = np.random.default_rng(seed)
    inputs = dict(x=rng.standard_normal((1, B, d)), W=rng.standard_normal((G, d, E)), b=rng.standard_normal((G, E)))
    g, _ = ops.gate_forward(**inputs)
    assert g.shape == (G, B, E)
    np.testing.assert_allclose(g.sum(axis=-1), 1.0, rtol=1e-12)
    assert_op(ops.gate_forward, ops.gate_backward, inputs)


# ------------------------------------------------------------------------------------------------ the mixture
@given(lead=lead_shapes, G=st.integers(1, 3), B=dims, E=dims, h=dims, seed=st.integers(0, 10**6))
def test_mixture_gradients(lead, G, B, E, h, seed):
    rng = np.random.default_rng(seed)
    inputs = dict(gates=rng.standard_normal(lead + (G, B, E)), experts=rng.standard_normal(lead + (E, B, h)))
    assert_op(ops.mixture_forward, ops.mixture_backward, inputs)


def test_mixture_forward_is_gate_weighted_sum_of_experts():
    rng = np.random.default_rng(0)
    g, f = ops.softmax(rng.standard_normal((2, 5, 3))), rng.standard_normal((3, 5, 4))
    m, _ = ops.mixture_forward(g, f)
    for k in range(2):
        for b in range(5):
            np.testing.assert_allclose(m[k, b], sum(g[k, b, e] * f[e, b] for e in range(3)), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ L2 tie
def pairwise_tie(theta, weight):
    """The definition: weight * sum over task pairs k < l of ||theta_k - theta_l||^2 (task axis first)."""
    K = theta.shape[0]
    return weight * sum(np.sum((theta[k] - theta[l]) ** 2) for k in range(K) for l in range(k + 1, K))


@given(lead=replica_shapes, K=dims, shape=st.lists(dims, min_size=1, max_size=2).map(tuple),
       weight=st.floats(0.01, 3), seed=st.integers(0, 10**6))
def test_l2_tie_value_and_gradients(lead, K, shape, weight, seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((*lead, K, *shape))
    task_axis = -1 - len(shape)
    value, _ = ops.l2_tie_forward(theta, weight, task_axis)
    assert np.shape(value) == lead
    for r in np.ndindex(*lead):
        np.testing.assert_allclose(value[r], pairwise_tie(theta[r], weight), rtol=1e-12, atol=1e-12)
        # the uncentred identity of the docs: K sum_k ||t_k||^2 - ||sum_k t_k||^2
        t = theta[r].reshape(K, -1)
        np.testing.assert_allclose(value[r], weight * (K * np.sum(t * t) - np.sum(t.sum(0) ** 2)), rtol=1e-9,
                                   atol=1e-9)
    assert_op(ops.l2_tie_forward, ops.l2_tie_backward, dict(theta=theta), weight=weight, task_axis=task_axis)


def test_l2_tie_gradient_is_2_alpha_times_K_theta_k_minus_the_sum():
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((3, 4, 2))
    _, cache = ops.l2_tie_forward(theta, 0.7, -3)
    np.testing.assert_allclose(ops.l2_tie_backward(1.0, cache), 2 * 0.7 * (3 * theta - theta.sum(0)), rtol=1e-12)


def test_l2_tie_has_no_cancellation_when_the_tie_is_tight():
    # Tasks 1e-7 apart on weights of size 1e4: the uncentred form loses every digit; the centred one keeps them.
    theta = np.full((2, 3), 1e4)
    theta[1] += 1e-7
    gap = theta[1, 0] - theta[0, 0]  # exact (Sterbenz): the 1e-7 as stored, about 1e-7 * (1 + 2e-5)
    value, _ = ops.l2_tie_forward(theta, 1.0, -2)
    np.testing.assert_allclose(value, 3 * gap ** 2, rtol=1e-6)
    uncentred = 2 * np.sum(theta ** 2) - np.sum(theta.sum(0) ** 2)
    assert abs(uncentred - 3 * gap ** 2) > 0.5 * 3 * gap ** 2  # not one correct digit (it gives 0 here)


# ------------------------------------------------------------------------------------------------ cross-stitch
@given(lead=replica_shapes, K=dims, batch=dims, h=dims, seed=st.integers(0, 10**6))
def test_cross_stitch_values_and_gradients(lead, K, batch, h, seed):
    rng = np.random.default_rng(seed)
    x, alpha = rng.standard_normal((*lead, K, batch, h)), rng.standard_normal((*lead, K, K))
    mixed, _ = ops.cross_stitch_forward(x, alpha)
    for r in np.ndindex(*lead):
        for k in range(K):
            np.testing.assert_allclose(mixed[r][k], sum(alpha[r][k, l] * x[r][l] for l in range(K)), rtol=1e-12,
                                       atol=1e-12)
    assert_op(ops.cross_stitch_forward, ops.cross_stitch_backward, dict(x=x, alpha=alpha))


# ------------------------------------------------------------------------------------------------ losses
@given(lead=lead_shapes, B=dims, K=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_mse_gradients_and_value(lead, B, K, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(lead + (B, K)), rng.standard_normal(lead + (B, K))
    loss, _ = ops.mse_forward(pred, target)
    np.testing.assert_allclose(loss, ((pred - target) ** 2).mean(axis=-2), rtol=1e-12)
    assert_op(ops.mse_forward, ops.mse_backward, dict(pred=pred), target=target)


@given(lead=lead_shapes, B=dims, K=st.integers(1, 3), seed=st.integers(0, 10**6))
def test_bce_gradients_and_value(lead, B, K, seed):
    rng = np.random.default_rng(seed)
    z, t = 3 * rng.standard_normal(lead + (B, K)), rng.integers(0, 2, lead + (B, K)).astype(float)
    loss, _ = ops.bce_with_logits_forward(z, t)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(loss, -(t * np.log(s) + (1 - t) * np.log(1 - s)).mean(axis=-2), rtol=1e-10)
    assert_op(ops.bce_with_logits_forward, ops.bce_with_logits_backward, dict(logits=z), target=t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_is_finite_and_exact_for_huge_logits(dtype):
    z = np.array([[1e4], [-1e4], [1e4], [-1e4]], dtype=dtype)
    t = np.array([[1], [0], [0], [1]], dtype=dtype)
    loss, cache = ops.bce_with_logits_forward(z, t)
    # two confident right answers cost 0, two confident wrong ones cost 1e4 each
    np.testing.assert_allclose(loss, [2e4 / 4], rtol=1e-6)
    dz = ops.bce_with_logits_backward(np.ones(1, dtype), cache)
    assert np.all(np.isfinite(dz)) and dz.dtype == dtype
    np.testing.assert_allclose(dz[:, 0], [0, 0, 0.25, -0.25], atol=1e-7)


def test_sigmoid_and_log_sigmoid_are_stable():
    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # exp may underflow to 0; never overflow
        s, ls = ops.sigmoid(z), ops.log_sigmoid(z)
    np.testing.assert_allclose(s, [0, np.exp(-50), 0.5, 1, 1], rtol=1e-12, atol=0)
    np.testing.assert_allclose(ls, [-1e4, -50 - np.log1p(np.exp(-50)), -np.log(2), -np.log1p(np.exp(-50)), 0],
                               rtol=1e-12)


@given(B=dims, tasks=st.lists(st.sampled_from(["regression", "binary"]), min_size=1, max_size=4),
       seed=st.integers(0, 10**6), replicas=st.booleans())
def test_multitask_loss_gradients_and_weighted_sum(B, tasks, seed, replicas):
    rng = np.random.default_rng(seed)
    lead = (2,) if replicas else ()
    out = rng.standard_normal(lead + (B, len(tasks)))
    Y = np.column_stack([rng.standard_normal(B) if t == "regression" else rng.integers(0, 2, B) for t in tasks])
    w = rng.uniform(0, 2, len(tasks))
    (total, per_task), _ = ops.multitask_loss_forward(out, Y, tasks, w)
    for k, t in enumerate(tasks):
        expected, _ = (ops.mse_forward if t == "regression" else ops.bce_with_logits_forward)(out[..., k:k + 1],
                                                                                              Y[:, k:k + 1])
        np.testing.assert_allclose(per_task[..., k], expected[..., 0], rtol=1e-12)
    np.testing.assert_allclose(total, (per_task * w).sum(axis=-1), rtol=1e-12)

    def forward(out):
        (total, _), cache = ops.multitask_loss_forward(out, Y, tasks, w)
        return total, cache

    assert_op(forward, ops.multitask_loss_backward, dict(out=out))


def test_sum_to_shape_undoes_broadcasting():
    g = np.ones((3, 4, 5))
    np.testing.assert_array_equal(ops.sum_to_shape(g, (1, 5)), np.full((1, 5), 12.0))
    np.testing.assert_array_equal(ops.sum_to_shape(g, (4, 1)), np.full((4, 1), 15.0))
    assert ops.sum_to_shape(g, (3, 4, 5)) is g


def test_backward_without_the_input_gradient_gives_the_same_parameter_gradients():
    rng = np.random.default_rng(0)
    layers = [(rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 5))),
              (rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 2)))]
    y, cache = ops.mlp_forward(rng.standard_normal((1, 6, 4)), layers, relu_last=True)
    dy = rng.standard_normal(y.shape)
    dx, grads = ops.mlp_backward(dy, cache)
    none, grads_only = ops.mlp_backward(dy, cache, input_grad=False)
    assert dx.shape == (1, 6, 4) and none is None
    for (dW, db), (dW2, db2) in zip(grads, grads_only):
        np.testing.assert_array_equal(dW, dW2)
        np.testing.assert_array_equal(db, db2)
    g, gate_cache = ops.gate_forward(rng.standard_normal((1, 6, 4)), rng.standard_normal((2, 4, 3)),
                                     rng.standard_normal((2, 3)))
    dx, dW, db = ops.gate_backward(np.ones_like(g), gate_cache, input_grad=False)
    assert dx is None and dW.shape == (2, 4, 3) and db.shape == (2, 3)


def test_a_replaced_loss_op_reaches_the_models(monkeypatch):
    # the task losses are looked up in ops when called: replacing ops.mse_backward (as the mutation tests plant a
    # bug) changes every model's gradients, and ops.bce_with_logits_backward the binary task's
    model = mn.MMoE(3, ("regression", "binary"), n_experts=2, expert_units=(4,), tower_units=(2,), seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((5, 3)), np.c_[rng.standard_normal(5), [0, 1, 0, 1, 1]]
    loss, grads = model.loss_and_grads(X, Y)
    for name in ("mse_backward", "bce_with_logits_backward"):
        correct = getattr(ops, name)
        with monkeypatch.context() as patch:
            patch.setattr(ops, name, lambda dL, cache, correct=correct: 3 * correct(dL, cache))
            loss_bug, grads_bug = model.loss_and_grads(X, Y)
        assert loss_bug == loss and not np.allclose(grads_bug["towers.1.b"], grads["towers.1.b"]), name
        column = 0 if name == "mse_backward" else 1  # only the task of that loss changes
        np.testing.assert_array_equal(grads_bug["towers.1.b"][1 - column], grads["towers.1.b"][1 - column])
