"""The functional core: every operation is a pure pair ``*_forward -> (out, cache)`` / ``*_backward(dout, cache)``.

Shapes are written over the trailing axes; any leading axes ``...`` broadcast. Two kinds of leading axes appear:

* a **stack** axis ``S`` just before the batch axis: ``E`` experts, ``G`` gates or ``K`` towers computed in one matmul
  (``x (..., S|1, B, d_in) @ W (..., S, d_in, d_out)``);
* a **replica** axis ``R`` in front of everything: ``R`` independent models trained in lock-step.

When an input was broadcast in the forward pass (one ``x`` feeding every expert and every gate, one gate shared by
all tasks, one data set shared by all replicas), its gradient is the *sum* of the gradients of every place it was
used. :func:`sum_to_shape` does exactly that, so every backward returns gradients with the shapes of its inputs.

The derivations are in ``docs/backprop.md``.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "sum_to_shape",
    "dense_forward", "dense_backward",
    "relu_forward", "relu_backward", "ReluCache",
    "mlp_forward", "mlp_backward",
    "softmax", "softmax_forward", "softmax_backward",
    "gate_forward", "gate_backward",
    "mixture_forward", "mixture_backward",
    "sigmoid", "log_sigmoid",
    "mse_forward", "mse_backward",
    "bce_with_logits_forward", "bce_with_logits_backward",
    "multitask_loss_forward", "multitask_loss_backward",
]


def _t(a: np.ndarray) -> np.ndarray:
    """Transpose the two trailing (matrix) axes."""
    return np.swapaxes(a, -1, -2)


def sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched to reach its shape.

    A tensor used in several places receives the sum of their gradients (the multivariate chain rule).
    """
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ----------------------------------------------------------------------------------------------------------------
# Dense (affine) layer
# ----------------------------------------------------------------------------------------------------------------
def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Affine map ``y = x @ W + b``.

    x (..., B, d_in), W (..., d_in, d_out), b (..., d_out)  ->  y (..., B, d_out).
    With a stack axis (x (..., 1, B, d_in), W (..., S, d_in, d_out), b (..., S, d_out)) this is S layers in one matmul.
    """
    y = x @ W + b[..., None, :]
    return y, (x, W, b.shape)


def dense_backward(dy: np.ndarray, cache: tuple,
                   need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``y = x @ W + b``: ``dx = dy W^T``, ``dW = x^T dy``, ``db = sum_batch dy``.

    Each is summed back to the shape of its input (see :func:`sum_to_shape`). ``need_dx=False`` skips ``dx``
    (returned as None): training does not need the gradient of the data, and for stacked experts it is the most
    expensive of the three (one ``dy_e W_e^T`` per expert, then their sum).
    """
    x, W, b_shape = cache
    dx = sum_to_shape(dy @ _t(W), x.shape) if need_dx else None
    dW = sum_to_shape(_t(x) @ dy, W.shape)
    db = sum_to_shape(dy.sum(axis=-2), b_shape)
    return dx, dW, db


# ----------------------------------------------------------------------------------------------------------------
# ReLU
# ----------------------------------------------------------------------------------------------------------------
class ReluCache(NamedTuple):
    """What a ReLU remembers: its input (the pre-activation). Gradient checkers read it to stay off the kink at 0."""

    pre_activation: np.ndarray


def relu_forward(z: np.ndarray) -> tuple[np.ndarray, ReluCache]:
    """``a = max(z, 0)`` elementwise."""
    return np.maximum(z, 0), ReluCache(z)


def relu_backward(da: np.ndarray, cache: ReluCache) -> np.ndarray:
    """``dz = da * [z > 0]`` (the subgradient 0 is taken at z = 0)."""
    return da * (cache.pre_activation > 0)


# ----------------------------------------------------------------------------------------------------------------
# Multi-layer perceptron: dense -> ReLU -> ... -> dense [-> ReLU]
# ----------------------------------------------------------------------------------------------------------------
def mlp_forward(x: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]],
                relu_last: bool) -> tuple[np.ndarray, list]:
    """A stack of dense layers with ReLU between them; ``relu_last`` also puts a ReLU after the last one.

    Experts and bottoms end in a ReLU (``relu_last=True``); towers end in a linear output (``relu_last=False``).
    ``layers`` is ``[(W_0, b_0), (W_1, b_1), ...]`` with the shapes of :func:`dense_forward`.
    """
    caches = []
    for i, (W, b) in enumerate(layers):
        x, dense_cache = dense_forward(x, W, b)
        relu_cache = None
        if relu_last or i < len(layers) - 1:
            x, relu_cache = relu_forward(x)
        caches.append((dense_cache, relu_cache))
    return x, caches


def mlp_backward(dy: np.ndarray, caches: list,
                 need_dx: bool = True) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
    """Backpropagate through :func:`mlp_forward`, last layer first. Returns ``dx`` and ``[(dW_0, db_0), ...]``.

    With ``need_dx=False`` the first layer skips the gradient of its input and ``dx`` is None.
    """
    grads = []
    for i in reversed(range(len(caches))):
        dense_cache, relu_cache = caches[i]
        if relu_cache is not None:
            dy = relu_backward(dy, relu_cache)
        dy, dW, db = dense_backward(dy, dense_cache, need_dx=need_dx or i > 0)
        grads.append((dW, db))
    return dy, grads[::-1]


# ----------------------------------------------------------------------------------------------------------------
# Softmax and the softmax gate
# ----------------------------------------------------------------------------------------------------------------
def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis: subtracting ``max(z)`` leaves the result unchanged and
    keeps every ``exp`` argument <= 0, so logits of +-1e4 neither overflow nor produce NaN."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p = softmax(z)`` over the last axis; the cache is ``p`` itself."""
    p = softmax(z)
    return p, p


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Jacobian-vector product of softmax: ``dz = p * (dp - <dp, p>)`` (never forms the E x E Jacobian)."""
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def gate_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Softmax gate ``g = softmax(x @ W + b)`` over the experts.

    x (..., 1, B, d), W (..., G, d, E), b (..., G, E)  ->  g (..., G, B, E), every row summing to 1.
    G = n_tasks for MMoE (one gate per task, all in one matmul) and G = 1 for OMoE.
    """
    z, dense_cache = dense_forward(x, W, b)
    g, softmax_cache = softmax_forward(z)
    return g, (dense_cache, softmax_cache)


def gate_backward(dg: np.ndarray, cache: tuple,
                  need_dx: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of the gate: softmax JVP, then the dense layer. Returns ``(dx, dW, db)`` (dx None without need_dx)."""
    dense_cache, softmax_cache = cache
    dz = softmax_backward(dg, softmax_cache)
    return dense_backward(dz, dense_cache, need_dx)


# ----------------------------------------------------------------------------------------------------------------
# The expert mixture
# ----------------------------------------------------------------------------------------------------------------
def mixture_forward(gates: np.ndarray, experts: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Gate-weighted sum of the experts: ``m[..., k, b, :] = sum_e gates[..., k, b, e] * experts[..., e, b, :]``.

    gates (..., G, B, E), experts (..., E, B, h)  ->  m (..., G, B, h).
    Computed as one small (G x E) @ (E x h) product per sample, batched over the samples.
    """
    g_b = np.swapaxes(gates, -3, -2)    # (..., B, G, E)
    f_b = np.swapaxes(experts, -3, -2)  # (..., B, E, h)
    m = np.swapaxes(g_b @ f_b, -3, -2)  # (..., G, B, h)
    return m, (g_b, f_b, gates.shape, experts.shape)


def mixture_backward(dm: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Per sample ``m = g f``, so ``dg = dm f^T`` and ``df = g^T dm``. Returns ``(dgates, dexperts)``.

    ``df`` sums the contributions of every gate that used the expert: this is where tasks share experts.
    """
    g_b, f_b, gates_shape, experts_shape = cache
    dm_b = np.swapaxes(dm, -3, -2)                       # (..., B, G, h)
    dgates = np.swapaxes(dm_b @ _t(f_b), -3, -2)         # (..., G, B, E)
    dexperts = np.swapaxes(_t(g_b) @ dm_b, -3, -2)       # (..., E, B, h)
    return sum_to_shape(dgates, gates_shape), sum_to_shape(dexperts, experts_shape)


# ----------------------------------------------------------------------------------------------------------------
# Losses: one value per task, the mean over the batch axis (-2)
# ----------------------------------------------------------------------------------------------------------------
def sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic function: only ``exp(-|z|)`` is ever evaluated, so it cannot overflow."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable ``log(sigmoid(z)) = min(z, 0) - log1p(exp(-|z|))``; finite for any finite z."""
    return np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))


def mse_forward(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Mean squared error per task: ``L_k = mean_b (pred[b, k] - target[b, k])^2``.

    pred (..., B, K), target (..., B, K) (or broadcastable to it)  ->  L (..., K).
    """
    diff = pred - target
    return np.mean(diff * diff, axis=-2), (diff, pred.shape)


def mse_backward(dL: np.ndarray, cache: tuple) -> np.ndarray:
    """``dpred[b, k] = dL[k] * 2 (pred[b, k] - target[b, k]) / B``."""
    diff, pred_shape = cache
    return sum_to_shape(dL[..., None, :] * (2.0 / diff.shape[-2]) * diff, pred_shape)


def bce_with_logits_forward(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Binary cross-entropy on logits per task: ``L_k = mean_b -[t log s(z) + (1 - t) log(1 - s(z))]``.

    Written as ``-t log s(z) - (1 - t) log s(-z)`` with the stable :func:`log_sigmoid`, so logits of +-1e4 give
    finite losses. logits (..., B, K), target (..., B, K) in {0, 1}  ->  L (..., K).
    """
    loss = -(target * log_sigmoid(logits) + (1 - target) * log_sigmoid(-logits))
    return np.mean(loss, axis=-2), (logits, target)


def bce_with_logits_backward(dL: np.ndarray, cache: tuple) -> np.ndarray:
    """``dz[b, k] = dL[k] * (sigmoid(z[b, k]) - t[b, k]) / B``."""
    logits, target = cache
    return sum_to_shape(dL[..., None, :] * (sigmoid(logits) - target) / logits.shape[-2], logits.shape)


_TASK_LOSSES = {
    "regression": (mse_forward, mse_backward),
    "binary": (bce_with_logits_forward, bce_with_logits_backward),
}


def multitask_loss_forward(out: np.ndarray, Y: np.ndarray, tasks: Sequence[str],
                           weights: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple]:
    """Total loss ``sum_k w_k L_k``: MSE for "regression" tasks, BCE on logits for "binary" ones.

    out (..., B, K) raw outputs, Y (..., B, K) targets, weights (K,)  ->  (total (...), per_task (..., K)).
    """
    per_task = np.empty(np.broadcast_shapes(out.shape, Y.shape)[:-2] + (len(tasks),), dtype=out.dtype)
    caches = {}  # kind -> (its columns, its loss cache)
    for kind, (forward, _) in _TASK_LOSSES.items():
        cols = [k for k, t in enumerate(tasks) if t == kind]
        if cols:
            loss, cache = forward(out[..., cols], Y[..., cols])
            caches[kind] = (cols, cache)
            per_task[..., cols] = loss
    total = per_task @ weights
    return (total, per_task), (caches, weights, out.shape)


def multitask_loss_backward(dtotal: np.ndarray, cache: tuple) -> np.ndarray:
    """``dL_k = dtotal * w_k``, then each task's loss backward. dtotal (...)  ->  dout (..., B, K)."""
    caches, weights, out_shape = cache
    dper_task = np.asarray(dtotal)[..., None] * weights
    dout = np.zeros(out_shape, dtype=dper_task.dtype)
    for kind, (cols, loss_cache) in caches.items():
        dout[..., cols] = _TASK_LOSSES[kind][1](dper_task[..., cols], loss_cache)
    return dout
