"""The soft-parameter-sharing baselines: the Tucker ops against their definition and central differences (the L2
tie and the cross-stitch unit are in test_ops.py, beside the other ops of mmoe_np.ops), each model's
gradients (hypothesis, float64, every parameter and X), forward values against naive loops, the equivalences that
pin each method down (alpha = 0, identity stitches, explicit Tucker weights), initialisation, contract and bad input."""
import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np import ops
from mmoe_np import tucker as tk
from modelcheck import KINK_MARGIN, TOL, assert_gradients_match, data, hidden, jitter, seeds, task_lists, towers
import test_models as core_tests
from test_models import layers, naive_mlp
from test_ops import pairwise_tie

dims = st.integers(1, 4)
lead_shapes = st.sampled_from([(), (2,)])  # one model, or a replica axis
n_samples = st.integers(1, 5)
n_features = st.integers(1, 4)


def normal(rng, *shape):
    return rng.standard_normal(shape)


def assert_op(forward, backward, inputs, **constants):
    report = mn.check_op(forward, backward, inputs, **constants)
    assert report.passed(TOL), str(report)


# ================================================================================================ the ops
# ------------------------------------------------------------------------------------------------ Tucker
def naive_tucker(S, U1, U2, U3):
    """W[k] = sum_{a,b,c} S[a,b,c] * U3[k,c] * outer(U1[:, a], U2[:, b]): loops over the core, stacked by task."""
    W = np.zeros((U3.shape[0], U1.shape[0], U2.shape[0]))
    for a, b, c in np.ndindex(*S.shape):
        W += S[a, b, c] * U3[:, c, None, None] * np.outer(U1[:, a], U2[:, b])
    return W


@st.composite
def rank(draw, dim):
    """A rank for a mode of size ``dim``: often 1 or full, otherwise anything in between."""
    return draw(st.one_of(st.just(1), st.just(dim), st.integers(1, dim)))


@given(shape=st.lists(dims, min_size=3, max_size=3), mode=st.integers(0, 2), J=dims, lead=lead_shapes, seed=seeds)
def test_unfold_fold_and_mode_product(shape, mode, J, lead, seed):
    rng = np.random.default_rng(seed)
    T, U = normal(rng, *lead, *shape), normal(rng, *lead, J, shape[mode])
    T_n = tk.unfold(T, mode)
    assert T_n.shape == (*lead, shape[mode], int(np.prod(shape)) // shape[mode])
    np.testing.assert_array_equal(tk.fold(T_n, mode, shape), T)
    Y, _ = tk.mode_product_forward(T, U, mode)
    letters = "abc"
    spec = f"...{letters},...j{letters[mode]}->...{letters.replace(letters[mode], 'j')}"
    np.testing.assert_allclose(Y, np.einsum(spec, T, U), rtol=1e-12, atol=1e-12)
    assert_op(tk.mode_product_forward, tk.mode_product_backward, dict(T=T, U=U), mode=mode)


@given(d_in=dims, d_out=dims, K=dims, lead=lead_shapes, seed=seeds, data_=st.data())
def test_tucker_values_and_gradients(d_in, d_out, K, lead, seed, data_):
    r1, r2, r3 = data_.draw(rank(d_in)), data_.draw(rank(d_out)), data_.draw(rank(K))
    rng = np.random.default_rng(seed)
    inputs = dict(S=normal(rng, *lead, r1, r2, r3), U1=normal(rng, *lead, d_in, r1), U2=normal(rng, *lead, d_out, r2),
                  U3=normal(rng, *lead, K, r3))
    W, _ = tk.tucker_forward(**inputs)
    assert W.shape == (*lead, K, d_in, d_out)
    for r in np.ndindex(*lead):
        np.testing.assert_allclose(W[r], naive_tucker(*(a[r] for a in inputs.values())), rtol=1e-10, atol=1e-12)
    assert_op(tk.tucker_forward, tk.tucker_backward, inputs)


def test_tucker_decompose_is_exact_at_full_rank_and_for_low_rank_tensors():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 5, 4))                                    # (K, d_in, d_out)
    S, U1, U2, U3 = tk.tucker_decompose(W, (5, 4, 3))
    np.testing.assert_allclose(tk.tucker_forward(S, U1, U2, U3)[0], W, atol=1e-12)
    for U in (U1, U2, U3):
        np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-12)  # orthonormal columns
    np.testing.assert_allclose(np.linalg.norm(S), np.linalg.norm(W), rtol=1e-12)
    # a tensor of multilinear rank (2, 1, 2) is recovered exactly by its rank-(2, 1, 2) HOSVD ...
    low = naive_tucker(rng.standard_normal((2, 1, 2)), rng.standard_normal((5, 2)), rng.standard_normal((4, 1)),
                       rng.standard_normal((3, 2)))
    np.testing.assert_allclose(tk.tucker_forward(*tk.tucker_decompose(low, (2, 1, 2)))[0], low, atol=1e-12)
    # ... while truncating a generic tensor loses energy
    truncated = tk.tucker_forward(*tk.tucker_decompose(W, (2, 2, 2)))[0]
    assert np.linalg.norm(truncated) < np.linalg.norm(W) - 0.1


# ================================================================================================ the models
def l2(d, tasks, hidden_units=(3,), tower_units=(2,), **kw):
    return mn.L2Constrained(d, tasks, hidden_units=hidden_units, tower_units=tower_units, **kw)


def stitch(d, tasks, hidden_units=(3,), tower_units=(2,), **kw):
    return mn.CrossStitch(d, tasks, hidden_units=hidden_units, tower_units=tower_units, **kw)


def tucker(d, tasks, hidden_units=(3,), tower_units=(2,), ranks=None, **kw):
    if ranks is None:  # the largest ranks every layer allows, minus one where possible
        sizes = (d, *hidden_units)
        ranks = tuple(max(1, min(dims) - 1) for dims in (sizes[:-1], sizes[1:], (len(tasks),)))
    return mn.TensorFactorization(d, tasks, hidden_units=hidden_units, tower_units=tower_units, ranks=ranks, **kw)


MAKERS = {"L2Constrained": l2, "CrossStitch": stitch, "TensorFactorization": tucker}


# ------------------------------------------------------------------------------------------------ gradients
@given(N=n_samples, d=n_features, tasks=task_lists, hidden_units=hidden, tower_units=towers, seed=seeds,
       l2_weight=st.one_of(st.just(0.0), st.floats(0.01, 3)), tie_towers=st.booleans())
def test_l2_constrained_gradients(N, d, tasks, hidden_units, tower_units, seed, l2_weight, tie_towers):
    model = l2(d, tasks, hidden_units, tower_units, l2_weight=l2_weight, tie_towers=tie_towers, seed=seed)
    assert_gradients_match(jitter(model, seed), *data(N, d, tasks, seed))


@given(N=n_samples, d=n_features, tasks=task_lists, hidden_units=hidden, tower_units=towers, seed=seeds,
       alpha_self=st.floats(0, 1))
def test_cross_stitch_gradients(N, d, tasks, hidden_units, tower_units, seed, alpha_self):
    model = stitch(d, tasks, hidden_units, tower_units, alpha_self=alpha_self, seed=seed)
    assert_gradients_match(jitter(model, seed), *data(N, d, tasks, seed))


@given(N=n_samples, d=n_features, tasks=task_lists, hidden_units=hidden, tower_units=towers, seed=seeds,
       data_=st.data())
def test_tensor_factorization_gradients(N, d, tasks, hidden_units, tower_units, seed, data_):
    sizes = (d, *hidden_units)
    ranks = (data_.draw(rank(min(sizes[:-1]))), data_.draw(rank(min(sizes[1:]))), data_.draw(rank(len(tasks))))
    model = tucker(d, tasks, hidden_units, tower_units, ranks=ranks, seed=seed)
    assert_gradients_match(jitter(model, seed), *data(N, d, tasks, seed))


@pytest.mark.parametrize("name", list(MAKERS))
@given(N=n_samples, tasks=task_lists, n_replicas=st.integers(1, 3), seed=seeds, shared_data=st.booleans())
def test_gradients_with_stacked_replicas(name, N, tasks, n_replicas, seed, shared_data):
    make = MAKERS[name]
    model = mn.stack_models([jitter(make(3, tasks, (3, 2), seed=seed + r), seed + r) for r in range(n_replicas)])
    sets = [data(N, 3, tasks, seed + r) for r in range(n_replicas)]
    X, Y = sets[0] if shared_data else (np.stack([x for x, _ in sets]), np.stack([y for _, y in sets]))
    assert_gradients_match(model, X, Y)


# ------------------------------------------------------------------------------------------------ forward values
def naive_towers(model, reps):
    return np.column_stack([naive_mlp(reps[k], *layers(model, "towers", k), False)[:, 0]
                            for k in range(model.n_tasks)])


def naive_cross_stitch(model, X):
    """Loops over layers and tasks: a_k = relu(x_k W_k + b_k), then x_k = sum_j alpha[k, j] a_j."""
    K, xs = model.n_tasks, [X] * model.n_tasks
    for l in range(len(model.hidden_units)):
        W, b, alpha = (model.params[f"hidden.{l}.W"], model.params[f"hidden.{l}.b"],
                       model.params[f"stitch.{l}.alpha"])
        a = [np.maximum(xs[k] @ W[k] + b[k], 0) for k in range(K)]
        xs = [sum(alpha[k, j] * a[j] for j in range(K)) for k in range(K)]
    return naive_towers(model, xs)


def naive_tensor_factorization(model, X):
    """Each layer's weights from the core by explicit loops, then one plain network per task."""
    L = len(model.hidden_units)
    Ws = [naive_tucker(*(model.params[f"hidden.{l}.{n}"] for n in tk.FACTORS)) for l in range(L)]
    bs = [model.params[f"hidden.{l}.b"] for l in range(L)]
    reps = [naive_mlp(X, [W[k] for W in Ws], [b[k] for b in bs], True) for k in range(model.n_tasks)]
    return naive_towers(model, reps)


def naive_l2_constrained(model, X):
    reps = [naive_mlp(X, *layers(model, "hidden", k), True) for k in range(model.n_tasks)]
    return naive_towers(model, reps)


NAIVE = {"L2Constrained": naive_l2_constrained, "CrossStitch": naive_cross_stitch,
         "TensorFactorization": naive_tensor_factorization}


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("tasks", [("regression", "binary", "regression"), ("binary",)], ids=["K=3", "K=1"])
def test_forward_matches_naive_loops(name, tasks):
    model = jitter(MAKERS[name](4, tasks, (5, 3), (2,), seed=1), 2)
    X, _ = data(7, 4, tasks, 3)
    np.testing.assert_allclose(model.forward(X), NAIVE[name](model, X), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ equivalences
def copy_params(source, target):
    """Copy every parameter of ``target``'s from the array of the same name in ``source``."""
    for name, p in target.params.items():
        p[...] = source.params[name]


def test_l2_constrained_with_alpha_zero_trains_like_independent_single_task_models():
    tasks = ("regression", "binary")
    X, Y = data(12, 4, tasks, 0)

    def train(l2_weight):
        model = jitter(l2(4, tasks, (5, 3), (2,), l2_weight=l2_weight, seed=0), 0)
        singles = [mn.SingleTask(4, (t,), hidden_units=(5, 3), tower_units=(2,)) for t in tasks]
        for k, single in enumerate(singles):
            for name, p in single.params.items():
                p[...] = model.params[name][k:k + 1]  # task k's network
        opt, single_opts = mn.SGD(model.params, lr=0.1), [mn.SGD(s.params, lr=0.1) for s in singles]
        for _ in range(5):
            opt.step(model.loss_and_grads(X, Y)[1])
            for k, (single, single_opt) in enumerate(zip(singles, single_opts)):
                single_opt.step(single.loss_and_grads(X, Y[:, k:k + 1])[1])
        return model, singles

    model, singles = train(0.0)
    for k, single in enumerate(singles):
        for name, p in single.params.items():
            np.testing.assert_allclose(model.params[name][k:k + 1], p, rtol=1e-12, atol=1e-14)
    model, singles = train(0.5)  # a tie makes the tasks' hidden layers move together instead
    assert not np.allclose(model.params["hidden.0.W"][:1], singles[0].params["hidden.0.W"])


def test_l2_penalty_is_the_double_loop_over_task_pairs():
    tasks = ("regression", "binary", "regression")
    X, Y = data(6, 4, tasks, 1)
    for tie_towers in (False, True):
        model = jitter(l2(4, tasks, (5, 3), (2,), l2_weight=0.37, tie_towers=tie_towers, seed=4), 4)
        free = mn.SingleTask(4, tasks, hidden_units=(5, 3), tower_units=(2,))
        copy_params(model, free)
        tied = [name for name in model.params if name.startswith("hidden.") or tie_towers]
        penalty = sum(pairwise_tie(model.params[name], 0.37) for name in tied)
        assert model.tied == tied
        np.testing.assert_allclose(model.losses(X, Y)[0], free.losses(X, Y)[0] + penalty, rtol=1e-12)
        np.testing.assert_array_equal(model.forward(X), free.forward(X))


def test_cross_stitch_with_identity_alpha_is_independent_columns():
    tasks = ("regression", "binary", "binary")
    model = jitter(stitch(4, tasks, (5, 3), (2,), seed=0), 0)
    for l in range(2):
        model.params[f"stitch.{l}.alpha"][...] = np.eye(3)
    columns = mn.SingleTask(4, tasks, hidden_units=(5, 3), tower_units=(2,))
    copy_params(model, columns)
    X, Y = data(9, 4, tasks, 1)
    np.testing.assert_allclose(model.forward(X), columns.forward(X), rtol=1e-12)
    (loss, grads), (loss_c, grads_c) = model.loss_and_grads(X, Y), columns.loss_and_grads(X, Y)
    assert loss == pytest.approx(loss_c, rel=1e-12)
    for name in grads_c:
        np.testing.assert_allclose(grads[name], grads_c[name], rtol=1e-10, atol=1e-14)


def test_cross_stitch_mixes_columns_otherwise():
    tasks = ("regression", "regression")
    model = jitter(stitch(4, tasks, (5,), (2,), seed=0), 0)
    columns = mn.SingleTask(4, tasks, hidden_units=(5,), tower_units=(2,))
    copy_params(model, columns)
    X, _ = data(9, 4, tasks, 1)
    assert not np.allclose(model.forward(X), columns.forward(X))


def test_tucker_model_with_factors_of_a_given_W_computes_the_explicit_forward():
    tasks = ("regression", "binary")
    X, _ = data(8, 4, tasks, 0)
    rng = np.random.default_rng(1)
    # 1) low-rank factors: build W from them by loops, and use it in a plain per-task network
    model = jitter(tucker(4, tasks, (5, 3), (2,), ranks=(2, 2, 1), seed=0), 0)
    explicit = mn.SingleTask(4, tasks, hidden_units=(5, 3), tower_units=(2,))
    for name, p in explicit.params.items():
        if name.startswith("hidden.") and name.endswith(".W"):
            p[...] = naive_tucker(*(model.params[name[:-1] + n] for n in tk.FACTORS))
        else:
            p[...] = model.params[name]
    np.testing.assert_allclose(model.forward(X), explicit.forward(X), rtol=1e-10, atol=1e-12)
    # 2) a given W (any per-task weights): its full-rank HOSVD factors reproduce the explicit network
    explicit = jitter(mn.SingleTask(4, tasks, hidden_units=(5,), tower_units=(2,), seed=2), 2)
    explicit.params["hidden.0.W"][...] = rng.standard_normal((2, 4, 5))
    model = tucker(4, tasks, (5,), (2,), ranks=(4, 5, 2))
    factors = dict(zip(tk.FACTORS, tk.tucker_decompose(explicit.params["hidden.0.W"], (4, 5, 2))))
    for name, p in model.params.items():  # the factors of hidden.0.W; every other array as it is
        p[...] = factors.get(name.removeprefix("hidden.0."), explicit.params.get(name))
    np.testing.assert_allclose(model.forward(X), explicit.forward(X), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("ranks", [(1, 1, 1), (6, 6, 2), (30, 20, 3)], ids=["rank-1", "low", "full"])
def test_tucker_initialisation_has_the_glorot_scale(ranks):
    tasks = ("regression",) * 3
    model = tucker(30, tasks, (20,), (2,), ranks=ranks, seed=5)
    glorot = mn.SingleTask(30, tasks, hidden_units=(20,), tower_units=(2,), seed=5)  # the same draw
    W, W0 = model.weights(0), glorot.params["hidden.0.W"]
    np.testing.assert_allclose(np.sqrt(np.mean(W ** 2)), np.sqrt(np.mean(W0 ** 2)), rtol=1e-12)
    assert abs(W.std() / np.sqrt(2 / (30 + 20)) - 1) < 0.05
    if ranks == (30, 20, 3):  # at full rank W starts as the Glorot draw itself
        np.testing.assert_allclose(W, W0, atol=1e-13)
    for n in ("U1", "U2", "U3"):
        U = model.params[f"hidden.0.{n}"]
        np.testing.assert_allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-12)
    assert not np.any(model.params["hidden.0.b"])
    np.testing.assert_array_equal(model.params["towers.0.W"], glorot.params["towers.0.W"])


def test_cross_stitch_alpha_initialisation():
    three = stitch(4, ("regression",) * 3, (5, 3), seed=0)
    for l in range(2):
        np.testing.assert_allclose(three.params[f"stitch.{l}.alpha"],
                                   [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]], rtol=1e-12)
    custom = stitch(4, ("regression",) * 2, alpha_self=0.6, dtype=np.float32)
    assert custom.params["stitch.0.alpha"].dtype == np.float32
    np.testing.assert_allclose(custom.params["stitch.0.alpha"], [[0.6, 0.4], [0.4, 0.6]], rtol=1e-7)
    np.testing.assert_array_equal(stitch(4, ("binary",), alpha_self=0.3).params["stitch.0.alpha"], [[1.0]])
    # the columns and towers are SingleTask's, the same draw for the same seed
    single = mn.SingleTask(4, ("regression",) * 3, hidden_units=(5, 3), tower_units=(2,), seed=0)
    for name, p in single.params.items():
        np.testing.assert_array_equal(three.params[name], p)


# ------------------------------------------------------------------------------------------------ K = 1
def test_one_task():
    X, Y = data(6, 4, ("regression",), 0)
    # L2: no pairs, no penalty
    model = jitter(l2(4, ("regression",), (5,), l2_weight=10.0), 0)
    free = mn.SingleTask(4, ("regression",), hidden_units=(5,), tower_units=(2,))
    copy_params(model, free)
    assert model.losses(X, Y)[0] == free.losses(X, Y)[0]
    # Cross-stitch: a plain MLP whose hidden layer is scaled by the 1 x 1 alpha
    model = jitter(stitch(4, ("regression",), (5,)), 0)
    a = float(model.params["stitch.0.alpha"][0, 0])
    copy_params(model, free)
    free.params["towers.0.W"] *= a
    np.testing.assert_allclose(model.forward(X), free.forward(X), rtol=1e-12)
    # Tucker: r3 = 1, so W = U1 S U2^T u3 is a rank-limited matrix
    model = jitter(tucker(4, ("regression",), (5,), ranks=(2, 3, 1)), 0)
    assert model.params["hidden.0.U3"].shape == (1, 1)
    assert np.linalg.matrix_rank(model.weights(0)[0]) == 2
    X, Y = data(5, 4, ("binary",), 1)
    for make in MAKERS.values():
        model = jitter(make(4, ("binary",), (3,), seed=1), 1)
        assert model.relu_margin(X) > KINK_MARGIN
        report = mn.check_gradients(model, X, Y)
        assert report.passed(TOL), f"{model!r}\n{report}"


# ------------------------------------------------------------------------------------------------ the contract
CONTRACT = {name: functools.partial(make, 6, ("regression", "binary"), (8, 4), (4,)) for name, make in MAKERS.items()}


@pytest.mark.parametrize("name", list(CONTRACT))
def test_the_contract_of_every_model(name):
    # the core models' contract tests, run on these models: loss_and_grads pure and deterministic, grads with the
    # keys, order, shapes and dtype of params in float32 and float64, and the two dtypes agreeing
    core_tests.test_loss_and_grads_is_pure_and_deterministic(CONTRACT[name])
    for dtype in (np.float32, np.float64):
        core_tests.test_grads_mirror_params_in_both_dtypes(CONTRACT[name], dtype)
    core_tests.test_float32_and_float64_agree(CONTRACT[name])
    core_tests.test_skipping_the_input_gradient_leaves_the_parameter_gradients_alone(CONTRACT[name])
    model = jitter(CONTRACT[name](seed=0), 0)
    X = data(10, 6, model.tasks, 0)[0]
    np.testing.assert_array_equal(model.forward(X), model.forward(X))


@pytest.mark.parametrize("name", list(CONTRACT))
def test_stack_models(name):
    singles = [jitter(CONTRACT[name](seed=s), s) for s in (3, 7)]
    stacked = mn.stack_models(singles)
    assert stacked.replica_shape == (2,) and stacked.seed == (3, 7) and type(stacked) is type(singles[0])
    X, Y = data(5, 6, singles[0].tasks, 0)
    loss, grads = stacked.loss_and_grads(X, Y)
    for r, single in enumerate(singles):
        np.testing.assert_allclose(stacked.forward(X)[r], single.forward(X), rtol=1e-12)
        loss_r, grads_r = single.loss_and_grads(X, Y)
        assert loss[r] == pytest.approx(loss_r, rel=1e-12)
        for k in grads_r:
            np.testing.assert_allclose(grads[k][r], grads_r[k], rtol=1e-10, atol=1e-14)
    for a, b in zip(mn.unstack_models(stacked), singles):
        np.testing.assert_array_equal(a.forward(X), b.forward(X))


def test_documented_parameter_shapes_and_config():
    tasks = ("regression", "binary", "binary")
    shapes = {k: v.shape for k, v in tucker(10, tasks, (6, 4), (3,), ranks=(3, 2, 2)).params.items()}
    assert shapes == {"hidden.0.S": (3, 2, 2), "hidden.0.U1": (10, 3), "hidden.0.U2": (6, 2), "hidden.0.U3": (3, 2),
                      "hidden.0.b": (3, 6),
                      "hidden.1.S": (3, 2, 2), "hidden.1.U1": (6, 3), "hidden.1.U2": (4, 2), "hidden.1.U3": (3, 2),
                      "hidden.1.b": (3, 4),
                      "towers.0.W": (3, 4, 3), "towers.0.b": (3, 3), "towers.1.W": (3, 3, 1), "towers.1.b": (3, 1)}
    model = stitch(10, tasks, (6, 4), (3,))
    assert model.params["stitch.0.alpha"].shape == model.params["stitch.1.alpha"].shape == (3, 3)
    assert set(model.params) - {"stitch.0.alpha", "stitch.1.alpha"} == set(
        mn.SingleTask(10, tasks, hidden_units=(6, 4), tower_units=(3,)).params)
    model = l2(10, tasks, (6, 4), (3,), l2_weight=0.25)
    assert model.config()["l2_weight"] == 0.25 and model.tied == ["hidden.0.W", "hidden.0.b", "hidden.1.W",
                                                                  "hidden.1.b"]
    assert "ranks=(3, 2, 2)" in repr(tucker(10, tasks, (6, 4), (3,), ranks=[3, 2, 2]))


# ------------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("make, match", [
    (lambda: tucker(4, ("regression", "binary"), (5,), ranks=(5, 2, 1)), r"ranks: r1 = 5 exceeds the input width "
                                                                          r"d_in = 4 of hidden layer 0"),
    (lambda: tucker(6, ("regression", "binary"), (3, 5), ranks=(4, 2, 1)), r"r1 = 4 exceeds .* d_in = 3 of hidden "
                                                                            r"layer 1"),
    (lambda: tucker(6, ("regression", "binary"), (5, 3), ranks=(2, 4, 1)), r"r2 = 4 exceeds the output width "
                                                                            r"d_out = 3 of hidden layer 1"),
    (lambda: tucker(6, ("regression", "binary"), (5,), ranks=(2, 2, 3)), r"r3 = 3 exceeds the number of tasks K = 2"),
    (lambda: tucker(6, ("regression",), (5,), ranks=(2, 2)), r"ranks must be three positive integers"),
    (lambda: tucker(6, ("regression",), (5,), ranks=(2, 0, 1)), r"ranks must be three positive integers"),
    (lambda: tucker(6, ("regression",), (5,), ranks=(2, 2.0, 1)), r"ranks must be three positive integers"),
    (lambda: tucker(6, ("regression",), (5,), ranks=(True, 2, 1)), r"ranks must be three positive integers"),
    (lambda: tucker(6, ("regression",), (5,), ranks=3), r"ranks must be three positive integers"),
    (lambda: tucker(6, ("regression",), (), ranks=(1, 1, 1)), r"hidden_units must name at least one hidden layer"),
    (lambda: l2(4, ("regression", "binary"), l2_weight=-0.1), r"l2_weight must be a finite number >= 0"),
    (lambda: l2(4, ("regression", "binary"), l2_weight=float("nan")), r"l2_weight must be a finite number >= 0"),
    (lambda: l2(4, ("regression", "binary"), l2_weight=float("inf")), r"l2_weight must be a finite number >= 0"),
    (lambda: l2(4, ("regression", "binary"), l2_weight="0.1"), r"l2_weight must be a finite number >= 0"),
    (lambda: l2(4, ("regression", "binary"), tie_towers=1), r"tie_towers must be True or False"),
    (lambda: stitch(4, ("regression", "binary"), alpha_self=1.5), r"alpha_self must be in \[0, 1\]"),
    (lambda: stitch(4, ("regression", "binary"), alpha_self=-0.5), r"alpha_self must be a finite number >= 0"),
    (lambda: stitch(4, ("regression", "binary"), hidden_units=4), r"hidden_units must be a sequence"),
    (lambda: stitch(4, ("regression", "poisson")), r"tasks: unknown task type 'poisson'"),
    (lambda: tk.tucker_decompose(np.ones((2, 3)), (1, 1, 1)), r"W must be stacked task weights"),
    (lambda: tk.tucker_decompose(np.ones((2, 3, 4)), (4, 1, 1)), r"r1 = 4 exceeds the input width d_in = 3"),
    (lambda: tucker(4, ("regression",), (5,), ranks=(1, 1, 1)).weights(1), r"layer must be a hidden layer index"),
])
def test_bad_arguments_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_tucker_default_ranks_are_the_largest_every_layer_allows():
    one_layer = mn.TensorFactorization(4, ("regression", "binary"), hidden_units=(5,), seed=3)
    assert one_layer.ranks == (4, 5, 2) and one_layer.config()["ranks"] == (4, 5, 2)  # full ranks
    full = mn.TensorFactorization(4, ("regression", "binary"), hidden_units=(5,), seed=3, ranks=(4, 5, 2))
    for name, p in full.params.items():
        np.testing.assert_array_equal(one_layer.params[name], p)
    two_layers = mn.TensorFactorization(6, ("regression",) * 3, hidden_units=(5, 3))
    assert two_layers.ranks == (5, 3, 3)  # r1 <= min(6, 5), r2 <= min(5, 3)
