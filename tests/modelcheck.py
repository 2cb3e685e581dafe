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
