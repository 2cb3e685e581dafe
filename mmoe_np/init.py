"""Parameter initialisation.

Weights use Glorot (Xavier) uniform initialisation, the default of TensorFlow/Keras dense layers that the paper's
models were built with: ``W ~ U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``, so that ``Var(W) = 2 / (fan_in +
fan_out)`` keeps activations and gradients at a similar scale through the layers. Biases start at zero.

For stacked weights (..., fan_in, fan_out) (E experts, G gates, K towers) the fans are those of one slice, and every
slice gets its own independent draw: that independence is what breaks the symmetry between experts, which would
otherwise receive identical gradients forever.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["glorot_uniform"]


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """Glorot-uniform weights of ``shape (..., fan_in, fan_out)``, drawn in float64 and cast to ``dtype``."""
    fan_in, fan_out = shape[-2], shape[-1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)
