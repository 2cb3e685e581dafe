"""Mixture-of-Experts models: experts mixed per task by softmax gates (Ma et al., KDD 2018).

    f_e = expert_e(x)  (E ReLU MLPs),   g^j = softmax(x W_j + b_j)  (G gates),   m_j = sum_e g^j_e f_e,
    y_k = tower_k(m_k)   (G = K: each task its own gate, MMoE)   or   y_k = tower_k(m_1)   (G = 1: OMoE).

:class:`MixtureOfExperts` holds the whole chain, loss gradient to input gradient, in :meth:`_forward` and
:meth:`_backward`; :class:`OMoE` and :class:`MMoE` fix its number of gates. The experts, the gates and the towers each
have their own forward/backward pair of methods, so a variant (another gate, more experts per task) replaces one of
them and keeps the chain.
"""
from __future__ import annotations

import inspect
import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import ops
from ..init import glorot_uniform
from .base import ArrayDict, MultiTaskModel

__all__ = ["MoECache", "MixtureOfExperts", "OMoE", "MMoE"]


class MoECache(NamedTuple):
    first: ops.DenseCache     # z = x W1 + b1 (..., N, E*h + G*E): every expert's first layer and every gate's logits
    relu: ops.ReluCache       # the experts' first ReLU, on z[..., :E*h]
    deeper: tuple             # ops.mlp_forward's cache of the experts' later layers (empty with one layer)
    gates: Any                # _gates_forward's cache (the softmax probabilities g (..., N, G, E))
    mixture: ops.MixtureCache
    towers: tuple             # ops.towers_forward's cache


class MixtureOfExperts(MultiTaskModel):
    """E experts shared by every task, mixed by G softmax gates, then one tower per task.

    ``n_gates`` is 1 (one gate shared by all tasks: :class:`OMoE`) or n_tasks (the default: one gate per task,
    :class:`MMoE`). Parameters (K = n_tasks, E = n_experts, G = n_gates, sizes = (n_features, *expert_units)):

    * ``experts.{l}.W`` (E, sizes[l], sizes[l+1]), ``experts.{l}.b`` (E, sizes[l+1]): the experts (ReLU everywhere)
    * ``gates.W`` (G, n_features, E), ``gates.b`` (G, E): the G gates
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)

    **One product for everything that reads x.** The experts' first layer and the gates both multiply the same x,
    so the chain computes them as one dense layer ``z = x W1 + b1`` with ``W1 = [W_1 | ... | W_E | V_1 | ... | V_G]``
    (d, E*h + G*E), h = expert_units[0]: columns ``e*h .. (e+1)*h`` are expert e's first layer, the last G*E columns
    the gates' logits (:meth:`_first_layer` copies the parameters side by side). One large product uses the machine
    far better than E + G thin ones. Backwards, the expert ReLU's gradient and the gates' softmax gradient are set
    side by side into ``dz`` (N, E*h + G*E), and one dense backward gives ``dW1 = x^T dz`` (every expert's and every
    gate's weight gradient at once, split back by :meth:`_first_layer_grads`) and ``dx = dz W1^T``: the sum of what
    x receives from the experts and from the gates, the chain rule's sum over x's two uses done by the matmul's sum
    over columns.
    """

    default_n_gates: int | None = None  # the number of gates without n_gates; None: one per task

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), n_gates: int | None = None,
                 **kwargs: Any) -> None:
        self.n_experts = V.positive_int("n_experts", n_experts)
        self.expert_units = V.units("expert_units", expert_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        if n_gates is not None and not self._gates_are_an_option():
            kwargs["n_gates"] = n_gates  # OMoE and MMoE fix their gates: the base reports an unknown option
        self.n_gates = self.default_n_gates if n_gates is None else n_gates  # checked in _build, with the tasks
        super().__init__(n_features, tasks, **kwargs)

    @classmethod
    def _gates_are_an_option(cls) -> bool:
        return "n_gates" in inspect.signature(cls).parameters  # not for OMoE and MMoE

    def _sizes(self) -> dict[str, Any]:
        sizes = {"n_experts": self.n_experts, "expert_units": self.expert_units, "tower_units": self.tower_units}
        return {**sizes, "n_gates": self.n_gates} if self._gates_are_an_option() else sizes

    def _build(self, rng: np.random.Generator) -> None:
        if self.n_gates is None:
            self.n_gates = self.n_tasks
        if isinstance(self.n_gates, (bool, np.bool_)) or not isinstance(self.n_gates, numbers.Integral) \
                or self.n_gates not in (1, self.n_tasks):
            raise ValueError(f"n_gates must be 1 (one gate for every task) or n_tasks = {self.n_tasks} (one gate per "
                             f"task); got {self.n_gates!r}")
        self.n_gates = int(self.n_gates)
        self._add_mlp(rng, "experts", (self.n_features, *self.expert_units), stack=self.n_experts)
        self._add_gates(rng)
        self._add_towers(rng, self.expert_units[-1])

    def _first_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """``W1`` (..., d, E*h + G*E) and ``b1`` (..., E*h + G*E): every expert's first layer and every gate, side
        by side, so that one matmul computes them all (columns ``e*h .. (e+1)*h``: expert e; the last G*E: the
        gates' logits, gate j's in columns ``E*h + j*E ..``). Copies of ``experts.0.*`` and ``gates.*``."""
        E, G, h, d = self.n_experts, self.n_gates, self.expert_units[0], self.n_features
        W_e, b_e, W_g, b_g = (self.params[k] for k in ("experts.0.W", "experts.0.b", "gates.W", "gates.b"))
        lead = W_e.shape[:-3]
        W1 = np.empty(lead + (d, E * h + G * E), dtype=self.dtype)
        np.copyto(W1[..., :E * h].reshape(lead + (d, E, h)), np.swapaxes(W_e, -3, -2))  # W1[i, e*h + j] = W_e[e, i, j]
        np.copyto(W1[..., E * h:].reshape(lead + (d, G, E)), np.swapaxes(W_g, -3, -2))
        b1 = np.concatenate([b_e.reshape(lead + (E * h,)), b_g.reshape(lead + (G * E,))], axis=-1)
        return W1, b1

    def _first_layer_grads(self, dW1: np.ndarray, db1: np.ndarray) -> ArrayDict:
        """The gradient of ``W1``, ``b1`` split back into the parameters they were copied from (views)."""
        E, G, h, d = self.n_experts, self.n_gates, self.expert_units[0], self.n_features
        lead = dW1.shape[:-2]
        return {"experts.0.W": np.swapaxes(dW1[..., :E * h].reshape(lead + (d, E, h)), -3, -2),
                "experts.0.b": db1[..., :E * h].reshape(lead + (E, h)),
                "gates.W": np.swapaxes(dW1[..., E * h:].reshape(lead + (d, G, E)), -3, -2),
                "gates.b": db1[..., E * h:].reshape(lead + (G, E))}

    # ------------------------------------------------------------------ the whole chain
    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, MoECache]:
        E, G, h = self.n_experts, self.n_gates, self.expert_units[0]
        z, first = ops.dense_forward(X, *self._first_layer())                         # (..., N, E*h + G*E)
        a, relu = ops.relu_forward(z[..., :E * h])                                     # (..., N, E*h)
        f = np.swapaxes(a.reshape(a.shape[:-1] + (E, h)), -3, -2)                      # (..., E, N, h): a view
        f, deeper = ops.mlp_forward(f, self.mlp_layers("experts")[1:], relu_last=True)  # later layers, if any
        logits = z[..., E * h:].reshape(z.shape[:-1] + (G, E))                         # (..., N, G, E)
        g, gates = self._gates_forward(logits)                                         # (..., N, G, E)
        m, mixture = ops.mixture_forward(np.swapaxes(g, -3, -2), f)                    # (..., G, N, h_last)
        out, towers = ops.towers_forward(m, self.mlp_layers("towers"))                 # (..., N, K)
        return out, MoECache(first, relu, deeper, gates, mixture, towers)

    def _backward(self, dout: np.ndarray, cache: MoECache, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dm, tower_grads = ops.towers_backward(dout, cache.towers)                      # (..., G, N, h_last)
        dg, df = ops.mixture_backward(dm, cache.mixture)                               # (..., G, N, E), (.., E, N, h)
        grads = self._mlp_grads("towers", tower_grads)
        if cache.deeper:
            df, deeper_grads = ops.mlp_backward(df, cache.deeper)                      # (..., E, N, h)
            grads.update(self._mlp_grads("experts", deeper_grads, first=1))
        dlogits = self._gates_backward(np.swapaxes(dg, -3, -2), cache.gates)           # (..., N, G, E)
        df = np.swapaxes(df, -3, -2)                                                   # (..., N, E, h)
        da = ops.relu_backward(df.reshape(df.shape[:-2] + (-1,)), cache.relu)          # (..., N, E*h)
        dz = np.concatenate([da, dlogits.reshape(dlogits.shape[:-2] + (-1,))], axis=-1)  # side by side, like z
        dX, dW1, db1 = ops.dense_backward(dz, cache.first, input_grad)
        grads.update(self._first_layer_grads(dW1, db1))
        return grads, dX  # dX = dz W1^T: what x receives from every expert and every gate, summed

    # ------------------------------------------------------------------ the gates
    def _add_gates(self, rng: np.random.Generator) -> None:
        self.params["gates.W"] = glorot_uniform(rng, (self.n_gates, self.n_features, self.n_experts), self.dtype)
        self.params["gates.b"] = np.zeros((self.n_gates, self.n_experts), dtype=self.dtype)

    def _gates_forward(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gate logits (..., N, G, E)  ->  gate weights g (..., N, G, E), every row a distribution over the experts.
        A gate variant (a temperature, top-k) overrides this pair."""
        return ops.softmax_forward(logits)

    def _gates_backward(self, dg: np.ndarray, cache: np.ndarray) -> np.ndarray:
        """dg (..., N, G, E)  ->  the gradient of the logits (the softmax VJP)."""
        return ops.softmax_backward(dg, cache)

    def gate_weights(self, X: Any) -> np.ndarray:
        """Softmax gate weights (N, n_tasks, n_experts); with a single gate every task sees the same row."""
        z, _ = ops.dense_forward(self._check_X(X)[..., None, :, :], self.params["gates.W"], self.params["gates.b"])
        g, _ = self._gates_forward(np.swapaxes(z, -3, -2))               # (..., N, G, E)
        return np.broadcast_to(g, g.shape[:-2] + (self.n_tasks, self.n_experts)).copy()


class OMoE(MixtureOfExperts):
    """One-gate Mixture-of-Experts: one gate g(x) mixes the experts for every task, ``y_k = h^k(sum_e g(x)_e f_e(x))``.

    Parameters as :class:`MMoE` with a single gate: ``gates.W`` (1, n_features, E), ``gates.b`` (1, E). The mixture is
    computed once and read by every tower, so the gate's gradient is the sum over all tasks.
    """

    default_n_gates = 1

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        super().__init__(n_features, tasks, n_experts, expert_units, tower_units, **kwargs)  # without n_gates


class MMoE(MixtureOfExperts):
    """Multi-gate Mixture-of-Experts: task k has its own gate, ``y_k = h^k(sum_e g^k(x)_e f_e(x))``,
    ``g^k(x) = softmax(x W_k + b_k)``, so tasks can weigh the shared experts differently.

    Parameters (K = n_tasks, E = n_experts, sizes = (n_features, *expert_units)):

    * ``experts.{l}.W`` (E, sizes[l], sizes[l+1]), ``experts.{l}.b`` (E, sizes[l+1]): the experts (ReLU everywhere)
    * ``gates.W`` (K, n_features, E), ``gates.b`` (K, E): the K gates, computed in one matmul
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        super().__init__(n_features, tasks, n_experts, expert_units, tower_units, **kwargs)  # without n_gates
