"""Evaluation metrics."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["roc_auc"]


def _vector(name: str, value: Any) -> np.ndarray:
    """``value`` as a non-empty 1-D real array."""
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {a.shape}")
    return a


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x (N,), tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])  # first index of each run of ties
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size)
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)  # mean of ranks starts+1 .. ends
    return ranks


def roc_auc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting 1/2.

    y_true (N,) holds labels 0/1 with both present; score (N,) finite reals. Computed as the Mann-Whitney U
    statistic over average ranks, so O(N log N) and exact with ties.
    """
    y, s = _vector("y_true", y_true), _vector("score", score)
    if y.shape != s.shape:
        raise ValueError(f"y_true and score must have the same length; got {y.size} and {s.size}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"y_true must contain only 0 and 1; found {np.unique(y[(y != 0) & (y != 1)])[:5]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("score must be finite; found NaN or inf")
    positive = y == 1
    n_pos = int(positive.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"y_true must contain both classes; got {n_pos} positives and {n_neg} negatives")
    u = _average_ranks(s)[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))
