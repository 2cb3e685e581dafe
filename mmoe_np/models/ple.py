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

Every gate, task gates and shared gates alike, takes MMoE's gate options (temperature, top-k, noisy gating, gate
dropout, the importance loss): the same ops of :mod:`mmoe_np.gating` in the same order (``docs/backprop.md`` 11.6).

The chain, loss gradient to input gradient, is :meth:`PLE._forward` and :meth:`PLE._backward`; every step is an op of
:mod:`mmoe_np.ops` or :mod:`mmoe_np.gating`. Derivation: ``docs/backprop.md``.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import gating, ops
from ..init import glorot_uniform
from .base import ArrayDict, MultiTaskModel

__all__ = ["LevelCache", "PLECache", "LevelNoise", "PLENoise", "PLE", "CGC"]


class LevelCache(NamedTuple):
    shared: tuple                  # ops.mlp_forward's cache of the S shared experts
    task: tuple                    # ... of the K x T task experts (empty when T = 0)
    gate_dense: ops.DenseCache     # the task gates' logits (..., K, N, S + T) [+ their noise logits]
    gates: gating.GatesCache       # the task gates' chain (11.6); gates.select.probs is g^k before any dropout
    task_mixture: ops.MixtureCache
    shared_gate: Any               # (DenseCache, GatesCache, MixtureCache) of the shared gate, None at the last level


class PLECache(NamedTuple):
    levels: tuple                  # one LevelCache per level, first level first
    towers: tuple                  # ops.towers_forward's cache


class LevelNoise(NamedTuple):
    """One level's training randomness (:meth:`PLE.draw_noise`): the task gates' ``gating.GateNoise`` (each array
    (..., K, N, S + T)) and the shared gate's ((..., 1, N, S + K T); None at the last level)."""

    task: gating.GateNoise
    shared: gating.GateNoise | None


class PLENoise(NamedTuple):
    """The training randomness of one pass through a PLE with activation dropout: the gates' draws (a
    :class:`LevelNoise` per level, or None without gate options) and the dropout masks by site
    (:meth:`~mmoe_np.MultiTaskModel.draw_dropout`). Without ``dropout`` the draws are the tuple of LevelNoise alone."""

    levels: tuple[LevelNoise, ...] | None
    dropout: dict[str, np.ndarray]


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
    * ``gates.{l}.noise.*``, ``gates.{l}.shared.noise.*`` (the shapes of the gate's own): the noise scales' logits
      (noisy_gating only, zero at the start)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)

    **Gate options**, each off by default, with :class:`~mmoe_np.MMoE`'s meaning, on every gate of every level:
    ``gate_temperature`` tau, ``top_k`` (at most S + T, the experts a task's gate mixes), ``noisy_gating``,
    ``gate_dropout`` p (training passes only) and ``balance_weight`` w (``w * sum over the gates of CV^2``).
    Training passes are those given an ``rng`` or explicit ``noise`` (:meth:`draw_noise`); ``forward``,
    ``predict`` and ``gate_weights`` never drop or add noise.

    **Activation dropout** ``dropout=p`` (training passes only): inverted dropout after every ReLU of every expert,
    shared and task-specific, at every level (before the task and shared gates mix them), and of the towers' hidden
    layers; never on x, the gates, the mixtures or the outputs.
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_levels: int = 2, n_shared_experts: int = 4,
                 n_task_experts: int = 2, expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,),
                 *, gate_dropout: float = 0.0, gate_temperature: float = 1.0, top_k: int | None = None,
                 noisy_gating: bool = False, balance_weight: float = 0.0, **kwargs: Any) -> None:
        self.n_levels = V.positive_int("n_levels", n_levels)
        self.n_shared_experts = V.positive_int("n_shared_experts", n_shared_experts)
        self.n_task_experts = V.int_at_least("n_task_experts", n_task_experts, 0)
        self.expert_units = V.units("expert_units", expert_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        options = gating.check_gate_options(  # a task's gate mixes S + T experts; a shared gate S + K T
            gate_dropout, gate_temperature, top_k, noisy_gating, balance_weight,
            max_k=self.n_shared_experts + self.n_task_experts,
            experts_seen="n_shared_experts + n_task_experts")
        for name, value in options.items():  # by name: self.gate_dropout, .gate_temperature, .top_k, ...
            setattr(self, name, value)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"n_levels": self.n_levels, "n_shared_experts": self.n_shared_experts,
                "n_task_experts": self.n_task_experts, "expert_units": self.expert_units,
                "tower_units": self.tower_units, **self.gate_options()}

    def gate_options(self) -> dict[str, Any]:
        """The gate options that differ from their defaults (none for Tang et al.'s PLE): :func:`mmoe_np.gating.changed_gate_options`."""
        return gating.changed_gate_options(self)

    @property
    def _dropout_mlps(self) -> tuple[tuple[str, bool], ...]:
        """Every level's shared and task experts (ReLU last), then the towers (:meth:`dropout_sites`)."""
        experts = tuple((f"{kind}.{level}", True) for level in range(self.n_levels)
                        for kind in ("shared_experts", "task_experts"))
        return experts + (("towers", False),)

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
            self._add_gate(rng, f"gates.{level}", (K, d, S + T))
            if level < self.n_levels - 1:
                self._add_gate(rng, f"gates.{level}.shared", (1, d, S + K * T))
        self._add_towers(rng, self.expert_units[-1])

    def _add_gate(self, rng: np.random.Generator, name: str, shape: tuple[int, int, int]) -> None:
        """Gate ``name``: ``{name}.W`` (G, d, E) and ``{name}.b`` (G, E); with noisy gating ``{name}.noise.*`` too,
        zero (as Shazeer et al.: the noise starts at scale softplus(0) = log 2), so no draw from ``rng``."""
        self.params[f"{name}.W"] = glorot_uniform(rng, shape, self.dtype)
        self.params[f"{name}.b"] = np.zeros((shape[0], shape[2]), dtype=self.dtype)
        if self.noisy_gating:
            self.params[f"{name}.noise.W"] = np.zeros(shape, dtype=self.dtype)
            self.params[f"{name}.noise.b"] = np.zeros((shape[0], shape[2]), dtype=self.dtype)

    # ------------------------------------------------------------------ the whole chain
    def _experts_forward(self, level: int, x_shared: np.ndarray, x_task: np.ndarray,
                         masks: dict[str, np.ndarray] | None = None):
        """Level ``level``'s experts: shared f^s (..., S, N, h) from x_shared (..., 1, N, d_l) and, when T > 0,
        task f^k (..., K, T, N, h) from x_task (..., K|1, 1, N, d_l) (else None); ``masks``: dropout (or None)."""
        name, scale = f"shared_experts.{level}", self.dropout_scale
        fs, shared = ops.mlp_forward(x_shared, self.mlp_layers(name), relu_last=True,
                                     masks=self._layer_masks(masks, name), scale=scale)
        if not self.n_task_experts:
            return fs, None, shared, ()
        name = f"task_experts.{level}"
        ft, task = ops.mlp_forward(x_task, self.mlp_layers(name), relu_last=True,
                                   masks=self._layer_masks(masks, name), scale=scale)
        return fs, ft, shared, task

    def _forward(self, X: np.ndarray,
                 noise: Sequence[LevelNoise] | PLENoise | None = None) -> tuple[np.ndarray, PLECache]:
        S, K, T = self.n_shared_experts, self.n_tasks, self.n_task_experts
        masks = None  # activation dropout, or None
        if isinstance(noise, PLENoise):
            noise, masks = noise.levels, noise.dropout
        if noise is not None and len(noise) != self.n_levels:
            raise ValueError(f"noise must hold one LevelNoise per level ({self.n_levels}); got {len(noise)}")
        x_shared, x_task = X[..., None, :, :], X[..., None, None, :, :]  # (..., 1, N, d), (..., 1, 1, N, d)
        levels = []
        for level in range(self.n_levels):
            draws = LevelNoise(None, None) if noise is None else noise[level]
            # f^s (..., S, N, h) and f^k (..., K, T, N, h), dropped in a training pass with dropout
            fs, ft, shared, task = self._experts_forward(level, x_shared, x_task, masks)
            # task k's experts: the S shared ones (one copy, broadcast to every task), then its own T
            own = fs[..., None, :, :, :] if not T else _side_by_side(fs[..., None, :, :, :], ft)  # (.., K|1, S+T, N, h)
            logits, gate_dense = ops.dense_forward(x_task[..., 0, :, :], *self._gate_layer(f"gates.{level}"))
            g, gates = self._gates_forward(logits, draws.task)                        # (..., K, N, S + T)
            m_task, task_mixture = ops.mixture_forward(g[..., :, None, :, :], own)    # (..., K, 1, N, h)
            shared_gate = None
            if level < self.n_levels - 1:  # the shared gate mixes every expert of the level into the next m^s
                every = fs if not T else _side_by_side(fs, ft.reshape(ft.shape[:-4] + (K * T,) + ft.shape[-2:]))
                z_s, dense_s = ops.dense_forward(x_shared, *self._gate_layer(f"gates.{level}.shared"))
                g_s, gates_s = self._gates_forward(z_s, draws.shared)                  # (..., 1, N, S + K T)
                x_shared, mixture_s = ops.mixture_forward(g_s, every)                  # (..., 1, N, h)
                shared_gate = (dense_s, gates_s, mixture_s)
            x_task = m_task
            levels.append(LevelCache(shared, task, gate_dense, gates, task_mixture, shared_gate))
        out, towers = ops.towers_forward(x_task[..., 0, :, :], self.mlp_layers("towers"),  # (..., N, K)
                                         self._layer_masks(masks, "towers"), self.dropout_scale)
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
                dense_s, gates_s, mixture_s = c.shared_gate
                dg_s, devery = ops.mixture_backward(dx_shared, mixture_s)  # (.., 1, N, S+KT), (.., S+KT, N, h)
                dfs = dfs + devery[..., :S, :, :]
                if T:
                    dft = dft + devery[..., S:, :, :].reshape(devery.shape[:-3] + (K, T) + devery.shape[-2:])
                dxs_gate, dW, db = ops.dense_backward(self._gates_backward(dg_s, gates_s), dense_s, need_dx)
                grads.update(self._gate_layer_grads(f"gates.{level}.shared", dW, db))
            dz = self._gates_backward(dg[..., :, 0, :, :], c.gates)                    # (..., K, N, S + T [x 2])
            dxt_gate, dW, db = ops.dense_backward(dz, c.gate_dense, need_dx)
            grads.update(self._gate_layer_grads(f"gates.{level}", dW, db))
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

    # ------------------------------------------------------------------ the gates (docs/backprop.md 11.6)
    def _gate_layer(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Gate ``name``'s dense layer (G, d, E), (G, E); with noisy gating its noise logits' layer side by side,
        (G, d, 2E), (G, 2E), so that one product gives both (columns E.. are the noise logits)."""
        W, b = self.params[f"{name}.W"], self.params[f"{name}.b"]
        if not self.noisy_gating:
            return W, b
        return (np.concatenate([W, self.params[f"{name}.noise.W"]], axis=-1),
                np.concatenate([b, self.params[f"{name}.noise.b"]], axis=-1))

    def _gate_layer_grads(self, name: str, dW: np.ndarray, db: np.ndarray) -> ArrayDict:
        """The gradient of :meth:`_gate_layer`'s arrays, split back into the gate's parameters."""
        if not self.noisy_gating:
            return {f"{name}.W": dW, f"{name}.b": db}
        E = dW.shape[-1] // 2
        return {f"{name}.W": dW[..., :E], f"{name}.b": db[..., :E],
                f"{name}.noise.W": dW[..., E:], f"{name}.noise.b": db[..., E:]}

    def _gates_forward(self, logits: np.ndarray,
                       draws: gating.GateNoise | None) -> tuple[np.ndarray, gating.GatesCache]:
        """Gate logits (..., G, N, E) (with noisy gating (..., G, N, 2E): then the noise logits)  ->  gate weights
        g (..., G, N, E), every row a distribution over the experts: noise (training passes) -> softmax(/ tau)
        over the top k -> importance loss over the batch (axis -2) -> dropout (training passes). MMoE's chain
        (``MixtureOfExperts._gates_forward``) on PLE's layout, the gates in front of the batch; with the defaults
        and no draws it is ``ops.softmax_forward`` bit for bit."""
        E = logits.shape[-1] // 2 if self.noisy_gating else logits.shape[-1]
        noise_logits = logits[..., E:] if self.noisy_gating else None
        return gating.gate_chain_forward(logits[..., :E], noise_logits, draws, top_k=self.top_k or E,
                                         temperature=self.gate_temperature, balance_weight=self.balance_weight,
                                         batch_axis=-2)

    def _gates_backward(self, dg: np.ndarray, cache: gating.GatesCache) -> np.ndarray:
        """dg (..., G, N, E)  ->  the logits' gradient (..., G, N, E) (with noisy gating (..., G, N, 2E))."""
        dz, dnoise = gating.gate_chain_backward(dg, cache, balance_weight=self.balance_weight,
                                                noisy_gating=self.noisy_gating)
        return dz if dnoise is None else np.concatenate([dz, dnoise], axis=-1)

    def _every_gate(self, cache: PLECache) -> list[gating.GatesCache]:
        """The chains of every gate in the pass: each level's task gates, then its shared gate."""
        chains = []
        for c in cache.levels:
            chains += [c.gates] if c.shared_gate is None else [c.gates, c.shared_gate[1]]
        return chains

    def _auxiliary_loss(self, cache: PLECache) -> Any:
        """The importance (load-balancing) loss of every gate of the pass, ``balance_weight * sum CV^2``."""
        return sum(gates.balance_value for gates in self._every_gate(cache))

    def draw_noise(self, rng: np.random.Generator,
                   n_samples: int) -> tuple[LevelNoise, ...] | PLENoise | None:
        """One training pass's gate dropout masks and gating noise, a :class:`LevelNoise` per level, drawn from
        ``rng`` level by level (the task gates' mask, their noise, then the shared gate's), then, with ``dropout``,
        the activation dropout masks (:meth:`draw_dropout`). The tuple of LevelNoise without ``dropout``, a
        :class:`PLENoise` with it; None when no option is on."""
        levels = None
        if self.gate_dropout or self.noisy_gating:
            S, K, T = self.n_shared_experts, self.n_tasks, self.n_task_experts
            levels = []
            for level in range(self.n_levels):
                task = self._draw(rng, (K, n_samples, S + T))
                shared = self._draw(rng, (1, n_samples, S + K * T)) if level < self.n_levels - 1 else None
                levels.append(LevelNoise(task, shared))
            levels = tuple(levels)
        masks = self.draw_dropout(rng, n_samples)
        return levels if masks is None else PLENoise(levels, masks)

    def _draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> gating.GateNoise:
        shape = self.replica_shape + shape
        mask = gating.dropout_mask(rng, shape, self.gate_dropout, self.dtype) if self.gate_dropout else None
        eps = gating.gate_noise(rng, shape, self.dtype) if self.noisy_gating else None
        return gating.GateNoise(mask, eps)

    def top_k_margin(self, X: Any, noise: Sequence[LevelNoise] | None = None) -> float:
        """Smallest gap between a row's k-th and (k+1)-th gate logit, over every gate of the pass on X (inf
        without top_k): how far the pass is from a change of the selected experts."""
        if self.top_k is None:
            return float("inf")
        _, cache = self._forward(self._check_X(X), noise)
        return min(gating.top_k_margin(gates.logits, self.top_k) for gates in self._every_gate(cache))

    def gate_weights(self, X: Any, level: int = -1) -> np.ndarray:
        """Task gates of one level (the last by default): (N, n_tasks, S + T), task k's row over [the S shared
        experts, its own T]. Never dropped or noised."""
        if not -self.n_levels <= level < self.n_levels:
            raise ValueError(f"level must be in [-{self.n_levels}, {self.n_levels}); got {level!r}")
        _, cache = self._finite_forward(self._check_X(X))
        return np.swapaxes(cache.levels[level].gates.select.probs, -3, -2).copy()      # (..., N, K, S + T)


class CGC(PLE):
    """Customized Gate Control: PLE with one level. Task k's gate mixes the S shared experts and its own T:
    ``y_k = tower_k(sum_j softmax(x W^k + b^k)_j [f^s, f^k]_j)``. With ``n_task_experts=0`` it is :class:`MMoE`
    with ``n_experts = n_shared_experts`` (the same parameters, drawn in the same order), gate options included.

    Parameters: those of :class:`PLE` at level 0 (``shared_experts.0.*``, ``task_experts.0.*``, ``gates.0.*``) and
    the towers. Gate options: as :class:`PLE` (``top_k`` at most S + T).
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_shared_experts: int = 4, n_task_experts: int = 2,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), *,
                 gate_dropout: float = 0.0, gate_temperature: float = 1.0, top_k: int | None = None,
                 noisy_gating: bool = False, balance_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(n_features, tasks, 1, n_shared_experts, n_task_experts, expert_units, tower_units,
                         gate_dropout=gate_dropout, gate_temperature=gate_temperature, top_k=top_k,
                         noisy_gating=noisy_gating, balance_weight=balance_weight, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {k: v for k, v in super()._sizes().items() if k != "n_levels"}
