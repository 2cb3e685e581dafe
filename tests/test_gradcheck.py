"""The gradient checker itself: it must flag wrong backward passes and non-finite values, not only pass right ones.

The planted bugs in the package's own backward passes are in test_mutations.py; this file tests the checker's
parts, its rules (resolution, non-finite values, kinks), the fast mode's mechanics, its report and its argument
checks."""
import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import gradcheck, ops
from mmoe_np.testing import data, jitter


def make_model():
    return jitter(mn.MMoE(4, ("regression", "binary"), n_experts=3, expert_units=(5,), tower_units=(3,), seed=0), 0)


def normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("fast", [False, True])
def test_correct_model_passes_and_report_names_every_array(fast):
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y, fast=fast)
    assert report.passed(1e-6), str(report)
    assert set(report.errors) == set(model.params) | {"X"}
    assert report.relu_margin == model.relu_margin(X) > 0
    assert "gates.W" in str(report) and report.worst in report.errors
    assert report.mode == ("fast" if fast else "full") and f"gradient check ({report.mode}" in str(report)
    assert str(report).splitlines()[-1].startswith("PASS: max rel. error")


# ------------------------------------------------------------------------------------------------ the issue's three
def test_a_nan_input_to_check_op_is_named_not_dropped():
    # The issue's example: the backward is wrong (3 instead of 2), and the NaN used to hide it.
    with pytest.raises(ValueError, match=r"inputs\['z'\] contains a non-finite value \(nan at \[1\]\)"):
        mn.check_op(lambda z: (2 * z, None), lambda d, c: 3 * d, {"z": [1.0, np.nan]})
    # without the NaN the wrong factor fails
    report = mn.check_op(lambda z: (2 * z, None), lambda d, c: 3 * d, {"z": [1.0, 2.0]})
    assert not report.passed() and report.errors["z"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("fast", [False, True])
def test_a_nan_parameter_is_named_not_reported_as_error_zero(fast):
    model = make_model()
    model.params["towers.1.b"][0] = np.nan
    X, Y = data(6, 4, model.tasks, 0)
    with pytest.raises(ValueError, match=r"parameter 'towers.1.b' contains a non-finite value \(nan at \[0, 0\]\)"):
        mn.check_gradients(model, X, Y, fast=fast)


@pytest.mark.parametrize("step", [np.nan, np.inf, 0, 0.0, -1e-5, 1e-12, 1.0, "1e-5", None, True])
def test_bad_steps_are_refused(step):
    with pytest.raises(ValueError, match="step must be"):
        mn.check_op(lambda z: (2 * z, None), lambda d, c: 2 * d, {"z": [1.0, 2.0]}, step=step)
    model = make_model()
    with pytest.raises(ValueError, match="step must be"):
        mn.check_gradients(model, *data(3, 4, model.tasks, 0), step=step)


@pytest.mark.parametrize("inputs", [[1.0, 2.0], [("z", [1.0])], np.ones(2), "z", None, {}])
def test_inputs_must_be_a_dict_of_arrays(inputs):
    with pytest.raises(ValueError, match="inputs must be a non-empty dict"):
        mn.check_op(lambda z: (2 * z, None), lambda d, c: 2 * d, inputs)


# ------------------------------------------------------------------------------------------------ non-finite values
def test_a_nan_from_the_backward_fails_and_names_the_entry():
    report = mn.check_op(lambda z: (z ** 2, z), lambda d, z: np.where(z > 0, np.nan, 2 * z * d),
                         {"z": [[-1.0, 0.5], [-2.0, -3.0]]})
    assert not report.passed() and report.errors["z"] == np.inf
    assert report.nonfinite["z"] == "analytic gradient nan at z[0, 1]"
    assert "z: non-finite analytic gradient nan at z[0, 1]" in str(report)


def test_a_nan_in_the_numerical_gradient_fails_and_names_the_entry():
    # finite at the point, NaN one step to the right of z[1]: the central difference is NaN there
    def forward(z):
        return np.where(z > 1.0, np.nan, z), None

    for fast in (False, True):
        report = mn.check_op(forward, lambda d, c: d, {"z": [0.0, 1.0 - 1e-6]}, fast=fast)
        assert not report.passed() and report.errors["z"] == np.inf, fast
        assert report.nonfinite["z"].startswith("numerical gradient nan at z[1]"), fast


@pytest.mark.parametrize("fast", [False, True])
def test_a_nan_from_a_models_backward_fails_the_arrays_it_reaches(fast, monkeypatch):
    correct = ops.relu_backward
    monkeypatch.setattr(ops, "relu_backward", lambda da, cache: correct(da, cache) * np.nan)
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y, fast=fast)
    assert not report.passed() and report.errors["experts.0.W"] == np.inf
    assert report.nonfinite["experts.0.W"] == "analytic gradient nan at experts.0.W[0, 0, 0]"
    assert "towers.1.W" not in report.nonfinite and report.passed_array("towers.1.W")  # after the last ReLU


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered",
                            "ignore:divide by zero encountered")
def test_a_non_finite_loss_or_output_is_refused():
    model = mn.SharedBottom(3, ("regression",), bottom_units=(2,), tower_units=(), seed=0)
    for p in model.params.values():
        p += 1e160  # finite parameters, an overflowing loss
    X, Y = data(4, 3, model.tasks, 0)
    with pytest.raises(ValueError, match="the model's loss is inf"):
        mn.check_gradients(model, X, Y)
    with pytest.raises(ValueError, match="forward's output contains a non-finite value"):
        mn.check_op(lambda z: (np.log(z), z), lambda d, z: d / z, {"z": [1.0, 0.0]})
    with pytest.raises(ValueError, match="constant 'target' contains a non-finite value"):
        mn.check_op(ops.mse_forward, ops.mse_backward, {"pred": [[1.0]]}, target=np.array([[np.inf]]))


def test_the_resolution_rule_never_passes_a_non_finite_value():
    # Huge noise (a large loss) would excuse any tiny absolute error; a NaN or inf is never excused.
    for analytic, numeric in [([np.nan, 0.0], [0.0, 0.0]), ([1e-12, 0.0], [1e-12, np.nan]),
                              ([np.inf, 0.0], [np.inf, 0.0])]:
        report = report_for(analytic, numeric, f_value=1e12)
        assert not report.passed() and report.resolved("w") and "FAILS" in str(report)


def test_gradient_error_of_non_finite_values_is_infinite():
    assert gradcheck.gradient_error(np.array([1.0, np.nan]), np.array([1.0, 2.0])) == (np.inf, np.inf)
    assert gradcheck.gradient_error(np.array([1.0, 2.0]), np.array([np.inf, 2.0])) == (np.inf, np.inf)
    with pytest.raises(ValueError, match="the same shape"):
        gradcheck.gradient_error(np.zeros(2), np.zeros(3))


class LeastSquares:
    """A model written from scratch, without mmoe_np's base class: loss = mean((X w - y)^2), only the methods
    check_gradients documents (params, copy, losses, loss_and_grads, no relu_margin)."""

    def __init__(self, w, factor=2.0):
        self.params, self.factor = {"w": np.asarray(w, dtype=float)}, factor

    def copy(self, dtype):
        return LeastSquares(self.params["w"].astype(dtype), self.factor)

    def losses(self, X, Y):
        if np.shape(X)[1] != self.params["w"].size:
            raise ValueError("X must have one column per weight")
        r = X @ self.params["w"] - Y[:, 0]
        return np.mean(r * r), None

    def loss_and_grads(self, X, Y, input_grad=False):
        r = X @ self.params["w"] - Y[:, 0]
        dr = self.factor * r / len(r)
        return np.mean(r * r), {"w": X.T @ dr}, np.outer(dr, self.params["w"])


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_any_model_with_the_documented_methods_can_be_checked():
    X, Y = data(5, 3, ("regression",), 0)
    report = mn.check_gradients(LeastSquares([0.5, -1.0, 2.0]), X, Y)
    assert report.passed() and set(report.errors) == {"w", "X"} and report.relu_margin == np.inf
    assert "ReLU" not in str(report)
    wrong = mn.check_gradients(LeastSquares([0.5, -1.0, 2.0], factor=1.0), X, Y, fast=True)  # the missing 2
    assert not wrong.passed() and wrong.errors["w"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="X must have one column per weight"):  # the model's own checks run
        mn.check_gradients(LeastSquares([1.0]), X, Y)
    with pytest.raises(ValueError, match="the model's loss is inf"):
        mn.check_gradients(LeastSquares([1e200, 1e200, 1e200]), X, Y)


# ------------------------------------------------------------------------------------------------ the parts
def test_check_gradients_leaves_the_model_and_inputs_alone():
    model = make_model().copy(np.float32)
    before = {k: v.copy() for k, v in model.params.items()}
    X, Y = data(5, 4, model.tasks, 1)
    X0 = X.copy()
    for fast in (False, True):
        report = mn.check_gradients(model, X, Y, fast=fast)  # checks a float64 copy
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
        assert report.noise[name] == pytest.approx(gradcheck.rounding_noise(loss, n_checked, report.step)), name
        assert report.analytic[name].size == report.numeric[name].size == n_checked
        assert np.all(np.isfinite(report.numeric[name]))  # only checked entries are compared: no NaN placeholders
    assert model.params["experts.0.W"].size > 3
    # the compared entries are the model's own gradient at the named indices
    _, grads = model.copy(np.float64).loss_and_grads(X, Y)
    W = "experts.0.W"
    np.testing.assert_array_equal(report.analytic[W], grads[W].reshape(-1)[report.entries[W]])


def test_numerical_gradient_of_a_known_function():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = gradcheck.numerical_gradient(lambda: float(np.sum(a ** 3)), a)
    np.testing.assert_allclose(g, 3 * a ** 2, rtol=1e-9)
    np.testing.assert_array_equal(a, [[1.0, -2.0], [0.5, 3.0]])  # restored exactly
    some = gradcheck.numerical_gradient(lambda: float(np.sum(a ** 3)), a, indices=[3])
    assert np.isnan(some.reshape(-1)[:3]).all() and some[1, 1] == pytest.approx(27.0)


def test_numerical_gradient_and_directions_of_a_strided_view():
    # a parameter may be a view into a larger buffer (every other entry, transposed): perturbed where it lives
    buffer = np.arange(1.0, 13.0)
    a = buffer[::2].reshape(2, 3).T
    assert not a.flags.c_contiguous and np.shares_memory(a, buffer)
    g = gradcheck.numerical_gradient(lambda: float(np.sum(buffer ** 2)), a)
    np.testing.assert_allclose(g, 2 * a, rtol=1e-9)
    numeric, _ = gradcheck.directional_derivatives(lambda: float(np.sum(buffer ** 2)), a, np.ones((1, 3, 2)))
    np.testing.assert_allclose(numeric, [np.sum(2 * a)], rtol=1e-9)
    np.testing.assert_array_equal(buffer, np.arange(1.0, 13.0))


def test_numerical_gradient_restores_the_array_when_f_raises():
    a = np.array([1.0, 2.0])

    def f():
        if a[0] != 1.0:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError):
        gradcheck.numerical_gradient(f, a)
    np.testing.assert_array_equal(a, [1.0, 2.0])


def test_directional_derivatives_of_a_known_function():
    a = np.array([[1.0, -2.0], [0.5, 3.0]])
    u = normal(0, 3, 2, 2)
    numeric, steps = gradcheck.directional_derivatives(lambda: float(np.sum(a ** 3)), a, u)
    np.testing.assert_allclose(numeric, u.reshape(3, -1) @ (3 * a ** 2).reshape(-1), rtol=1e-8)
    np.testing.assert_allclose(steps, u.reshape(3, -1), rtol=1e-9)  # the realised steps are the directions
    np.testing.assert_array_equal(a, [[1.0, -2.0], [0.5, 3.0]])


def test_gradient_error_is_norm_wise_relative():
    err, abs_err = gradcheck.gradient_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3]))
    assert err == pytest.approx(1e-3) and abs_err == pytest.approx(1e-3)
    assert gradcheck.gradient_error(np.zeros(3), np.zeros(3)) == (0.0, 0.0)


def test_rounding_noise_scales_with_loss_entries_and_step():
    eps = np.finfo(float).eps
    assert gradcheck.rounding_noise(0.5, 4, 1e-5) == pytest.approx(eps * 1.0 * 2 / 1e-5)
    assert gradcheck.rounding_noise(30.0, 9, 1e-4) == pytest.approx(eps * 30 * 3 / 1e-4)


def report_for(analytic, numeric, f_value=1.0):
    report = mn.GradientReport()
    report.add("w", np.asarray(analytic, float), np.asarray(numeric, float), f_value)
    return report


def test_a_gradient_below_the_resolution_passes_on_its_absolute_error():
    noise = gradcheck.rounding_noise(1.0, 2, 1e-5)                    # ~3e-11
    tiny = np.array([2e-9, -1e-9])                                    # far too small to resolve 1e-6 relative
    report = report_for(tiny, tiny + noise)                           # off by the rounding noise: 1e-2 relative
    assert report.errors["w"] > 1e-6 and not report.resolved("w")
    assert report.passed(1e-6) and "below resolution" in str(report)


def test_a_resolvable_gradient_must_meet_the_relative_tolerance():
    g = np.array([0.3, -0.2])
    assert report_for(g, g * (1 + 1e-7)).passed(1e-6)
    report = report_for(g, g * (1 + 1e-5))
    assert report.resolved("w") and not report.passed(1e-6) and "FAILS" in str(report)
    # a wrong tiny gradient is still caught when the error is far above the noise
    assert not report_for(np.array([1e-6, 0.0]), np.array([2e-6, 0.0])).passed(1e-6)
    # a wrong gradient with the noise of a huge loss is unresolved; one a step above the noise floor is caught
    noise = gradcheck.rounding_noise(1.0, 2, 1e-5)
    assert not report_for(np.array([11 * noise, 0.0]), np.array([0.0, 0.0])).passed(1e-6)


def test_an_empty_report_does_not_pass():
    assert not mn.GradientReport().passed()


# ------------------------------------------------------------------------------------------------ fast mode
def test_fast_mode_checks_small_arrays_entry_by_entry_and_large_ones_along_directions():
    model = make_model()
    X, Y = data(6, 4, model.tasks, 0)
    report = mn.check_gradients(model, X, Y, fast=True, n_directions=5)
    for name, p in {**model.params, "X": X}.items():
        if p.size <= 5:  # gates.b (2, 3) is 6 entries: directions; towers.1.b (2, 1): entries
            assert report.entries[name] is not None and report.analytic[name].size == p.size, name
        else:
            assert report.entries[name] is None and report.analytic[name].size == 5, name
    assert report.noise["X"] == pytest.approx(gradcheck.rounding_noise(float(model.losses(X, Y)[0]), 5, 1e-5))
    again = mn.check_gradients(model, X, Y, fast=True, n_directions=5)
    assert again.errors == report.errors  # seeded: the same directions
    other = mn.check_gradients(model, X, Y, fast=True, n_directions=5, seed=1)
    assert other.errors != report.errors and other.passed()


def test_fast_mode_compares_the_gradient_along_unit_directions():
    # f(w) = <c, w>: every directional derivative is <c, u>; the analytic side is (v^T J) u with the same u
    c = normal(1, 20)
    report = mn.check_op(lambda w: (np.dot(c, w), None), lambda d, _: d * c, {"w": normal(2, 20)}, fast=True,
                         n_directions=4)
    assert report.passed() and report.analytic["w"].size == 4
    np.testing.assert_allclose(report.numeric["w"], report.analytic["w"], rtol=1e-8)
    dout = np.random.default_rng(0).standard_normal(())  # the seed's first draw: v
    assert np.all(np.abs(report.analytic["w"]) <= abs(dout) * np.linalg.norm(c) * (1 + 1e-9))  # u is a unit vector
    assert report._label("w", 0) == "<dw, u_0>"
    assert "(fast: compares random directions (small arrays: entries)" in str(report)
    scalar = mn.check_op(lambda w: (np.sin(w), w), lambda d, w: d, {"w": 0.5})  # d sin = cos, not 1
    assert scalar.worst_entries("w", 1)[0][0] == "w" and "  w: analytic " in str(scalar)


# ------------------------------------------------------------------------------------------------ the report
def test_check_op_report_has_a_pass_fail_line_and_no_relu_line_without_a_relu():
    z = normal(0, 3, 4)
    good = mn.check_op(ops.softmax_forward, ops.softmax_backward, dict(z=z))
    text = str(good)
    assert text.splitlines()[-1].startswith("PASS:") and "ReLU" not in text and "inf" not in text
    bad = mn.check_op(ops.softmax_forward, lambda dp, p: p * dp, dict(z=z))
    text = str(bad)
    assert text.splitlines()[-1].startswith("FAIL: 1 of 1 arrays (z)") and "ReLU" not in text
    relu = mn.check_op(ops.relu_forward, ops.relu_backward, dict(z=z + np.sign(z)))
    assert relu.relu_margin == pytest.approx(np.abs(z + np.sign(z)).min())
    assert f"smallest |ReLU input| {relu.relu_margin:.3e}" in str(relu).splitlines()[-1]


def test_the_failure_lists_the_worst_entries_with_both_values():
    z = normal(0, 2, 3)
    report = mn.check_op(ops.softmax_forward, lambda dp, p: p * dp, dict(z=z), seed=3)
    worst = report.worst_entries("z", 2)
    assert len(worst) == 2 and worst[0][0].startswith("z[")
    label, analytic, numeric, rel = worst[0]
    index = tuple(int(i) for i in label[2:-1].split(", "))
    dout = np.random.default_rng(3).standard_normal((2, 3))
    p = ops.softmax(z)
    assert analytic == pytest.approx((p * dout)[index]) and numeric == pytest.approx(ops.softmax_backward(dout, p)[
        index], rel=1e-6)
    assert rel == pytest.approx(abs(analytic - numeric) / max(abs(analytic), abs(numeric)))
    assert f"{label}: analytic {analytic:.6e}  numeric {numeric:.6e}  rel. error {rel:.1e}" in str(report)


def test_check_op_rejects_unknown_wrt_names():
    with pytest.raises(ValueError, match=r"wrt names \['y'\], which are not among the inputs \['z'\]"):
        mn.check_op(ops.relu_forward, ops.relu_backward, dict(z=np.ones((2, 2))), wrt=["y"])


def test_check_op_reports_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        mn.check_op(ops.relu_forward, lambda d, c: d[:1], dict(z=np.ones((2, 2))))


def test_a_failure_at_a_relu_kink_is_flagged_in_the_report():
    # Zero biases at initialisation: a sample with every bottom unit off gives a tower pre-activation of exactly 0,
    # where the central difference straddles the kink (it measures the average of the two one-sided slopes).
    model = mn.SharedBottom(4, ("regression",), bottom_units=(3,), tower_units=(2,), seed=8)
    X = np.random.default_rng(0).standard_normal((20, 4))
    report = mn.check_gradients(model, X, X[:, :1])
    assert report.relu_margin == 0.0 and report.near_kink and not report.passed()
    assert "within the step of its kink" in str(report) and "(a ReLU kink is near)" in str(report)
    for name, p in model.params.items():
        if name.endswith(".b"):  # nonzero biases move the pre-activations off 0
            p += 0.07
    moved = mn.check_gradients(model, X, X[:, :1])
    assert moved.passed() and not moved.near_kink and "kink" not in str(moved)


# ------------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("kwargs, match", [
    (dict(step=0), "step"), (dict(step=-1e-5), "step"), (dict(max_entries=0), "max_entries"),
    (dict(max_entries=2.5), "max_entries"), (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
    (dict(seed="0"), "seed"), (dict(fast="yes"), "fast"), (dict(fast=1), "fast"),
    (dict(n_directions=0), "n_directions"), (dict(n_directions=2.0), "n_directions"),
    (dict(fast=True, max_entries=3), "max_entries and fast=True")])
def test_bad_checker_options(kwargs, match):
    model = make_model()
    X, Y = data(3, 4, model.tasks, 0)
    with pytest.raises(ValueError, match=match):
        mn.check_gradients(model, X, Y, **kwargs)


def test_check_gradients_needs_a_model():
    X, Y = data(3, 4, ("regression",), 0)
    with pytest.raises(ValueError, match=r"model must be a model .* dict lacks \['params', 'losses', 'loss_and_grads'\]"):
        mn.check_gradients({}, X, Y)


def test_check_gradients_runs_the_models_input_checks_first():
    model = make_model()
    X, Y = data(3, 4, model.tasks, 0)
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        mn.check_gradients(model, X + 1j, Y)  # a cast to float64 would silently drop the imaginary part
    with pytest.raises(ValueError, match="binary task columns"):
        mn.check_gradients(model, X, Y + 0.5)
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        mn.check_gradients(model, X, Y)


def forward2(z):
    return 2 * z, None


def backward2(d, c):
    return 2 * d


@pytest.mark.parametrize("call, match", [
    (lambda: mn.check_op("f", backward2, {"z": [1.0]}), "forward must be a function"),
    (lambda: mn.check_op(forward2, None, {"z": [1.0]}), "backward must be a function"),
    (lambda: mn.check_op(forward2, backward2, {1: [1.0]}), "keyed by the forward's argument names"),
    (lambda: mn.check_op(forward2, backward2, {"z": ["a"]}), r"inputs\['z'\] must be a real numeric array"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1 + 1j]}), r"inputs\['z'\] must be a real numeric array"),
    (lambda: mn.check_op(forward2, backward2, {"z": np.zeros(0)}), r"inputs\['z'\] is empty"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, wrt="z"), "wrt must be a list of input names"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, wrt=[]), "wrt must name each input"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, wrt=["z", "z"]), "wrt must name each input"),
    (lambda: mn.check_op(forward2, lambda d, c: None, {"z": [1.0]}), "gradient of 'z' must be a real numeric"),
    (lambda: mn.check_op(forward2, lambda d, c: (d, d), {"z": [1.0]}), "backward returned 2 gradients"),
    (lambda: mn.check_op(lambda z: ("out", None), backward2, {"z": [1.0]}), "forward's output must be a real"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, seed=None), "seed"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, fast=None), "fast"),
    (lambda: mn.check_op(forward2, backward2, {"z": [1.0]}, n_directions=-1), "n_directions"),
])
def test_bad_check_op_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tol", [0, -1e-6, 1.0, 2, np.nan, np.inf, "1e-6", None])
def test_bad_tolerances_are_refused(tol):
    report = report_for([1.0], [1.0])
    for method in (report.passed, lambda t: report.passed_array("w", t), lambda t: report.resolved("w", t),
                   report.format):
        with pytest.raises(ValueError, match="tol must be"):
            method(tol)


@pytest.mark.parametrize("call, match", [
    (lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2), h=0), "h must be"),
    (lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2, dtype=int)), "a must be a float numpy array"),
    (lambda: gradcheck.numerical_gradient(lambda: 0.0, [1.0, 2.0]), "a must be a float numpy array"),
    (lambda: gradcheck.numerical_gradient(0.0, np.ones(2)), "f must be a function"),
    (lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2), indices=[2]), "indices must be"),
    (lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2), indices=[0.5]), "indices must be"),
    (lambda: gradcheck.directional_derivatives(lambda: 0.0, np.ones(2), np.ones((1, 3))), "directions must have"),
    (lambda: gradcheck.directional_derivatives(lambda: 0.0, np.ones(2), np.ones((1, 2)), h=np.nan), "h must be"),
    (lambda: gradcheck.rounding_noise(np.inf, 2, 1e-5), "f_value must be finite"),
    (lambda: gradcheck.rounding_noise(1.0, -1, 1e-5), "n_entries"),
    (lambda: report_for([1.0], [1.0]).worst_entries("v"), "name must be one of the checked arrays"),
    (lambda: report_for([1.0], [1.0]).passed_array("v"), "name must be one of the checked arrays"),
    (lambda: report_for([1.0], [1.0]).resolved(0), "name must be one of the checked arrays"),
    (lambda: gradcheck.directional_derivatives(lambda: 0.0, np.ones(2), np.zeros((0, 2))), "directions must have"),
    (lambda: gradcheck.directional_derivatives(lambda: 0.0, np.ones(2), [[np.nan, 1.0]]), "directions contains"),
    (lambda: report_for([1.0], [1.0]).worst_entries("w", 0), "n must be"),
    (lambda: report_for([1.0], [1.0]).format(worst=-1), "worst must be"),
])
def test_bad_arguments_to_the_parts(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------ review fixes
def test_the_worst_entries_show_nan_or_inf_for_a_non_finite_value_not_zero():
    # sqrt one step left of 1e-6 is NaN: the numeric derivative at z[1] is NaN, and so is its relative error
    report = mn.check_op(lambda z: (np.sqrt(z), z), lambda d, c: d * 0.5 / np.sqrt(c), {"z": np.array([4.0, 1e-6])})
    label, analytic, numeric, rel = report.worst_entries("z", 1)[0]
    assert label == "z[1]" and np.isnan(numeric) and np.isnan(rel)
    assert "numeric nan  rel. error nan" in str(report) and "rel. error 0.0e+00" not in str(report)
    inf_report = report_for([np.inf, 1.0], [1.0, 1.0])
    assert inf_report.worst_entries("w", 1)[0][3] == np.inf
    assert "analytic inf  numeric 1.000000e+00  rel. error inf" in str(inf_report)


@pytest.mark.parametrize("forward, got", [(lambda z: 2 * z, "type ndarray"), (lambda z: (2 * z,), "a tuple of 1"),
                                          (lambda z: (2 * z, None, None), "a tuple of 3"),
                                          (lambda z: [2 * z, None], "type list")])
@pytest.mark.parametrize("z", [[1.0], [1.0, 2.0], [1.0, 2.0, 3.0]])
def test_check_op_says_forward_must_return_out_and_cache(forward, got, z):
    with pytest.raises(ValueError, match=rf"^forward must return \(out, cache\), a tuple of two; got {got}"):
        mn.check_op(forward, backward2, {"z": z})


def test_a_non_finite_loss_is_refused_without_numpy_warnings(recwarn):
    model = mn.MMoE(5, ("regression", "binary"), n_experts=3, expert_units=(4,), tower_units=(2,), seed=0)
    X, Y = data(4, 5, model.tasks, 0)
    with pytest.raises(ValueError, match="the model's loss is inf"):
        mn.check_gradients(model, X * 1e300, Y)
    report = mn.check_op(lambda z: (np.sqrt(z), z), lambda d, c: d * 0.5 / np.sqrt(c), {"z": np.array([4.0, 1e-6])})
    assert not report.passed()
    assert not [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_the_report_module_split_keeps_every_public_name_where_it_was():
    from mmoe_np import gradreport
    for name in gradreport.__all__:
        assert name in gradcheck.__all__ and getattr(gradcheck, name) is getattr(gradreport, name), name
    for name in gradcheck.__all__:
        assert hasattr(gradcheck, name), name
    assert mn.GradientReport is gradcheck.GradientReport and mn.check_op is gradcheck.check_op
    assert mn.check_gradients is gradcheck.check_gradients
