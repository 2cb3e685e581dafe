"""The paper's three soft-parameter-sharing baselines: L2-Constrained, Cross-Stitch and Tensor-Factorization.

Ma et al. (KDD 2018, Sec. 6.2) compare MMoE with three methods that give every task parameters of its own and share
knowledge *softly*, through a constraint or a learned mix rather than by reusing the same weights:

* :class:`L2Constrained` (Duong et al., 2015): one network per task; a penalty
  ``alpha * sum_{k<l} ||theta_k - theta_l||^2`` pulls the tasks' hidden layers towards each other.
* :class:`CrossStitch` (Misra et al., 2016): one column per task; after each hidden layer a learned K x K matrix
  mixes the columns, ``x~_k = sum_l alpha[k, l] x_l``.
* :class:`TensorFactorization` (Yang & Hospedales, 2017, Tucker form): the K task weight matrices of a hidden layer
  are the slices of one tensor ``W = S x_1 U1 x_2 U2 x_3 U3`` whose ranks limit what the tasks can do differently.

All three accept any number of tasks K >= 1; each class says what K = 1 means for it. Each is the stacked per-task
MLP of :class:`SingleTask` with one new op pair added: ``ops.l2_tie_*``, ``ops.cross_stitch_*`` and
``tucker.tucker_*``, each gradient-checkable on its own with :func:`mmoe_np.check_op`. The backward passes are
derived step by step in ``docs/backprop.md``, section 10. ``dropout=p`` (training passes only, as in every model)
drops hidden units after every ReLU of the per-task networks and of the towers' hidden layers.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import ops, tucker
from ..init import glorot_uniform
from .base import ArrayDict, MultiTaskModel
from .shared import SingleTask

__all__ = ["L2Constrained", "CrossStitch", "CrossStitchCache", "TensorFactorization", "TensorFactorizationCache"]


class L2Constrained(SingleTask):
    """L2-Constrained (Duong et al., 2015): one network per task, ``y_k = h^k(f^k(x; theta_k))``, with the tasks'
    hidden layers tied softly by a penalty added to the loss,

        ``L = sum_k w_k L_k + l2_weight * sum_{k<l} ||theta_k - theta_l||^2``,

    where theta_k is task k's copy of every **hidden-layer** parameter (``hidden.*``, weights and biases). The towers
    are not tied (they are each task's head) unless ``tie_towers=True``, which ties every parameter as the MMoE
    paper's formula writes it. ``l2_weight = 0`` is :class:`SingleTask` (independent training); K = 1 has no pairs,
    so the penalty is 0 and the model is one plain network.

    Parameters: those of :class:`SingleTask`, the same keys and shapes (sizes = (n_features, *hidden_units)):

    * ``hidden.{l}.W`` (K, sizes[l], sizes[l+1]), ``hidden.{l}.b`` (K, sizes[l+1]): each task's hidden layers (ReLU)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1
    """

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), l2_weight: float = 1e-2, tie_towers: bool = False,
                 **kwargs: Any) -> None:
        self.l2_weight = V.positive_float("l2_weight", l2_weight, allow_zero=True)
        self.tie_towers = V.flag("tie_towers", tie_towers)
        super().__init__(n_features, tasks, hidden_units, tower_units, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {**super()._sizes(), "l2_weight": self.l2_weight, "tie_towers": self.tie_towers}

    @property
    def tied(self) -> list[str]:
        """The keys of the tied parameters, each stacked by task on its first axis."""
        prefixes = ("hidden.", "towers.") if self.tie_towers else ("hidden.",)
        return [name for name in self.params if name.startswith(prefixes)]

    def _penalty(self) -> tuple[np.ndarray | float, ArrayDict]:
        value, grads = 0.0, {}
        for name in self.tied:
            task_axis = -len(self._base_shapes[name])  # the task axis, after any replica axes
            tie, cache = ops.l2_tie_forward(self.params[name], self.l2_weight, task_axis)
            value = value + tie
            grads[name] = ops.l2_tie_backward(np.ones_like(tie), cache)
        return value, grads


class CrossStitch(SingleTask):
    """Cross-Stitch network (Misra et al., 2016): one column per task; after every hidden layer (and its ReLU) a
    cross-stitch unit lets each column continue with a learned mix of all columns,

        ``a^l_k = relu(x~^{l-1}_k W^l_k + b^l_k)``,  ``x~^l_k = sum_j alpha^l[k, j] a^l_j``,  ``y_k = h^k(x~^L_k)``,

    with ``x~^0_k = x``. Identity alphas give independent columns (:class:`SingleTask`); K = 1 is a plain MLP whose
    1 x 1 alpha is a learned scale of each hidden layer (redundant with the next layer's weights).

    Initialisation: every ``alpha^l`` starts as a convex mix, ``alpha_self`` on the diagonal (Misra et al.'s alpha_S,
    0.9 by default) and ``(1 - alpha_self) / (K - 1)`` everywhere else (alpha_D), so every row sums to 1: each column
    starts as mostly itself. With K = 1 the single entry is 1. The weights are Glorot-initialised like SingleTask's.

    Parameters, in this order (sizes = (n_features, *hidden_units)):

    * ``hidden.{l}.W`` (K, sizes[l], sizes[l+1]), ``hidden.{l}.b`` (K, sizes[l+1]): each column's hidden layers (ReLU)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1
    * ``stitch.{l}.alpha`` (K, K): the cross-stitch unit after hidden layer l; row k mixes what column k reads next

    ``dropout=p`` (training passes only) drops units of every column's ReLU output before the stitch mixes them
    (``x~^l_k = sum_j alpha^l[k, j] drop(a^l_j)``), and after the towers' hidden ReLUs.
    """

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), alpha_self: float = 0.9, **kwargs: Any) -> None:
        self.alpha_self = V.positive_float("alpha_self", alpha_self, allow_zero=True)
        if self.alpha_self > 1:
            raise ValueError(f"alpha_self must be in [0, 1] (alpha starts as a convex mix); got {alpha_self!r}")
        super().__init__(n_features, tasks, hidden_units, tower_units, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {**super()._sizes(), "alpha_self": self.alpha_self}

    @staticmethod
    def _alpha(layer: int) -> str:
        return f"stitch.{layer}.alpha"

    def _build(self, rng: np.random.Generator) -> None:
        K = self.n_tasks
        super()._build(rng)  # the columns and the towers, exactly as SingleTask's
        if K == 1:
            alpha = np.ones((1, 1))
        else:
            alpha = np.full((K, K), (1 - self.alpha_self) / (K - 1))
            np.fill_diagonal(alpha, self.alpha_self)
        for layer in range(len(self.hidden_units)):
            self.params[self._alpha(layer)] = alpha.astype(self.dtype)

    def _forward(self, X: np.ndarray,
                 noise: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, "CrossStitchCache"]:
        """``noise``: the dropout masks of a training pass (:meth:`draw_noise`), or None."""
        x, layers = X[..., None, :, :], []  # (..., 1, N, d): every column reads the same x
        masks, scale = self._layer_masks(noise, "hidden"), self.dropout_scale  # a mask per hidden layer, or None
        for layer, (W, b) in enumerate(self.mlp_layers("hidden")):
            a, column = ops.mlp_forward(x, [(W, b)], relu_last=True, scale=scale,
                                        masks=None if masks is None else [masks[layer]])  # (..., K, N, h_l)
            x, stitch = ops.cross_stitch_forward(a, self.params[self._alpha(layer)])    # (..., K, N, h_l)
            layers.append(StitchedLayerCache(column, stitch))
        out, towers = ops.towers_forward(x, self.mlp_layers("towers"), self._layer_masks(noise, "towers"), scale)
        return out, CrossStitchCache(tuple(layers), towers)

    def _backward(self, dout: np.ndarray, cache: "CrossStitchCache",
                  input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dx, tower_grads = ops.towers_backward(dout, cache.towers)
        grads, hidden_grads = self._mlp_grads("towers", tower_grads), []
        for layer in reversed(range(len(cache.layers))):
            da, grads[self._alpha(layer)] = ops.cross_stitch_backward(dx, cache.layers[layer].stitch)
            dx, [layer_grads] = ops.mlp_backward(da, cache.layers[layer].column, input_grad=input_grad or layer > 0)
            hidden_grads.insert(0, layer_grads)
        grads.update(self._mlp_grads("hidden", hidden_grads))
        return grads, (dx[..., 0, :, :] if input_grad else None)  # summed over the K columns that all read x


class StitchedLayerCache(NamedTuple):
    column: tuple            # ops.mlp_forward's cache of the K columns' dense layer and ReLU
    stitch: ops.MixtureCache  # the cross-stitch unit after it


class CrossStitchCache(NamedTuple):
    layers: tuple            # a StitchedLayerCache per hidden layer
    towers: tuple


class TensorFactorization(MultiTaskModel):
    """Tensor-Factorization (Yang & Hospedales, 2017, DMTRL in Tucker form): one network per task whose hidden weights
    are the slices of one low-rank tensor per layer,

        ``W^l = S^l x_1 U1^l x_2 U2^l x_3 U3^l`` (d_in x d_out x K);  task k: ``relu(x W^l[:, :, k] + b^l_k)``,

    so the tasks share the core and the input/output factors, and differ only through U3 (a task's r3 coordinates).
    W itself is never a parameter; it is rebuilt from the factors at every forward pass. The towers are per task.
    Full ranks (d_in, d_out, K) can express any weights (independent networks); ``ranks = (r1, r2, 1)`` gives every
    task proportional weight matrices; K = 1 (r3 = 1) is one network with rank-limited layers ``U1 S U2^T``.

    Initialisation: like :class:`SingleTask`, draw Glorot-uniform weights (K, d_in, d_out) per layer (with the same
    seed, the same numbers), then keep their truncated HOSVD (:func:`mmoe_np.tucker.tucker_decompose`), as DMTRL
    initialises from single-task weights. The factors then have orthonormal columns, so ``||W||_F = ||S||_F``, and S is scaled by
    ``||W_glorot||_F / ||S||_F`` so that W keeps the Glorot weights' total energy: the std of W equals the Glorot
    std ``sqrt(2 / (d_in + d_out))`` (up to sampling) at every rank. At full ranks the scale is 1 and W starts as the
    Glorot draw itself. Biases start at 0.

    Parameters (sizes = (n_features, *hidden_units); layer l maps d_in = sizes[l] to d_out = sizes[l+1]):

    * ``hidden.{l}.S`` (r1, r2, r3): the core
    * ``hidden.{l}.U1`` (d_in, r1), ``hidden.{l}.U2`` (d_out, r2), ``hidden.{l}.U3`` (K, r3): the factors
    * ``hidden.{l}.b`` (K, d_out): each task's bias
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1

    ``ranks = (r1, r2, r3)`` is shared by every hidden layer, so r1 <= every d_in, r2 <= every hidden width, r3 <= K.
    Without ``ranks``, the largest such ranks: (min d_in, min d_out, K), full ranks for one hidden layer.

    ``dropout=p`` (training passes only): inverted dropout after every hidden ReLU and every tower hidden ReLU, as
    in :class:`SingleTask`; the Tucker factors themselves are never dropped.
    """

    _dropout_mlps = (("hidden", True), ("towers", False))

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), *, ranks: Sequence[int] | None = None, **kwargs: Any) -> None:
        self.hidden_units = V.units("hidden_units", hidden_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        self.ranks = ranks  # checked against the layer sizes and K in _build, once those are validated
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"hidden_units": self.hidden_units, "tower_units": self.tower_units, "ranks": self.ranks}

    @staticmethod
    def _keys(layer: int) -> list[str]:
        """The keys of hidden layer ``layer``'s Tucker factors, in the order of :func:`mmoe_np.tucker.tucker_forward`."""
        return [f"hidden.{layer}.{name}" for name in tucker.FACTORS]

    def _build(self, rng: np.random.Generator) -> None:
        sizes = (self.n_features, *self.hidden_units)
        d_ins, d_outs = sizes[:-1], sizes[1:]
        if self.ranks is None:  # the largest ranks every layer allows
            self.ranks = (min(d_ins), min(d_outs), self.n_tasks)
        self.ranks = tucker.check_ranks(self.ranks, d_ins, d_outs, self.n_tasks)
        for layer, (d_in, d_out) in enumerate(zip(d_ins, d_outs)):
            W = glorot_uniform(rng, (self.n_tasks, d_in, d_out))  # what SingleTask draws for this layer
            S, *factors = tucker.tucker_decompose(W, self.ranks)
            S *= np.linalg.norm(W) / np.linalg.norm(S)           # restore the energy the truncation dropped
            for key, value in zip(self._keys(layer), (S, *factors)):
                self.params[key] = np.ascontiguousarray(value, dtype=self.dtype)
            self.params[f"hidden.{layer}.b"] = np.zeros((self.n_tasks, d_out), dtype=self.dtype)
        self._add_towers(rng, self.hidden_units[-1])

    def weights(self, layer: int) -> np.ndarray:
        """The task weights of hidden layer ``layer`` rebuilt from its factors: (..., K, d_in, d_out)."""
        if not isinstance(layer, numbers.Integral) or not 0 <= layer < len(self.hidden_units):
            raise ValueError(f"layer must be a hidden layer index in [0, {len(self.hidden_units)}); got {layer!r}")
        return tucker.tucker_forward(*(self.params[key] for key in self._keys(layer)))[0]

    def _forward(self, X: np.ndarray,
                 noise: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, "TensorFactorizationCache"]:
        """``noise``: the dropout masks of a training pass (:meth:`draw_noise`), or None."""
        layers, factors = [], []
        for layer in range(len(self.hidden_units)):
            W, tucker_cache = tucker.tucker_forward(*(self.params[key] for key in self._keys(layer)))
            layers.append((W, self.params[f"hidden.{layer}.b"]))  # W (..., K, d_in, d_out): SingleTask's layout
            factors.append(tucker_cache)
        scale = self.dropout_scale
        h, hidden = ops.mlp_forward(X[..., None, :, :], layers, relu_last=True,
                                    masks=self._layer_masks(noise, "hidden"), scale=scale)  # (..., K, N, h)
        out, towers = ops.towers_forward(h, self.mlp_layers("towers"), self._layer_masks(noise, "towers"), scale)
        return out, TensorFactorizationCache(tuple(factors), hidden, towers)

    def _backward(self, dout: np.ndarray, cache: "TensorFactorizationCache",
                  input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dh, tower_grads = ops.towers_backward(dout, cache.towers)
        dX, hidden_grads = ops.mlp_backward(dh, cache.hidden, input_grad=input_grad)  # every task's dW, as SingleTask
        grads = self._mlp_grads("towers", tower_grads)
        for layer, ((dW, db), tucker_cache) in enumerate(zip(hidden_grads, cache.factors)):
            grads.update(zip(self._keys(layer), tucker.tucker_backward(dW, tucker_cache)))
            grads[f"hidden.{layer}.b"] = db
        return grads, (dX[..., 0, :, :] if input_grad else None)


class TensorFactorizationCache(NamedTuple):
    factors: tuple           # a tucker.TuckerCache per hidden layer: W^l from its factors
    hidden: tuple            # ops.mlp_forward's cache of the K networks with those weights
    towers: tuple
