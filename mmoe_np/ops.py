"""The functional core: every operation is a pure pair ``*_forward -> (out, cache)`` / ``*_backward(dout, cache)``.

Shapes are written over the trailing axes; any leading axes ``...`` broadcast. Two kinds of leading axes appear:

* a **stack** axis ``S`` just before the batch axis: ``E`` experts, ``G`` gates or ``K`` towers computed in one matmul
  (``x (..., S|1, B, d_in) @ W (..., S, d_in, d_out)``);
* a **replica** axis ``R`` in front of everything: ``R`` independent models trained in lock-step.

When an input was broadcast in the forward pass (one ``x`` feeding every expert and every gate, one gate shared by
all tasks, one data set shared by all replicas), its gradient is the *sum* of the gradients of every place it was
used. :func:`sum_to_shape` does exactly that, so every backward returns gradients with the shapes of its inputs.

Every cache is a NamedTuple that names what the backward pass reads. A backward pass whose first input may be data
takes ``input_grad``: with ``input_grad=False`` it skips the gradient of that input (returned as None), which
training never needs. The Tucker ops live in :mod:`mmoe_np.tucker`; the derivations are in ``docs/backprop.md``.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Sequence

import numpy as np

__all__ = [
    "transpose", "sum_to_shape",
    "dense_forward", "dense_backward", "DenseCache",
    "relu_forward", "relu_backward", "ReluCache",
    "keep_mask", "dropout_forward", "dropout_backward", "DropoutCache",
    "mlp_forward", "mlp_backward", "LayerCache",
    "towers_forward", "towers_backward",
    "softmax", "softmax_forward", "softmax_backward", "last_axis_reduce",
    "gate_forward", "gate_backward", "GateCache",
    "mixture_forward", "mixture_backward", "MixtureCache",
    "cross_stitch_forward", "cross_stitch_backward",
    "l2_tie_forward", "l2_tie_backward", "L2TieCache",
    "sigmoid", "log_sigmoid",
    "mse_forward", "mse_backward", "MSECache",
    "bce_with_logits_forward", "bce_with_logits_backward", "BCECache",
    "multitask_loss_forward", "multitask_loss_backward", "task_losses_backward", "MultitaskLossCache",
]

Layers = Sequence[tuple[np.ndarray, np.ndarray]]  # [(W_0, b_0), (W_1, b_1), ...]


def transpose(a: np.ndarray) -> np.ndarray:
    """Transpose the two trailing (matrix) axes."""
    return a.swapaxes(-1, -2)


def sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched to reach its shape.

    A tensor used in several places receives the sum of their gradients (the multivariate chain rule).
    """
    if grad.shape == shape:
        return grad
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
class DenseCache(NamedTuple):
    x: np.ndarray            # the layer's input
    W: np.ndarray            # its weights
    b_shape: tuple           # the shape of its bias (the bias itself is not needed)


def dense_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, DenseCache]:
    """Affine map ``y = x @ W + b``.

    x (..., B, d_in), W (..., d_in, d_out), b (..., d_out)  ->  y (..., B, d_out).
    With a stack axis (x (..., 1, B, d_in), W (..., S, d_in, d_out), b (..., S, d_out)) this is S layers in one matmul.
    """
    y = x @ W
    y += b[..., None, :]  # in place: one temporary fewer (y already has the broadcast shape of x @ W and b)
    return y, DenseCache(x, W, b.shape)


def dense_backward(dy: np.ndarray, cache: DenseCache,
                   input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``y = x @ W + b``: ``dx = dy W^T``, ``dW = x^T dy``, ``db = sum_batch dy``.

    Each is summed back to the shape of its input (see :func:`sum_to_shape`). ``input_grad=False`` skips ``dx``
    (returned as None): training does not need the gradient of the data, and for stacked experts it is the most
    expensive of the three (one ``dy_e W_e^T`` per expert, then their sum).
    """
    dx = sum_to_shape(dy @ transpose(cache.W), cache.x.shape) if input_grad else None
    if dy.shape[-2] == 1:  # one sample: x^T dy is the outer product, which matmul (a k = 1 GEMM) does ~4x slower
        dW = sum_to_shape(transpose(cache.x) * dy, cache.W.shape)
    else:
        dW = sum_to_shape(transpose(cache.x) @ dy, cache.W.shape)
    db = sum_to_shape(dy.sum(axis=-2), cache.b_shape)
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
# Dropout (inverted): keep each unit with probability 1 - p and scale the kept ones by 1 / (1 - p)
# ----------------------------------------------------------------------------------------------------------------
class DropoutCache(NamedTuple):
    mask: np.ndarray         # 0/1 (or False/True): which units were kept
    scale: float             # 1 / (1 - p), the factor of the kept units


def keep_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    """A boolean mask of ``shape``: each entry True (kept) with probability ``1 - p``, independently, drawn from
    ``rng`` (a pass is deterministic given the rng's state). p in [0, 1)."""
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1) (the probability of dropping a unit); got {p!r}")
    return rng.random(shape) >= p


def dropout_forward(x: np.ndarray, mask: np.ndarray, scale: float) -> tuple[np.ndarray, DropoutCache]:
    """Inverted dropout with an explicit mask: ``out = x * mask * scale``, ``scale = 1 / (1 - p)``.

    x (...), mask broadcastable to x (0/1 or boolean, from :func:`keep_mask`)  ->  out of x's shape and dtype.
    ``E[mask * scale] = (1 - p) / (1 - p) = 1``, so every unit keeps its expected value and a pass without dropout
    needs no rescaling. For a fixed mask the op is linear in x (a diagonal map): that is what a gradient check holds.
    """
    out = x * mask
    out *= scale  # in place: x's dtype is kept (a Python float does not promote float32)
    return out, DropoutCache(mask, scale)


def dropout_backward(dout: np.ndarray, cache: DropoutCache) -> np.ndarray:
    """``dx = dout * mask * scale``: the same diagonal map (a dropped unit gets no gradient)."""
    dx = dout * cache.mask
    dx *= cache.scale
    return dx


# ----------------------------------------------------------------------------------------------------------------
# Multi-layer perceptron: dense -> ReLU [-> dropout] -> ... -> dense [-> ReLU], and the K task towers
# ----------------------------------------------------------------------------------------------------------------
class LayerCache(NamedTuple):
    """One MLP layer; an MLP's cache is the tuple of its layers' caches, first layer first."""

    dense: DenseCache
    relu: ReluCache | None   # None after a linear last layer
    dropout: DropoutCache | None = None  # None without a dropout mask for this layer


def mlp_forward(x: np.ndarray, layers: Layers, relu_last: bool, masks: Sequence[np.ndarray | None] | None = None,
                scale: float = 1.0) -> tuple[np.ndarray, tuple[LayerCache, ...]]:
    """A stack of dense layers with ReLU between them; ``relu_last`` also puts a ReLU after the last one.

    Experts and bottoms end in a ReLU (``relu_last=True``); towers end in a linear output (``relu_last=False``).
    ``layers`` is ``[(W_0, b_0), (W_1, b_1), ...]`` with the shapes of :func:`dense_forward`.
    ``masks`` (a training pass with dropout): ``masks[i]`` drops units of layer i's output, after its ReLU
    (:func:`dropout_forward` with ``scale``); a missing or None entry leaves that layer alone.
    """
    masks = () if masks is None else masks
    caches = []
    for i, (W, b) in enumerate(layers):
        x, dense_cache = dense_forward(x, W, b)
        relu_cache = dropout_cache = None
        if relu_last or i < len(layers) - 1:
            x, relu_cache = relu_forward(x)
        if i < len(masks) and masks[i] is not None:
            x, dropout_cache = dropout_forward(x, masks[i], scale)
        caches.append(LayerCache(dense_cache, relu_cache, dropout_cache))
    return x, tuple(caches)


def mlp_backward(dy: np.ndarray, cache: Sequence[LayerCache],
                 input_grad: bool = True) -> tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]]:
    """Backpropagate through :func:`mlp_forward`, last layer first. Returns ``dx`` and ``[(dW_0, db_0), ...]``.

    With ``input_grad=False`` the first layer skips the gradient of its input and ``dx`` is None.
    """
    grads = []
    for i in reversed(range(len(cache))):
        if cache[i].dropout is not None:
            dy = dropout_backward(dy, cache[i].dropout)
        if cache[i].relu is not None:
            dy = relu_backward(dy, cache[i].relu)
        dy, dW, db = dense_backward(dy, cache[i].dense, input_grad=input_grad or i > 0)
        grads.append((dW, db))
    return dy, grads[::-1]


def towers_forward(z: np.ndarray, layers: Layers, masks: Sequence[np.ndarray | None] | None = None,
                   scale: float = 1.0) -> tuple[np.ndarray, tuple[LayerCache, ...]]:
    """K task towers in one stacked MLP with a linear last layer of width 1: z (..., K|1, N, h) -> out (..., N, K).

    Tower k reads ``z[..., k, :, :]`` (or the one shared z); ``layers`` have a leading stack axis K. ``masks``:
    dropout after the hidden layers' ReLUs, as in :func:`mlp_forward` (never on the output layer).
    """
    y, cache = mlp_forward(z, layers, relu_last=False, masks=masks, scale=scale)  # (..., K, N, 1)
    return transpose(y[..., 0]), cache


def towers_backward(dout: np.ndarray,
                    cache: Sequence[LayerCache]) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """dout (..., N, K) -> ``dz`` (the shape of z: a shared z gets the sum over the towers) and the layer grads."""
    return mlp_backward(transpose(dout)[..., None], cache)


# ----------------------------------------------------------------------------------------------------------------
# Softmax and the softmax gate
# ----------------------------------------------------------------------------------------------------------------
def last_axis_reduce(ufunc: np.ufunc, a: np.ndarray) -> np.ndarray:
    """``ufunc.reduce`` over the last axis, keeping it (..., 1): the max with ``np.maximum``, the sum with ``np.add``.

    NumPy reduces a short trailing axis (E = 8 experts) at ~5 ns per element; for many rows, E - 1 elementwise
    calls over whole columns are ~10x faster. A maximum is exact either way; a sum then runs left to right, which
    can differ from ``a.sum`` in the last bit.
    """
    if a.shape[-1] > 32 or a.size < 512 * a.shape[-1]:
        return ufunc.reduce(a, axis=-1, keepdims=True)
    out = a[..., :1].copy()
    for i in range(1, a.shape[-1]):
        ufunc(out, a[..., i:i + 1], out=out)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis: subtracting ``max(z)`` leaves the result unchanged and
    keeps every ``exp`` argument <= 0, so logits of +-1e4 neither overflow nor produce NaN."""
    e = z - last_axis_reduce(np.maximum, z)
    np.exp(e, out=e)
    e /= last_axis_reduce(np.add, e)
    return e


def softmax_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p = softmax(z)`` over the last axis; the cache is ``p`` itself (all the backward pass needs)."""
    p = softmax(z)
    return p, p


def softmax_backward(dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product (VJP) of softmax: ``dz = p * (dp - <dp, p>)`` (never forms the E x E Jacobian)."""
    dz = dp * p
    dz -= p * last_axis_reduce(np.add, dz)  # p * dp - p <dp, p>
    return dz


class GateCache(NamedTuple):
    """The cache of :func:`gate_forward` (used by no model: see there)."""

    dense: DenseCache        # the logits z = x W + b
    probs: np.ndarray        # the softmax cache: the gate weights g themselves


def gate_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, GateCache]:
    """Softmax gate ``g = softmax(x @ W + b)`` over the experts.

    x (..., 1, B, d), W (..., G, d, E), b (..., G, E)  ->  g (..., G, B, E), every row summing to 1.
    G = n_tasks for MMoE (one gate per task, all in one matmul) and G = 1 for OMoE.

    Used by no model: the mixtures compute every gate's logits in their fused first layer, together with the
    experts' first layers (``z = x [W_1..W_E | V_1..V_G] + b``, one dense layer, ``MixtureOfExperts._first_layer``),
    then this same softmax per gate. This standalone pair (with :func:`gate_backward`) is that gate on its own, kept
    for teaching (``docs/backprop.md``) and the examples, and gradient-checked like every op.
    """
    z, dense_cache = dense_forward(x, W, b)
    g, softmax_cache = softmax_forward(z)
    return g, GateCache(dense_cache, softmax_cache)


def gate_backward(dg: np.ndarray, cache: GateCache,
                  input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of the gate: the softmax VJP, then the dense layer. Returns ``(dx, dW, db)`` (dx None without
    input_grad). Used by no model (see :func:`gate_forward`): the mixtures' fused first layer computes the same."""
    dz = softmax_backward(dg, cache.probs)
    return dense_backward(dz, cache.dense, input_grad)


# ----------------------------------------------------------------------------------------------------------------
# The expert mixture, and the cross-stitch unit (a mixture with constant gates)
# ----------------------------------------------------------------------------------------------------------------
class MixtureCache(NamedTuple):
    gates_by_sample: np.ndarray    # gates (..., B, G, E): one G x E matrix per sample
    experts_by_sample: np.ndarray  # experts (..., B, E, h): one E x h matrix per sample
    gates_shape: tuple
    experts_shape: tuple


def mixture_forward(gates: np.ndarray, experts: np.ndarray) -> tuple[np.ndarray, MixtureCache]:
    """Gate-weighted sum of the experts: ``m[..., k, b, :] = sum_e gates[..., k, b, e] * experts[..., e, b, :]``.

    gates (..., G, B, E), experts (..., E, B, h)  ->  m (..., G, B, h).
    Computed as one small (G x E) @ (E x h) product per sample, batched over the samples.
    """
    g_b = gates.swapaxes(-3, -2)    # (..., B, G, E)
    f_b = experts.swapaxes(-3, -2)  # (..., B, E, h)
    m = (g_b @ f_b).swapaxes(-3, -2)  # (..., G, B, h)
    return m, MixtureCache(g_b, f_b, gates.shape, experts.shape)


def mixture_backward(dm: np.ndarray, cache: MixtureCache) -> tuple[np.ndarray, np.ndarray]:
    """Per sample ``m = g f``, so ``dg = dm f^T`` and ``df = g^T dm``. Returns ``(dgates, dexperts)``.

    ``df`` sums the contributions of every gate that used the expert: this is where tasks share experts.
    """
    dm_b = dm.swapaxes(-3, -2)                                               # (..., B, G, h)
    dgates = (dm_b @ transpose(cache.experts_by_sample)).swapaxes(-3, -2)      # (..., G, B, E)
    dexperts = (transpose(cache.gates_by_sample) @ dm_b).swapaxes(-3, -2)      # (..., E, B, h)
    return sum_to_shape(dgates, cache.gates_shape), sum_to_shape(dexperts, cache.experts_shape)


def cross_stitch_forward(x: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, MixtureCache]:
    """Mix the K task columns: ``x~[..., k, b, :] = sum_l alpha[..., k, l] x[..., l, b, :]``.

    x (..., K, B, h), alpha (..., K, K)  ->  x~ (..., K, B, h). A cross-stitch unit is the expert mixture of
    :func:`mixture_forward` with the columns as experts and *constant* gates: ``alpha`` row k, the same for every
    sample (gates (..., K, 1, K), broadcast over the batch), where MMoE's gate would compute it from x.
    """
    return mixture_forward(alpha[..., :, None, :], x)


def cross_stitch_backward(dx_mixed: np.ndarray, cache: MixtureCache) -> tuple[np.ndarray, np.ndarray]:
    """``dx_l = sum_k alpha[k, l] dx~_k`` and ``dalpha[k, l] = sum_{b, j} dx~_k[b, j] x_l[b, j]``.

    Returns ``(dx, dalpha)``. The mixture's backward gives a gate gradient per sample; alpha is shared by every
    sample, so ``sum_to_shape`` sums it over the batch (the size-1 axis of the broadcast gates), which is dropped.
    """
    dgates, dx = mixture_backward(dx_mixed, cache)
    return dx, dgates[..., :, 0, :]


# ----------------------------------------------------------------------------------------------------------------
# L2 tie: weight * sum over task pairs of ||theta_k - theta_l||^2
# ----------------------------------------------------------------------------------------------------------------
class L2TieCache(NamedTuple):
    centred: np.ndarray      # theta_k - mean_l theta_l
    scale: float             # weight * K
    n_summed: int            # how many trailing axes the value summed over (the task axis and the parameter's own)


def l2_tie_forward(theta: np.ndarray, weight: float, task_axis: int) -> tuple[np.ndarray, L2TieCache]:
    """Soft tie of the K tasks' copies of one parameter: ``P = weight * sum_{k<l} ||theta_k - theta_l||^2``.

    theta (..., K, *p), the task axis at ``task_axis`` (negative: -3 for stacked weights (K, d_in, d_out), -2 for
    stacked biases (K, d_out))  ->  P (...), one value per replica. Computed in the equal centred form
    ``weight * K * sum_k ||theta_k - mean_l theta_l||^2``: O(K) instead of O(K^2), and, unlike
    ``K sum_k ||theta_k||^2 - ||sum_k theta_k||^2``, free of cancellation when the tie is tight. K = 1: P = 0.
    """
    n_tasks = theta.shape[task_axis]
    centred = theta - theta.mean(axis=task_axis, keepdims=True)
    summed = tuple(range(task_axis, 0))
    value = (weight * n_tasks) * np.sum(centred * centred, axis=summed)
    return value, L2TieCache(centred, weight * n_tasks, len(summed))


def l2_tie_backward(dP: np.ndarray, cache: L2TieCache) -> np.ndarray:
    """``dtheta_k = dP * 2 weight K (theta_k - mean_l theta_l) = dP * 2 weight (K theta_k - sum_l theta_l)``."""
    dP = np.asarray(dP)
    return (2 * cache.scale) * dP.reshape(dP.shape + (1,) * cache.n_summed) * cache.centred


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


class MSECache(NamedTuple):
    diff: np.ndarray         # pred - target, broadcast
    pred_shape: tuple


def mse_forward(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, MSECache]:
    """Mean squared error per task: ``L_k = mean_b (pred[b, k] - target[b, k])^2``.

    pred (..., B, K), target (..., B, K) (or broadcastable to it)  ->  L (..., K).
    """
    diff = pred - target
    return (diff * diff).mean(axis=-2), MSECache(diff, pred.shape)


def mse_backward(dL: np.ndarray, cache: MSECache) -> np.ndarray:
    """``dpred[b, k] = dL[k] * 2 (pred[b, k] - target[b, k]) / B``."""
    diff = cache.diff
    return sum_to_shape(dL[..., None, :] * (2.0 / diff.shape[-2]) * diff, cache.pred_shape)


class BCECache(NamedTuple):
    logits: np.ndarray
    target: np.ndarray


def bce_with_logits_forward(logits: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, BCECache]:
    """Binary cross-entropy on logits per task: ``L_k = mean_b -[t log s(z) + (1 - t) log(1 - s(z))]``.

    Written as ``-t log s(z) - (1 - t) log s(-z)`` with the stable :func:`log_sigmoid`, so logits of +-1e4 give
    finite losses. logits (..., B, K), target (..., B, K) in {0, 1}  ->  L (..., K).
    """
    loss = -(target * log_sigmoid(logits) + (1 - target) * log_sigmoid(-logits))
    return np.mean(loss, axis=-2), BCECache(logits, target)


def bce_with_logits_backward(dL: np.ndarray, cache: BCECache) -> np.ndarray:
    """``dz[b, k] = dL[k] * (sigmoid(z[b, k]) - t[b, k]) / B``."""
    logits = cache.logits
    return sum_to_shape(dL[..., None, :] * (sigmoid(logits) - cache.target) / logits.shape[-2], logits.shape)


_TASK_KINDS = ("regression", "binary")


def _task_loss(kind: str) -> tuple[Callable, Callable]:
    """The ``(forward, backward)`` loss pair of a task kind, looked up in this module when called (not kept in a
    table): replacing ``ops.mse_backward`` (a test planting a bug) reaches every model."""
    if kind == "regression":
        return mse_forward, mse_backward
    if kind == "binary":
        return bce_with_logits_forward, bce_with_logits_backward
    raise ValueError(f"task kind must be one of {_TASK_KINDS}; got {kind!r}")


@functools.lru_cache(maxsize=64)
def _columns(tasks: tuple[str, ...], kind: str) -> slice | list[int] | None:
    """The columns of the tasks of ``kind``: a slice when they are adjacent (a view instead of a gather), else a
    list; None when there are none."""
    cols = [k for k, t in enumerate(tasks) if t == kind]
    if not cols:
        return None
    return slice(cols[0], cols[-1] + 1) if cols[-1] - cols[0] == len(cols) - 1 else cols


class MultitaskLossCache(NamedTuple):
    by_kind: dict            # task kind -> (its columns, its loss cache)
    weights: np.ndarray      # w (K,)
    out_shape: tuple


def multitask_loss_forward(out: np.ndarray, Y: np.ndarray, tasks: Sequence[str],
                           weights: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], MultitaskLossCache]:
    """Total loss ``sum_k w_k L_k``: MSE for "regression" tasks, BCE on logits for "binary" ones.

    out (..., B, K) raw outputs, Y (..., B, K) targets, weights (K,)  ->  (total (...), per_task (..., K)).
    """
    per_task = np.empty(np.broadcast_shapes(out.shape, Y.shape)[:-2] + (len(tasks),), dtype=out.dtype)
    by_kind = {}
    for kind in _TASK_KINDS:
        forward = _task_loss(kind)[0]
        cols = _columns(tuple(tasks), kind)
        if cols is not None:
            per_task[..., cols], loss_cache = forward(out[..., cols], Y[..., cols])
            by_kind[kind] = (cols, loss_cache)
    total = per_task @ weights
    return (total, per_task), MultitaskLossCache(by_kind, weights, out.shape)


def multitask_loss_backward(dtotal: np.ndarray, cache: MultitaskLossCache) -> np.ndarray:
    """``dL_k = dtotal * w_k``, then each task's loss backward. dtotal (...)  ->  dout (..., B, K)."""
    return task_losses_backward(np.asarray(dtotal)[..., None] * cache.weights, cache)


def task_losses_backward(dper_task: np.ndarray, cache: MultitaskLossCache) -> np.ndarray:
    """Each task's loss backward from the gradient of every task's loss, dper_task (..., K) (the fixed weights
    w_k of :func:`multitask_loss_backward`, or learned ones)  ->  dout (..., B, K)."""
    dout = np.zeros(cache.out_shape, dtype=dper_task.dtype)
    for kind, (cols, loss_cache) in cache.by_kind.items():
        dout[..., cols] = _task_loss(kind)[1](dper_task[..., cols], loss_cache)
    return dout
