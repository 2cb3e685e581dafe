"""Multi-task models composed from the functional ops: Single-Task, Shared-Bottom, OMoE and MMoE.

Every model maps X (N, n_features) to raw outputs (N, n_tasks): a value for a "regression" task, a logit for a
"binary" one. Parameters live in ``model.params``, a dict of plain arrays with readable keys; the shapes are listed
in each class docstring, where K = n_tasks, E = n_experts and ``sizes`` are the layer widths. A model whose arrays
carry extra leading axes (see :func:`stack_models`) is R independent replicas trained in lock-step.

Loss (see ``docs/backprop.md``): ``L = sum_k w_k L_k`` with ``L_k`` the batch mean of the squared error for a
regression task or of the binary cross-entropy on logits for a binary task, and ``w_k = 1`` unless ``task_weights``
is given. The MSE has no 1/2 factor.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, NamedTuple, Sequence

import numpy as np

from . import _validation as V
from . import ops
from .gradcheck import relu_caches
from .init import glorot_uniform

__all__ = ["LossResult", "MultiTaskModel", "SingleTask", "SharedBottom", "OMoE", "MMoE", "stack_models", "unstack_models"]

ArrayDict = dict[str, np.ndarray]


class LossResult(NamedTuple):
    """What :meth:`MultiTaskModel.forward_backward` returns. For stacked replicas ``loss`` is one value per replica
    and ``task_losses`` is (R, K)."""

    loss: Any                      # float (or (R,) array): sum_k w_k L_k plus the penalty
    task_losses: np.ndarray        # (K,) (or (R, K)): each task's mean loss, unweighted
    grads: ArrayDict | None        # the keys and shapes of params; None without backward
    dX: np.ndarray | None          # the shape of X; None without input_grad


class MultiTaskModel:
    """Common machinery: argument checks, parameters, the loss and its gradients, copies and replicas.

    A subclass sets its sizes, then calls ``super().__init__``, and implements
    ``_build(rng)`` (create ``self.params``), ``_forward(X) -> (out, cache)`` and
    ``_backward(dout, cache, input_grad) -> (grads, dX)``, where ``dX`` is None unless ``input_grad`` (training never
    needs it, and skipping it saves the most expensive product of the first layer). It may add a penalty with
    ``_penalty() -> (value, grads)``.
    """

    def __init__(self, n_features: int, tasks: Sequence[str], *, seed: int = 0, dtype: Any = np.float64,
                 task_weights: Sequence[float] | None = None, **unknown: Any) -> None:
        if unknown:  # the subclasses pass every keyword they do not know on to here
            known = [name for name in inspect.signature(type(self)).parameters if name not in ("self", "kwargs")]
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; expected {known} "
                             "and seed, dtype, task_weights")
        self.n_features = V.positive_int("n_features", n_features)
        self.tasks = V.tasks(tasks)
        self.dtype = V.dtype(dtype)
        self.task_weights = V.task_weights(task_weights, self.n_tasks, self.dtype)
        self.seed = V.int_at_least("seed", seed, 0)
        self.params: ArrayDict = {}
        self._build(np.random.default_rng(self.seed))
        self._base_shapes = {name: p.shape for name, p in self.params.items()}

    # ------------------------------------------------------------------ structure
    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def replica_shape(self) -> tuple[int, ...]:
        """Leading axes shared by every parameter: ``()`` for one model, ``(R,)`` for R stacked replicas."""
        name, base = next(iter(self._base_shapes.items()))
        return self.params[name].shape[: self.params[name].ndim - len(base)]

    def _add_mlp(self, rng: np.random.Generator, prefix: str, sizes: Sequence[int], stack: int | None = None) -> None:
        """Create layers ``{prefix}.{l}.W`` (stack, d_in, d_out) and ``{prefix}.{l}.b`` (stack, d_out);
        without ``stack`` the shapes are (d_in, d_out) and (d_out,). ``sizes = (d_in, h_1, ..., d_out)``."""
        lead = () if stack is None else (stack,)
        for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.params[f"{prefix}.{layer}.W"] = glorot_uniform(rng, lead + (d_in, d_out), self.dtype)
            self.params[f"{prefix}.{layer}.b"] = np.zeros(lead + (d_out,), dtype=self.dtype)

    def _layers(self, prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_0, b_0), (W_1, b_1), ...]`` of the MLP named ``prefix``."""
        layers = []
        while f"{prefix}.{len(layers)}.W" in self.params:
            layers.append((self.params[f"{prefix}.{len(layers)}.W"], self.params[f"{prefix}.{len(layers)}.b"]))
        return layers

    @staticmethod
    def _named(prefix: str, layer_grads: list[tuple[np.ndarray, np.ndarray]]) -> ArrayDict:
        """Name the ``[(dW, db), ...]`` of an MLP like its parameters."""
        grads = {}
        for layer, (dW, db) in enumerate(layer_grads):
            grads[f"{prefix}.{layer}.W"] = dW
            grads[f"{prefix}.{layer}.b"] = db
        return grads

    # ------------------------------------------------------------------ the task towers, shared by every model
    def _add_towers(self, rng: np.random.Generator, d_in: int) -> None:
        """K towers ``towers.{l}.W`` (K, d_in, d_out) over widths (d_in, *tower_units, 1): the last layer is the
        task's raw output."""
        self._add_mlp(rng, "towers", (d_in, *self.tower_units, 1), stack=self.n_tasks)

    def _towers_forward(self, z: np.ndarray) -> tuple[np.ndarray, list]:
        """K towers in one stacked MLP: z (..., K|1, N, h) -> out (..., N, K). A linear last layer of width 1."""
        y, cache = ops.mlp_forward(z, self._layers("towers"), relu_last=False)  # (..., K, N, 1)
        return np.swapaxes(y[..., 0], -1, -2), cache

    def _towers_backward(self, dout: np.ndarray, cache: list) -> tuple[np.ndarray, ArrayDict]:
        dy = np.swapaxes(dout, -1, -2)[..., None]  # (..., K, N, 1)
        dz, layer_grads = ops.mlp_backward(dy, cache)
        return dz, self._named("towers", layer_grads)

    # ------------------------------------------------------------------ hooks for subclasses
    def _build(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        raise NotImplementedError

    def _penalty(self) -> tuple[np.ndarray | float, ArrayDict]:
        """A parameter penalty added to the loss, and its gradients. None here."""
        return 0.0, {}

    # ------------------------------------------------------------------ public API
    def _check_X(self, X: Any) -> np.ndarray:
        return V.features(X, self.n_features, self.dtype, self.replica_shape)

    def forward(self, X: Any) -> np.ndarray:
        """Raw outputs (N, n_tasks) for inputs X (N, n_features); logits for binary tasks."""
        out, _ = self._forward(self._check_X(X))
        return out

    def losses(self, X: Any, Y: Any) -> tuple[np.ndarray | float, np.ndarray]:
        """``(total, per_task)``: the total loss (penalty included) and each task's mean loss (n_tasks,)."""
        result = self.forward_backward(X, Y, backward=False)
        return result.loss, result.task_losses

    def loss_and_grads(self, X: Any, Y: Any, *, input_grad: bool = False):
        """``(loss, grads)``, or ``(loss, grads, dX)`` with ``input_grad=True``.

        ``grads`` has exactly the keys and shapes of ``params``. Neither the parameters nor X and Y are modified.
        For stacked replicas the loss is one value per replica and each replica gets the gradient of its own loss.
        """
        loss, _, grads, dX = self.forward_backward(X, Y, input_grad=input_grad)
        return (loss, grads, dX) if input_grad else (loss, grads)

    def check_inputs(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        """X (N, n_features) and Y (N, n_tasks) as checked arrays of the model's dtype (ValueError naming X or Y)."""
        X = self._check_X(X)
        return X, V.targets(Y, self.tasks, X, self.dtype)

    def forward_backward(self, X: Any, Y: Any, *, backward: bool = True, input_grad: bool = False,
                         check: bool = True) -> "LossResult":
        """One pass of the whole chain: the loss ``sum_k w_k L_k`` plus the model's penalty, each task's loss, and,
        with ``backward``, the gradients of every parameter (and of X with ``input_grad``).

        ``check=False`` skips the input checks: for trainers that passed X and Y through :meth:`check_inputs` once
        (they must then be arrays of the model's dtype and shapes). Returns a :class:`LossResult`.
        """
        if check:
            X, Y = self.check_inputs(X, Y)
        out, cache = self._forward(X)
        (total, per_task), loss_cache = ops.multitask_loss_forward(out, Y, self.tasks, self.task_weights)
        penalty, penalty_grads = self._penalty()
        loss = self._scalar(total + penalty)
        if not backward:
            return LossResult(loss, per_task, None, None)
        dout = ops.multitask_loss_backward(np.ones_like(total), loss_cache)
        grads, dX = self._backward(dout, cache, input_grad)
        for name, g in penalty_grads.items():
            grads[name] = grads[name] + g
        grads = {name: grads[name] for name in self.params}  # the keys, and their order, of params
        return LossResult(loss, per_task, grads, ops.sum_to_shape(dX, X.shape) if input_grad else None)

    def _scalar(self, value: np.ndarray) -> np.ndarray | float:
        return float(value) if np.ndim(value) == 0 else np.asarray(value)

    def relu_margin(self, X: Any) -> float:
        """Smallest |pre-activation| of any ReLU on X: how far the forward pass is from a kink (inf if none)."""
        _, cache = self._forward(self._check_X(X))
        margins = [np.abs(c.pre_activation).min() for c in relu_caches(cache)]
        return float(min(margins)) if margins else float("inf")

    def copy(self, dtype: Any = None) -> "MultiTaskModel":
        """A deep copy, optionally cast to another dtype (float32 or float64)."""
        new = copy.copy(self)
        new.dtype = self.dtype if dtype is None else V.dtype(dtype)
        new.params = {name: p.astype(new.dtype, copy=True) for name, p in self.params.items()}
        new.task_weights = self.task_weights.astype(new.dtype)
        return new

    def config(self) -> dict[str, Any]:
        """The constructor arguments (without seed and dtype)."""
        return {"n_features": self.n_features, "tasks": self.tasks, "task_weights": self.task_weights.tolist(),
                **self._sizes()}

    def _sizes(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "task_weights")
        replicas = f", replicas={self.replica_shape}" if self.replica_shape else ""
        return f"{type(self).__name__}({args}, seed={self.seed}, dtype={self.dtype}{replicas})"


class SingleTask(MultiTaskModel):
    """One independent network per task, sharing nothing: ``y_k = h^k(f^k(x))``. The baseline.

    All K networks run as one stacked MLP. Parameters (sizes = (n_features, *hidden_units), then
    (hidden_units[-1], *tower_units, 1)):

    * ``hidden.{l}.W`` (K, sizes[l], sizes[l+1]), ``hidden.{l}.b`` (K, sizes[l+1]): each task's hidden layers (ReLU)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): each task's tower, linear output of width 1
    """

    def __init__(self, n_features: int, tasks: Sequence[str], hidden_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        self.hidden_units = V.units("hidden_units", hidden_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"hidden_units": self.hidden_units, "tower_units": self.tower_units}

    def _build(self, rng: np.random.Generator) -> None:
        self._add_mlp(rng, "hidden", (self.n_features, *self.hidden_units), stack=self.n_tasks)
        self._add_towers(rng, self.hidden_units[-1])

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        h, hidden_cache = ops.mlp_forward(X[..., None, :, :], self._layers("hidden"), relu_last=True)  # (.., K, N, h)
        out, tower_cache = self._towers_forward(h)
        return out, (hidden_cache, tower_cache)

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        hidden_cache, tower_cache = cache
        dh, grads = self._towers_backward(dout, tower_cache)
        dX, hidden_grads = ops.mlp_backward(dh, hidden_cache, need_dx=input_grad)  # summed over the K networks
        grads.update(self._named("hidden", hidden_grads))
        return grads, (dX[..., 0, :, :] if input_grad else None)


class SharedBottom(MultiTaskModel):
    """One bottom network shared by all tasks, one tower per task: ``y_k = h^k(f(x))``.

    Parameters (sizes = (n_features, *bottom_units)):

    * ``bottom.{l}.W`` (sizes[l], sizes[l+1]), ``bottom.{l}.b`` (sizes[l+1]): the shared bottom (ReLU after every layer)
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (bottom_units[-1], *tower_units, 1)
    """

    def __init__(self, n_features: int, tasks: Sequence[str], bottom_units: Sequence[int] = (16,),
                 tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        self.bottom_units = V.units("bottom_units", bottom_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"bottom_units": self.bottom_units, "tower_units": self.tower_units}

    def _build(self, rng: np.random.Generator) -> None:
        self._add_mlp(rng, "bottom", (self.n_features, *self.bottom_units))
        self._add_towers(rng, self.bottom_units[-1])

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        f, bottom_cache = ops.mlp_forward(X, self._layers("bottom"), relu_last=True)  # (..., N, h)
        out, tower_cache = self._towers_forward(f[..., None, :, :])  # every tower reads the same f
        return out, (bottom_cache, tower_cache)

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        bottom_cache, tower_cache = cache
        df, grads = self._towers_backward(dout, tower_cache)  # (..., 1, N, h): already summed over the towers
        dX, bottom_grads = ops.mlp_backward(df[..., 0, :, :], bottom_cache, need_dx=input_grad)
        grads.update(self._named("bottom", bottom_grads))
        return grads, dX


class _MixtureOfExperts(MultiTaskModel):
    """Experts mixed by softmax gates, G = 1 gate (OMoE) or G = K gates (MMoE); see :class:`MMoE` for the shapes."""

    gate_per_task: bool  # True: one gate per task (MMoE); False: one gate shared by all tasks (OMoE)

    def __init__(self, n_features: int, tasks: Sequence[str], n_experts: int = 8,
                 expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), **kwargs: Any) -> None:
        self.n_experts = V.positive_int("n_experts", n_experts)
        self.expert_units = V.units("expert_units", expert_units)
        self.tower_units = V.units("tower_units", tower_units, allow_empty=True)
        super().__init__(n_features, tasks, **kwargs)

    def _sizes(self) -> dict[str, Any]:
        return {"n_experts": self.n_experts, "expert_units": self.expert_units, "tower_units": self.tower_units}

    @property
    def n_gates(self) -> int:
        return self.n_tasks if self.gate_per_task else 1

    def _build(self, rng: np.random.Generator) -> None:
        self._add_mlp(rng, "experts", (self.n_features, *self.expert_units), stack=self.n_experts)
        self.params["gates.W"] = glorot_uniform(rng, (self.n_gates, self.n_features, self.n_experts), self.dtype)
        self.params["gates.b"] = np.zeros((self.n_gates, self.n_experts), dtype=self.dtype)
        self._add_towers(rng, self.expert_units[-1])

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        x = X[..., None, :, :]                                                         # (..., 1, N, d)
        f, expert_cache = ops.mlp_forward(x, self._layers("experts"), relu_last=True)  # (..., E, N, h)
        g, gate_cache = ops.gate_forward(x, self.params["gates.W"], self.params["gates.b"])  # (..., G, N, E)
        m, mixture_cache = ops.mixture_forward(g, f)                                   # (..., G, N, h)
        out, tower_cache = self._towers_forward(m)                                     # (..., N, K)
        return out, (expert_cache, gate_cache, mixture_cache, tower_cache)

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        expert_cache, gate_cache, mixture_cache, tower_cache = cache
        dm, grads = self._towers_backward(dout, tower_cache)
        dg, df = ops.mixture_backward(dm, mixture_cache)
        dx_gates, grads["gates.W"], grads["gates.b"] = ops.gate_backward(dg, gate_cache, need_dx=input_grad)
        dx_experts, expert_grads = ops.mlp_backward(df, expert_cache, need_dx=input_grad)
        grads.update(self._named("experts", expert_grads))
        if not input_grad:
            return grads, None
        # x feeds every expert and every gate: its gradient is the sum over all of them
        return grads, (dx_experts + dx_gates)[..., 0, :, :]

    def gate_weights(self, X: Any) -> np.ndarray:
        """Softmax gate weights (N, n_tasks, n_experts); with OMoE's single gate every task sees the same row."""
        X = self._check_X(X)
        g, _ = ops.gate_forward(X[..., None, :, :], self.params["gates.W"], self.params["gates.b"])  # (..., G, N, E)
        g = np.swapaxes(g, -3, -2)  # (..., N, G, E)
        return np.broadcast_to(g, g.shape[:-2] + (self.n_tasks, self.n_experts)).copy()


class OMoE(_MixtureOfExperts):
    """One-gate Mixture-of-Experts: one gate g(x) mixes the experts for every task, ``y_k = h^k(sum_e g(x)_e f_e(x))``.

    Parameters as :class:`MMoE` with a single gate: ``gates.W`` (1, n_features, E), ``gates.b`` (1, E). The mixture is
    computed once and read by every tower, so the gate's gradient is the sum over all tasks.
    """

    gate_per_task = False


class MMoE(_MixtureOfExperts):
    """Multi-gate Mixture-of-Experts: task k has its own gate, ``y_k = h^k(sum_e g^k(x)_e f_e(x))``,
    ``g^k(x) = softmax(x W_k + b_k)``, so tasks can weigh the shared experts differently.

    Parameters (K = n_tasks, E = n_experts, sizes = (n_features, *expert_units)):

    * ``experts.{l}.W`` (E, sizes[l], sizes[l+1]), ``experts.{l}.b`` (E, sizes[l+1]): the experts (ReLU everywhere)
    * ``gates.W`` (K, n_features, E), ``gates.b`` (K, E): the K gates, computed in one matmul
    * ``towers.{l}.W`` (K, d_in, d_out), ``towers.{l}.b`` (K, d_out): the towers, (expert_units[-1], *tower_units, 1)
    """

    gate_per_task = True


def stack_models(models: Sequence[MultiTaskModel]) -> MultiTaskModel:
    """R models of one configuration as one model whose arrays have a leading replica axis (R, ...).

    Each replica keeps its own initialisation; every op broadcasts over the replica axis, so one forward/backward
    trains all R in lock-step. X may be shared (N, d) or per replica (R, N, d).
    """
    models = list(models)
    if not models:
        raise ValueError("models must contain at least one model; got an empty sequence")
    first = models[0]
    for i, m in enumerate(models):
        if type(m) is not type(first) or m.config() != first.config() or m.dtype != first.dtype:
            raise ValueError(f"models[{i}] must have the class, configuration and dtype of models[0]; got {m!r}")
        if m.replica_shape:
            raise ValueError(f"models[{i}] is already stacked (replicas {m.replica_shape}); stack single models")
    stacked = first.copy()
    stacked.params = {name: np.stack([m.params[name] for m in models]) for name in first.params}
    stacked.seed = tuple(m.seed for m in models)  # one seed per replica
    return stacked


def unstack_models(model: MultiTaskModel) -> list[MultiTaskModel]:
    """The inverse of :func:`stack_models`: one independent model (a copy) per replica."""
    if len(model.replica_shape) != 1:
        raise ValueError(f"model must have exactly one replica axis; got replicas {model.replica_shape}")
    n_replicas = model.replica_shape[0]
    seeds = model.seed if isinstance(model.seed, tuple) else (model.seed,) * n_replicas
    singles = []
    for r in range(n_replicas):
        single = copy.copy(model)  # shares the configuration; gets its own arrays below
        single.params = {name: p[r].copy() for name, p in model.params.items()}
        single.task_weights = model.task_weights.copy()
        single.seed = seeds[r]
        singles.append(single)
    return singles
