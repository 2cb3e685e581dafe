"""Progressive Layered Extraction (Tang et al., RecSys 2020): shared experts, task-specific experts, and gates that
mix a task's own experts with the shared ones, stacked in extraction levels.

One level (Customized Gate Control, CGC), K tasks, S shared experts, T experts per task:

    f^s_j = expert^s_j(x)   (j < S),     f^k_t = expert^{k,t}(x)   (t < T, task k's own),
    g^k = softmax(x W^k + b^k) over the S + T experts [f^s_1..f^s_S, f^k_1..f^k_T],
    m^k = sum_j g^k_j [f^s, f^k]_j,      y_k = tower_k(m^k).

PLE stacks L such levels. Level l reads, for task k, the previous level's task output m^k (x at level 0) into task
k's experts and gate, and the previous level's *shared* output m^s into the shared experts; every level but the last
also has a shared gate over all S + K T experts, reading m^s, whose mixture is the next level's m^s. CGC is PLE with
one level; with T = 0 each task's gate mixes the S shared experts alone, which is MMoE.

The chain, loss gradient to input gradient, is :meth:`PLE._forward` and :meth:`PLE._backward`; every step is an op of
:mod:`mmoe_np.ops` (dense, ReLU MLPs, softmax, the mixture). Derivation: ``docs/backprop.md``.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import ops
from ..init import glorot_uniform
from .base import ArrayDict, MultiTaskModel

__all__ = ["LevelCache", "PLECache", "PLE", "CGC"]


class LevelCache(NamedTuple):
    shared: tuple                  # ops.mlp_forward's cache of the S shared experts
    task: tuple                    # ... of the K x T task experts (empty when T = 0)
    gate_dense: ops.DenseCache     # the task gates' logits (..., K, N, S + T)
    gate_probs: np.ndarray         # their softmax g^k (..., K, N, S + T)
    task_mixture: ops.MixtureCache
    shared_gate: Any               # (DenseCache, probs, MixtureCache) of the shared gate, None at the last level


class PLECache(NamedTuple):
    levels: tuple                  # one LevelCache per level, first level first
    towers: tuple                  # ops.towers_forward's cache


def _side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two stacks of expert outputs (..., E_a, N, h) and (..., E_b, N, h) as one (..., E_a + E_b, N, h), their
    leading axes broadcast (a shared expert's one copy serves every task)."""
    lead = np.broadcast_shapes(a.shape[:-3], b.shape[:-3])
    return np.concatenate([np.broadcast_to(a, lead + a.shape[-3:]), np.broadcast_to(b, lead + b.shape[-3:])], axis=-3)


class PLE(MultiTaskModel):
    """Progressive Layered Extraction: ``n_levels`` levels of shared and task-specific experts (module docstring).

    Parameters (K = n_tasks, S = n_shared_experts, T = n_task_experts, L = n_levels; level l's experts have widths
    sizes_l = (d_l, *expert_units), d_0 = n_features, d_l = expert_units[-1] above):

    * ``shared_experts.{l}.{j}.W`` (S, sizes_l[j], sizes_l[j+1]), ``.b`` (S, sizes_l[j+1]): level l's shared experts
    * ``task_experts.{l}.{j}.W`` (K, T, sizes_l[j], sizes_l[j+1]), ``.b`` (K, T, sizes_l[j+1]): task k's own (T > 0)
    * ``gates.{l}.W`` (K, d_l, S + T), ``gates.{l}.b`` (K, S + T): task k's gate over [shared, its own] experts
    * ``gates.{l}.shared.W`` (1, d_l, S + K T), ``.b`` (1, S + K T): the shared gate over every expert (l < L - 1)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_levels: int = 2, n_shared_experts: int = 4,
                 n_task_experts: int = 2, expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,),
                 **kwargs: Any) -> None:
        self.n_levels = V.positive_int("n_levels", n_levels)
        self.n_shared_experts = V.positive_int("n_shared_experts", n_shared_experts)
        self.n_task_experts = V.int_at_least("n_task_experts", n_task_experts, 0)
        self.expert_units = V.units("expert_units", expert_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"n_levels": self.n_levels, "n_shared_experts": self.n_shared_experts,
                "n_task_experts": self.n_task_experts, "expert_units": self.expert_units,
                "tower_units": self.tower_units}

    def _level_width(self, level: int) -> int:
        return self.n_features if level == 0 else self.expert_units[-1]

    def _build(self, rng: np.random.Generator) -> None:
        S, T, K = self.n_shared_experts, self.n_task_experts, self.n_tasks
        for level in range(self.n_levels):
            d = self._level_width(level)
            sizes = (d, *self.expert_units)
            self._add_mlp(rng, f"shared_experts.{level}", sizes, stack=S)
            if T:
                for j, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):  # (K, T, ...): stacked twice
                    self.params[f"task_experts.{level}.{j}.W"] = glorot_uniform(rng, (K, T, d_in, d_out), self.dtype)
                    self.params[f"task_experts.{level}.{j}.b"] = np.zeros((K, T, d_out), dtype=self.dtype)
            self.params[f"gates.{level}.W"] = glorot_uniform(rng, (K, d, S + T), self.dtype)
            self.params[f"gates.{level}.b"] = np.zeros((K, S + T), dtype=self.dtype)
            if level < self.n_levels - 1:
                self.params[f"gates.{level}.shared.W"] = glorot_uniform(rng, (1, d, S + K * T), self.dtype)
                self.params[f"gates.{level}.shared.b"] = np.zeros((1, S + K * T), dtype=self.dtype)
        self._add_towers(rng, self.expert_units[-1])

    # ------------------------------------------------------------------ the whole chain
    def _experts_forward(self, level: int, x_shared: np.ndarray, x_task: np.ndarray):
        """Level ``level``'s experts: shared f^s (..., S, N, h) from x_shared (..., 1, N, d_l) and, when T > 0,
        task f^k (..., K, T, N, h) from x_task (..., K|1, 1, N, d_l) (else None)."""
        fs, shared = ops.mlp_forward(x_shared, self.mlp_layers(f"shared_experts.{level}"), relu_last=True)
        if not self.n_task_experts:
            return fs, None, shared, ()
        ft, task = ops.mlp_forward(x_task, self.mlp_layers(f"task_experts.{level}"), relu_last=True)
        return fs, ft, shared, task

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, PLECache]:
        S, K, T = self.n_shared_experts, self.n_tasks, self.n_task_experts
        x_shared, x_task = X[..., None, :, :], X[..., None, None, :, :]  # (..., 1, N, d), (..., 1, 1, N, d)
        levels = []
        for level in range(self.n_levels):
            fs, ft, shared, task = self._experts_forward(level, x_shared, x_task)      # (.., S, N, h), (.., K, T, N, h)
            # task k's experts: the S shared ones (one copy, broadcast to every task), then its own T
            own = fs[..., None, :, :, :] if not T else _side_by_side(fs[..., None, :, :, :], ft)  # (.., K|1, S+T, N, h)
            logits, gate_dense = ops.dense_forward(x_task[..., 0, :, :], self.params[f"gates.{level}.W"],
                                                   self.params[f"gates.{level}.b"])    # (..., K, N, S + T)
            g, gate_probs = ops.softmax_forward(logits)
            m_task, task_mixture = ops.mixture_forward(g[..., :, None, :, :], own)    # (..., K, 1, N, h)
            shared_gate = None
            if level < self.n_levels - 1:  # the shared gate mixes every expert of the level into the next m^s
                every = fs if not T else _side_by_side(fs, ft.reshape(ft.shape[:-4] + (K * T,) + ft.shape[-2:]))
                z_s, dense_s = ops.dense_forward(x_shared, self.params[f"gates.{level}.shared.W"],
                                                 self.params[f"gates.{level}.shared.b"])  # (..., 1, N, S + K T)
                g_s, probs_s = ops.softmax_forward(z_s)
                x_shared, mixture_s = ops.mixture_forward(g_s, every)                  # (..., 1, N, h)
                shared_gate = (dense_s, probs_s, mixture_s)
            x_task = m_task
            levels.append(LevelCache(shared, task, gate_dense, gate_probs, task_mixture, shared_gate))
        out, towers = ops.towers_forward(x_task[..., 0, :, :], self.mlp_layers("towers"))  # (..., N, K)
        return out, PLECache(tuple(levels), towers)

    def _backward(self, dout: np.ndarray, cache: PLECache, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        S, K, T = self.n_shared_experts, self.n_tasks, self.n_task_experts
        dm_task, tower_grads = ops.towers_backward(dout, cache.towers)                # (..., K, N, h)
        grads = self._mlp_grads("towers", tower_grads)
        dx_task, dx_shared = dm_task[..., :, None, :, :], None                         # (..., K, 1, N, h)
        for level in reversed(range(self.n_levels)):
            c = cache.levels[level]
            need_dx = input_grad or level > 0
            # dg (..., K, 1, N, S+T); down: the gradient of task k's experts (..., K|1, S+T, N, h)
            dg, down = ops.mixture_backward(dx_task, c.task_mixture)
            dfs = down[..., :S, :, :].sum(axis=-4)                                     # every task's pull on the shared
            dft = down[..., S:, :, :]                                                  # task k's own: task k's alone
            if c.shared_gate is not None:
                dense_s, probs_s, mixture_s = c.shared_gate
                dg_s, devery = ops.mixture_backward(dx_shared, mixture_s)  # (.., 1, N, S+KT), (.., S+KT, N, h)
                dfs = dfs + devery[..., :S, :, :]
                if T:
                    dft = dft + devery[..., S:, :, :].reshape(devery.shape[:-3] + (K, T) + devery.shape[-2:])
                dz_s = ops.softmax_backward(dg_s, probs_s)
                dxs_gate, grads[f"gates.{level}.shared.W"], grads[f"gates.{level}.shared.b"] = ops.dense_backward(
                    dz_s, dense_s, need_dx)
            dz = ops.softmax_backward(dg[..., :, 0, :, :], c.gate_probs)               # (..., K, N, S + T)
            dxt_gate, grads[f"gates.{level}.W"], grads[f"gates.{level}.b"] = ops.dense_backward(dz, c.gate_dense,
                                                                                                need_dx)
            dxs, shared_grads = ops.mlp_backward(dfs, c.shared, need_dx)              # (..., 1, N, d_l)
            grads.update(self._mlp_grads(f"shared_experts.{level}", shared_grads))
            dxt = None
            if T:
                dxt, task_grads = ops.mlp_backward(dft, c.task, need_dx)              # (..., K|1, 1, N, d_l)
                grads.update(self._mlp_grads(f"task_experts.{level}", task_grads))
            if not need_dx:
                return grads, None
            # what the level's inputs receive: task k's input from its experts and its gate, the shared input from
            # the shared experts and the shared gate (rule 0: sum over uses)
            dx_task = dxt_gate[..., :, None, :, :] if dxt is None else dxt + dxt_gate[..., :, None, :, :]
            dx_shared = dxs if c.shared_gate is None else dxs + dxs_gate
        # at level 0 both inputs are x: (..., 1, 1, N, d) and (..., 1, N, d)
        return grads, dx_task[..., 0, 0, :, :] + dx_shared[..., 0, :, :]

    # ------------------------------------------------------------------ the gates
    def gate_weights(self, X: Any, level: int = -1) -> np.ndarray:
        """Task gates of one level (the last by default): (N, n_tasks, S + T), task k's row over [the S shared
        experts, its own T]."""
        if not -self.n_levels <= level < self.n_levels:
            raise ValueError(f"level must be in [-{self.n_levels}, {self.n_levels}); got {level!r}")
        _, cache = self._finite_forward(self._check_X(X))
        return np.swapaxes(cache.levels[level].gate_probs, -3, -2).copy()      # (..., N, K, S + T)


class CGC(PLE):
    """Customized Gate Control: PLE with one level. Task k's gate mixes the S shared experts and its own T:
    ``y_k = tower_k(sum_j softmax(x W^k + b^k)_j [f^s, f^k]_j)``. With ``n_task_experts=0`` it is :class:`MMoE`
    with ``n_experts = n_shared_experts`` (the same parameters, drawn in the same order).

    Parameters: those of :class:`PLE` at level 0 (``shared_experts.0.*``, ``task_experts.0.*``, ``gates.0.*``) and
    the towers.
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_shared_experts: int = 4, n_task_experts: int = 2,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        super().__init__(n_features, tasks, 1, n_shared_experts, n_task_experts, expert_units, tower_units, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {k: v for k, v in super()._sizes().items() if k != "n_levels"}
