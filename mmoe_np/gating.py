"""Gate variants beyond the paper, as pure op pairs ``*_forward -> (out, cache)`` / ``*_backward(dout, cache)``.

Every op works over the last axis (the experts, E) and broadcasts over any leading axes, like :mod:`mmoe_np.ops`;
the derivations are in ``docs/backprop.md`` (section 11).

* :func:`tempered_softmax_forward`: ``g = softmax(z / tau)``, a gate temperature tau > 0.
* :func:`top_k_softmax_forward`: keep the k largest logits of each row, softmax over them, 0 elsewhere
  (Shazeer et al., ICLR 2017). Piecewise smooth: the backward pass is the gradient of the piece the row is on,
  valid away from ties between the k-th and (k+1)-th logits (:func:`top_k_margin` measures the distance).
* :func:`noisy_logits_forward`: ``h = z + eps * softplus(z_noise)``, noisy gating with a learned noise scale and
  explicit standard-normal draws ``eps`` (:func:`gate_noise`), so a pass is deterministic given the draws.
* :func:`gate_dropout_forward`: ``g' = g m / <g, m>``, drop experts' gate weights with an explicit 0/1 mask
  (:func:`dropout_mask`) and renormalise (Zhao et al., RecSys 2019).
* :func:`importance_loss_forward`: the squared coefficient of variation of each expert's total gate weight over the
  batch (Shazeer et al.'s importance loss).
* :func:`uncertainty_loss_forward`: ``sum_k exp(-s_k) L_k + s_k`` with learned log-variances s_k (Kendall et al.,
  CVPR 2018).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _validation as V
from . import ops

__all__ = [
    "tempered_softmax_forward", "tempered_softmax_backward", "TemperedSoftmaxCache",
    "top_k_softmax_forward", "top_k_softmax_backward", "top_k_mask", "top_k_margin",
    "softplus", "noisy_logits_forward", "noisy_logits_backward", "NoisyLogitsCache", "gate_noise",
    "gate_dropout_forward", "gate_dropout_backward", "GateDropoutCache", "dropout_mask",
    "importance_loss_forward", "importance_loss_backward", "ImportanceCache",
    "gate_chain_forward", "gate_chain_backward", "GatesCache", "check_gate_options",
    "GATE_OPTION_DEFAULTS", "changed_gate_options",
    "uncertainty_loss_forward", "uncertainty_loss_backward", "UncertaintyCache",
    "GateNoise",
]


class GateNoise(NamedTuple):
    """The training randomness of one pass through a gated model: a 0/1 dropout ``mask`` and standard-normal
    gating noise ``eps``, each (..., N, G, E) or None (that option off)."""

    mask: np.ndarray | None
    eps: np.ndarray | None


# ----------------------------------------------------------------------------------------------------------------
# Temperature, and top-k selection (a temperature softmax over the kept logits)
# ----------------------------------------------------------------------------------------------------------------
class TemperedSoftmaxCache(NamedTuple):
    probs: np.ndarray        # g itself, 0 at the logits top-k dropped
    tau: float               # the temperature


def tempered_softmax_forward(z: np.ndarray, tau: float = 1.0) -> tuple[np.ndarray, TemperedSoftmaxCache]:
    """``g = softmax(z / tau)`` over the last axis. tau < 1 sharpens the gate, tau > 1 flattens it; tau = 1 is
    :func:`mmoe_np.ops.softmax_forward` bit for bit."""
    g, _ = ops.softmax_forward(z / tau if tau != 1 else z)
    return g, TemperedSoftmaxCache(g, tau)


def tempered_softmax_backward(dg: np.ndarray, cache: TemperedSoftmaxCache) -> np.ndarray:
    """``dz = g * (dg - <dg, g>) / tau``: the softmax VJP, then the chain rule through ``z / tau``."""
    dz = ops.softmax_backward(dg, cache.probs)
    return dz / cache.tau if cache.tau != 1 else dz


def top_k_mask(z: np.ndarray, k: int) -> np.ndarray:
    """Boolean (..., E): True at the k largest entries of each row of z (ties broken by position, arbitrarily)."""
    E = z.shape[-1]
    if k >= E:
        return np.ones(z.shape, dtype=bool)
    kept = np.argpartition(-z, k - 1, axis=-1)[..., :k]
    mask = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(mask, kept, True, axis=-1)
    return mask


def top_k_margin(z: np.ndarray, k: int) -> float:
    """Smallest gap, over the rows of z, between the k-th and the (k+1)-th largest logit (inf when k >= E): how far
    the selection is from a tie. A step smaller than this cannot change which logits are kept."""
    if k >= z.shape[-1]:
        return float("inf")
    part = -np.partition(-z, (k - 1, k), axis=-1)  # sorted descending at positions k-1 and k
    return float(np.min(part[..., k - 1] - part[..., k]))


def top_k_softmax_forward(z: np.ndarray, k: int, tau: float = 1.0) -> tuple[np.ndarray, TemperedSoftmaxCache]:
    """Sparse gate: ``g = softmax(z / tau)`` over the k largest logits of each row, exactly 0 at the others.

    z (..., E) -> g (..., E), every row summing to 1 with at most k nonzero entries. With k = E it is
    :func:`tempered_softmax_forward`. The dropped logits are set to -inf before the (stable) softmax, so they get
    weight exp(-inf) = 0 and, in the backward pass, gradient 0.
    """
    k = V.positive_int("k", k)
    if k >= z.shape[-1]:
        return tempered_softmax_forward(z, tau)
    kept = np.where(top_k_mask(z, k), z, -np.inf)
    return tempered_softmax_forward(kept, tau)


def top_k_softmax_backward(dg: np.ndarray, cache: TemperedSoftmaxCache) -> np.ndarray:
    """The gradient of the piece the row is on: ``dz = g * (dg - <dg, g>) / tau``, which is 0 at the dropped logits
    (their g is 0). Valid away from ties (:func:`top_k_margin` > 0): the selection is then locally constant."""
    return tempered_softmax_backward(dg, cache)


# ----------------------------------------------------------------------------------------------------------------
# Noisy gating: h = z + eps * softplus(z_noise)
# ----------------------------------------------------------------------------------------------------------------
def softplus(x: np.ndarray) -> np.ndarray:
    """Stable ``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``; its derivative is ``sigmoid(x)``."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class NoisyLogitsCache(NamedTuple):
    noise_logits: np.ndarray  # z_noise, the input of the softplus
    eps: np.ndarray           # the standard-normal draws


def noisy_logits_forward(z: np.ndarray, noise_logits: np.ndarray,
                         eps: np.ndarray) -> tuple[np.ndarray, NoisyLogitsCache]:
    """``h = z + eps * softplus(z_noise)``: logits plus Gaussian noise of a learned, per-input scale.

    z, noise_logits (..., E); eps (..., E) standard-normal draws (explicit: the pass is deterministic given them).
    """
    return z + eps * softplus(noise_logits), NoisyLogitsCache(noise_logits, eps)


def noisy_logits_backward(dh: np.ndarray, cache: NoisyLogitsCache) -> tuple[np.ndarray, np.ndarray]:
    """``dz = dh`` and ``dz_noise = dh * eps * sigmoid(z_noise)`` (softplus' = sigmoid). Returns ``(dz, dz_noise)``."""
    return dh, dh * cache.eps * ops.sigmoid(cache.noise_logits)


def gate_noise(rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """Standard-normal draws ``eps`` of ``shape`` for :func:`noisy_logits_forward`."""
    return rng.standard_normal(shape).astype(dtype, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Gate dropout: g' = g m / <g, m>
# ----------------------------------------------------------------------------------------------------------------
class GateDropoutCache(NamedTuple):
    out: np.ndarray          # g' itself
    scale: np.ndarray        # m / <g, m> (..., E): the mask over the row's kept weight


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: type = np.float64) -> np.ndarray:
    """A 0/1 mask (..., E): each expert dropped with probability p, independently, except that a row which would
    drop every expert keeps one expert chosen uniformly (a gate must mix something)."""
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1); got {p!r}")
    keep = rng.random(shape) >= p
    empty = ~keep.any(axis=-1)
    if empty.any():
        chosen = rng.integers(0, shape[-1], size=int(empty.sum()))
        keep[empty, chosen] = True
    return keep.astype(dtype)


def gate_dropout_forward(g: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, GateDropoutCache]:
    """``g'_e = g_e m_e / sum_j g_j m_j``: drop the gate weights where the 0/1 mask is 0 and renormalise each row
    to sum 1. A row whose kept weight is 0 (a top-k gate whose kept experts were all dropped) keeps its gate
    unchanged (the mask is taken as 1 there). g (..., E), mask broadcastable to g."""
    mask = np.broadcast_to(mask, g.shape)
    kept = np.sum(g * mask, axis=-1, keepdims=True)
    mask = np.where(kept > 0, mask, 1)
    kept = np.where(kept > 0, kept, 1)
    scale = mask / kept
    out = g * scale
    return out, GateDropoutCache(out, scale)


def gate_dropout_backward(dout: np.ndarray, cache: GateDropoutCache) -> np.ndarray:
    """``dg_e = (m_e / <g, m>) (dg'_e - <dg', g'>)``: like the softmax VJP, renormalising couples the experts."""
    return cache.scale * (dout - np.sum(dout * cache.out, axis=-1, keepdims=True))


# ----------------------------------------------------------------------------------------------------------------
# The importance (load-balancing) loss: CV^2 of each expert's total gate weight over the batch
# ----------------------------------------------------------------------------------------------------------------
class ImportanceCache(NamedTuple):
    importance: np.ndarray   # I (..., E): each expert's total gate weight over the batch
    mean: np.ndarray         # mu (..., 1)
    var: np.ndarray          # v (..., 1)
    batch_axis: int
    g_shape: tuple


def importance_loss_forward(g: np.ndarray, batch_axis: int = -2) -> tuple[np.ndarray, ImportanceCache]:
    """``CV^2 = v / mu^2`` of the importances ``I_e = sum_b g[b, e]`` (mu, v: their mean and population variance
    over the E experts). g (..., B, ..., E), the batch at ``batch_axis`` (negative)  ->  CV^2 over the remaining
    leading axes. 0 when every expert carries the same total weight; E - 1 when one expert carries all of it."""
    I = np.sum(g, axis=batch_axis)
    mu = np.mean(I, axis=-1, keepdims=True)
    var = np.mean((I - mu) ** 2, axis=-1, keepdims=True)
    return (var / mu ** 2)[..., 0], ImportanceCache(I, mu, var, batch_axis, g.shape)


def importance_loss_backward(dcv2: np.ndarray, cache: ImportanceCache) -> np.ndarray:
    """``dI_e = dCV^2 * 2 (I_e - mu - v / mu) / (E mu^2)``, then every sample's row receives its expert's dI
    (``I`` is a sum over the batch)."""
    I, mu, var = cache.importance, cache.mean, cache.var
    dI = np.asarray(dcv2)[..., None] * 2 * (I - mu - var / mu) / (I.shape[-1] * mu ** 2)
    return np.broadcast_to(np.expand_dims(dI, cache.batch_axis), cache.g_shape).copy()


# ----------------------------------------------------------------------------------------------------------------
# The whole gate: noise -> tempered top-k softmax -> importance loss -> dropout (docs/backprop.md 11.6)
# ----------------------------------------------------------------------------------------------------------------
class GatesCache(NamedTuple):
    logits: np.ndarray                   # what the selection read: the logits, noise added
    select: TemperedSoftmaxCache         # softmax(logits / tau) over the top k (all E by default)
    noisy: NoisyLogitsCache | None       # a training pass of a noisy gate
    dropout: GateDropoutCache | None     # a training pass with gate dropout
    balance: ImportanceCache | None      # the importance loss (balance_weight > 0)
    balance_value: Any                   # balance_weight * sum over the gates of CV^2 (...), or 0.0


GATE_OPTION_DEFAULTS: dict[str, Any] = {"gate_dropout": 0.0, "gate_temperature": 1.0, "top_k": None,
                                        "noisy_gating": False, "balance_weight": 0.0}  # the paper's plain softmax gate


def changed_gate_options(model: Any) -> dict[str, Any]:
    """The gate options of a gated model (its attributes of those names) that differ from
    :data:`GATE_OPTION_DEFAULTS`: what its config must record (a plain gate: none)."""
    return {name: getattr(model, name) for name, default in GATE_OPTION_DEFAULTS.items()
            if getattr(model, name) != default}


def check_gate_options(gate_dropout: Any, gate_temperature: Any, top_k: Any, noisy_gating: Any,
                       balance_weight: Any, *, max_k: int, experts_seen: str) -> dict[str, Any]:
    """The gate options of a gated model, checked (a ValueError names the option): gate_dropout in [0, 1),
    temperature > 0, top_k None or 1..``max_k`` (``experts_seen`` says what a gate mixes, for the message),
    noisy_gating a bool, balance_weight >= 0."""
    dropout = V.positive_float("gate_dropout", gate_dropout, allow_zero=True)
    if dropout >= 1:
        raise ValueError(f"gate_dropout must be in [0, 1) (the probability of dropping a gate weight); "
                         f"got {gate_dropout!r}")
    k = None if top_k is None else V.positive_int("top_k", top_k)
    if k is not None and k > max_k:
        raise ValueError(f"top_k must be at most {experts_seen} = {max_k} (the experts a gate mixes); got {top_k!r}")
    return {"gate_dropout": dropout, "gate_temperature": V.positive_float("gate_temperature", gate_temperature),
            "top_k": k, "noisy_gating": V.flag("noisy_gating", noisy_gating),
            "balance_weight": V.positive_float("balance_weight", balance_weight, allow_zero=True)}


def gate_chain_forward(z: np.ndarray, noise_logits: np.ndarray | None, draws: GateNoise | None, *, top_k: int,
                       temperature: float, balance_weight: float, batch_axis: int) -> tuple[np.ndarray, GatesCache]:
    """Gate logits z (..., E) of any layout whose batch axis is ``batch_axis`` -> gate weights g (..., E), every row a
    distribution over the experts: noise (a training pass of a noisy gate: ``noise_logits`` and ``draws.eps``) ->
    softmax(/ temperature) over the ``top_k`` largest -> the importance loss over the batch (``balance_weight`` > 0)
    -> dropout (``draws.mask``). With top_k = E, temperature 1 and no draws: ``ops.softmax_forward`` bit for bit.
    MMoE's and PLE's gates both run it, each on its own layout."""
    noisy = None
    if draws is not None and draws.eps is not None:
        z, noisy = noisy_logits_forward(z, noise_logits, draws.eps)
    g, select = top_k_softmax_forward(z, top_k, temperature)
    balance, balance_value = None, 0.0
    if balance_weight:
        cv2, balance = importance_loss_forward(g, batch_axis=batch_axis)            # (..., G)
        balance_value = balance_weight * cv2.sum(axis=-1)
    dropout = None
    if draws is not None and draws.mask is not None:
        g, dropout = gate_dropout_forward(g, draws.mask)
    return g, GatesCache(z, select, noisy, dropout, balance, balance_value)


def gate_chain_backward(dg: np.ndarray, cache: GatesCache, *, balance_weight: float,
                        noisy_gating: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """dg (..., E) -> ``(dz, dnoise_logits)``: :func:`gate_chain_forward` backwards, the importance loss's gradient
    added to the weights'. ``dnoise_logits`` is None without ``noisy_gating``, zeros for a pass without noise (the
    noise logits did not matter)."""
    if cache.dropout is not None:
        dg = gate_dropout_backward(dg, cache.dropout)
    if cache.balance is not None:
        dcv2 = np.full(cache.balance.mean.shape[:-1], balance_weight, dtype=dg.dtype)   # (..., G)
        dg = dg + importance_loss_backward(dcv2, cache.balance)
    dz = top_k_softmax_backward(dg, cache.select)
    if not noisy_gating:
        return dz, None
    if cache.noisy is None:
        return dz, np.zeros_like(dz)
    return noisy_logits_backward(dz, cache.noisy)


# ----------------------------------------------------------------------------------------------------------------
# Uncertainty weighting of the task losses (Kendall, Gal and Cipolla, CVPR 2018)
# ----------------------------------------------------------------------------------------------------------------
class UncertaintyCache(NamedTuple):
    task_losses: np.ndarray  # L (..., K)
    precision: np.ndarray    # exp(-s) (..., K)


def uncertainty_loss_forward(task_losses: np.ndarray, log_vars: np.ndarray) -> tuple[np.ndarray, UncertaintyCache]:
    """``total = sum_k exp(-s_k) L_k + s_k``: each task's loss weighted by a learned precision exp(-s_k), plus s_k
    so that the precision cannot grow without cost. task_losses (..., K), log_vars (..., K) -> total (...)."""
    precision = np.exp(-log_vars)
    return np.sum(precision * task_losses + log_vars, axis=-1), UncertaintyCache(task_losses, precision)


def uncertainty_loss_backward(dtotal: np.ndarray,
                              cache: UncertaintyCache) -> tuple[np.ndarray, np.ndarray]:
    """``dL_k = dtotal exp(-s_k)`` (the task's weight) and ``ds_k = dtotal (1 - exp(-s_k) L_k)``: s_k settles where
    exp(s_k) = L_k. Returns ``(dtask_losses, dlog_vars)``."""
    dtotal = np.asarray(dtotal)[..., None]
    return dtotal * cache.precision, dtotal * (1 - cache.precision * cache.task_losses)
