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
    experts: tuple            # ops.mlp_forward's cache of the E stacked experts
    gates: ops.GateCache      # the G gates
    mixture: ops.MixtureCache
    towers: tuple             # ops.towers_forward's cache


class MixtureOfExperts(MultiTaskModel):
    """E experts shared by every task, mixed by G softmax gates, then one tower per task.

    ``n_gates`` is 1 (one gate shared by all tasks: :class:`OMoE`) or n_tasks (the default: one gate per task,
    :class:`MMoE`). Parameters (K = n_tasks, E = n_experts, G = n_gates, sizes = (n_features, *expert_units)):

    * ``experts.{l}.W`` (E, sizes[l], sizes[l+1]), ``experts.{l}.b`` (E, sizes[l+1]): the experts (ReLU everywhere)
    * ``gates.W`` (G, n_features, E), ``gates.b`` (G, E): the G gates, computed in one matmul
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)
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

    # ------------------------------------------------------------------ the whole chain
    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, MoECache]:
        x = X[..., None, :, :]                                                         # (..., 1, N, d): read by all
        f, experts = ops.mlp_forward(x, self.mlp_layers("experts"), relu_last=True)    # (..., E, N, h)
        g, gates = self._gates_forward(x)                                              # (..., G, N, E)
        m, mixture = ops.mixture_forward(g, f)                                         # (..., G, N, h)
        out, towers = ops.towers_forward(m, self.mlp_layers("towers"))                 # (..., N, K)
        return out, MoECache(experts, gates, mixture, towers)

    def _backward(self, dout: np.ndarray, cache: MoECache, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dm, tower_grads = ops.towers_backward(dout, cache.towers)                      # (..., G, N, h)
        dg, df = ops.mixture_backward(dm, cache.mixture)                               # (..., G, N, E), (.., E, N, h)
        dx_gates, gate_grads = self._gates_backward(dg, cache.gates, input_grad)
        dx_experts, expert_grads = ops.mlp_backward(df, cache.experts, input_grad=input_grad)
        grads = {**self._mlp_grads("experts", expert_grads), **gate_grads, **self._mlp_grads("towers", tower_grads)}
        if not input_grad:
            return grads, None
        return grads, (dx_experts + dx_gates)[..., 0, :, :]  # x feeds every expert and every gate: the sum

    # ------------------------------------------------------------------ the gates
    def _add_gates(self, rng: np.random.Generator) -> None:
        self.params["gates.W"] = glorot_uniform(rng, (self.n_gates, self.n_features, self.n_experts), self.dtype)
        self.params["gates.b"] = np.zeros((self.n_gates, self.n_experts), dtype=self.dtype)

    def _gates_forward(self, x: np.ndarray) -> tuple[np.ndarray, ops.GateCache]:
        """x (..., 1, N, d)  ->  gate weights g (..., G, N, E), every row a distribution over the experts."""
        return ops.gate_forward(x, self.params["gates.W"], self.params["gates.b"])

    def _gates_backward(self, dg: np.ndarray, cache: ops.GateCache,
                        input_grad: bool) -> tuple[np.ndarray | None, ArrayDict]:
        dx, dW, db = ops.gate_backward(dg, cache, input_grad=input_grad)
        return dx, {"gates.W": dW, "gates.b": db}

    def gate_weights(self, X: Any) -> np.ndarray:
        """Softmax gate weights (N, n_tasks, n_experts); with a single gate every task sees the same row."""
        g, _ = self._gates_forward(self._check_X(X)[..., None, :, :])  # (..., G, N, E)
        g = np.swapaxes(g, -3, -2)                                       # (..., N, G, E)
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
