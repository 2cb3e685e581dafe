"""Tucker tensors: unfoldings, mode-n products, the weights ``W = S x_1 U1 x_2 U2 x_3 U3`` and their HOSVD.

Tensor-Factorization (:class:`mmoe_np.models.TensorFactorization`) generates the K task weight matrices of a hidden
layer as the slices of one low-rank tensor. The forward/backward pairs follow the convention of :mod:`mmoe_np.ops`
(``*_forward -> (out, cache)``, ``*_backward(dout, cache) -> grads``, leading axes broadcast); the derivation is in
``docs/backprop.md``, section 10.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import ops

__all__ = ["FACTORS", "unfold", "fold", "mode_product_forward", "mode_product_backward", "ModeProductCache",
           "tucker_forward", "tucker_backward", "TuckerCache", "tucker_decompose", "check_ranks"]

FACTORS = ("S", "U1", "U2", "U3")  # the Tucker parameters of one layer, in the order of tucker_forward


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


class ModeProductCache(NamedTuple):
    T_unfolded: np.ndarray   # T_(n)
    U: np.ndarray
    mode: int
    T_shape: tuple


def mode_product_forward(T: np.ndarray, U: np.ndarray, mode: int) -> tuple[np.ndarray, ModeProductCache]:
    """The mode-n product ``Y = T x_n U``: ``Y[.., j, ..] = sum_i U[j, i] T[.., i, ..]`` along axis n.

    T (..., I0, I1, I2), U (..., J, I_n)  ->  Y with axis n resized to J. Unfolded it is one matrix product,
    ``Y_(n) = U T_(n)``, which is how it is computed.
    """
    T_n = unfold(T, mode)
    shape = list(T.shape[-3:])
    shape[mode] = U.shape[-2]
    return fold(U @ T_n, mode, shape), ModeProductCache(T_n, U, mode, T.shape)


def mode_product_backward(dY: np.ndarray, cache: ModeProductCache) -> tuple[np.ndarray, np.ndarray]:
    """Backward of ``Y_(n) = U T_(n)``, a matrix product: ``dU = dY_(n) T_(n)^T``, ``dT_(n) = U^T dY_(n)``.

    Returns ``(dT, dU)``, dT folded back to T's shape.
    """
    dY_n = unfold(dY, cache.mode)
    dU = ops.sum_to_shape(dY_n @ ops.transpose(cache.T_unfolded), cache.U.shape)
    dT_n = ops.transpose(cache.U) @ dY_n
    dT = ops.sum_to_shape(fold(dT_n, cache.mode, cache.T_shape[-3:]), cache.T_shape)
    return dT, dU


class TuckerCache(NamedTuple):
    mode1: ModeProductCache  # A = S x_1 U1
    mode2: ModeProductCache  # B = A x_2 U2
    mode3: ModeProductCache  # W = B x_3 U3


def tucker_forward(S: np.ndarray, U1: np.ndarray, U2: np.ndarray, U3: np.ndarray) -> tuple[np.ndarray, TuckerCache]:
    """Every task's weights from one Tucker tensor: ``W = S x_1 U1 x_2 U2 x_3 U3``, stacked by task.

    S (..., r1, r2, r3), U1 (..., d_in, r1), U2 (..., d_out, r2), U3 (..., K, r3)  ->  W (..., K, d_in, d_out), where
    ``W[..., k, i, o] = sum_{a,b,c} S[a, b, c] U1[i, a] U2[o, b] U3[k, c]`` is the tensor's slice ``W[:, :, k]``,
    the weights of task k, in the (K, d_in, d_out) layout of :func:`mmoe_np.ops.dense_forward`.
    """
    A, cache1 = mode_product_forward(S, U1, 0)  # (..., d_in, r2, r3)
    B, cache2 = mode_product_forward(A, U2, 1)  # (..., d_in, d_out, r3)
    W, cache3 = mode_product_forward(B, U3, 2)  # (..., d_in, d_out, K): the paper's tensor
    return np.moveaxis(W, -1, -3), TuckerCache(cache1, cache2, cache3)


def tucker_backward(dW: np.ndarray, cache: TuckerCache) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three mode products backwards, last first. dW (..., K, d_in, d_out)  ->  ``(dS, dU1, dU2, dU3)``."""
    dB, dU3 = mode_product_backward(np.moveaxis(dW, -3, -1), cache.mode3)
    dA, dU2 = mode_product_backward(dB, cache.mode2)
    dS, dU1 = mode_product_backward(dA, cache.mode1)
    return dS, dU1, dU2, dU3


def check_ranks(ranks: Any, d_ins: Sequence[int], d_outs: Sequence[int], n_tasks: int) -> tuple[int, int, int]:
    """``ranks`` as three positive ints ``(r1, r2, r3)`` with r1 <= every d_in, r2 <= every d_out and r3 <= n_tasks
    (a Tucker rank cannot exceed the dimension it factors); a ValueError naming ``ranks`` otherwise."""
    try:
        values = tuple(ranks)
    except TypeError:
        raise ValueError(f"ranks must be three positive integers (r1, r2, r3); got {ranks!r}") from None
    if len(values) != 3 or any(isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Integral) or r < 1
                               for r in values):
        raise ValueError(f"ranks must be three positive integers (r1, r2, r3); got {ranks!r}")
    for name, rank, dims, what in (("r1", values[0], d_ins, "input width d_in"),
                                   ("r2", values[1], d_outs, "output width d_out"),
                                   ("r3", values[2], (n_tasks,), "number of tasks K")):
        for layer, dim in enumerate(dims):
            if rank > dim:
                where = f" of hidden layer {layer}" if what != "number of tasks K" else ""
                raise ValueError(f"ranks: {name} = {rank} exceeds the {what} = {dim}{where}; "
                                 f"a Tucker rank cannot be larger than the dimension it factors")
    return tuple(int(r) for r in values)


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
    ranks = check_ranks(ranks, (W.shape[1],), (W.shape[2],), W.shape[0])
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
