"""Small helpers shared by the experiments: statistics over repeated runs, and how busy the machine is."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["run_std", "run_sem", "load_average"]


def run_std(x: Any, axis: int | None = None) -> Any:
    """Sample standard deviation over repeated runs (ddof = 1), and 0 for a single run (where it is undefined)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis] if axis is not None else x.size
    return x.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(x.mean(axis=axis))


def run_sem(x: Any, axis: int | None = None) -> Any:
    """Standard error of the mean over repeated runs: ``run_std / sqrt(n)``."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis] if axis is not None else x.size
    return run_std(x, axis) / np.sqrt(n)


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the platform has none (e.g. Windows)."""
    try:
        return tuple(round(float(v), 2) for v in os.getloadavg())
    except (AttributeError, OSError):
        return None
