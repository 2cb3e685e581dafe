"""Small helpers shared by the experiments: statistics over repeated runs, how busy the machine is, and the
output folder of a command."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_std", "run_sem", "load_average", "prepare_out", "save_png"]


def run_std(x: Any, axis: int | None = None) -> Any:
    """Sample standard deviation over repeated runs (ddof = 1), and 0 for a single run (where it is undefined)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis] if axis is not None else x.size
    return x.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(x.mean(axis=axis))


def run_sem(x: Any, axis: int | None = None) -> Any:
    """Standard error of the mean over repeated runs: ``run_std / sqrt(n)``."""
    n = np.shape(x)[axis] if axis is not None else np.size(x)
    return run_std(x, axis) / np.sqrt(n)


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the platform has none (e.g. Windows)."""
    try:
        return tuple(round(float(v), 2) for v in os.getloadavg())
    except (AttributeError, OSError):
        return None


def prepare_out(out: Any) -> Path:
    """The output folder ``--out``, created if needed and checked to be writable *before* a long run starts
    (a study that can only fail when it writes its results would lose them)."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(path)!r} is not a writable folder: {err.strerror or err}") from None
    return path


def save_png(fig: Any, path: Any) -> Path:
    """Lay out a matplotlib Figure and write it to ``path`` as PNG; returns the path."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
