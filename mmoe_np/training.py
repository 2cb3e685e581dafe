"""Minibatch training: :func:`fit`, its :class:`History`, :class:`EarlyStopping`, and :class:`Progress`, the one
progress reporter of every trainer (``fit``, the lock-step trainer of the synthetic study, the census runs).

``fit`` works for a single model and for stacked replicas alike: every loss below is then an array with one value
per replica, and early stopping keeps each replica's own best parameters.
"""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from . import _validation as V
from .optim import Adam, Optimizer, check_schedule, scheduled_lr

__all__ = ["fit", "History", "EarlyStopping", "Progress", "format_seconds"]


@dataclass
class History:
    """What :func:`fit` recorded. Per-epoch lists; each entry is a float (or an (R,) array for replicas) for a total
    and a (K,) (or (R, K)) array for per-task losses.

    ``train_loss`` is the sample-weighted mean of the minibatch losses seen during the epoch (the model changes
    during the epoch, as in Keras); ``val_loss`` is computed on the validation set after the epoch.
    ``step``/``step_val_loss``/``step_val_task_loss`` hold the validation loss every ``eval_every`` steps.
    ``stopped`` says why training ended before ``epochs`` (early stopping, or a non-finite loss or gradient with
    ``on_divergence="stop"``), None if it ran them all. ``best_epoch`` (with early stopping) is the 0-based index
    into the per-epoch records of the best score (0: the first epoch); an array of one per replica when stacked.
    """

    train_loss: list = field(default_factory=list)
    train_task_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_task_loss: list = field(default_factory=list)
    score: list = field(default_factory=list)
    step: list = field(default_factory=list)
    step_val_loss: list = field(default_factory=list)
    step_val_task_loss: list = field(default_factory=list)
    best_epoch: Any = None
    seconds: float = 0.0
    stopped: str | None = None

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def __getitem__(self, key: str) -> np.ndarray:
        """``history["val_loss"]`` as an array with the epochs (or evaluation points) on axis 0."""
        if key not in self:
            raise KeyError(f"History has no record {key!r}; it has {[f.name for f in fields(self)]}")
        return np.asarray(getattr(self, key))

    def __contains__(self, key: Any) -> bool:
        """``"val_loss" in history``: whether ``key`` names one of its records."""
        return isinstance(key, str) and key in {f.name for f in fields(self)}


@dataclass
class EarlyStopping:
    """Stop when ``score(model)`` has not improved for ``patience`` epochs; optionally restore the best parameters.

    ``score`` maps the model to a float (or one value per replica); by default it is the total validation loss.
    ``mode`` is "min" (a loss) or "max" (e.g. an AUC). A value better by more than ``min_delta`` is an improvement.
    ``checkpoint`` (a file name) keeps the best model on disk: after every epoch that improves, the best parameters
    so far are saved there (``model.save``, atomically), so a run killed later still leaves its best model, read back
    with :func:`mmoe_np.load`. For stacked models it is one file of the stacked model in which each replica holds its
    own best parameters (:func:`mmoe_np.unstack_models` splits it).
    """

    score: Callable[[Any], Any] | None = None
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True
    checkpoint: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if self.score is not None and not callable(self.score):
            raise ValueError(f"score must be a function of the model (or None); got {self.score!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max'; got {self.mode!r}")
        V.positive_int("patience", self.patience)
        V.positive_float("min_delta", self.min_delta, allow_zero=True)
        V.flag("restore_best", self.restore_best)
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, (str, os.PathLike)):
                raise ValueError(f"checkpoint must be a file name or None; got {self.checkpoint!r}")
            if not Path(self.checkpoint).parent.is_dir():
                raise ValueError(f"checkpoint: the folder of {str(self.checkpoint)!r} does not exist")


def fit(model: Any, X: Any, Y: Any, *, optimizer: Optimizer | None = None, epochs: int = 10, batch_size: int = 32,
        validation: tuple[Any, Any] | None = None, seed: int = 0, shuffle: bool = True,
        early_stopping: EarlyStopping | None = None, eval_every: int | None = None,
        verbose: bool = False, on_divergence: str = "raise", schedule: str = "constant") -> History:
    """Train ``model`` on X (N, d), Y (N, K) with minibatches; returns the :class:`History`.

    ``optimizer`` defaults to ``Adam(model.params, lr=1e-3)``. Each epoch visits the N samples once in an order
    drawn from ``np.random.default_rng(seed)`` (the same order for every replica); the last batch may be smaller.
    ``validation=(X_val, Y_val)`` adds validation losses after every epoch (and every ``eval_every`` steps).
    Every minibatch pass is a training pass: the model's training randomness (activation dropout, gate dropout,
    gating noise) is drawn from a stream of its own, spawned from the same seed, so the order is unchanged by it.

    ``schedule`` moves the learning rate over the run, the synthetic study's schedules
    (:func:`mmoe_np.optim.scheduled_lr`): ``"constant"`` leaves ``optimizer.lr`` alone; ``"cosine"``
    takes step s (1..S) with the rate ``lr (1 + cos(pi (s - 1) / S)) / 2``, ``lr`` the optimizer's own (which it
    keeps between steps). S is the most steps the call can take, ``epochs * ceil(N / batch_size)``, whether or not
    early stopping ends the run sooner (then the rate has not come all the way down).

    A minibatch whose loss or gradient is not finite (a diverging run, e.g. SGD with a far too large rate) stops
    training before any parameter takes it: the parameters, and the optimizer's state (its step count ``t`` and
    arrays such as Adam's ``m`` and ``v``), go back to the last ones whose loss and gradient were finite (those
    before the previous update), as if training had stopped there; ``on_divergence="raise"`` (the default) then
    raises a ValueError saying where, ``"stop"`` returns the history with ``history.stopped`` saying why.
    If the very first minibatch is not finite, no step was taken and the learning rate is not the cause: a
    ValueError names X (too large for the dtype) or the parameter (NaN, inf or huge), whatever ``on_divergence``.
    """
    V.model_with(model, ("params", "dtype", "check_inputs", "forward_backward"))
    X, Y = model.check_inputs(X, Y)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be a pair (X_val, Y_val)")
        try:
            X_val, Y_val = model.check_inputs(*validation)
        except ValueError as err:  # the model's checks say "X" and "Y": here they are X_val and Y_val
            raise ValueError(f"validation=(X_val, Y_val): {err}") from None
    epochs = V.positive_int("epochs", epochs)
    batch_size = V.positive_int("batch_size", batch_size)
    if eval_every is not None:
        eval_every = V.positive_int("eval_every", eval_every)
        if validation is None:
            raise ValueError("eval_every needs validation=(X_val, Y_val)")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise ValueError(f"early_stopping must be an mn.EarlyStopping; got {type(early_stopping).__name__}")
    if early_stopping is not None and early_stopping.score is None and validation is None:
        raise ValueError("early_stopping without a score function needs validation=(X_val, Y_val)")
    rng = V.rng(seed)
    noise_rng = rng.spawn(1)[0]  # the training randomness (gate dropout, gating noise): its own stream, so the
    #                              shuffling order is the same with or without it
    optimizer = Adam(model.params, lr=1e-3) if optimizer is None else optimizer
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer must be an optimizer such as mn.Adam(model.params); got {optimizer!r}")
    if optimizer.params is not model.params:
        raise ValueError("optimizer must have been built on this model's params (e.g. mn.Adam(model.params))")
    shuffle, verbose = V.flag("shuffle", shuffle), V.flag("verbose", verbose)
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop'; got {on_divergence!r}")
    check_schedule(schedule)
    n = X.shape[-2]
    max_steps = epochs * math.ceil(n / batch_size)  # the schedule's length: every epoch run to its end
    base_lr = optimizer.lr

    def validate() -> tuple[Any, np.ndarray]:
        total, per_task, _, _ = model.forward_backward(X_val, Y_val, backward=False, check=False)
        return total, per_task

    history = History()
    stopper = _Stopper(early_stopping, model, validate) if early_stopping is not None else None
    progress = Progress(epochs, label="fit", unit="epochs", interval=0.0) if verbose else None
    last_good = copy.deepcopy(model.params)  # the last parameters with a finite step
    last_good_state = _OptimizerState(optimizer)  # and the optimizer's state as it was then
    steps = 0  # the steps taken by this call
    start_time = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        loss_sum, task_sum = 0.0, 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            # np.take gathers the rows ~2x faster than X[..., batch, :] (NumPy's general advanced indexing)
            X_batch, Y_batch = np.take(X, batch, axis=-2), np.take(Y, batch, axis=-2)
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging step is caught just below
                loss, per_task, grads, _ = model.forward_backward(X_batch, Y_batch, check=False, rng=noise_rng)
            what = _nonfinite(loss, grads)
            if what is not None and steps == 0:  # nothing was updated yet: the inputs or parameters are at fault
                _refuse_first_step(model, X_batch, Y_batch, what)
            if what is not None:
                # the parameters that gave this step's non-finite loss came from the previous step's update: undo it
                _copy_params(model.params, last_good)  # in place: the optimizer keeps references to these arrays
                last_good_state.restore()
                kept = f"those after step {optimizer.t}" if optimizer.t > 0 else "the initial ones"
                history.stopped = (f"diverged: non-finite {what} at step {optimizer.t + 2} (epoch {epoch + 1}); "
                                   f"the parameters are {kept}, the last with a finite loss and gradient")
                break
            _copy_params(last_good, model.params)
            last_good_state.save()
            if schedule == "constant":
                optimizer.step(grads)
            else:  # this step's rate; between steps (and after fit) the optimizer keeps the caller's
                optimizer.lr = scheduled_lr(base_lr, steps + 1, max_steps, schedule)
                optimizer.step(grads)
                optimizer.lr = base_lr
            steps += 1
            loss_sum = loss_sum + loss * len(batch)
            task_sum = task_sum + per_task * len(batch)
            if eval_every is not None and optimizer.t % eval_every == 0:
                total, per_task_val = validate()
                history.step.append(optimizer.t)
                history.step_val_loss.append(total)
                history.step_val_task_loss.append(per_task_val)
        if history.stopped is not None:  # diverged: this epoch's partial losses are not an epoch's
            break
        history.train_loss.append(loss_sum / n)
        history.train_task_loss.append(task_sum / n)
        if validation is not None:
            total, per_task_val = validate()
            history.val_loss.append(total)
            history.val_task_loss.append(per_task_val)
        stop = stopper is not None and stopper.update(epoch, history)
        if progress is not None:
            progress.update(work=1, detail=_epoch_detail(epoch, epochs, history))
        if stop:
            history.stopped = f"early stopping: the score did not improve for {early_stopping.patience} epochs"
            break
    history.seconds = time.perf_counter() - start_time
    if history.stopped is not None and history.stopped.startswith("diverged") and on_divergence == "raise":
        raise ValueError(f"fit: training {history.stopped}; try a smaller learning rate")
    if stopper is not None and history.epochs > 0:
        stopper.finish(history)
    return history


def _nonfinite(loss: Any, grads: dict[str, np.ndarray]) -> str | None:
    """What of a step is not finite: "loss", "gradient of 'key'", or None when everything is."""
    if not np.all(np.isfinite(loss)):
        return "loss"
    if hasattr(grads, "flat") and np.isfinite(grads.flat).all():  # a model's grads: one pass over its flat buffer
        return None
    return next((f"gradient of {key!r}" for key, g in grads.items() if not np.all(np.isfinite(g))), None)


def _refuse_first_step(model: Any, X: np.ndarray, Y: np.ndarray, what: str) -> None:
    """A ValueError saying why the first minibatch of ``fit`` is not finite: the model's own checked pass names X,
    or X and Y, or a NaN/inf parameter. Finite parameters far larger than X (1e120 overflows float64 as surely as a
    huge X) are named instead of X."""
    try:
        model.forward_backward(X, Y)
        reason = f"X, Y or the parameters are too large for {model.dtype}"  # not expected: the same pass, checked
    except ValueError as err:
        reason = str(err)
    name, p = max(model.params.items(), key=lambda item: float(np.max(np.abs(item[1]), initial=0.0)))
    p_max, x_max = float(np.max(np.abs(p))), float(np.max(np.abs(X), initial=0.0))
    if not reason.startswith("params[") and p_max > max(x_max, 1.0):
        reason = (f"params[{name!r}] holds values up to {p_max:.3g} (|X| <= {x_max:.3g}), too large for a "
                  f"{model.dtype} model: the pass overflows; initialise or scale the parameters down")
    raise ValueError(f"fit: the {what} is not finite before any step was taken: {reason}") from None


class _OptimizerState:
    """A copy of an optimizer's state (its step count ``t`` and every public array or dict of arrays other than
    ``params``: Adam's ``m`` and ``v``, SGD's ``velocity``), saved before each step and put back when the step
    diverges. Floats such as ``lr`` do not change during a step and are not copied."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.arrays = {name: copy.deepcopy(value) for name, value in vars(optimizer).items()
                       if name != "params" and not name.startswith("_") and _is_state(value)}
        self.t = optimizer.t

    def save(self) -> None:
        self.t = self.optimizer.t
        for name, saved in self.arrays.items():
            _copy_arrays(saved, getattr(self.optimizer, name))

    def restore(self) -> None:
        self.optimizer.t = self.t
        for name, saved in self.arrays.items():
            _copy_arrays(getattr(self.optimizer, name), saved)  # in place, like the parameters


def _is_state(value: Any) -> bool:
    """An array, or a non-empty dict of arrays (an optimizer's per-parameter state)."""
    if isinstance(value, np.ndarray):
        return True
    return isinstance(value, dict) and bool(value) and all(isinstance(v, np.ndarray) for v in value.values())


def _copy_arrays(target: Any, source: Any) -> None:
    """``target[...] = source`` for an array, or :func:`_copy_params` for a dict of arrays."""
    if isinstance(target, np.ndarray):
        np.copyto(target, source)
    else:
        _copy_params(target, source)


def _copy_params(target: dict[str, np.ndarray], source: dict[str, np.ndarray]) -> None:
    """``target[k][...] = source[k]`` for every key: one copy of the whole flat buffer when both are intact views
    of one layout (a model's params and a deep copy of them, :mod:`mmoe_np.models.flat`), else key by key."""
    flat_t, flat_s = getattr(target, "flat", None), getattr(source, "flat", None)
    if flat_t is not None and flat_s is not None and flat_t.shape == flat_s.shape and target.layout == source.layout \
            and target.intact() and source.intact():
        np.copyto(flat_t, flat_s)
        return
    for name, p in source.items():
        np.copyto(target[name], p)


class _Stopper:
    """The bookkeeping of :class:`EarlyStopping`: best score, best epoch and best parameters per replica."""

    def __init__(self, config: EarlyStopping, model: Any, validate: Callable) -> None:
        self.config, self.model, self.validate = config, model, validate
        shape = model.replica_shape
        self.sign = 1.0 if config.mode == "min" else -1.0   # compare sign * score: smaller is better
        self.best = np.full(shape, np.inf)
        self.best_epoch = np.full(shape, -1)
        self.best_params = {name: p.copy() for name, p in model.params.items()}

    def update(self, epoch: int, history: History) -> bool:
        """Record this epoch's score; True when every replica has waited ``patience`` epochs without improving."""
        score = self.config.score(self.model) if self.config.score is not None else history.val_loss[-1]
        history.score.append(score)
        try:
            value = self.sign * np.asarray(score, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"early_stopping.score must return a number (or one per replica); got {score!r}") \
                from None
        if value.shape != self.best.shape:
            raise ValueError(f"early_stopping.score must return {self.best.shape or 'a float'} per call; "
                             f"got shape {value.shape}")
        improved = value < self.best - self.config.min_delta
        self.best = np.where(improved, value, self.best)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        if self.config.restore_best or self.config.checkpoint is not None:
            for name, p in self.model.params.items():
                # copy the improved replicas' parameters (the replica axes lead every array)
                mask = improved.reshape(improved.shape + (1,) * (p.ndim - improved.ndim))
                np.copyto(self.best_params[name], p, where=mask)
        if self.config.checkpoint is not None and np.any(improved):
            best = self.model.copy()
            for name, p in best.params.items():
                p[...] = self.best_params[name]
            best.save(self.config.checkpoint)
        return bool(np.all(epoch - self.best_epoch >= self.config.patience))

    def finish(self, history: History) -> None:
        if np.any(self.best_epoch < 0):  # never improved on +inf: every score was NaN (or infinite)
            raise ValueError("early_stopping: the score was NaN or infinite in every epoch, so there is no best "
                             "epoch to restore; check the score function and the validation data")
        history.best_epoch = int(self.best_epoch) if self.best_epoch.ndim == 0 else self.best_epoch
        if self.config.restore_best:
            for name, p in self.model.params.items():
                p[...] = self.best_params[name]  # in place: the optimizer keeps references to these arrays


def _epoch_detail(epoch: int, epochs: int, history: History) -> str:
    """``epoch 3/10, train loss 0.12345, val loss 0.13, score 0.9``: the means over replicas of the last epoch."""
    line = f"epoch {epoch + 1}/{epochs}, train loss {np.mean(history.train_loss[-1]):.5f}"
    if history.val_loss:
        line += f", val loss {np.mean(history.val_loss[-1]):.5f}"
    if history.score:
        line += f", score {np.mean(history.score[-1]):.5f}"
    return line


# ---------------------------------------------------------------------------------------------------------------
# Progress on stderr: the one reporter of every trainer
# ---------------------------------------------------------------------------------------------------------------
def format_seconds(seconds: float) -> str:
    """``75.2 -> '1m15s'``, ``3725 -> '1h02m05s'``, ``4.3 -> '4.3s'``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Progress of ``total_work`` units of work (steps, epochs, runs) on ``stream`` (default stderr).

    ``update(work, runs, detail)`` adds done work and finished runs; a line
    ``label: x% of the steps, runs done a/b, <detail>, elapsed .., eta ..`` is printed at most every ``interval``
    seconds (and by :meth:`close`). "runs done" appears when ``total_runs`` is given. The ETA assumes the remaining
    work goes at the average rate so far. The runs of one lock-step group finish together, so the percentage is
    the live measure and "runs done" moves once per group.
    """

    def __init__(self, total_work: int, total_runs: int | None = None, label: str = "training",
                 stream: TextIO | None = None, interval: float = 10.0, unit: str = "steps") -> None:
        self.total_work = V.positive_int("total_work", total_work)
        self.total_runs = None if total_runs is None else V.positive_int("total_runs", total_runs)
        self.label, self.unit = label, unit
        self.stream = sys.stderr if stream is None else stream
        self.interval = V.positive_float("interval", interval, allow_zero=True)
        self.work = self.runs = 0
        self.detail = ""
        self.start = self._last = time.perf_counter()

    def update(self, work: int = 0, runs: int = 0, detail: str = "") -> None:
        self.work += work
        self.runs += runs
        self.detail = detail or self.detail
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._last = now
            self._print(now)

    def close(self) -> None:
        self._print(time.perf_counter())

    def line(self, now: float | None = None) -> str:
        elapsed = (time.perf_counter() if now is None else now) - self.start
        fraction = min(self.work / self.total_work, 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("inf")
        parts = [f"{self.label}: {100 * fraction:.0f}% of the {self.unit}"]
        if self.total_runs is not None:
            parts.append(f"runs done {self.runs}/{self.total_runs}")
        if self.detail:
            parts.append(self.detail)
        parts += [f"elapsed {format_seconds(elapsed)}", f"eta {format_seconds(eta)}"]
        return ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
