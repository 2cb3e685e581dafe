"""Mutation tests: plant small, plausible bugs in backward passes and show that the checker catches every one.

Each bug replaces one op of :mod:`mmoe_np.ops` (the models call the ops through the module, and the ops look each
other up there too, the task losses included) by a wrapper around the correct op that gets one thing wrong. For every bug and every model:

* an independent oracle says whether the bug changes the model's analytic gradients at all;
* the full per-entry check and the fast check along random directions must both fail exactly when it does, and both
  pass when it does not (passes together, fails together), and on the same arrays.

Adam's bias correction is tested against Adam written out from Kingma & Ba's Algorithm 1
(:func:`mmoe_np.testing.assert_matches_adam`).
"""
import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np import ops
from mmoe_np.testing import KINK_MARGIN, TOL, adam_reference, assert_matches_adam, data, jitter

CORRECT = {name: getattr(ops, name) for name in ops.__all__}  # captured before any test plants a bug


# ------------------------------------------------------------------------------------------------ the bugs
def mse_without_its_factor_2(dL, cache):
    """d/dp (p - t)^2 = 2 (p - t): the 2 forgotten."""
    return CORRECT["mse_backward"](dL, cache) / 2


def l2_tie_without_its_factor_2(dP, cache):
    """d/dtheta ||theta - mean||^2 = 2 (theta - mean): the 2 forgotten, in the L2-Constrained penalty."""
    return CORRECT["l2_tie_backward"](dP, cache) / 2


def gate_columns(cache):
    """The gates' columns of a mixture of experts' first layer, or None for any other dense layer.

    The mixture computes every expert's first layer and every gate in one dense layer ``z = x W1 + b1`` with W1
    (D, E*h + G*E) (``MixtureOfExperts._first_layer``): the gates are its last G*E columns. Only the two mixtures
    built below have such a W1 (n_features = D rows, 12 + 3 or 12 + 6 columns); every other dense layer here is
    stacked (3-D W) or narrower."""
    W = cache.W
    if W.ndim == 2 and W.shape[0] == D and W.shape[1] - D * EXPERT_UNITS in (D, 2 * D):
        return slice(D * EXPERT_UNITS, None)
    return None


def gate_weight_gradient_transposed(dz, cache, *args, **kwargs):
    """dW = dz^T x instead of x^T dz in each gate's (d, E) block: a transposed matrix that no shape check sees when
    n_features == n_experts."""
    dx, dW, db = CORRECT["dense_backward"](dz, cache, *args, **kwargs)
    gates = gate_columns(cache)
    if gates is not None:
        dW = dW.copy()
        blocks = dW[:, gates].reshape(D, -1, D)              # (d, G, E)
        dW[:, gates] = np.swapaxes(blocks, 0, 2).reshape(D, -1)  # new[i, j, e] = old[e, j, i]: gate j's block^T
    return dx, dW, db


def softmax_vjp_without_its_centring_term(dp, p):
    """Treats softmax as elementwise: dz = p * dp, dropping - p <dp, p>."""
    return p * dp


def gate_path_into_X_dropped(dz, cache, *args, **kwargs):
    """x feeds the experts and the gates; only the experts' part of dX survives (dx = dz_experts W_experts^T)."""
    dx, dW, db = CORRECT["dense_backward"](dz, cache, *args, **kwargs)
    gates = gate_columns(cache)
    if dx is not None and gates is not None:
        experts_only = dz.copy()
        experts_only[..., gates] = 0
        dx = CORRECT["dense_backward"](experts_only, cache, *args, **kwargs)[0]
    return dx, dW, db


def experts_get_only_the_first_tasks_gradient(dm, cache):
    """Forgets that an expert feeds every task: df = g_1^T dm_1 instead of sum_k g_k^T dm_k."""
    dgates, _ = CORRECT["mixture_backward"](dm, cache)
    first = np.zeros_like(dm)
    first[..., :1, :, :] = dm[..., :1, :, :]
    _, dexperts = CORRECT["mixture_backward"](first, cache)
    return dgates, dexperts


def relu_passes_every_gradient(da, cache):
    return da


def bce_forgets_the_batch_mean(dL, cache):
    dz = CORRECT["bce_with_logits_backward"](dL, cache)  # (..., B, K)
    return dz * dz.shape[-2]


# name -> (the op it replaces, the bug, an array of MMoE it must fail, the only arrays that may fail on MMoE or None)
BUGS = {
    "missing factor 2 (MSE)": ("mse_backward", mse_without_its_factor_2, "towers.0.b", None),
    "missing factor 2 (L2 tie)": ("l2_tie_backward", l2_tie_without_its_factor_2, None, None),
    "transposed gate weight gradient": ("dense_backward", gate_weight_gradient_transposed, "gates.W", {"gates.W"}),
    "softmax VJP without its centring term": ("softmax_backward", softmax_vjp_without_its_centring_term, "gates.W",
                                              None),
    "gate path into X dropped": ("dense_backward", gate_path_into_X_dropped, "X", {"X"}),
    "experts get only the first task's gradient": ("mixture_backward", experts_get_only_the_first_tasks_gradient,
                                                   "experts.0.W", None),
    "ReLU passes every gradient": ("relu_backward", relu_passes_every_gradient, "experts.0.W", None),
    "BCE forgets the batch mean": ("bce_with_logits_backward", bce_forgets_the_batch_mean, "towers.1.b", None),
}

# Which of the seven models each bug touches (the oracle below recomputes it; this pins it down so that a bug which
# silently stopped reaching the models would not make the test vacuous).
ALL = {"SingleTask", "SharedBottom", "OMoE", "MMoE", "L2Constrained", "CrossStitch", "TensorFactorization"}
AFFECTED = {
    "missing factor 2 (MSE)": ALL,
    "missing factor 2 (L2 tie)": {"L2Constrained"},
    "transposed gate weight gradient": {"OMoE", "MMoE"},
    "softmax VJP without its centring term": {"OMoE", "MMoE"},
    "gate path into X dropped": {"OMoE", "MMoE"},
    "experts get only the first task's gradient": {"MMoE", "CrossStitch"},  # OMoE's one gate has one row: no bug
    "ReLU passes every gradient": ALL,
    "BCE forgets the batch mean": ALL,
}


def plant(monkeypatch, name, bug):
    """Replace ``ops.<name>`` by ``bug``: the models (and the ops themselves) look every op up in the module."""
    monkeypatch.setattr(ops, name, bug)


# ------------------------------------------------------------------------------------------------ the models
TASKS = ("regression", "binary")
D = 3  # n_features == n_experts, so a transposed gate weight gradient keeps its shape
EXPERT_UNITS = 4

MODELS = {
    "SingleTask": lambda: mn.SingleTask(D, TASKS, hidden_units=(4,), tower_units=(2,), seed=1),
    "SharedBottom": lambda: mn.SharedBottom(D, TASKS, bottom_units=(4,), tower_units=(2,), seed=1),
    "OMoE": lambda: mn.OMoE(D, TASKS, n_experts=D, expert_units=(EXPERT_UNITS,), tower_units=(2,), seed=1),
    "MMoE": lambda: mn.MMoE(D, TASKS, n_experts=D, expert_units=(EXPERT_UNITS,), tower_units=(2,), seed=1),
    "L2Constrained": lambda: mn.L2Constrained(D, TASKS, hidden_units=(4,), tower_units=(2,), l2_weight=0.5, seed=1),
    "CrossStitch": lambda: mn.CrossStitch(D, TASKS, hidden_units=(4, 3), tower_units=(2,), seed=1),
    "TensorFactorization": lambda: mn.TensorFactorization(D, TASKS, hidden_units=(4,), tower_units=(2,),
                                                          ranks=(2, 3, 1), seed=1),
}


def case(model_name):
    model = jitter(MODELS[model_name](), 0)
    X, Y = data(6, D, TASKS, 0)
    assert model.relu_margin(X) > KINK_MARGIN  # off every kink: a failure is the gradient's, not the checker's
    return model, X, Y


def gradients(model, X, Y):
    _, grads, dX = model.loss_and_grads(X, Y, input_grad=True)
    return {**grads, "X": dX}


def changed(before, after):
    """The oracle: did the bug change any analytic gradient?"""
    return any(not np.allclose(before[k], after[k], rtol=1e-12, atol=1e-15) for k in before)


def failing(report):
    return {name for name in report.errors if not report.passed_array(name, TOL)}


@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_passes_both_checks_without_a_bug(model_name):
    model, X, Y = case(model_name)
    full = mn.check_gradients(model, X, Y)
    fast = mn.check_gradients(model, X, Y, fast=True)
    assert full.passed(TOL), f"{model!r}\n{full}"
    assert fast.passed(TOL), f"{model!r}\n{fast}"


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("bug", list(BUGS))
def test_both_checks_catch_every_bug_that_reaches_the_model(bug, model_name, monkeypatch):
    op, wrong, must_fail, only = BUGS[bug]
    model, X, Y = case(model_name)
    before = gradients(model, X, Y)
    plant(monkeypatch, op, wrong)
    affected = changed(before, gradients(model, X, Y))
    assert affected == (model_name in AFFECTED[bug])
    full = mn.check_gradients(model, X, Y)
    fast = mn.check_gradients(model, X, Y, fast=True)
    assert full.passed(TOL) == fast.passed(TOL) == (not affected), f"{bug} in {model!r}\n{full}\n{fast}"
    assert failing(full) == failing(fast), f"{bug} in {model!r}\n{full}\n{fast}"
    if model_name == "MMoE" and must_fail is not None:
        assert full.errors[must_fail] > 1e-3 and fast.errors[must_fail] > 1e-3, str(full)
        if only is not None:  # nothing else is wrong, and the checker says so
            assert failing(full) == only, str(full)
    if affected:  # the failure message names the bug's arrays with both values
        message = full.format(TOL)
        name = sorted(failing(full))[0]
        assert f"  {full.worst_entries(name, 1)[0][0]}: analytic " in message
        assert message.splitlines()[-1].startswith("FAIL:") and "(no ReLU kink near)" in message


def test_the_l2_tie_bug_fails_the_penalised_arrays():
    # the penalty ties the hidden layers only: those are the arrays the missing 2 shows in
    model, X, Y = case("L2Constrained")
    with pytest.MonkeyPatch.context() as monkeypatch:
        plant(monkeypatch, "l2_tie_backward", l2_tie_without_its_factor_2)
        report = mn.check_gradients(model, X, Y)
    assert failing(report) == {name for name in model.params if name.startswith("hidden.")}


# ------------------------------------------------------------------------------------------------ Adam
class AdamWithoutBiasCorrection(mn.Adam):
    """Adam as often first written: m / (sqrt(v) + eps) straight from the running averages, which start at 0 and
    so make the first steps about 1 / sqrt(1 - beta2) / (1 / (1 - beta1)) ~ 3x too large."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        self.hyper = (lr, beta1, beta2, eps)
        self.moments = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in params.items()}

    def _update(self, name, g):
        lr, beta1, beta2, eps = self.hyper
        m, v = self.moments[name]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        return lr * m / (np.sqrt(v) + eps)


def test_adam_follows_kingma_and_ba():
    assert_matches_adam(mn.Adam)
    assert_matches_adam(mn.Adam, lr=0.1, beta1=0.5, beta2=0.9, eps=1e-3, steps=8, seed=3)


def test_the_reference_check_catches_adam_without_bias_correction():
    with pytest.raises(AssertionError, match=r"AdamWithoutBiasCorrection differs from Adam .* at step 1"):
        assert_matches_adam(AdamWithoutBiasCorrection)


def test_adam_on_a_models_own_parameters_follows_kingma_and_ba():
    # a model's params and grads may take the optimizer's whole-buffer path: the reference holds there too
    model, X, Y = case("MMoE")
    start = {name: np.array(p) for name, p in model.params.items()}
    optimizer, seen = mn.Adam(model.params, lr=0.01), []
    for _ in range(4):
        _, grads = model.loss_and_grads(X, Y)
        seen.append({name: np.array(g) for name, g in grads.items()})
        optimizer.step(grads)
    for name, p in model.params.items():
        expected = adam_reference(start[name], [g[name] for g in seen], lr=0.01)[-1]
        np.testing.assert_allclose(p - start[name], expected - start[name], rtol=1e-9, atol=0, err_msg=name)
