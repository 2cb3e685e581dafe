"""The model base class: parameters, input checks, the loss and its gradients, predictions, copies and replicas.

No model math lives here: each subclass writes its whole chain, from X to its raw outputs and back, with the ops of
:mod:`mmoe_np.ops`. This class adds the loss (``ops.multitask_loss_*``) at the end of that chain, and the public API
around it. Parameters live in ``model.params``, a dict of arrays with readable keys (listed in each class
docstring), each a view into one flat buffer (:mod:`mmoe_np.models.flat`, so that an optimizer can update them all
at once); gradients mirror it key for key, in a fresh buffer of the same layout per call. A model whose arrays
carry extra leading axes (see :func:`stack_models`) is R independent replicas trained in lock-step.

Loss (see ``docs/backprop.md``): ``L = sum_k w_k L_k`` with ``L_k`` the batch mean of the squared error for a
regression task or of the binary cross-entropy on logits for a binary task, and ``w_k = 1`` unless ``task_weights``
is given. The MSE has no 1/2 factor. With ``loss_weighting="uncertainty"`` the weights are learned instead:
``L = sum_k exp(-s_k) L_k + s_k`` (Kendall et al., 2018), the log-variances s_k in ``params["loss.log_vars"]`` (K,).

Training randomness (activation dropout, gate dropout, noisy gating): a pass given ``rng`` (a NumPy Generator) or
explicit ``noise`` is a training pass, its draws made by :meth:`MultiTaskModel.draw_noise` from that rng, so it is
deterministic given the rng's state; without either nothing is dropped or noised, and ``forward``/``predict`` never
are. ``dropout=p`` (every model) drops each hidden unit after a ReLU with probability p in training passes
(inverted dropout, ``ops.dropout_forward``): the experts', bottom's or per-task hidden layers' and the towers' hidden
layers', never the inputs, the gates or the outputs.
"""
from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from .. import _validation as V
from .. import gating, ops, persist
from ..gradcheck import relu_caches
from ..init import glorot_uniform
from ..metrics import roc_auc
from .flat import FlatArrays, FlatLayout

__all__ = ["ArrayDict", "LossResult", "MultiTaskModel", "stack_models", "unstack_models", "LOSS_WEIGHTINGS"]

LOSS_WEIGHTINGS = ("fixed", "uncertainty")  # task_weights as given, or learned log-variances

ArrayDict = dict[str, np.ndarray]
LayerGrads = list[tuple[np.ndarray, np.ndarray]]  # [(dW_0, db_0), (dW_1, db_1), ...], as ops.mlp_backward returns


class LossResult(NamedTuple):
    """What :meth:`MultiTaskModel.forward_backward` returns. For stacked replicas ``loss`` is one value per replica
    and ``task_losses`` is (R, K)."""

    loss: Any                      # float (or (R,) array): sum_k w_k L_k plus the penalty
    task_losses: np.ndarray        # (K,) (or (R, K)): each task's mean loss, unweighted
    grads: ArrayDict | None        # the keys and shapes of params; None without backward
    dX: np.ndarray | None          # the shape of X; None without input_grad


class MultiTaskModel:
    """Common machinery of every model: checks, parameters, the loss and its gradients, copies and replicas.

    A subclass stores and checks its sizes, calls ``super().__init__``, and implements:

    * ``_build(rng)``: create ``self.params`` (the MLP helpers below name and create stacked layers);
    * ``_forward(X) -> (out, cache)``: X (..., N, n_features) to raw outputs (..., N, K), with a NamedTuple cache;
    * ``_backward(dout, cache, input_grad) -> (grads, dX)``: the same chain backwards, ``dX`` None unless
      ``input_grad`` (training never needs it, and skipping it saves the most expensive product of the first layer);
    * ``_sizes() -> dict``: its own constructor arguments, for :meth:`config`;
    * optionally ``_penalty() -> (value, grads)``: a parameter penalty added to the loss;
    * optionally, for training randomness, ``draw_noise(rng, n_samples)``, ``_forward(X, noise=...)`` and
      ``_auxiliary_loss(cache)`` (a loss term on the forward pass's values, whose gradient ``_backward`` adds);
    * for activation dropout, ``_dropout_mlps``: the MLPs whose ReLU outputs may be dropped, and a
      ``_forward(X, noise=...)`` that hands :meth:`_layer_masks` to the ops (a class without them refuses dropout).
    """

    # (MLP name, whether its last layer has a ReLU): where dropout=p drops units; () for a model without dropout
    _dropout_mlps: tuple[tuple[str, bool], ...] = ()

    def __init__(self, n_features: int, tasks: Sequence[str], *, seed: int = 0, dtype: Any = np.float64,
                 task_weights: Sequence[float] | None = None, loss_weighting: str = "fixed", dropout: float = 0.0,
                 **unknown: Any) -> None:
        if unknown:  # the subclasses pass every keyword they do not know on to here
            raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)}; expected "
                             f"{self._known_options()}")
        self.dropout = V.positive_float("dropout", dropout, allow_zero=True)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1) (the probability of dropping a hidden unit); got {dropout!r}")
        if self.dropout and not self._dropout_mlps:
            raise ValueError(f"dropout: {type(self).__name__} has no activation dropout; leave dropout at 0")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}; got {loss_weighting!r}")
        if loss_weighting == "uncertainty" and task_weights is not None:
            raise ValueError("task_weights must be None with loss_weighting='uncertainty' (the weights are learned)")
        self.loss_weighting = loss_weighting
        self.n_features = V.positive_int("n_features", n_features)
        self.tasks = V.tasks(tasks)
        self.dtype = V.dtype(dtype)
        self.task_weights = V.task_weights(task_weights, self.n_tasks, self.dtype)
        self.seed = V.int_at_least("seed", seed, 0)
        self.params: ArrayDict = {}
        self._build(np.random.default_rng(self.seed))
        if loss_weighting == "uncertainty":  # s_k = 0: every task starts at weight exp(-0) = 1
            self.params["loss.log_vars"] = np.zeros(self.n_tasks, dtype=self.dtype)
        self._held_noise: Any = None  # see holding_noise
        self._base_shapes = {name: p.shape for name, p in self.params.items()}
        self._bind(FlatArrays.of(self.params, self._layout()))  # the same numbers, now views into one buffer

    @classmethod
    def _known_options(cls) -> list[str]:
        """Every keyword the class's constructor takes: its own arguments, and the keyword-only ones of the bases it
        hands ``**kwargs`` on to (its own signature shows only part of them; a base's positional arguments are the
        subclass's to fill)."""
        known: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for name, p in inspect.signature(init).parameters.items():
                own = klass is cls and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                if name != "self" and (own or p.kind is p.KEYWORD_ONLY) and name not in known:
                    known.append(name)
        return known

    # ------------------------------------------------------------------ structure
    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def replica_shape(self) -> tuple[int, ...]:
        """Leading axes shared by every parameter: ``()`` for one model, ``(R,)`` for R stacked replicas."""
        name, base = next(iter(self._base_shapes.items()))
        return self.params[name].shape[: self.params[name].ndim - len(base)]

    # ------------------------------------------------------------------ the flat buffer (see models/flat.py)
    def _layout(self) -> FlatLayout:
        """Where the parameters live in the flat buffer: one after the other, in the order of ``params``."""
        return FlatLayout(self._base_shapes)

    def _bind(self, params: FlatArrays) -> None:
        """Make ``params`` (views into one flat buffer) the model's parameters."""
        self.params = params

    def _flat_grads(self, grads: ArrayDict) -> FlatArrays:
        """``grads`` copied into one fresh flat buffer with the layout of ``params``: a new buffer per call, so grads
        kept from an earlier call never change, and optimizers can update the whole buffer at once. ``grads`` has
        a key per segment of the layout: a parameter's name, or a block's (e.g. ``W1``: the gradient of all its
        members at once)."""
        flat = FlatArrays(np.empty(self.params.layout.size, dtype=self.dtype), self.params.layout)
        for key in self.params.layout.segment_keys:  # every number of the buffer, exactly once
            np.copyto(flat.segment(key), grads[key], casting="same_kind")
        return flat

    # ------------------------------------------------------------------ MLP parameters: {name}.{l}.W and {name}.{l}.b
    def _add_mlp(self, rng: np.random.Generator, name: str, sizes: Sequence[int], stack: int | None = None) -> None:
        """Create the layers ``{name}.{l}.W`` (stack, d_in, d_out) and ``{name}.{l}.b`` (stack, d_out) over widths
        ``sizes = (d_in, h_1, ..., d_out)``; without ``stack`` the shapes are (d_in, d_out) and (d_out,).
        Glorot-uniform weights, layer by layer from ``rng``; zero biases."""
        lead = () if stack is None else (stack,)
        for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.params[f"{name}.{layer}.W"] = glorot_uniform(rng, lead + (d_in, d_out), self.dtype)
            self.params[f"{name}.{layer}.b"] = np.zeros(lead + (d_out,), dtype=self.dtype)

    def mlp_layers(self, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_0, b_0), (W_1, b_1), ...]``: the parameters of the MLP ``name`` (e.g. "experts", "towers"), in the
        form :func:`mmoe_np.ops.mlp_forward` takes; the arrays themselves, not copies."""
        layers = []
        while f"{name}.{len(layers)}.W" in self.params:
            layers.append((self.params[f"{name}.{len(layers)}.W"], self.params[f"{name}.{len(layers)}.b"]))
        return layers

    @staticmethod
    def _mlp_grads(name: str, layer_grads: LayerGrads, first: int = 0) -> ArrayDict:
        """Name the ``[(dW, db), ...]`` of :func:`mmoe_np.ops.mlp_backward` like the MLP's parameters, from layer
        ``first`` on."""
        grads = {}
        for layer, (dW, db) in enumerate(layer_grads, start=first):
            grads[f"{name}.{layer}.W"], grads[f"{name}.{layer}.b"] = dW, db
        return grads

    def _add_towers(self, rng: np.random.Generator, d_in: int) -> None:
        """The K task towers ``towers.{l}.W`` (K, d_in, d_out) over widths (d_in, *tower_units, 1), read by
        :func:`mmoe_np.ops.towers_forward`: the last layer is each task's raw output."""
        self._add_mlp(rng, "towers", (d_in, *self.tower_units, 1), stack=self.n_tasks)

    # ------------------------------------------------------------------ hooks for subclasses
    def _build(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _backward(self, dout: np.ndarray, cache: Any, input_grad: bool) -> tuple[ArrayDict, np.ndarray | None]:
        raise NotImplementedError

    def _sizes(self) -> dict[str, Any]:
        return {}

    def _penalty(self) -> tuple[np.ndarray | float, ArrayDict]:
        """A parameter penalty added to the loss, and its gradients. None here."""
        return 0.0, {}

    def _auxiliary_loss(self, cache: Any) -> np.ndarray | float:
        """A loss term computed from the forward pass (a gate's load-balancing loss), added to the total; the
        model's ``_backward`` adds its gradient. None here."""
        return 0.0

    def draw_noise(self, rng: np.random.Generator, n_samples: int) -> Any:
        """The training randomness of one pass on ``n_samples`` rows, drawn from ``rng`` (dropout masks, gating
        noise), or None for a model without any. Here: the activation dropout masks (:meth:`draw_dropout`)."""
        return self.draw_dropout(rng, n_samples)

    # ------------------------------------------------------------------ activation dropout
    def dropout_sites(self) -> dict[str, tuple[int, ...]]:
        """Where ``dropout`` drops units: ``{"{mlp}.{l}": shape}``, the output of layer l of an MLP of
        ``_dropout_mlps`` after its ReLU, with its shape (stack, width) without the replica and sample axes (the
        activation is (..., stack, N, width)). Read from the biases ``{mlp}.{l}.b`` (stack, width); a tower's
        linear output layer is not a site."""
        sites = {}
        for name, relu_last in self._dropout_mlps:
            n_layers = 0
            while f"{name}.{n_layers}.b" in self._base_shapes:
                n_layers += 1
            for layer in range(n_layers if relu_last else n_layers - 1):
                sites[f"{name}.{layer}"] = self._base_shapes[f"{name}.{layer}.b"]
        return sites

    def draw_dropout(self, rng: np.random.Generator, n_samples: int) -> dict[str, np.ndarray] | None:
        """One training pass's dropout masks, ``{site: mask}`` (:meth:`dropout_sites`), each boolean
        (..., stack, n_samples, width), True (kept) with probability ``1 - dropout``, drawn from ``rng`` in the
        order of the sites; None when ``dropout`` is 0 (nothing is drawn)."""
        if not self.dropout:
            return None
        return {site: ops.keep_mask(rng, self.replica_shape + shape[:-1] + (n_samples, shape[-1]), self.dropout)
                for site, shape in self.dropout_sites().items()}

    @property
    def dropout_scale(self) -> float:
        """``1 / (1 - dropout)``: the factor of the kept units (inverted dropout keeps every unit's mean)."""
        return 1.0 / (1.0 - self.dropout)

    @staticmethod
    def _layer_masks(masks: dict[str, np.ndarray] | None, name: str, first: int = 0) -> list[np.ndarray] | None:
        """MLP ``name``'s masks from layer ``first`` on, ``[mask_first, ...]``, as :func:`mmoe_np.ops.mlp_forward`
        takes them; None for a pass without dropout."""
        if masks is None:
            return None
        layer_masks = []
        while f"{name}.{first + len(layer_masks)}" in masks:
            layer_masks.append(masks[f"{name}.{first + len(layer_masks)}"])
        return layer_masks

    def holding_noise(self, noise: Any) -> "MultiTaskModel":
        """A copy whose loss passes (``forward_backward``, ``loss_and_grads``, ``losses``) all use this fixed
        ``noise`` (from :meth:`draw_noise`) unless given other: what a gradient check needs, since it compares
        passes that must drop the same gates. ``forward``/``predict`` still never use it."""
        held = self.copy()
        held._held_noise = noise
        return held

    # ------------------------------------------------------------------ the loss and its gradients
    def check_inputs(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        """X (N, n_features) and Y (N, n_tasks) as checked arrays of the model's dtype (ValueError naming X or Y)."""
        X = self._check_X(X)
        return X, V.targets(Y, self.tasks, X, self.dtype)

    def _check_X(self, X: Any) -> np.ndarray:
        """X checked against the model, after the parameters themselves (every public pass starts here)."""
        self._check_params_type()
        self.params.check_replaced()  # nothing while intact; the pass computes with the keys as they are
        return V.features(X, self.n_features, self.dtype, self.replica_shape)

    def checked_params(self) -> FlatArrays:
        """``params`` in one flat buffer (itself while no key was replaced), after refusing (ValueError naming the
        key) a replaced array of another shape or dtype than the model's: NumPy would otherwise broadcast it."""
        self._check_params_type()
        return self.params.repacked()

    def _check_params_type(self) -> None:
        if not isinstance(self.params, FlatArrays):
            raise ValueError(f"model.params must stay the model's own dict of views (FlatArrays); got "
                             f"{type(self.params).__name__} (write into its arrays: params[k][...] = value)")

    def forward_backward(self, X: Any, Y: Any, *, backward: bool = True, input_grad: bool = False,
                         check: bool = True, rng: np.random.Generator | None = None, noise: Any = None) -> LossResult:
        """One pass of the whole chain: the loss ``sum_k w_k L_k`` plus the model's penalty, each task's loss, and,
        with ``backward``, the gradients of every parameter (and of X with ``input_grad``).

        ``check=True`` checks X and Y (and any parameter replaced by an array of its own) first, and refuses
        (ValueError naming X, Y) a pass that overflows the dtype instead of returning inf or NaN. ``check=False``
        skips all of it: for trainers that passed X and Y through
        :meth:`check_inputs` once (arrays of the model's dtype and shapes) and watch the loss themselves.
        ``rng`` makes it a training pass: the model's training randomness (gate dropout, gating noise) is drawn
        from it (:meth:`draw_noise`); ``noise`` gives those draws explicitly. Returns a :class:`LossResult`.
        """
        if not check:
            return self._forward_backward(X, Y, backward, input_grad, self._noise(noise, rng, X))[0]
        X, Y = self.check_inputs(X, Y)
        noise = self._noise(noise, rng, X)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, by name
            result, out = self._forward_backward(X, Y, backward, input_grad, noise)
        gradients = () if not backward else (*result.grads.values(), *(() if result.dX is None else (result.dX,)))
        self._refuse_overflow(X, out, result.loss, gradients)
        return result

    def _noise(self, noise: Any, rng: np.random.Generator | None, X: np.ndarray) -> Any:
        """The pass's training randomness: ``noise`` if given, else drawn from ``rng``, else the held noise."""
        if noise is None and rng is not None:
            noise = self.draw_noise(rng, X.shape[-2])
        return self._held_noise if noise is None else noise

    def _forward_backward(self, X: np.ndarray, Y: np.ndarray, backward: bool, input_grad: bool,
                          noise: Any = None) -> tuple[LossResult, np.ndarray]:
        """The chain itself, on checked X and Y: model forward, loss, loss backward, model backward. Returns the
        result and the raw outputs."""
        out, cache = self._forward(X) if noise is None else self._forward(X, noise=noise)
        (total, per_task), loss_cache = ops.multitask_loss_forward(out, Y, self.tasks, self.task_weights)
        if self.loss_weighting == "uncertainty":  # sum_k exp(-s_k) L_k + s_k instead of sum_k w_k L_k
            total, weighting = gating.uncertainty_loss_forward(per_task, self.params["loss.log_vars"])
        penalty, penalty_grads = self._penalty()
        loss = self._scalar(total + penalty + self._auxiliary_loss(cache))
        if not backward:
            return LossResult(loss, per_task, None, None), out
        if self.loss_weighting == "uncertainty":
            dper_task, dlog_vars = gating.uncertainty_loss_backward(np.ones_like(total), weighting)
            dout = ops.task_losses_backward(dper_task, loss_cache)
        else:
            dout = ops.multitask_loss_backward(np.ones_like(total), loss_cache)
        grads, dX = self._backward(dout, cache, input_grad)
        if self.loss_weighting == "uncertainty":
            grads["loss.log_vars"] = dlog_vars
        for name, g in penalty_grads.items():
            grads[name] = grads[name] + g
        grads = self._flat_grads(grads)  # the keys, the order and the flat layout of params
        return LossResult(loss, per_task, grads, ops.sum_to_shape(dX, X.shape) if input_grad else None), out

    def _refuse_overflow(self, X: np.ndarray, out: np.ndarray, loss: Any = 0.0, gradients: Any = ()) -> None:
        """A ValueError naming X (or X and Y) when a pass overflowed the dtype: inputs so large that the outputs are
        inf or NaN, finite outputs so far from Y that the loss is, or a finite loss whose gradients are not."""
        if not np.all(np.isfinite(out)):
            bad = next((name for name, p in self.params.items() if not np.all(np.isfinite(p))), None)
            if bad is not None:  # the model itself is broken: say so, rather than blame X
                raise ValueError(f"params[{bad!r}] contains NaN or inf; the model cannot be evaluated")
            raise ValueError(f"X is too large for a {self.dtype} model: the forward pass overflows to inf or NaN "
                             f"(largest |X| = {float(np.max(np.abs(X))):.3g}); scale the inputs down")
        if not np.all(np.isfinite(loss)):
            raise ValueError(f"X, Y: the loss overflows {self.dtype} (the outputs are finite but too far from Y); "
                             "scale the inputs or the targets down")
        if not all(np.all(np.isfinite(g)) for g in gradients):
            raise ValueError(f"X, Y: the gradients overflow {self.dtype} (the loss is finite but X or the errors "
                             "are too large); scale the inputs or the targets down")

    def loss_and_grads(self, X: Any, Y: Any, *, input_grad: bool = False, rng: np.random.Generator | None = None,
                       noise: Any = None):
        """``(loss, grads)``, or ``(loss, grads, dX)`` with ``input_grad=True``.

        ``grads`` has exactly the keys and shapes of ``params``. Neither the parameters nor X and Y are modified.
        For stacked replicas the loss is one value per replica and each replica gets the gradient of its own loss.
        ``rng``/``noise``: a training pass (gate dropout, gating noise), as :meth:`forward_backward` says.
        """
        V.flag("input_grad", input_grad)  # "yes" is true, and would silently return three values
        loss, _, grads, dX = self.forward_backward(X, Y, input_grad=input_grad, rng=rng, noise=noise)
        return (loss, grads, dX) if input_grad else (loss, grads)

    def losses(self, X: Any, Y: Any, *, rng: np.random.Generator | None = None,
               noise: Any = None) -> tuple[np.ndarray | float, np.ndarray]:
        """``(total, per_task)``: the total loss (penalty included) and each task's mean loss (n_tasks,)."""
        result = self.forward_backward(X, Y, backward=False, rng=rng, noise=noise)
        return result.loss, result.task_losses

    @staticmethod
    def _scalar(value: np.ndarray) -> np.ndarray | float:
        return float(value) if np.ndim(value) == 0 else np.asarray(value)

    # ------------------------------------------------------------------ inference
    def forward(self, X: Any) -> np.ndarray:
        """Raw outputs (N, n_tasks) for inputs X (N, n_features); logits for binary tasks."""
        out, _ = self._finite_forward(self._check_X(X))
        return out

    def _finite_forward(self, X: np.ndarray) -> tuple[np.ndarray, Any]:
        """``_forward`` on checked X, refusing inputs so large that the pass overflows (a ValueError naming X, not
        inf outputs, NaN gradients and warnings)."""
        with np.errstate(over="ignore", invalid="ignore"):
            out, cache = self._forward(X)
        self._refuse_overflow(X, out)
        return out, cache

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (N, n_tasks): the probability ``sigmoid(logit)`` for a "binary" task, the value itself for a
        "regression" task."""
        out = self.forward(X)
        binary = [k for k, kind in enumerate(self.tasks) if kind == "binary"]
        out[..., binary] = ops.sigmoid(out[..., binary])
        return out

    def evaluate(self, X: Any, Y: Any) -> dict[int, dict[str, Any]]:
        """Scores per task index k: ``{"loss": L_k, "auc": ...}`` for a binary task (the ROC AUC of its predicted
        outputs, :func:`mmoe_np.metrics.roc_auc`, which rank like its probabilities; Y's column needs both labels), ``{"loss": L_k, "mse": ...}``
        for a regression task. ``loss`` is the task's loss on (X, Y), unweighted (for regression it equals the
        MSE). Floats, or arrays of one value per replica for stacked models."""
        X, Y = self.check_inputs(X, Y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, _ = self._forward(X)
            (_, per_task), _ = ops.multitask_loss_forward(out, Y, self.tasks, self.task_weights)
        self._refuse_overflow(X, out, per_task)
        Y = np.broadcast_to(Y, out.shape)  # one Y shared by every replica
        scores: dict[int, dict[str, Any]] = {}
        for k, kind in enumerate(self.tasks):
            loss = self._scalar(per_task[..., k])
            if kind == "regression":
                scores[k] = {"loss": loss, "mse": loss}  # the regression loss is the MSE
                continue
            aucs = []
            for r in np.ndindex(*out.shape[:-2]):  # one AUC per replica
                labels = Y[r][:, k]
                if labels.min() == labels.max():
                    raise ValueError(f"Y: binary task {k} has only label {labels[0]:g}; its AUC needs both 0 and 1")
                aucs.append(roc_auc(labels, out[r][:, k]))
            scores[k] = {"loss": loss, "auc": self._scalar(np.reshape(aucs, out.shape[:-2]))}
        return scores

    def relu_margin(self, X: Any) -> float:
        """Smallest |pre-activation| of any ReLU on X: how far the forward pass is from a kink (inf if none). A copy
        from :meth:`holding_noise` measures the pass its loss sees, with the held dropout masks and noise."""
        X = self._check_X(X)
        _, cache = self._forward(X) if self._held_noise is None else self._forward(X, noise=self._held_noise)
        margins = [np.abs(c.pre_activation).min() for c in relu_caches(cache)]
        return float(min(margins)) if margins else float("inf")

    # ------------------------------------------------------------------ copies and configuration
    def save(self, path: str | os.PathLike, *, data: dict[str, Any] | None = None) -> Path:
        """Write this model (params, class, full config, package version) to one ``.npz`` file, atomically; the
        file is read back by :func:`mmoe_np.load`. ``data`` (a JSON object) describes the inputs the model expects
        (:func:`mmoe_np.checkpoint_info` returns it). Returns the path."""
        return persist.save(self, path, data=data)

    def copy(self, dtype: Any = None) -> "MultiTaskModel":
        """A deep copy, optionally cast to another dtype (float32 or float64)."""
        new = copy.copy(self)
        new.dtype = self.dtype if dtype is None else V.dtype(dtype)
        packed = self.checked_params()  # a key replaced by an array of its own is copied as the model uses it
        new._bind(FlatArrays(packed.flat.astype(new.dtype, copy=True), packed.layout))
        new.task_weights = self.task_weights.astype(new.dtype)
        return new

    def config(self) -> dict[str, Any]:
        """The constructor arguments: for a single model ``type(model)(**model.config())`` builds the same model, with
        the same initial parameters bit for bit. ``dtype`` is a string ("float32" or "float64"). For stacked models
        ``seed`` is the tuple of the replicas' seeds, which the constructor refuses; the same initial replicas are
        ``stack_models([type(model)(**{**config, "seed": s}) for s in config["seed"]])``."""
        weighting = {} if self.loss_weighting == "fixed" else {"loss_weighting": self.loss_weighting}
        dropout = {"dropout": self.dropout} if self.dropout else {}  # like the gate options: shown when on
        return {"n_features": self.n_features, "tasks": self.tasks, **self._sizes(),
                "task_weights": None if weighting else self.task_weights.tolist(), **weighting, **dropout,
                "seed": self.seed, "dtype": self.dtype.name}

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.config().items() if k not in ("task_weights", "seed", "dtype")}
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        replicas = f", replicas={self.replica_shape}" if self.replica_shape else ""
        return f"{type(self).__name__}({args}, seed={self.seed}, dtype={self.dtype}{replicas})"


def _without_seed(model: MultiTaskModel) -> dict[str, Any]:
    return {k: v for k, v in model.config().items() if k != "seed"}


def stack_models(models: Sequence[MultiTaskModel]) -> MultiTaskModel:
    """R models of one configuration as one model whose arrays have a leading replica axis (R, ...).

    Each replica keeps its own initialisation; every op broadcasts over the replica axis, so one forward/backward
    trains all R in lock-step. X may be shared (N, d) or per replica (R, N, d). The models may differ in their seed
    only.
    """
    if isinstance(models, (MultiTaskModel, str, bytes)) or not hasattr(models, "__iter__"):
        raise ValueError(f"models must be a sequence of models such as [mn.MMoE(...), ...]; got "
                         f"{type(models).__name__}")
    models = list(models)
    if not models:
        raise ValueError("models must contain at least one model; got an empty sequence")
    for i, m in enumerate(models):
        if not isinstance(m, MultiTaskModel):
            raise ValueError(f"models[{i}] must be a model such as mn.MMoE(...); got {type(m).__name__}")
    first = models[0]
    for i, m in enumerate(models):
        if type(m) is not type(first) or _without_seed(m) != _without_seed(first):
            raise ValueError(f"models[{i}] must have the class, configuration and dtype of models[0]; got {m!r}")
        if m.replica_shape:
            raise ValueError(f"models[{i}] is already stacked (replicas {m.replica_shape}); stack single models")
    stacked = first.copy()
    stacked._bind(FlatArrays.stack([m.params for m in models]))  # every block (R, ...)
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
        single._bind(model.params.unstack(r))
        single.task_weights = model.task_weights.copy()
        single.seed = seeds[r]
        singles.append(single)
    return singles
