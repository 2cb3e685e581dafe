"""Optimizers: the parameter dict checked at construction, all-or-nothing steps that refuse non-finite gradients,
Adam's second moment beyond float32's square range, and the per-array ``_update`` hook."""
import math

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np.models.flat import FlatArrays
from mmoe_np.testing import jitter

OPTIMIZERS = {"sgd": lambda params: mn.SGD(params, lr=0.1, momentum=0.9), "adam": lambda params: mn.Adam(params),
              "sgd-decay": lambda params: mn.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.05)}
B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def two_arrays(dtype=np.float64):
    return {"a.W": np.ones((2, 3), dtype=dtype), "b.b": np.zeros(3, dtype=dtype)}


def state(opt):
    """Copies of everything a step may change: the parameters and the optimizer's moments."""
    moments = [getattr(opt, name) for name in ("m", "v", "velocity") if hasattr(opt, name)]
    return opt.t, [{k: a.copy() for k, a in d.items()} for d in (opt.params, *moments)]


def assert_same_state(before, after):
    assert before[0] == after[0]
    for old, new in zip(before[1], after[1]):
        assert all(np.array_equal(old[k], new[k]) for k in old)


# ------------------------------------------------------------------------------------------------ construction
@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("bad, match", [
    ([1.0, 2.0], r"params\['b.b'\] must be a numpy array \(updated in place\); got list"),
    (0.5, r"params\['b.b'\] must be a numpy array \(updated in place\); got float"),
    (np.float64(0.5), r"params\['b.b'\] must be a numpy array \(updated in place\); got float64"),
    (np.zeros(3, dtype=np.int64), r"params\['b.b'\] must be a floating-point array; got dtype int64"),
    (np.zeros(3, dtype=bool), r"params\['b.b'\] must be a floating-point array; got dtype bool"),
    (np.zeros(3, dtype=complex), r"params\['b.b'\] must be a floating-point array; got dtype complex128"),
    (np.broadcast_to(np.zeros(1), (3,)), r"params\['b.b'\] is read-only"),
])
def test_params_are_checked_at_construction(make, bad, match):
    with pytest.raises(ValueError, match=match):
        make({"a.W": np.ones((2, 3)), "b.b": bad})


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
def test_params_must_be_a_non_empty_dict_with_string_keys(make):
    for bad in ({}, None, [np.zeros(3)], np.zeros(3)):
        with pytest.raises(ValueError, match="params must be a non-empty dict of arrays"):
            make(bad)
    with pytest.raises(ValueError, match="params keys must be strings; got 0"):
        make({0: np.zeros(3)})


def test_an_integer_array_can_no_longer_fail_halfway_through_a_step():
    # Before the construction check, "a.W" was updated and then "b.b" (int) raised a casting error inside step.
    params = {"a.W": np.ones(2), "b.b": np.zeros(2, dtype=np.int32)}
    with pytest.raises(ValueError, match=r"params\['b.b'\] must be a floating-point array"):
        mn.Adam(params)
    assert np.array_equal(params["a.W"], np.ones(2))


# ------------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_gradients_are_refused_before_any_change(make, value):
    opt = make(two_arrays())
    opt.step({"a.W": np.full((2, 3), 0.5), "b.b": np.ones(3)})  # some state to keep
    before = state(opt)
    bad = np.ones(3)
    bad[1] = value
    with pytest.raises(ValueError, match=r"grads\['b.b'\] contains NaN or inf .* no parameter was changed"):
        opt.step({"a.W": np.full((2, 3), 0.5), "b.b": bad})  # the last key: "a.W" would have been updated first
    assert_same_state(before, state(opt))


def test_gradients_beyond_the_parameters_dtype_are_refused():
    opt = mn.Adam(two_arrays(np.float32))
    before = state(opt)
    with pytest.raises(ValueError, match=r"grads\['b.b'\] has values beyond the range of float32"):
        opt.step({"a.W": np.ones((2, 3)), "b.b": np.array([0.0, 1e300, 0.0])})  # finite in float64, inf in float32
    assert_same_state(before, state(opt))


def test_integer_and_boolean_gradients_are_cast_to_the_parameters_dtype():
    params = two_arrays(np.float32)
    mn.SGD(params, lr=0.5).step({"a.W": np.ones((2, 3), dtype=np.int64), "b.b": np.array([True, False, True])})
    assert params["a.W"].dtype == np.float32 and np.array_equal(params["a.W"], np.full((2, 3), 0.5))
    assert np.array_equal(params["b.b"], np.array([-0.5, 0, -0.5], dtype=np.float32))


# ------------------------------------------------------------------------------------------------ Adam's range
def textbook_adam_step(p, m, v, g, t):
    """The update as written before v moved to float64, operation for operation, in the arrays' own dtype."""
    m *= B1
    m += (1 - B1) * g
    v *= B2
    v += (1 - B2) * (g * g)
    root = math.sqrt(1 - B2 ** t)  # a Python float: a float32 array's arithmetic stays float32
    denominator = np.sqrt(v)
    denominator += EPS * root
    update = np.divide(m, denominator, out=denominator)
    update *= LR * root / (1 - B1 ** t)
    p -= update


@pytest.mark.parametrize("size", [5e20, 0.99 * float(np.finfo(np.float32).max)])
def test_adam_steps_by_about_lr_at_huge_float32_gradients(size):
    # Adam's step does not depend on the gradient's scale: at any finite size the first step is lr * sign(g).
    # Before, (1 - b2) * g * g overflowed float32 beyond |g| = 1.8e19, v became inf and the step m / inf = 0.
    params = {"w": np.zeros(4, dtype=np.float32)}
    opt = mn.Adam(params, lr=LR)
    g = np.array([size, -size, size / 2, 1.0], dtype=np.float32)
    with np.errstate(all="raise"):  # no overflow anywhere
        opt.step({"w": g})
    np.testing.assert_allclose(params["w"], -LR * np.sign(g), rtol=1e-6)
    assert params["w"].dtype == np.float32 and opt.m["w"].dtype == np.float32 and opt.v["w"].dtype == np.float64
    # The old float32 arithmetic, for contrast: the three huge entries do not move.
    p, m, v = np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32)
    with np.errstate(over="ignore"):
        textbook_adam_step(p, m, v, g, 1)
    assert np.array_equal(p[:3], np.zeros(3)) and p[3] != 0


def test_adam_at_huge_float32_gradients_follows_the_same_run_at_unit_scale():
    # Scale invariance over many steps: gradients r_t * 1e38 in float32 give the trajectory of r_t in float64
    # (up to eps, which is 1e-8 of sqrt(v) at unit scale and nothing at 1e38).
    rng = np.random.default_rng(0)
    huge = {"w": np.zeros((3, 4), dtype=np.float32)}
    unit = {"w": np.zeros((3, 4))}
    opt_huge, opt_unit = mn.Adam(huge, lr=1e-2), mn.Adam(unit, lr=1e-2)
    for _ in range(30):
        r = rng.uniform(-3, 3, (3, 4)).astype(np.float32)
        with np.errstate(all="raise"):
            opt_huge.step({"w": r * np.float32(1e38)})
        opt_unit.step({"w": r.astype(np.float64)})
    np.testing.assert_allclose(huge["w"], unit["w"], rtol=1e-5, atol=1e-7)


def test_adam_float64_steps_are_unchanged_to_the_last_bit():
    # For float64 parameters v was float64 already: the same operations in the same order, so the same bits.
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((4, 5)), "b": np.zeros(5)}
    opt = mn.Adam(params, lr=LR)
    ref = {k: (p.copy(), np.zeros_like(p), np.zeros_like(p)) for k, p in params.items()}
    for t in range(1, 21):
        grads = {k: rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-4, 3, p.shape) for k, p in params.items()}
        opt.step(grads)
        for k, (p, m, v) in ref.items():
            textbook_adam_step(p, m, v, grads[k], t)
            assert np.array_equal(params[k], p) and np.array_equal(opt.m[k], m) and np.array_equal(opt.v[k], v)


def test_adam_float32_steps_are_the_textbook_float32_arithmetic_bit_for_bit():
    # Within float32's square range v stays float32 and a step is the textbook update in float32, operation for
    # operation (the float64 v of the overflow guard costs more than twice the time and is taken only when needed).
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal((50, 40)).astype(np.float32), "b": np.zeros(40, dtype=np.float32)}
    opt = mn.Adam(params, lr=LR)
    ref = {k: (p.copy(), np.zeros_like(p), np.zeros_like(p)) for k, p in params.items()}
    for t in range(1, 21):
        grads = {k: (rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-4, 3, p.shape)).astype(np.float32)
                 for k, p in params.items()}
        opt.step(grads)
        for k, (p, m, v) in ref.items():
            textbook_adam_step(p, m, v, grads[k], t)
            assert np.array_equal(params[k], p) and np.array_equal(opt.m[k], m) and np.array_equal(opt.v[k], v)
    assert all(v.dtype == np.float32 for v in opt.v.values())


@pytest.mark.parametrize("flat", [True, False], ids=["flat path", "per-array path"])
def test_adam_promotes_v_to_float64_at_the_first_overflowing_square_and_keeps_stepping(flat):
    # 1e20 squared overflows float32: v moves to float64 (the whole flat buffer, or that one array) before anything
    # changes, the step is about lr * sign(g) everywhere, and later steps go on in float64 from the same state.
    model = flat_model(np.float32)
    params = model.params if flat else {k: p.copy() for k, p in model.params.items()}
    opt = mn.Adam(params, lr=LR)
    small = {k: np.full(p.shape, 0.5, dtype=np.float32) for k, p in params.items()}
    opt.step(FlatArrays.of(small, model.params.layout) if flat else small)
    v_before = {k: v.copy() for k, v in opt.v.items()}
    p_before = {k: p.copy() for k, p in params.items()}
    huge = {k: np.full(p.shape, 0.5 if k != "gates.b" else 1e20, dtype=np.float32) for k, p in params.items()}
    with np.errstate(all="raise"):
        opt.step(FlatArrays.of(huge, model.params.layout) if flat else huge)
    promoted = set(opt.v) if flat else {"gates.b"}
    assert {k for k, v in opt.v.items() if v.dtype == np.float64} == promoted
    for k in params:
        v_expected = B2 * v_before[k].astype(opt.v[k].dtype) + (1 - B2) * np.square(huge[k], dtype=opt.v[k].dtype)
        np.testing.assert_allclose(opt.v[k], v_expected, rtol=1e-6)
    step = p_before["gates.b"] - params["gates.b"]
    assert np.all(step > 0.5 * LR) and np.all(step < 2 * LR)  # moved, by about lr (it would be 0 with v = inf)
    opt.step(FlatArrays.of(small, model.params.layout) if flat else small)
    assert all(np.isfinite(p).all() for p in params.values())


def test_adam_on_a_model_promotes_its_whole_flat_v_on_the_per_array_path_too():
    # a plain dict of grads takes the per-array path; an overflowing square there moves the whole flat v to float64,
    # so that v stays one buffer and the next flat step reads the state the per-array step left (not a stale 0)
    model = flat_model(np.float32)
    opt = mn.Adam(model.params, lr=LR)
    huge = {k: np.full(p.shape, 1e20 if k == "gates.b" else 0.5, dtype=np.float32) for k, p in model.params.items()}
    opt.step(huge)
    assert opt.v.intact() and opt.v.flat.dtype == np.float64
    before = {k: p.copy() for k, p in model.params.items()}
    small = {k: np.full(p.shape, 0.5, dtype=np.float32) for k, p in model.params.items()}
    opt.step(FlatArrays.of(small, model.params.layout))  # the flat path
    for k, p in model.params.items():
        assert np.all(np.abs(before[k] - p) < 2 * LR), k  # every step is at most about lr


def test_adam_weight_decay_is_decoupled_and_zero_changes_nothing():
    rng = np.random.default_rng(5)
    start = {"w": rng.standard_normal((4, 3))}
    plain, decayed, zero = ({"w": start["w"].copy()} for _ in range(3))
    opts = [mn.Adam(plain, lr=1e-2), mn.Adam(decayed, lr=1e-2, weight_decay=0.1),
            mn.Adam(zero, lr=1e-2, weight_decay=0.0)]
    for _ in range(5):
        g = {"w": rng.standard_normal((4, 3))}
        before = decayed["w"].copy(), plain["w"].copy()
        for opt in opts:
            opt.step(g)
        # the same Adam step (m and v do not depend on p), plus lr * weight_decay * p before the step
        np.testing.assert_allclose((before[0] - decayed["w"]) - (before[1] - plain["w"]),
                                   1e-2 * 0.1 * before[0], rtol=1e-12, atol=1e-15)
    assert np.array_equal(zero["w"], plain["w"])
    with pytest.raises(ValueError, match="weight_decay"):
        mn.Adam({"w": np.zeros(2)}, weight_decay=-0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_weight_decay_agrees_with_torch_adamw(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    model = flat_model(dtype)
    opt = mn.Adam(model.params, lr=3e-2, weight_decay=0.05)
    tparams = {k: torch.tensor(p.copy(), requires_grad=True) for k, p in model.params.items()}
    topt = torch.optim.AdamW(list(tparams.values()), lr=3e-2, weight_decay=0.05)
    for _ in range(10):
        grads = {k: rng.standard_normal(p.shape).astype(dtype) for k, p in model.params.items()}
        opt.step(FlatArrays.of(grads, model.params.layout))
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
    for k, t in tparams.items():
        np.testing.assert_allclose(model.params[k], t.detach().numpy(), rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_weight_decay_is_the_l2_gradient(momentum):
    rng = np.random.default_rng(7)
    model = flat_model(np.float64)
    start = {k: p.copy() for k, p in model.params.items()}
    opt = mn.SGD(model.params, lr=0.05, momentum=momentum, weight_decay=0.1)
    grads = [{k: rng.standard_normal(p.shape) for k, p in model.params.items()} for _ in range(6)]
    # the reference: the same SGD on the gradient of loss + (0.1 / 2) ||p||^2, by hand
    ref, velocity = {k: p.copy() for k, p in start.items()}, {k: np.zeros_like(p) for k, p in start.items()}
    for g in grads:
        opt.step(FlatArrays.of(g, model.params.layout))
        for k in ref:
            velocity[k] = momentum * velocity[k] + g[k] + 0.1 * ref[k]
            ref[k] = ref[k] - 0.05 * velocity[k]
    for k in ref:
        np.testing.assert_allclose(model.params[k], ref[k], rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="weight_decay"):
        mn.SGD({"w": np.zeros(2)}, weight_decay=-1.0)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_weight_decay_agrees_with_torch(momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    model = flat_model(np.float64)
    start = {k: p.copy() for k, p in model.params.items()}
    opt = mn.SGD(model.params, lr=0.05, momentum=momentum, weight_decay=0.1)
    grads = [{k: rng.standard_normal(p.shape) for k, p in model.params.items()} for _ in range(6)]
    for g in grads:
        opt.step(FlatArrays.of(g, model.params.layout))
    tparams = {k: torch.tensor(p.copy(), requires_grad=True) for k, p in start.items()}
    topt = torch.optim.SGD(list(tparams.values()), lr=0.05, momentum=momentum, weight_decay=0.1)
    for g in grads:
        for k, t in tparams.items():
            t.grad = torch.tensor(g[k])
        topt.step()
    for k, t in tparams.items():
        np.testing.assert_allclose(model.params[k], t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stacked_replicas_take_exactly_the_steps_of_separate_runs(dtype):
    rng = np.random.default_rng(4)
    singles = [{"w": rng.standard_normal((3, 2)).astype(dtype)} for _ in range(3)]
    stacked = {"w": np.stack([s["w"] for s in singles])}
    opt_stacked, opts = mn.Adam(stacked, lr=1e-2), [mn.Adam(s, lr=1e-2) for s in singles]
    for _ in range(5):
        g = rng.standard_normal((3, 3, 2)).astype(dtype)
        opt_stacked.step({"w": g})
        for r, opt in enumerate(opts):
            opt.step({"w": g[r]})
    assert all(np.array_equal(stacked["w"][r], singles[r]["w"]) for r in range(3))


# ------------------------------------------------------------------------------------------------ the hook
def test_update_hook_sees_each_checked_gradient_once_and_its_result_is_subtracted():
    class Halved(mn.Adam):
        seen = []

        def _update(self, name, g):
            self.seen.append((name, g.dtype, self.t))
            return super()._update(name, g) / 2

    params = {"a.W": np.zeros((2, 3), dtype=np.float32), "b.b": np.zeros(3, dtype=np.float32)}
    reference = {k: p.copy() for k, p in params.items()}
    grads = {"a.W": np.full((2, 3), 2, dtype=np.int64), "b.b": np.ones(3)}
    Halved(params).step(grads)
    mn.Adam(reference).step(grads)
    assert Halved.seen == [("a.W", np.float32, 1), ("b.b", np.float32, 1)]
    assert all(np.array_equal(params[k], reference[k] / 2) for k in params)  # from 0, halving is exact


def test_adam_at_5e20_agrees_with_torch_float32_adam():
    torch = pytest.importorskip("torch")
    g = np.array([5e20, -5e20, 1.0], dtype=np.float32)
    params = {"w": np.zeros(3, dtype=np.float32)}
    mn.Adam(params, lr=LR).step({"w": g})
    w = torch.zeros(3, dtype=torch.float32, requires_grad=True)
    w.grad = torch.tensor(g)
    torch.optim.Adam([w], lr=LR).step()
    np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ the flat path
def flat_model(dtype=np.float64):
    return mn.MMoE(5, ("regression", "binary"), n_experts=3, expert_units=(4,), tower_units=(2,), dtype=dtype, seed=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS)
def test_the_flat_path_takes_the_per_array_steps_bit_for_bit(make, dtype):
    # a model's params and grads are views into one buffer each: the optimizer updates the whole buffer at once;
    # the same steps on a plain dict of copies (the per-array path) give the same numbers exactly
    model = jitter(flat_model(dtype), 0)
    plain = {k: p.copy() for k, p in model.params.items()}
    fast, slow = make(model.params), make(plain)
    assert fast._flat and not slow._flat
    rng = np.random.default_rng(0)
    for step in range(4):
        X = rng.standard_normal((6, 5)).astype(dtype)
        Y = np.column_stack([rng.standard_normal(6), rng.integers(0, 2, 6)]).astype(dtype)
        grads = model.forward_backward(X, Y, check=False).grads
        assert grads.layout is model.params.layout
        fast.step(grads)
        slow.step(dict(grads))  # a plain dict of the same arrays: the per-array path
        assert all(np.array_equal(model.params[k], plain[k]) for k in plain), step
    assert fast.t == slow.t == 4


def test_the_flat_path_refuses_a_non_finite_gradient_naming_its_array():
    model = flat_model()
    opt = mn.Adam(model.params)
    X, Y = np.ones((2, 5)), np.array([[0.5, 1.0], [0.0, 0.0]])
    grads = model.forward_backward(X, Y, check=False).grads
    grads["gates.b"][0, 1] = np.nan  # a view: the flat buffer holds the NaN
    before = state(opt)
    with pytest.raises(ValueError, match=r"grads\['gates.b'\] contains NaN or inf"):
        opt.step(grads)
    assert_same_state(before, state(opt))


def test_a_replaced_parameter_array_turns_the_flat_path_off_and_still_steps():
    model = flat_model()
    opt = mn.SGD(model.params, lr=0.5)
    X, Y = np.ones((2, 5)), np.array([[0.5, 1.0], [0.0, 0.0]])
    grads = model.forward_backward(X, Y, check=False).grads
    model.params["towers.1.b"] = model.params["towers.1.b"].copy()  # no longer a view of the flat buffer
    assert not model.params.intact()
    opt.step(grads)
    np.testing.assert_array_equal(model.params["towers.1.b"], -0.5 * grads["towers.1.b"])
