"""Optimizers that update a model's parameter arrays in place: SGD (with momentum) and Adam.

All updates are elementwise, so stacked replicas (a leading replica axis) are optimised exactly as R separate runs.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from . import _validation as V

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Holds references to the parameter arrays; :meth:`step` changes them in place."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        if not isinstance(params, Mapping) or not params:
            raise ValueError("params must be a non-empty dict of arrays, e.g. model.params")
        self.params = params
        self.lr = V.positive_float("lr", lr)
        self.t = 0  # number of steps taken

    def _check(self, grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every gradient as a real array of its parameter's dtype, all checked before any parameter changes.

        NaN and inf are let through on purpose: a diverging run (or replica) shows as non-finite losses.
        """
        if not isinstance(grads, Mapping):
            raise ValueError(f"grads must be a dict of arrays with the keys of params; got {type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing, extra = self.params.keys() - grads.keys(), grads.keys() - self.params.keys()
            raise ValueError(f"grads must have the keys of params; missing {sorted(missing)}, extra {sorted(extra)}")
        checked = {}
        for name, g in grads.items():
            g = np.asarray(g)
            if g.shape != self.params[name].shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}; params[{name!r}] has "
                                 f"{self.params[name].shape}")
            if g.dtype.kind not in "biuf":
                raise ValueError(f"grads[{name!r}] must be a real numeric array; got dtype {g.dtype}")
            checked[name] = g.astype(self.params[name].dtype, copy=False)
        return checked

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update from ``grads`` (the keys and shapes of ``params``)."""
        grads = self._check(grads)
        self.t += 1
        for name, p in self.params.items():
            p -= self._update(name, grads[name])

    def _update(self, name: str, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum: ``v <- mu v + g``, ``p <- p - lr v``."""

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-2, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = V.positive_float("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.velocity = {name: np.zeros_like(p) for name, p in params.items()}

    def _update(self, name: str, g: np.ndarray) -> np.ndarray:
        v = self.velocity[name]
        v *= self.momentum
        v += g
        return self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction:

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``.

    Computed in the equivalent form of the paper's Sec. 2 (as TensorFlow does), which folds both corrections into
    two scalars and saves two passes over every array:
    ``p <- p - lr_t * m / (sqrt(v) + eps_t)``, ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``eps_t = eps sqrt(1 - b2^t)``.
    """

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= V.positive_float(name, beta, allow_zero=True) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {beta!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = V.positive_float("eps", eps)
        self.m = {name: np.zeros_like(p) for name, p in params.items()}
        self.v = {name: np.zeros_like(p) for name, p in params.items()}

    def _update(self, name: str, g: np.ndarray) -> np.ndarray:
        m, v = self.m[name], self.v[name]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        root = np.sqrt(1 - self.beta2 ** self.t)
        lr_t = self.lr * root / (1 - self.beta1 ** self.t)
        denominator = np.sqrt(v)
        denominator += self.eps * root
        update = np.divide(m, denominator, out=denominator)  # reuse the buffer
        update *= lr_t
        return update
