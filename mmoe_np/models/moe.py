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
from .. import gating, ops
from ..init import glorot_uniform
from .base import ArrayDict, MultiTaskModel
from .flat import FlatLayout

__all__ = ["MoECache", "GatesCache", "MoENoise", "MixtureOfExperts", "OMoE", "MMoE"]


class MoENoise(NamedTuple):
    """The training randomness of one pass through a mixture with activation dropout: ``gating.GateNoise``'s two
    fields (read the same way) and the dropout masks. Without ``dropout`` the model's draws are a plain
    ``gating.GateNoise`` (or None), as before."""

    mask: np.ndarray | None          # gate dropout (..., N, G, E), or None
    eps: np.ndarray | None           # gating noise (..., N, G, E), or None
    dropout: dict[str, np.ndarray]   # activation dropout masks by site (MultiTaskModel.draw_dropout)


class MoECache(NamedTuple):
    first: ops.DenseCache     # z = x W1 + b1 (..., N, E*h + G*E): every expert's first layer and every gate's logits
    relu: ops.ReluCache       # the experts' first ReLU, on z[..., :E*h]
    dropout: ops.DropoutCache | None  # dropout on the experts' first activations (a training pass with dropout)
    deeper: tuple             # ops.mlp_forward's cache of the experts' later layers (empty with one layer)
    gates: Any                # _gates_forward's cache (a GatesCache)
    mixture: ops.MixtureCache
    towers: tuple             # ops.towers_forward's cache


GatesCache = gating.GatesCache  # the gate chain's cache (re-exported: its home is mmoe_np.gating)


class MixtureOfExperts(MultiTaskModel):
    """E experts shared by every task, mixed by G softmax gates, then one tower per task.

    ``n_gates`` is 1 (one gate shared by all tasks: :class:`OMoE`) or n_tasks (the default: one gate per task,
    :class:`MMoE`). Parameters (K = n_tasks, E = n_experts, G = n_gates, sizes = (n_features, *expert_units)):

    * ``experts.{l}.W`` (E, sizes[l], sizes[l+1]), ``experts.{l}.b`` (E, sizes[l+1]): the experts (ReLU everywhere)
    * ``gates.W`` (G, n_features, E), ``gates.b`` (G, E): the G gates
    * ``gates.noise.W`` (G, n_features, E), ``gates.noise.b`` (G, E): the noise scales' logits (noisy_gating)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)

    **Gate options** (``docs/backprop.md``, section 11), each off by default: ``gate_temperature`` tau,
    ``g = softmax(z / tau)``; ``top_k`` keeps each row's k largest logits (softmax over them, 0 elsewhere);
    ``noisy_gating`` adds ``eps * softplus(x U + c)`` to the logits in training passes (eps standard normal, U and
    c the learned ``gates.noise.*``, zero at the start); ``gate_dropout`` p drops each gate weight with
    probability p in training passes and renormalises the row; ``balance_weight`` w adds
    ``w * sum_G CV^2(importance)`` to the loss (the importance of expert e: its total gate weight over the batch).
    Training passes are those given an ``rng`` or explicit ``noise`` (:meth:`draw_noise`); ``forward``,
    ``predict`` and ``gate_weights`` never drop or add noise.

    **Activation dropout** ``dropout=p`` (off by default; training passes only): inverted dropout on the experts'
    hidden units after every ReLU (each expert's output f_e is dropped before the mixture reads it) and on the
    towers' hidden units after every ReLU; never on x, the gates, the mixture itself or the outputs.

    **One product for everything that reads x.** The experts' first layer and the gates both multiply the same x,
    so the chain computes them as one dense layer ``z = x W1 + b1`` with ``W1 = [W_1 | ... | W_E | V_1 | ... | V_G]``
    (d, E*h + G*E), h = expert_units[0]: columns ``e*h .. (e+1)*h`` are expert e's first layer, the last G*E columns
    the gates' logits (in the flat buffer the parameters are stored that way, :meth:`_layout`). One large product uses the machine
    far better than E + G thin ones. Backwards, the expert ReLU's gradient and the gates' softmax gradient are set
    side by side into ``dz`` (N, E*h + G*E), and one dense backward gives ``dW1 = x^T dz`` (every expert's and every
    gate's weight gradient at once, the named gradients views of it in the grads' buffer) and ``dx = dz W1^T``: the sum of what
    x receives from the experts and from the gates, the chain rule's sum over x's two uses done by the matmul's sum
    over columns.
    """

    default_n_gates: int | None = None  # the number of gates without n_gates; None: one per task
    _dropout_mlps = (("experts", True), ("towers", False))

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), n_gates: int | None = None,
                 *, gate_dropout: float = 0.0, gate_temperature: float = 1.0, top_k: int | None = None,
                 noisy_gating: bool = False, balance_weight: float = 0.0, **kwargs: Any) -> None:
        self.n_experts = V.positive_int("n_experts", n_experts)
        self.expert_units = V.units("expert_units", expert_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        options = gating.check_gate_options(gate_dropout, gate_temperature, top_k, noisy_gating, balance_weight,
                                            max_k=self.n_experts, experts_seen="n_experts")
        for name, value in options.items():  # by name: self.gate_dropout, .gate_temperature, .top_k, ...
            setattr(self, name, value)
        if n_gates is not None and not self._gates_are_an_option():
            kwargs["n_gates"] = n_gates  # OMoE and MMoE fix their gates: the base reports an unknown option
        self.n_gates = self.default_n_gates if n_gates is None else n_gates  # checked in _build, with the tasks
        super().__init__(n_features, tasks, **kwargs)

    @classmethod
    def _gates_are_an_option(cls) -> bool:
        return "n_gates" in inspect.signature(cls).parameters  # not for OMoE and MMoE

    def _sizes(self) -> dict[str, Any]:
        sizes = {"n_experts": self.n_experts, "expert_units": self.expert_units, "tower_units": self.tower_units}
        if self._gates_are_an_option():
            sizes["n_gates"] = self.n_gates
        return {**sizes, **self.gate_options()}

    def gate_options(self) -> dict[str, Any]:
        """The gate options that differ from their defaults (an MMoE of the paper: none): :func:`mmoe_np.gating.changed_gate_options`."""
        return gating.changed_gate_options(self)

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

    def _gate_blocks(self) -> list[str]:
        """The parameter groups read like gates from x: ``gates``, then ``gates.noise`` with noisy gating."""
        return ["gates", "gates.noise"] if self.noisy_gating else ["gates"]

    def _layout(self) -> FlatLayout:
        """The parameters' flat layout with the blocks ``W1`` and ``b1`` of :meth:`_first_layer`: ``experts.0.W``,
        ``gates.W`` (and ``gates.noise.W``) are columns of one (d, E*h + G*E [+ G*E]) matrix in the buffer, their
        biases one vector, so the first layer reads them without copying."""
        blocks = self._gate_blocks()
        return FlatLayout(self._base_shapes, blocks={"W1": ["experts.0.W"] + [f"{name}.W" for name in blocks],
                                                     "b1": ["experts.0.b"] + [f"{name}.b" for name in blocks]})

    def _first_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """``W1`` (..., d, E*h + G*E) and ``b1`` (..., E*h + G*E): every expert's first layer and every gate, side
        by side, so that one matmul computes them all (columns ``e*h .. (e+1)*h``: expert e; the last G*E: the
        gates' logits, gate j's in columns ``E*h + j*E ..``; with noisy gating G*E more: the noise logits).
        The blocks of the flat buffer that ``experts.0.*`` and ``gates.*`` are views of (:meth:`_layout`); if one
        of those arrays was replaced by an array of its own (``params[k] = ...``), the blocks of a repacked copy of
        the arrays the keys now name."""
        params = self.params.repacked()  # the params themselves while intact
        return params.segment("W1"), params.segment("b1")

    def _first_layer_grads(self, dW1: np.ndarray, db1: np.ndarray) -> ArrayDict:
        """The gradients of the blocks ``W1`` and ``b1`` (:meth:`_layout`): the gradients of ``experts.0.*`` and
        ``gates.*`` side by side, as the flat buffer stores them (each member's gradient is a view of them)."""
        return {"W1": dW1, "b1": db1}

    # ------------------------------------------------------------------ the whole chain
    def _forward(self, X: np.ndarray,
                 noise: gating.GateNoise | MoENoise | None = None) -> tuple[np.ndarray, MoECache]:
        E, h = self.n_experts, self.expert_units[0]
        masks = noise.dropout if isinstance(noise, MoENoise) else None                 # activation dropout, or None
        scale = self.dropout_scale
        z, first = ops.dense_forward(X, *self._first_layer())                         # (..., N, E*h + G*E)
        a, relu = ops.relu_forward(z[..., :E * h])                                     # (..., N, E*h)
        f = a.reshape(a.shape[:-1] + (E, h)).swapaxes(-3, -2)                      # (..., E, N, h): a view
        dropout = None
        if masks is not None:
            f, dropout = ops.dropout_forward(f, masks["experts.0"], scale)            # (..., E, N, h)
        f, deeper = ops.mlp_forward(f, self.mlp_layers("experts")[1:], relu_last=True,  # later layers, if any
                                    masks=self._layer_masks(masks, "experts", first=1), scale=scale)
        logits = z[..., E * h:].reshape(z.shape[:-1] + (-1, E))                        # (..., N, G [+ G noise], E)
        g, gates = self._gates_forward(logits, noise)                                  # (..., N, G, E)
        m, mixture = ops.mixture_forward(g.swapaxes(-3, -2), f)                    # (..., G, N, h_last)
        out, towers = ops.towers_forward(m, self.mlp_layers("towers"),                 # (..., N, K)
                                         self._layer_masks(masks, "towers"), scale)
        return out, MoECache(first, relu, dropout, deeper, gates, mixture, towers)

    def _backward(self, dout: np.ndarray, cache: MoECache, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        dm, tower_grads = ops.towers_backward(dout, cache.towers)                      # (..., G, N, h_last)
        dg, df = ops.mixture_backward(dm, cache.mixture)                               # (..., G, N, E), (.., E, N, h)
        grads = self._mlp_grads("towers", tower_grads)
        if cache.deeper:
            df, deeper_grads = ops.mlp_backward(df, cache.deeper)                      # (..., E, N, h)
            grads.update(self._mlp_grads("experts", deeper_grads, first=1))
        if cache.dropout is not None:
            df = ops.dropout_backward(df, cache.dropout)                               # (..., E, N, h)
        dlogits = self._gates_backward(dg.swapaxes(-3, -2), cache.gates)           # (..., N, G [+ G], E)
        df = df.swapaxes(-3, -2)                                                   # (..., N, E, h)
        da = ops.relu_backward(df.reshape(df.shape[:-2] + (-1,)), cache.relu)          # (..., N, E*h)
        dz = np.concatenate([da, dlogits.reshape(dlogits.shape[:-2] + (-1,))], axis=-1)  # side by side, like z
        dX, dW1, db1 = ops.dense_backward(dz, cache.first, input_grad)
        grads.update(self._first_layer_grads(dW1, db1))
        return grads, dX  # dX = dz W1^T: what x receives from every expert and every gate, summed

    # ------------------------------------------------------------------ the gates
    def _add_gates(self, rng: np.random.Generator) -> None:
        self.params["gates.W"] = glorot_uniform(rng, (self.n_gates, self.n_features, self.n_experts), self.dtype)
        self.params["gates.b"] = np.zeros((self.n_gates, self.n_experts), dtype=self.dtype)
        if self.noisy_gating:  # zero, as Shazeer et al.: the noise starts at scale softplus(0) = log 2 everywhere
            self.params["gates.noise.W"] = np.zeros_like(self.params["gates.W"])
            self.params["gates.noise.b"] = np.zeros_like(self.params["gates.b"])

    def _gates_forward(self, logits: np.ndarray,
                       noise: gating.GateNoise | None = None) -> tuple[np.ndarray, GatesCache]:
        """Gate logits (..., N, G, E) (with noisy gating (..., N, 2G, E): then the noise logits)  ->  gate weights
        g (..., N, G, E), every row a distribution over the experts:
        noise (training passes) -> softmax(/ tau) over the top k -> importance loss -> dropout (training passes).
        With the defaults and no noise this is ``ops.softmax_forward`` bit for bit."""
        G = self.n_gates
        noise_logits = logits[..., G:, :] if self.noisy_gating else None
        return gating.gate_chain_forward(logits[..., :G, :], noise_logits, noise, top_k=self.top_k or self.n_experts,
                                         temperature=self.gate_temperature, balance_weight=self.balance_weight,
                                         batch_axis=-3)

    def _gates_backward(self, dg: np.ndarray, cache: GatesCache) -> np.ndarray:
        """dg (..., N, G, E)  ->  the gradient of the logits (..., N, G, E) (with noisy gating (..., N, 2G, E))."""
        dz, dnoise = gating.gate_chain_backward(dg, cache, balance_weight=self.balance_weight,
                                                noisy_gating=self.noisy_gating)
        return dz if dnoise is None else np.concatenate([dz, dnoise], axis=-2)

    def _auxiliary_loss(self, cache: MoECache) -> Any:
        """The importance (load-balancing) loss of the pass's gates, ``balance_weight * sum_G CV^2``."""
        return cache.gates.balance_value

    def draw_noise(self, rng: np.random.Generator, n_samples: int) -> gating.GateNoise | MoENoise | None:
        """One training pass's gate dropout mask and gating noise, each (..., n_samples, G, E), drawn from ``rng``
        (the mask first), then, with ``dropout``, the activation dropout masks (:meth:`draw_dropout`). A
        ``gating.GateNoise`` without ``dropout``, a :class:`MoENoise` with it; None when no option is on."""
        gates = None
        if self.gate_dropout or self.noisy_gating:
            shape = self.replica_shape + (n_samples, self.n_gates, self.n_experts)
            mask = gating.dropout_mask(rng, shape, self.gate_dropout, self.dtype) if self.gate_dropout else None
            eps = gating.gate_noise(rng, shape, self.dtype) if self.noisy_gating else None
            gates = gating.GateNoise(mask, eps)
        masks = self.draw_dropout(rng, n_samples)
        if masks is None:
            return gates
        return MoENoise(*(gates or (None, None)), masks)

    def top_k_margin(self, X: Any, noise: gating.GateNoise | None = None) -> float:
        """Smallest gap between a row's k-th and (k+1)-th gate logit on X (inf without top_k): how far the pass
        is from a change of the selected experts (:func:`mmoe_np.gating.top_k_margin`)."""
        if self.top_k is None:
            return float("inf")
        _, cache = self._forward(self._check_X(X), noise)
        return gating.top_k_margin(cache.gates.logits, self.top_k)

    def gate_weights(self, X: Any) -> np.ndarray:
        """Softmax gate weights (N, n_tasks, n_experts); with a single gate every task sees the same row."""
        z, _ = ops.dense_forward(self._check_X(X)[..., None, :, :], self.params["gates.W"], self.params["gates.b"])
        g, _ = self._gates_forward(z.swapaxes(-3, -2))               # (..., N, G, E): no dropout, no noise
        return np.broadcast_to(g, g.shape[:-2] + (self.n_tasks, self.n_experts)).copy()


class OMoE(MixtureOfExperts):
    """One-gate Mixture-of-Experts: one gate g(x) mixes the experts for every task, ``y_k = h^k(sum_e g(x)_e f_e(x))``.

    Parameters as :class:`MMoE` with a single gate: ``gates.W`` (1, n_features, E), ``gates.b`` (1, E). The mixture is
    computed once and read by every tower, so the gate's gradient is the sum over all tasks. Options as
    :class:`MMoE`'s.
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
    * with ``noisy_gating=True``: ``gates.noise.W`` (K, n_features, E), ``gates.noise.b`` (K, E);
      with ``loss_weighting="uncertainty"``: ``loss.log_vars`` (K,)

    Keyword options (every model's): ``seed=0``, ``dtype=np.float64``, ``task_weights``, ``loss_weighting``,
    ``dropout``; and the gate options ``gate_temperature``, ``top_k``, ``noisy_gating``, ``gate_dropout``,
    ``balance_weight`` (:class:`MixtureOfExperts`).
    """

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        super().__init__(n_features, tasks, n_experts, expert_units, tower_units, **kwargs)  # without n_gates
