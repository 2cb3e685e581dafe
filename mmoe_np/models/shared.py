"""The two ends of hard parameter sharing: Single-Task (nothing shared) and Shared-Bottom (the whole bottom shared)."""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import ops
from .base import ArrayDict, MultiTaskModel

__all__ = ["SingleTaskCache", "SingleTask", "SharedBottomCache", "SharedBottom"]


class SingleTaskCache(NamedTuple):
    hidden: tuple            # ops.mlp_forward's cache of the K stacked networks
    towers: tuple


class SingleTask(MultiTaskModel):
    """One independent network per task, sharing nothing: ``y_k = h^k(f^k(x))``. The baseline.

    All K networks run as one stacked MLP. Parameters (sizes = (n_features, *hidden_units), then
    (hidden_units[-1], *tower_units, 1)):

    * ``hidden.{l}.W`` (K, sizes[l], sizes[l+1]), ``hidden.{l}.b`` (K, sizes[l+1]): each task's hidden layers (ReLU)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1

    ``dropout=p`` (training passes only): inverted dropout after every hidden ReLU and every tower hidden ReLU.
    """

    _dropout_mlps = (("hidden", True), ("towers", False))

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        self.hidden_units = V.units("hidden_units", hidden_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"hidden_units": self.hidden_units, "tower_units": self.tower_units}

    def _build(self, rng: np.random.Generator) -> None:
        self._add_mlp(rng, "hidden", (self.n_features, *self.hidden_units), stack=self.n_tasks)
        self._add_towers(rng, self.hidden_units[-1])

    def _forward(self, X: np.ndarray,
                 noise: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, SingleTaskCache]:
        """``noise``: the dropout masks of a training pass (:meth:`draw_noise`), or None."""
        scale = self.dropout_scale
        h, hidden = ops.mlp_forward(X[..., None, :, :], self.mlp_layers("hidden"), relu_last=True,
                                    masks=self._layer_masks(noise, "hidden"), scale=scale)  # (..., K, N, h)
        out, towers = ops.towers_forward(h, self.mlp_layers("towers"),
                                         self._layer_masks(noise, "towers"), scale)        # (..., N, K)
        return out, SingleTaskCache(hidden, towers)

    def _backward(self, dout: np.ndarray, cache: SingleTaskCache,
                  input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dh, tower_grads = ops.towers_backward(dout, cache.towers)
        dX, hidden_grads = ops.mlp_backward(dh, cache.hidden, input_grad=input_grad)  # (..., 1, N, d): summed over K
        grads = {**self._mlp_grads("hidden", hidden_grads), **self._mlp_grads("towers", tower_grads)}
        return grads, (dX[..., 0, :, :] if input_grad else None)


class SharedBottomCache(NamedTuple):
    bottom: tuple            # ops.mlp_forward's cache of the one bottom
    towers: tuple


class SharedBottom(MultiTaskModel):
    """One bottom network shared by all tasks, one tower per task: ``y_k = h^k(f(x))``.

    Parameters (sizes = (n_features, *bottom_units)):

    * ``bottom.{l}.W`` (sizes[l], sizes[l+1]), ``bottom.{l}.b`` (sizes[l+1]): the shared bottom (ReLU after every layer)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (bottom_units[-1], *tower_units, 1)

    ``dropout=p`` (training passes only): inverted dropout after every bottom ReLU and every tower hidden ReLU.
    """

    _dropout_mlps = (("bottom", True), ("towers", False))

    def __init__(self, n_features: int, tasks: Sequence[str], bottom_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        self.bottom_units = V.units("bottom_units", bottom_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"bottom_units": self.bottom_units, "tower_units": self.tower_units}

    def _build(self, rng: np.random.Generator) -> None:
        self._add_mlp(rng, "bottom", (self.n_features, *self.bottom_units))
        self._add_towers(rng, self.bottom_units[-1])

    def _forward(self, X: np.ndarray,
                 noise: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, SharedBottomCache]:
        """``noise``: the dropout masks of a training pass (:meth:`draw_noise`), or None."""
        scale = self.dropout_scale
        f, bottom = ops.mlp_forward(X, self.mlp_layers("bottom"), relu_last=True,
                                    masks=self._layer_masks(noise, "bottom"), scale=scale)  # (..., N, h)
        out, towers = ops.towers_forward(f[..., None, :, :], self.mlp_layers("towers"),     # every tower reads f
                                         self._layer_masks(noise, "towers"), scale)
        return out, SharedBottomCache(bottom, towers)

    def _backward(self, dout: np.ndarray, cache: SharedBottomCache,
                  input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        df, tower_grads = ops.towers_backward(dout, cache.towers)  # (..., 1, N, h): already summed over the towers
        dX, bottom_grads = ops.mlp_backward(df[..., 0, :, :], cache.bottom, input_grad=input_grad)
        return {**self._mlp_grads("bottom", bottom_grads), **self._mlp_grads("towers", tower_grads)}, dX
