"""Shared helpers of the gradient tests. They are the public toolkit's (:mod:`mmoe_np.testing`), so the project's
own tests and a user's draw the same examples and avoid ReLU kinks the same way."""
from __future__ import annotations

import numpy as np

import mmoe_np as mn
from mmoe_np import testing as T
from mmoe_np.testing import KINK_MARGIN, STEP, TOL, data, jitter  # noqa: F401  (re-exported for the tests)

widths, hidden, towers = T.widths(), T.hidden_units(), T.tower_units()
task_lists, seeds = T.task_lists(), T.seeds()


def assert_gradients_match(model: mn.MultiTaskModel, X: np.ndarray, Y: np.ndarray) -> mn.GradientReport:
    """Reject draws that sit on a ReLU kink; otherwise every parameter and X must match to ``TOL``."""
    T.reject_kinks(model, X)
    report = T.assert_gradients_close(model, X, Y, tol=TOL, step=STEP)
    assert set(report.errors) == set(model.params) | {"X"}
    return report


def assert_training_randomness(model: mn.MultiTaskModel, X: np.ndarray, Y: np.ndarray) -> object:
    """The contract of a model's training randomness (gate dropout, gating noise, dropout): a pass given an rng is
    deterministic given it, its draws change the loss, it equals the pass given the draws it makes (``noise``) and the
    copy that holds them (``holding_noise``); forward, predict and the gate weights never use any. Returns the draws of
    ``default_rng(7)`` for the caller's checks of their shapes."""
    eval_loss, _ = model.losses(X, Y)
    l1, g1 = model.loss_and_grads(X, Y, rng=np.random.default_rng(7))
    l2, g2 = model.loss_and_grads(X, Y, rng=np.random.default_rng(7))
    l3, _ = model.loss_and_grads(X, Y, rng=np.random.default_rng(8))
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)  # deterministic given the rng
    assert l1 != l3 and l1 != eval_loss                                   # the draws matter
    noise = model.draw_noise(np.random.default_rng(7), X.shape[-2])
    assert model.loss_and_grads(X, Y, noise=noise)[0] == l1               # rng = the draws it makes
    held = model.holding_noise(noise)
    assert held.losses(X, Y)[0] == l1 and model.losses(X, Y)[0] == eval_loss
    for m in (model, held):  # never in forward, predict or the gate weights
        assert np.array_equal(m.forward(X), model.forward(X))
        assert np.array_equal(m.predict(X), model.predict(X))
        assert np.array_equal(m.gate_weights(X), model.gate_weights(X))
    return noise
