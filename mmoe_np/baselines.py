"""The paper's three soft-parameter-sharing baselines: L2-Constrained, Cross-Stitch and Tensor-Factorization.

Ma et al. (KDD 2018, Sec. 6.2) compare MMoE with three methods that give every task parameters of its own and share
knowledge *softly*, through a constraint or a learned mix rather than by reusing the same weights:

* :class:`L2Constrained` (Duong et al., 2015): one network per task; a penalty
  ``alpha * sum_{k<l} ||theta_k - theta_l||^2`` pulls the tasks' hidden layers towards each other.
* :class:`CrossStitch` (Misra et al., 2016): one column per task; after each hidden layer a learned K x K matrix
  mixes the columns, ``x~_k = sum_l alpha[k, l] x_l``.
* :class:`TensorFactorization` (Yang & Hospedales, 2017, Tucker form): the K task weight matrices of a hidden layer
  are the slices of one tensor ``W = S x_1 U1 x_2 U2 x_3 U3`` whose ranks limit what the tasks can do differently.

All three accept any number of tasks K >= 1; each class says what K = 1 means for it. Each method's new operation
is a pure pair like those of :mod:`mmoe_np.ops` (``*_forward -> (out, cache)``,
``*_backward(dout, cache) -> grads``), gradient-checkable on its own with :func:`mmoe_np.check_op`, and each model
is the core's stacked per-task MLP with that operation added. The backward passes are derived step by step in
``docs/backprop.md``, section 10.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from . import _validation as V
from . import ops
from .init import glorot_uniform
from .models import ArrayDict, MultiTaskModel, SingleTask
from .ops import _t, sum_to_shape

__all__ = [
    "l2_tie_forward", "l2_tie_backward",
    "cross_stitch_forward", "cross_stitch_backward",
    "unfold", "fold", "mode_product_forward", "mode_product_backward",
    "tucker_forward", "tucker_backward", "tucker_decompose",
    "L2Constrained", "CrossStitch", "TensorFactorization",
]

FACTORS = ("S", "U1", "U2", "U3")  # the Tucker parameters of one hidden layer, in the order of tucker_forward


# ----------------------------------------------------------------------------------------------------------------
# L2 tie: alpha * sum over task pairs of ||theta_k - theta_l||^2
# ----------------------------------------------------------------------------------------------------------------
def l2_tie_forward(theta: np.ndarray, weight: float, task_axis: int) -> tuple[np.ndarray, tuple]:
    """Soft tie of the K tasks' copies of one parameter: ``P = weight * sum_{k<l} ||theta_k - theta_l||^2``.

    theta (..., K, *p), the task axis at ``task_axis`` (negative: -3 for stacked weights (K, d_in, d_out), -2 for
    stacked biases (K, d_out))  ->  P (...), one value per replica. Computed in the equal centred form
    ``weight * K * sum_k ||theta_k - mean_l theta_l||^2``: O(K) instead of O(K^2), and, unlike
    ``K sum_k ||theta_k||^2 - ||sum_k theta_k||^2``, free of cancellation when the tie is tight. K = 1: P = 0.
    """
    n_tasks = theta.shape[task_axis]
    centred = theta - theta.mean(axis=task_axis, keepdims=True)  # theta_k - mean_l theta_l
    summed = tuple(range(task_axis, 0))                          # the task axis and the parameter's own axes
    value = (weight * n_tasks) * np.sum(centred * centred, axis=summed)
    return value, (centred, weight * n_tasks, len(summed))


def l2_tie_backward(dP: np.ndarray, cache: tuple) -> np.ndarray:
    """``dtheta_k = dP * 2 weight K (theta_k - mean_l theta_l) = dP * 2 weight (K theta_k - sum_l theta_l)``."""
    centred, scale, n_summed = cache
    dP = np.asarray(dP)
    return (2 * scale) * dP.reshape(dP.shape + (1,) * n_summed) * centred


# ----------------------------------------------------------------------------------------------------------------
# Cross-stitch unit: x~_k = sum_l alpha[k, l] x_l
# ----------------------------------------------------------------------------------------------------------------
def cross_stitch_forward(x: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Mix the K task columns: ``x~[..., k, b, :] = sum_l alpha[..., k, l] x[..., l, b, :]``.

    x (..., K, B, h), alpha (..., K, K)  ->  x~ (..., K, B, h). A cross-stitch unit is the expert mixture of
    :func:`mmoe_np.ops.mixture_forward` with the columns as experts and *constant* gates: ``alpha`` row k, the same
    for every sample (gates (..., K, 1, K), broadcast over the batch), where MMoE's gate would compute it from x.
    """
    return ops.mixture_forward(alpha[..., :, None, :], x)


def cross_stitch_backward(dx_mixed: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """``dx_l = sum_k alpha[k, l] dx~_k`` and ``dalpha[k, l] = sum_{b, j} dx~_k[b, j] x_l[b, j]``.

    Returns ``(dx, dalpha)``. The mixture's backward gives a gate gradient per sample; alpha is shared by every
    sample, so ``sum_to_shape`` sums it over the batch (the size-1 axis of the broadcast gates), which is dropped.
    """
    dgates, dx = ops.mixture_backward(dx_mixed, cache)
    return dx, dgates[..., :, 0, :]


# ----------------------------------------------------------------------------------------------------------------
# Tucker: unfoldings, mode-n products, and the weights W = S x_1 U1 x_2 U2 x_3 U3
# ----------------------------------------------------------------------------------------------------------------
def unfold(T: np.ndarray, mode: int) -> np.ndarray:
    """Mode-n unfolding of the trailing three axes: T (..., I0, I1, I2)  ->  T_(n) (..., I_n, I_a I_b).

    Row i of T_(n) holds every entry whose n-th index is i (the mode-n fibres are its columns), the two other indices
    in C order. Kolda & Bader (2009) order the columns differently; any fixed order works, since :func:`fold` undoes it.
    """
    moved = np.moveaxis(T, mode - 3, -3)  # mode n first among the trailing three, the other two keep their order
    return moved.reshape(moved.shape[:-3] + (moved.shape[-3], -1))


def fold(M: np.ndarray, mode: int, shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`unfold`: M (..., I_n, I_a I_b)  ->  T (..., *shape), ``shape = (I0, I1, I2)``."""
    others = tuple(size for axis, size in enumerate(shape) if axis != mode)
    return np.moveaxis(M.reshape(M.shape[:-2] + (shape[mode],) + others), -3, mode - 3)


def mode_product_forward(T: np.ndarray, U: np.ndarray, mode: int) -> tuple[np.ndarray, tuple]:
    """The mode-n product ``Y = T x_n U``: ``Y[.., j, ..] = sum_i U[j, i] T[.., i, ..]`` along axis n.

    T (..., I0, I1, I2), U (..., J, I_n)  ->  Y with axis n resized to J. Unfolded it is one matrix product,
    ``Y_(n) = U T_(n)``, which is how it is computed.
    """
    T_n = unfold(T, mode)
    shape = list(T.shape[-3:])
    shape[mode] = U.shape[-2]
    return fold(U @ T_n, mode, shape), (T_n, U, mode, T.shape)


def mode_product_backward(dY: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Backward of ``Y_(n) = U T_(n)``, a matrix product: ``dU = dY_(n) T_(n)^T``, ``dT_(n) = U^T dY_(n)``.

    Returns ``(dT, dU)``, dT folded back to T's shape.
    """
    T_n, U, mode, T_shape = cache
    dY_n = unfold(dY, mode)
    dU = sum_to_shape(dY_n @ _t(T_n), U.shape)
    dT = sum_to_shape(fold(_t(U) @ dY_n, mode, T_shape[-3:]), T_shape)
    return dT, dU


def tucker_forward(S: np.ndarray, U1: np.ndarray, U2: np.ndarray, U3: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Every task's weights from one Tucker tensor: ``W = S x_1 U1 x_2 U2 x_3 U3``, stacked by task.

    S (..., r1, r2, r3), U1 (..., d_in, r1), U2 (..., d_out, r2), U3 (..., K, r3)  ->  W (..., K, d_in, d_out), where
    ``W[..., k, i, o] = sum_{a,b,c} S[a, b, c] U1[i, a] U2[o, b] U3[k, c]`` is the tensor's slice ``W[:, :, k]``,
    the weights of task k, in the (K, d_in, d_out) layout of :func:`mmoe_np.ops.dense_forward`.
    """
    A, cache1 = mode_product_forward(S, U1, 0)  # (..., d_in, r2, r3)
    B, cache2 = mode_product_forward(A, U2, 1)  # (..., d_in, d_out, r3)
    W, cache3 = mode_product_forward(B, U3, 2)  # (..., d_in, d_out, K): the paper's tensor
    return np.moveaxis(W, -1, -3), (cache1, cache2, cache3)


def tucker_backward(dW: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three mode products backwards, last first. dW (..., K, d_in, d_out)  ->  ``(dS, dU1, dU2, dU3)``."""
    cache1, cache2, cache3 = cache
    dB, dU3 = mode_product_backward(np.moveaxis(dW, -3, -1), cache3)
    dA, dU2 = mode_product_backward(dB, cache2)
    dS, dU1 = mode_product_backward(dA, cache1)
    return dS, dU1, dU2, dU3


def _ranks(value: Any, d_ins: Sequence[int], d_outs: Sequence[int], n_tasks: int) -> tuple[int, int, int]:
    """Three positive ints with r1 <= every d_in, r2 <= every d_out and r3 <= K (a rank cannot exceed its mode)."""
    try:
        ranks = tuple(value)
    except TypeError:
        raise ValueError(f"ranks must be three positive integers (r1, r2, r3); got {value!r}") from None
    if len(ranks) != 3 or any(isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Integral) or r < 1
                              for r in ranks):
        raise ValueError(f"ranks must be three positive integers (r1, r2, r3); got {value!r}")
    for name, rank, dims, what in (("r1", ranks[0], d_ins, "input width d_in"),
                                   ("r2", ranks[1], d_outs, "output width d_out"),
                                   ("r3", ranks[2], (n_tasks,), "number of tasks K")):
        for layer, dim in enumerate(dims):
            if rank > dim:
                where = f" of hidden layer {layer}" if what != "number of tasks K" else ""
                raise ValueError(f"ranks: {name} = {rank} exceeds the {what} = {dim}{where}; "
                                 f"a Tucker rank cannot be larger than the dimension it factors")
    return tuple(int(r) for r in ranks)


def tucker_decompose(W: np.ndarray, ranks: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truncated higher-order SVD (De Lathauwer et al., 2000) of stacked task weights W (K, d_in, d_out).

    With T (d_in, d_out, K) the paper's tensor: ``U_n`` = the ``r_n`` leading left singular vectors of the unfolding
    ``T_(n)`` (the leading eigenvectors of ``T_(n) T_(n)^T``), and ``S = T x_1 U1^T x_2 U2^T x_3 U3^T``. Returns
    ``(S, U1, U2, U3)`` in float64 with orthonormal columns in every factor, so :func:`tucker_forward` of them has the
    Frobenius norm of S. Exact at full ranks (d_in, d_out, K); otherwise a quasi-optimal rank-(r1, r2, r3) fit.
    Yang & Hospedales initialise their model this way from the stacked weights of trained single-task networks.
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 3:
        raise ValueError(f"W must be stacked task weights of shape (K, d_in, d_out); got shape {W.shape}")
    ranks = _ranks(ranks, (W.shape[1],), (W.shape[2],), W.shape[0])
    T = np.moveaxis(W, 0, -1)  # (d_in, d_out, K)
    factors = []
    for mode, rank in enumerate(ranks):
        T_n = unfold(T, mode)
        _, eigenvectors = np.linalg.eigh(T_n @ T_n.T)  # ascending eigenvalues: a complete orthonormal basis
        factors.append(eigenvectors[:, ::-1][:, :rank].copy())
    S = T
    for mode, U in enumerate(factors):
        S, _ = mode_product_forward(S, U.T, mode)  # project every mode onto its factor's columns
    return (np.ascontiguousarray(S), *factors)


# ----------------------------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------------------------
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
        if not isinstance(tie_towers, (bool, np.bool_)):
            raise ValueError(f"tie_towers must be True or False; got {tie_towers!r}")
        self.tie_towers = bool(tie_towers)
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
            tie, cache = l2_tie_forward(self.params[name], self.l2_weight, task_axis)
            value = value + tie
            grads[name] = l2_tie_backward(np.ones_like(tie), cache)
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
    """

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), alpha_self: float = 0.9, **kwargs: Any) -> None:
        self.alpha_self = V.positive_float("alpha_self", alpha_self, allow_zero=True)
        if self.alpha_self > 1:
            raise ValueError(f"alpha_self must be in [0, 1] (alpha starts as a convex mix); got {alpha_self!r}")
        super().__init__(n_features, tasks, hidden_units, tower_units, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {**super()._sizes(), "alpha_self": self.alpha_self}

    def _build(self, rng: np.random.Generator) -> None:
        K = self.n_tasks
        super()._build(rng)  # the columns and the towers, exactly as SingleTask's
        if K == 1:
            alpha = np.ones((1, 1))
        else:
            alpha = np.full((K, K), (1 - self.alpha_self) / (K - 1))
            np.fill_diagonal(alpha, self.alpha_self)
        for layer in range(len(self.hidden_units)):
            self.params[f"stitch.{layer}.alpha"] = alpha.astype(self.dtype)

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        x, caches = X[..., None, :, :], []  # (..., 1, N, d): every column reads the same x
        for layer, (W, b) in enumerate(self._layers("hidden")):
            a, layer_cache = ops.mlp_forward(x, [(W, b)], relu_last=True)                 # (..., K, N, h_l)
            x, stitch_cache = cross_stitch_forward(a, self.params[f"stitch.{layer}.alpha"])  # (..., K, N, h_l)
            caches.append((layer_cache, stitch_cache))
        out, tower_cache = self._towers_forward(x)
        return out, (caches, tower_cache)

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        caches, tower_cache = cache
        dx, grads = self._towers_backward(dout, tower_cache)
        for layer in reversed(range(len(caches))):
            layer_cache, stitch_cache = caches[layer]
            da, grads[f"stitch.{layer}.alpha"] = cross_stitch_backward(dx, stitch_cache)
            dx, [(dW, db)] = ops.mlp_backward(da, layer_cache, need_dx=input_grad or layer > 0)
            grads[f"hidden.{layer}.W"], grads[f"hidden.{layer}.b"] = dW, db
        return grads, (dx[..., 0, :, :] if input_grad else None)  # summed over the K columns that all read x


class TensorFactorization(MultiTaskModel):
    """Tensor-Factorization (Yang & Hospedales, 2017, DMTRL in Tucker form): one network per task whose hidden weights
    are the slices of one low-rank tensor per layer,

        ``W^l = S^l x_1 U1^l x_2 U2^l x_3 U3^l`` (d_in x d_out x K);  task k: ``relu(x W^l[:, :, k] + b^l_k)``,

    so the tasks share the core and the input/output factors, and differ only through U3 (a task's r3 coordinates).
    W itself is never a parameter; it is rebuilt from the factors at every forward pass. The towers are per task.
    Full ranks (d_in, d_out, K) can express any weights (independent networks); ``ranks = (r1, r2, 1)`` gives every
    task proportional weight matrices; K = 1 (r3 = 1) is one network with rank-limited layers ``U1 S U2^T``.

    Initialisation: like :class:`SingleTask`, draw Glorot-uniform weights (K, d_in, d_out) per layer (with the same
    seed, the same numbers), then keep their truncated HOSVD (:func:`tucker_decompose`), as DMTRL initialises from
    single-task weights. The factors then have orthonormal columns, so ``||W||_F = ||S||_F``, and S is scaled by
    ``||W_glorot||_F / ||S||_F`` so that W keeps the Glorot weights' total energy: the std of W equals the Glorot
    std ``sqrt(2 / (d_in + d_out))`` (up to sampling) at every rank. At full ranks the scale is 1 and W starts as the
    Glorot draw itself. Biases start at 0.

    Parameters (sizes = (n_features, *hidden_units); layer l maps d_in = sizes[l] to d_out = sizes[l+1]):

    * ``hidden.{l}.S`` (r1, r2, r3): the core
    * ``hidden.{l}.U1`` (d_in, r1), ``hidden.{l}.U2`` (d_out, r2), ``hidden.{l}.U3`` (K, r3): the factors
    * ``hidden.{l}.b`` (K, d_out): each task's bias
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1

    ``ranks = (r1, r2, r3)`` is shared by every hidden layer, so r1 <= every d_in, r2 <= every hidden width, r3 <= K.
    """

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), *, ranks: Sequence[int], **kwargs: Any) -> None:
        self.hidden_units = V.units("hidden_units", hidden_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        self.ranks = ranks  # checked against the layer sizes and K in _build, once those are validated
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"hidden_units": self.hidden_units, "tower_units": self.tower_units, "ranks": self.ranks}

    def _build(self, rng: np.random.Generator) -> None:
        sizes = (self.n_features, *self.hidden_units)
        self.ranks = _ranks(self.ranks, sizes[:-1], sizes[1:], self.n_tasks)
        for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = glorot_uniform(rng, (self.n_tasks, d_in, d_out))  # what SingleTask draws for this layer
            S, *factors = tucker_decompose(W, self.ranks)
            S *= np.linalg.norm(W) / np.linalg.norm(S)           # restore the energy the truncation dropped
            for name, value in zip(FACTORS, (S, *factors)):
                self.params[f"hidden.{layer}.{name}"] = np.ascontiguousarray(value, dtype=self.dtype)
            self.params[f"hidden.{layer}.b"] = np.zeros((self.n_tasks, d_out), dtype=self.dtype)
        self._add_towers(rng, self.hidden_units[-1])

    def weights(self, layer: int) -> np.ndarray:
        """The task weights of hidden layer ``layer`` rebuilt from its factors: (..., K, d_in, d_out)."""
        if not isinstance(layer, numbers.Integral) or not 0 <= layer < len(self.hidden_units):
            raise ValueError(f"layer must be a hidden layer index in [0, {len(self.hidden_units)}); got {layer!r}")
        return tucker_forward(*(self.params[f"hidden.{layer}.{name}"] for name in FACTORS))[0]

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        layers, tucker_caches = [], []
        for layer in range(len(self.hidden_units)):
            W, tucker_cache = tucker_forward(*(self.params[f"hidden.{layer}.{name}"] for name in FACTORS))
            layers.append((W, self.params[f"hidden.{layer}.b"]))  # W (..., K, d_in, d_out): SingleTask's layout
            tucker_caches.append(tucker_cache)
        h, hidden_cache = ops.mlp_forward(X[..., None, :, :], layers, relu_last=True)  # (..., K, N, h)
        out, tower_cache = self._towers_forward(h)
        return out, (tucker_caches, hidden_cache, tower_cache)

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        tucker_caches, hidden_cache, tower_cache = cache
        dh, grads = self._towers_backward(dout, tower_cache)
        dX, layer_grads = ops.mlp_backward(dh, hidden_cache, need_dx=input_grad)  # every task's dW, as SingleTask
        for layer, ((dW, db), tucker_cache) in enumerate(zip(layer_grads, tucker_caches)):
            grads.update(zip((f"hidden.{layer}.{name}" for name in FACTORS), tucker_backward(dW, tucker_cache)))
            grads[f"hidden.{layer}.b"] = db
        return grads, (dX[..., 0, :, :] if input_grad else None)
