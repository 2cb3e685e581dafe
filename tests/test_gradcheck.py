"""The gradient checker itself: it must flag wrong backward passes, not only pass right ones."""
import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import ops
from modelcheck import data, jitter


def make_model():
    return jitter(mn.MMoE(4, ("regression", "binary"), n_experts=3, expert_units=(5,), tower_units=(3,), seed=0), 0)


def test_correct_model_passes_and_report_names_every_array():
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y)
    assert report.passed(1e-6), str(report)
    assert set(report.errors) == set(model.params) | {"X"}
    assert report.relu_margin == model.relu_margin(X) > 0
    assert "gates.W" in str(report) and report.worst in report.errors


mixture_backward, bce_backward = ops.mixture_backward, ops.bce_with_logits_backward  # the correct ones


def experts_get_only_the_first_tasks_gradient(dm, cache):
    """Forgets that an expert feeds every task: df = g_1^T dm_1 instead of sum_k g_k^T dm_k."""
    g_b, f_b, _, _ = cache
    dgates, _ = mixture_backward(dm, cache)
    dm_b = np.swapaxes(dm, -3, -2)[..., :1, :]                                  # (..., B, 1, h)
    return dgates, np.swapaxes(np.swapaxes(g_b[..., :1, :], -1, -2) @ dm_b, -3, -2)


def softmax_jvp_without_the_coupling_term(dp, p):
    """Treats softmax as elementwise: dz = p * dp, dropping - p <dp, p>."""
    return p * dp


def relu_passes_every_gradient(da, cache):
    return da


def bce_forgets_the_batch_mean(dL, cache):
    return cache[0].shape[-2] * bce_backward(dL, cache)


# Each bug is a plausible mistake in one backward pass; the checker must see it in an array it affects.
BUGS = {
    "mixture": ("mixture_backward", experts_get_only_the_first_tasks_gradient, "experts.0.W"),
    "softmax": ("softmax_backward", softmax_jvp_without_the_coupling_term, "gates.W"),
    "relu": ("relu_backward", relu_passes_every_gradient, "experts.0.W"),
    "bce": ("bce_with_logits_backward", bce_forgets_the_batch_mean, "towers.1.b"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_checker_catches_a_wrong_backward(bug, monkeypatch):
    name, wrong, affected = BUGS[bug]
    monkeypatch.setattr(ops, name, wrong)
    if name == "bce_with_logits_backward":  # the loss table holds the function itself
        monkeypatch.setitem(ops._TASK_LOSSES, "binary", (ops.bce_with_logits_forward, wrong))
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y)
    assert not report.passed(1e-6)
    assert report.errors[affected] > 1e-3, str(report)


def test_checker_catches_a_wrong_input_gradient(monkeypatch):
    original = mn.MMoE._backward

    def forgets_the_gate_path(self, dout, cache, input_grad):
        """A classic bug: X feeds the experts and the gates, but only the experts' part of dX is returned."""
        grads, _ = original(self, dout, cache, input_grad)
        expert_cache, _, mixture_cache, tower_cache = cache
        dm, _ = self._towers_backward(dout, tower_cache)
        _, df = ops.mixture_backward(dm, mixture_cache)
        dx_experts, _ = ops.mlp_backward(df, expert_cache)
        return grads, dx_experts[..., 0, :, :]

    monkeypatch.setattr(mn.MMoE, "_backward", forgets_the_gate_path)
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y)
    assert report.errors["X"] > 1e-3
    assert max(v for k, v in report.errors.items() if k != "X") < 1e-6


def test_check_gradients_leaves_the_model_and_inputs_alone():
    model = make_model().copy(np.float32)
    before = {k: v.copy() for k, v in model.params.items()}
    X, Y = data(5, 4, model.tasks, 1)
    X0 = X.copy()
    report = mn.check_gradients(model, X, Y)  # checks a float64 copy
    assert report.passed(1e-6)
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])
        assert model.params[k].dtype == np.float32
    np.testing.assert_array_equal(X, X0)


def test_max_entries_checks_a_subset():
    model = make_model()
    X, Y = data(5, 4, model.tasks, 1)
    report = mn.check_gradients(model, X, Y, max_entries=3)
    assert report.passed(1e-6)
    loss = float(model.copy(np.float64).losses(X, Y)[0])
    for name, p in model.params.items():  # the noise estimate counts the entries actually checked
        n_checked = min(p.size, 3)
        assert report.noise[name] == pytest.approx(mn.gradcheck.rounding_noise(loss, n_checked, report.step)), name
    assert model.params["experts.0.W"].size > 3


def test_numerical_gradient_of_a_known_function():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = mn.gradcheck.numerical_gradient(lambda: float(np.sum(a ** 3)), a)
    np.testing.assert_allclose(g, 3 * a ** 2, rtol=1e-9)
    np.testing.assert_array_equal(a, [[1.0, -2.0], [0.5, 3.0]])  # restored exactly


def test_gradient_error_is_norm_wise_relative():
    err, abs_err = mn.gradcheck.gradient_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3]))
    assert err == pytest.approx(1e-3) and abs_err == pytest.approx(1e-3)
    assert mn.gradcheck.gradient_error(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_rounding_noise_scales_with_loss_entries_and_step():
    eps = np.finfo(float).eps
    assert mn.gradcheck.rounding_noise(0.5, 4, 1e-5) == pytest.approx(eps * 1.0 * 2 / 1e-5)
    assert mn.gradcheck.rounding_noise(30.0, 9, 1e-4) == pytest.approx(eps * 30 * 3 / 1e-4)


def report_for(analytic, numeric, f_value=1.0):
    report = mn.GradientReport()
    report._add("w", np.asarray(analytic, float), np.asarray(numeric, float), f_value)
    return report


def test_a_gradient_below_the_resolution_passes_on_its_absolute_error():
    noise = mn.gradcheck.rounding_noise(1.0, 2, 1e-5)                 # ~3e-11
    tiny = np.array([2e-9, -1e-9])                                    # far too small to resolve 1e-6 relative
    report = report_for(tiny, tiny + noise)                           # off by the rounding noise: 1e-2 relative
    assert report.errors["w"] > 1e-6 and not report.resolved("w")
    assert report.passed(1e-6)


def test_a_resolvable_gradient_must_meet_the_relative_tolerance():
    g = np.array([0.3, -0.2])
    assert report_for(g, g * (1 + 1e-7)).passed(1e-6)
    report = report_for(g, g * (1 + 1e-5))
    assert report.resolved("w") and not report.passed(1e-6) and "FAILS" in str(report)
    # a wrong tiny gradient is still caught when the error is far above the noise
    assert not report_for(np.array([1e-6, 0.0]), np.array([2e-6, 0.0])).passed(1e-6)


def test_check_op_rejects_unknown_wrt_names():
    with pytest.raises(ValueError, match=r"wrt names \['y'\], which are not among the inputs \['z'\]"):
        mn.check_op(ops.relu_forward, ops.relu_backward, dict(z=np.ones((2, 2))), wrt=["y"])


def test_check_op_reports_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        mn.check_op(ops.relu_forward, lambda d, c: d[:1], dict(z=np.ones((2, 2))))


@pytest.mark.parametrize("kwargs, match", [(dict(step=0), "step"), (dict(step=-1e-5), "step"),
                                           (dict(max_entries=0), "max_entries")])
def test_bad_checker_options(kwargs, match):
    model = make_model()
    X, Y = data(3, 4, model.tasks, 0)
    with pytest.raises(ValueError, match=match):
        mn.check_gradients(model, X, Y, **kwargs)


def test_check_gradients_runs_the_models_input_checks_first():
    model = make_model()
    X, Y = data(3, 4, model.tasks, 0)
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        mn.check_gradients(model, X + 1j, Y)  # a cast to float64 would silently drop the imaginary part
    with pytest.raises(ValueError, match="binary task columns"):
        mn.check_gradients(model, X, Y + 0.5)


def test_a_failure_at_a_relu_kink_is_flagged_in_the_report():
    # Zero biases at initialisation: a sample with every bottom unit off gives a tower pre-activation of exactly 0,
    # where the central difference straddles the kink (it measures the average of the two one-sided slopes).
    model = mn.SharedBottom(4, ("regression",), bottom_units=(3,), tower_units=(2,), seed=8)
    X = np.random.default_rng(0).standard_normal((20, 4))
    report = mn.check_gradients(model, X, X[:, :1])
    assert report.relu_margin == 0.0 and report.near_kink and not report.passed()
    assert "within the step of its kink" in str(report)
    for name, p in model.params.items():
        if name.endswith(".b"):  # nonzero biases move the pre-activations off 0
            p += 0.07
    moved = mn.check_gradients(model, X, X[:, :1])
    assert moved.passed() and not moved.near_kink and "kink" not in str(moved)
