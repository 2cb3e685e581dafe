"""Inputs so large that the forward pass overflows get a ValueError naming X, not inf losses, NaN gradients and
warnings (issue 14)."""
import warnings

import numpy as np
import pytest

import mmoe_np as mn

TASKS = ("regression", "binary")


def models(dtype):
    kw = dict(tower_units=(3,), dtype=dtype, seed=1)
    yield mn.MMoE(6, TASKS, n_experts=3, expert_units=(4,), **kw)
    yield mn.OMoE(6, TASKS, n_experts=3, expert_units=(4,), **kw)
    yield mn.SharedBottom(6, TASKS, bottom_units=(5,), **kw)
    yield mn.SingleTask(6, TASKS, hidden_units=(5,), **kw)
    yield mn.L2Constrained(6, TASKS, hidden_units=(5,), **kw)
    yield mn.CrossStitch(6, TASKS, hidden_units=(5,), **kw)
    yield mn.TensorFactorization(6, TASKS, hidden_units=(5,), ranks=(2, 2, 1), **kw)


def data(scale):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 6)) * scale
    Y = np.column_stack([rng.standard_normal(8), np.arange(8) % 2])
    return X, Y


@pytest.mark.parametrize("model", list(models(np.float32)), ids=lambda m: type(m).__name__)
def test_a_forward_pass_that_overflows_float32_is_refused_naming_X(model):
    for p in model.params.values():  # positive weights: the first layer sums 6 entries of 3e38 each
        p[...] = np.abs(p) + 1
    X, Y = data(1.0)
    X = np.full_like(X, 3e38)  # finite in float32 (max 3.4e38), but the first layer's products overflow
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
        for call in (lambda: model.forward(X), lambda: model.predict(X), lambda: model.loss_and_grads(X, Y),
                     lambda: model.losses(X, Y), lambda: model.evaluate(X, Y)):
            with pytest.raises(ValueError, match=r"X is too large for a float32 model.*overflows"):
                call()


@pytest.mark.parametrize("model", list(models(np.float32)), ids=lambda m: type(m).__name__)
def test_X_times_1e30_gives_a_ValueError_naming_X_not_an_inf_loss(model):
    X, Y = data(1e30)  # the outputs stay finite, (out - y)^2 does not
    model.predict(X)   # a prediction of huge inputs is still a prediction
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (lambda: model.loss_and_grads(X, Y), lambda: model.losses(X, Y), lambda: model.evaluate(X, Y),
                     lambda: model.forward_backward(X, Y, input_grad=True)):
            with pytest.raises(ValueError, match=r"^X, Y: the (loss|gradients) overflow"):
                call()


def test_the_same_inputs_are_fine_in_float64_and_ordinary_inputs_are_untouched():
    X, Y = data(1e30)
    model = mn.MMoE(6, TASKS, n_experts=3, expert_units=(4,), tower_units=(3,), seed=1)
    loss, grads = model.loss_and_grads(X / 1e30, Y)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


def test_a_loss_that_overflows_is_refused_naming_X_and_Y():
    model = mn.SharedBottom(2, ("regression",), bottom_units=(2,), tower_units=(), dtype=np.float32)
    X = np.ones((2, 2), dtype=np.float32)
    Y = np.full((2, 1), 1e30, dtype=np.float32)  # the squared error 1e60 overflows float32
    with pytest.raises(ValueError, match=r"X, Y: the loss overflows float32"):
        model.loss_and_grads(X, Y)


def test_a_non_finite_parameter_is_named_instead_of_blaming_X():
    model = mn.MMoE(6, TASKS, n_experts=3, expert_units=(4,), tower_units=(3,), seed=1)
    model.params["towers.1.b"][0, 0] = np.nan
    X, Y = data(1.0)
    for call in (lambda: model.forward(X), lambda: model.loss_and_grads(X, Y), lambda: model.evaluate(X, Y)):
        with pytest.raises(ValueError, match=r"params\['towers.1.b'\] contains NaN or inf"):
            call()
