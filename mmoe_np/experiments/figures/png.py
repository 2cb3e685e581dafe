"""Writing a figure: :func:`save_png`, shared by the studies' figures and the diagrams."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._io import atomic_path

__all__ = ["save_png"]


def save_png(fig: Any, path: str | Path) -> Path:
    """Lay out a matplotlib Figure and write it to ``path`` as PNG, atomically; returns the path."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
