"""Shared helpers for the gradient tests: hypothesis strategies for sizes, and a kink-aware gradient assertion."""
from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import mmoe_np as mn

TOL = 1e-6          # relative error every analytic gradient must reach in float64
STEP = 1e-5         # central-difference step: the checker's default, about eps_machine ** (1/3)
# A step of STEP in one parameter or input moves a pre-activation by STEP times a weight or an activation (O(1)),
# so a ReLU input further than KINK_MARGIN = 100 * STEP from 0 cannot cross the kink during the check.
KINK_MARGIN = 100 * STEP

widths = st.integers(1, 4)
hidden = st.lists(widths, min_size=1, max_size=2).map(tuple)
towers = st.lists(widths, min_size=0, max_size=2).map(tuple)
task_lists = st.lists(st.sampled_from(["regression", "binary"]), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**16)


def data(n_samples: int, n_features: int, tasks: tuple[str, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal X (N, d) and targets Y (N, K): normal for regression, fair coin flips for binary tasks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    Y = np.column_stack([rng.standard_normal(n_samples) if t == "regression" else rng.integers(0, 2, n_samples)
                         for t in tasks]).astype(float)
    return X, Y


def jitter(model: mn.MultiTaskModel, seed: int, scale: float = 0.3) -> mn.MultiTaskModel:
    """Move every parameter (biases too, which start at 0) to a random nearby point, in place.

    Gradients are checked away from the initial point, and non-zero biases keep ReLU inputs off exactly 0 even when
    every unit of the layer below is inactive.
    """
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += scale * rng.standard_normal(p.shape)
    return model


def assert_gradients_match(model: mn.MultiTaskModel, X: np.ndarray, Y: np.ndarray) -> mn.GradientReport:
    """Reject draws that sit on a ReLU kink; otherwise every parameter and X must match to ``TOL``."""
    assume(model.relu_margin(X) > KINK_MARGIN)
    report = mn.check_gradients(model, X, Y, step=STEP)
    assert set(report.errors) == set(model.params) | {"X"}
    assert report.passed(TOL), f"{model!r}\n{report}"
    return report
