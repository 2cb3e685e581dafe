"""Many independent runs at once: R replicas of each model trained in lock-step on R independent data streams.

The paper repeats every (model, task correlation) setting 200 times, each run with "independent random data generation
and model initialization" (Ma et al., KDD 2018, Sec. 5.1). Run r here is a :class:`Run`: a task pair (a
:class:`~mmoe_np.data.SyntheticTasks`) and one integer seed, from which three independent streams derive

* the training stream: every step, replica r gets a fresh minibatch ``runs[r].tasks.sample(B, train_rng_r)``
  (the paper's "repeat until enough data are generated": no sample is seen twice, so nothing can be memorised);
* a fixed test set ``runs[r].tasks.sample(n_test, test_rng_r)`` on which the test MSE is measured;
* the initialisation seed of every model of that run.

All R replicas of one model are one stacked model (:func:`~mmoe_np.stack_models`, parameters (R, ...)), and one
forward/backward on X (R, B, d), Y (R, B, 2) gives replica r exactly the gradient of its own loss on its own batch
(nothing in the ops mixes the leading axis). Adam is elementwise. So R replicas trained together follow, step for
step, the parameters of R separate runs of this same code (``tests/test_lockstep.py`` checks it to 1e-10 in float64)
at the cost of one vectorised step instead of R Python-level ones. When several models are given, they are trained
on the *same* minibatches and test sets (the data are drawn once per step), so their comparison is paired.

Speed without changing a number: within a step the R replicas are processed in chunks of ``chunk_size`` (one stacked
model, Adam and divergence guard per chunk), so that a chunk's data, activations and gradients stay in the CPU's
cache while every model takes its step on them; and runs that share a seed (the correlations of one run) share one
draw of X and of the label noise, which is what each of them would have drawn from its identical stream. Replica r
computes the same numbers in any chunk, group or worker (``tests/test_lockstep.py``).

Models with training randomness (activation dropout, gate dropout, noisy gating) draw it per replica: replica r of
every model has its own noise stream, a fourth child of its run's seed (:func:`noise_stream`), from which a
one-replica model of the same spec draws that replica's masks and noise each step; the replicas' draws are stacked
for the chunk's one pass. So a replica's masks, like its data, do not depend on its chunk, group or worker.

A replica whose loss or gradient becomes non-finite (a diverging run) must not stop the other R - 1, and its NaNs
must not reach the optimizer (which refuses them): it is put back to its last good parameters (those before the
previous update, the last with a finite loss and gradient) and held there, its gradient zeroed, while the others
train on; ``ReplicaHistory.diverged`` records the step.

:func:`train_replicas` trains one group in this process; :func:`train_in_groups` splits many runs into groups and
trains them here or hands them to worker processes (one BLAS thread each), printing progress (runs done, elapsed,
ETA) to stderr.
"""
from __future__ import annotations

import copy
import inspect
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import _validation as V
from ..models import MultiTaskModel, stack_models, unstack_models
from ..optim import SCHEDULES, Adam, check_schedule, scheduled_lr  # the schedule: re-exported
from ..training import Progress
from .streams import ReplicaStreams, Run, noise_stream, replica_streams, stack_noise  # re-exported
from .workers import map_in_workers, worker_progress

__all__ = ["Run", "ModelSpec", "ReplicaHistory", "ReplicaStreams", "replica_streams", "noise_stream", "train_replicas",
           "train_in_groups", "SCHEDULES", "scheduled_lr"]

TASKS = ("regression", "regression")  # the synthetic task pair: two regression tasks


# ---------------------------------------------------------------------------------------------------------------
# What one model is (what one run is: streams.py)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A model class and its size arguments; ``build(n_features, seed, dtype)`` makes one replica.

    A spec (not a closure) so that it can be sent to worker processes.
    """

    cls: type
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self, n_features: int, seed: int, dtype: Any) -> MultiTaskModel:
        return self.cls(n_features, TASKS, seed=seed, dtype=dtype, **dict(self.kwargs))


# ---------------------------------------------------------------------------------------------------------------
# What training records
# ---------------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class ReplicaHistory:
    """Test (and training) MSE of every replica at the evaluation steps.

    * ``steps`` (T,): evaluation points, 0 (the initial model) first and the last step last;
    * ``test_loss[name]`` (T, R, 2): each replica's MSE per task on its own test set;
    * ``train_loss[name]`` (T, R, 2): the mean minibatch MSE over the steps since the previous evaluation
      (NaN at step 0). With fresh data every step it estimates the same quantity as the test loss, a bit earlier;
    * ``diverged[name]`` (R,): the step at which the replica's loss or gradient first became non-finite, 0 if never.
      From that step on the replica is held at its last good parameters (its later losses are those of that model);
    * ``models[name]``: the trained stacked model (filled by :func:`train_replicas`, empty after
      :func:`train_in_groups`, which does not send parameters back from its workers);
    * ``seconds``: wall time.
    """

    steps: np.ndarray
    test_loss: dict[str, np.ndarray]
    train_loss: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    runs: list[Run]
    seconds: float
    models: dict[str, MultiTaskModel] = field(default_factory=dict)


class _DivergenceGuard:
    """Keeps the diverged replicas of one stacked model (R replicas) out of training.

    Each step: :meth:`check` marks the replicas whose loss (R, K) or gradient is non-finite, puts them back to
    ``last_good`` (the parameters before the previous update, the last ones with a finite loss and gradient) and
    zeroes every held replica's gradient; :meth:`before_update` saves the others' parameters as ``last_good``;
    :meth:`after_update` undoes the optimizer's move of the held replicas (Adam's momentum would still move them).
    """

    def __init__(self, model: MultiTaskModel) -> None:
        self.params = model.params
        self.last_good = copy.deepcopy(self.params)  # a FlatArrays of its own buffer
        self.held = np.zeros(model.replica_shape[0], dtype=bool)
        self.diverged = np.zeros(model.replica_shape[0], dtype=np.int64)

    def _mask(self, mask: np.ndarray, p: np.ndarray) -> np.ndarray:
        return mask.reshape(mask.shape + (1,) * (p.ndim - 1))  # (R,) -> (R, 1, ..., 1): broadcasts over p

    def check(self, step: int, per_task: np.ndarray, grads: dict[str, np.ndarray]) -> None:
        if np.isfinite(per_task).all() and np.isfinite(grads.flat).all():  # the common case: one pass over all
            new = np.zeros_like(self.held)
        else:
            R = self.held.size
            bad = ~np.isfinite(per_task).all(axis=-1)
            for g in grads.values():
                bad |= ~np.isfinite(g.reshape(R, -1)).all(axis=1)
            new = bad & ~self.held
        if new.any():
            self.held |= new
            self.diverged[new] = step
            self.after_update()  # back to the last good parameters
        if self.held.any():
            for g in grads.values():
                g[self.held] = 0.0

    def before_update(self) -> None:
        if not self.held.any():
            np.copyto(self.last_good.flat, self.params.flat)  # every replica: one copy of the flat buffer
            return
        for key, p in self.params.items():
            np.copyto(self.last_good[key], p, where=self._mask(~self.held, p))

    def after_update(self) -> None:
        if self.held.any():
            for key, p in self.params.items():
                np.copyto(p, self.last_good[key], where=self._mask(self.held, p))


# ---------------------------------------------------------------------------------------------------------------
# One group of replicas in lock-step
# ---------------------------------------------------------------------------------------------------------------
def _test_mse(model: MultiTaskModel, X: np.ndarray, Y: np.ndarray, chunk: int) -> np.ndarray:
    """Per-replica, per-task test MSE (R, 2) over X (R, N, d), in chunks of ``chunk`` points (bounds memory:
    an MMoE forward holds (R, E, chunk, h) expert outputs). The chunk means are averaged with weights
    ``size / N``, which gives the mean over all N points."""
    n = X.shape[-2]
    total = np.zeros(model.replica_shape + (Y.shape[-1],))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        _, per_task, _, _ = model.forward_backward(X[..., start:stop, :], Y[..., start:stop, :], backward=False,
                                                  check=False)
        total += per_task * ((stop - start) / n)
    return total


class _Chunk:
    """Replicas ``where`` (a slice of the group) of one model: a stacked model, its Adam and its divergence guard."""

    def __init__(self, spec: ModelSpec, where: slice, data: ReplicaStreams, n_features: int, dtype: np.dtype,
                 lr: float) -> None:
        self.where = where
        self.model = stack_models([spec.build(n_features, seed, dtype) for seed in data.init_seeds[where]])
        self.optimizer = Adam(self.model.params, lr=lr)
        self.guard = _DivergenceGuard(self.model)
        # training randomness: a one-replica model of the spec draws each replica's from that replica's stream
        self.one = spec.build(n_features, 0, dtype)
        has_noise = self.one.draw_noise(np.random.default_rng(0), 1) is not None
        self.noise_rngs = [noise_stream(seed) for seed in data.seeds[where]] if has_noise else None

    def step(self, step: int, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """One Adam step of every replica of the chunk on its own batch; returns their losses per task (R_c, 2)."""
        noise = None
        if self.noise_rngs is not None:
            noise = stack_noise([self.one.draw_noise(rng, X.shape[-2]) for rng in self.noise_rngs])
        _, per_task, grads, _ = self.model.forward_backward(X, Y, check=False, noise=noise)
        self.guard.check(step, per_task, grads)
        self.guard.before_update()
        self.optimizer.step(grads)
        self.guard.after_update()
        return per_task


def _joined(chunks: Sequence[_Chunk]) -> MultiTaskModel:
    """The chunks' replicas as one stacked model (the chunk's own model when there is one chunk, else copies)."""
    if len(chunks) == 1:
        return chunks[0].model
    return stack_models([replica for chunk in chunks for replica in unstack_models(chunk.model)])


# A diverging replica overflows; the divergence guard finds and holds it, so NumPy need not warn at every step.
@np.errstate(over="ignore", invalid="ignore")
def train_replicas(models: Mapping[str, ModelSpec], runs: Sequence[Run], *, steps: int, batch_size: int = 128,
                   lr: float | Mapping[str, float] = 1e-3, eval_every: int = 100, n_test: int = 2000,
                   eval_chunk: int = 500, dtype: Any = np.float32, chunk_size: int = 16,
                   schedule: str = "constant", progress: Any = None,
                   callback: Callable[[int, dict[str, MultiTaskModel]], None] | None = None) -> ReplicaHistory:
    """Train R = len(runs) replicas of every model in ``models`` in lock-step, with Adam, on streamed data.

    Every step draws one fresh minibatch per run (X (R, B, d), Y (R, B, 2)) and, for each model, takes one Adam step
    on ``L_r = MSE_task1 + MSE_task2`` of replica r's batch. The test MSE is measured at step 0, every
    ``eval_every`` steps and at the last step. ``lr`` is one rate or one per model name, the base rate of
    ``schedule`` (:func:`scheduled_lr`: ``"constant"`` or ``"cosine"``, the same for every model). The replicas
    are processed in chunks of ``chunk_size`` (a speed setting: the numbers do not depend on it).

    ``progress`` (optional) gets ``update(work=R)`` after every step and ``update(runs=R * len(models))`` at the
    end; ``callback(step, models)`` (optional) is called after every step with the stacked models (joined from the
    chunks: copies when there are several).
    """
    runs = _check_models_and_runs(models, runs)
    steps, batch_size, rates, eval_every, n_test, eval_chunk, dtype, chunk_size, schedule = _check_training(
        models, steps, batch_size, lr, eval_every, n_test, eval_chunk, dtype, chunk_size, schedule)

    start_time = time.perf_counter()
    data = ReplicaStreams(runs, dtype)
    n_features, R = runs[0].tasks.n_features, len(runs)
    # Per name, one stacked model per chunk of replicas: replica r initialised from run r's seed (the same seed for
    # every model of run r).
    wheres = [slice(a, min(a + chunk_size, R)) for a in range(0, R, chunk_size)]
    chunks = {name: [_Chunk(spec, where, data, n_features, dtype, rates[name]) for where in wheres]
              for name, spec in models.items()}
    X_test, Y_test = data.test_set(n_test)

    eval_steps = sorted({0, *range(eval_every, steps, eval_every), steps})
    test_loss = {name: np.empty((len(eval_steps), R, 2)) for name in models}
    train_loss = {name: np.full((len(eval_steps), R, 2), np.nan) for name in models}
    running = {name: np.zeros((R, 2)) for name in models}  # sum of the minibatch losses since the last evaluation

    def evaluate(row: int) -> None:
        for name in models:
            for chunk in chunks[name]:
                test_loss[name][row, chunk.where] = _test_mse(chunk.model, X_test[chunk.where],
                                                              Y_test[chunk.where], eval_chunk)

    evaluate(0)
    row, since = 1, 0
    for step in range(1, steps + 1):
        X, Y = data.batch(batch_size)  # shared by every model: a paired comparison
        if schedule != "constant":
            for name in models:
                for chunk in chunks[name]:
                    chunk.optimizer.lr = scheduled_lr(rates[name], step, steps, schedule)
        for where in range(len(wheres)):  # chunk by chunk: its batch stays in cache while every model steps
            for name in models:
                chunk = chunks[name][where]
                running[name][chunk.where] += chunk.step(step, X[chunk.where], Y[chunk.where])
        since += 1
        if callback is not None:
            callback(step, {name: _joined(chunks[name]) for name in models})
        if step == eval_steps[row]:
            evaluate(row)
            for name in models:
                train_loss[name][row] = running[name] / since
                running[name][:] = 0.0
            row, since = row + 1, 0
        if progress is not None:
            progress.update(work=R)
    if progress is not None:
        progress.update(runs=R * len(models))
    return ReplicaHistory(steps=np.array(eval_steps), test_loss=test_loss, train_loss=train_loss,
                          diverged={name: np.concatenate([c.guard.diverged for c in chunks[name]]) for name in models},
                          runs=runs, seconds=time.perf_counter() - start_time,
                          models={name: _joined(chunks[name]) for name in models})


def _check_models_and_runs(models: Any, runs: Sequence[Run]) -> list[Run]:
    """``models`` must be a non-empty {name: ModelSpec}; ``runs`` non-empty Runs of one input dimension."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict {name: ModelSpec}")
    for name, spec in models.items():
        if not isinstance(spec, ModelSpec):
            raise ValueError(f"models[{name!r}] must be a ModelSpec; got {type(spec).__name__}")
    runs = list(runs)
    if not runs:
        raise ValueError("runs must contain at least one Run")
    for i, run in enumerate(runs):
        if not isinstance(run, Run):
            raise ValueError(f"runs[{i}] must be a Run; got {type(run).__name__}")
        if run.tasks.n_features != runs[0].tasks.n_features:
            raise ValueError(f"runs[{i}] has n_features={run.tasks.n_features}; runs[0] has "
                             f"{runs[0].tasks.n_features}: one group needs one input dimension")
    return runs


def _check_training(models: Mapping[str, Any], steps: Any, batch_size: Any, lr: Any, eval_every: Any, n_test: Any,
                    eval_chunk: Any, dtype: Any, chunk_size: Any,
                    schedule: Any) -> tuple[int, int, dict[str, float], int, int, int, np.dtype, int, str]:
    """The settings of :func:`train_replicas`, checked (a ValueError names the first bad one) and normalised."""
    return (V.positive_int("steps", steps), V.positive_int("batch_size", batch_size), _rates(lr, models),
            V.positive_int("eval_every", eval_every), V.positive_int("n_test", n_test),
            V.positive_int("eval_chunk", eval_chunk), V.dtype(dtype), V.positive_int("chunk_size", chunk_size),
            check_schedule(schedule))


def _rates(lr: float | Mapping[str, float], models: Mapping[str, Any]) -> dict[str, float]:
    """One learning rate per model name, from a single rate or a dict that names every model."""
    if isinstance(lr, Mapping):
        missing = [name for name in models if name not in lr]
        if missing:
            raise ValueError(f"lr must give a rate for every model; missing {missing}")
        return {name: V.positive_float(f"lr[{name!r}]", lr[name]) for name in models}
    return {name: V.positive_float("lr", lr) for name in models}


# ---------------------------------------------------------------------------------------------------------------
# Many groups, over worker processes
# ---------------------------------------------------------------------------------------------------------------
def _train_group(job: tuple[Mapping[str, ModelSpec], list[Run], bool, dict[str, Any]]) -> ReplicaHistory:
    """Train one group (the entry point of a worker, which reports progress through the queue); the curves, and
    the trained models if kept (else they are dropped as soon as the group ends)."""
    models, runs, keep_models, kwargs = job
    if worker_progress() is not None:  # in a worker: progress goes to the parent through the queue
        kwargs = dict(kwargs, progress=worker_progress())
    history = train_replicas(models, runs, **kwargs)
    return history if keep_models else replace(history, models={})


def _merge(histories: Sequence[ReplicaHistory], seconds: float) -> ReplicaHistory:
    """Concatenate the groups' replica axes, in the order of the groups (models too, where kept)."""
    first = histories[0]
    models = {name: stack_models([replica for h in histories for replica in unstack_models(h.models[name])])
              for name in first.models}
    return ReplicaHistory(models=models,
        steps=first.steps,
        test_loss={name: np.concatenate([h.test_loss[name] for h in histories], axis=1) for name in first.test_loss},
        train_loss={name: np.concatenate([h.train_loss[name] for h in histories], axis=1)
                    for name in first.train_loss},
        diverged={name: np.concatenate([h.diverged[name] for h in histories]) for name in first.diverged},
        runs=[run for h in histories for run in h.runs], seconds=seconds)


def train_in_groups(models: Mapping[str, ModelSpec], runs: Sequence[Run], *, group_size: int = 200,
                    workers: int = 0, progress: Progress | bool = False, label: str = "training",
                    keep_models: bool = False, **train_kwargs: Any) -> ReplicaHistory:
    """:func:`train_replicas` for many runs: groups of at most ``group_size`` runs in lock-step, trained in this
    process (``workers=0``) or spread over ``workers`` spawned processes; the result lists the runs in the given
    order.

    Because every run's data and initialisation derive from its own seed, the numbers do not depend on
    ``group_size`` or ``workers``. Each worker is a fresh ("spawn") process with one BLAS thread
    (:func:`~mmoe_np.experiments.workers.map_in_workers` tells why); in this process (``workers=0``) BLAS uses
    whatever threads the environment gave numpy. ``progress=True`` prints to stderr every 10 s.
    ``keep_models=True`` returns the trained models too (one stacked model per name, replicas in the order of
    ``runs``); by default each group's models are dropped as soon as it ends and only the curves are kept.
    """
    runs = _check_models_and_runs(models, runs)
    group_size = V.positive_int("group_size", group_size)
    workers = V.int_at_least("workers", workers, 0)  # 0: train in this process
    # Every setting is checked here, before any worker starts (a worker's error would arrive only after the pool).
    bound = inspect.signature(train_replicas).bind(models, runs, **train_kwargs)
    bound.apply_defaults()
    steps = _check_training(models, *(bound.arguments[name] for name in (
        "steps", "batch_size", "lr", "eval_every", "n_test", "eval_chunk", "dtype", "chunk_size", "schedule")))[0]
    n_groups = max(math.ceil(len(runs) / group_size), min(workers, len(runs)))  # at least one group per worker
    bounds = np.linspace(0, len(runs), n_groups + 1).round().astype(int)
    groups = [runs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    if progress is True:
        progress = Progress(steps * len(runs), len(runs) * len(models), label=label)
    elif progress is False:
        progress = None

    start = time.perf_counter()
    if workers == 0:
        histories = [_train_group((models, group, keep_models, dict(train_kwargs, progress=progress)))
                     for group in groups]
    else:
        histories = map_in_workers(_train_group, [(models, group, keep_models, train_kwargs) for group in groups],
                                   workers, progress)
    if progress is not None:
        progress.close()
    return _merge(histories, time.perf_counter() - start)
