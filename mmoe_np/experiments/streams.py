"""What each run of a lock-step group sees: its task pair and seed (:class:`Run`), the streams derived from the seed
(training data, test set, initialisation, training randomness), and the group's data drawn from them
(:class:`ReplicaStreams`). Every stream derives from the run's own seed, never from its position in a group, so a
run's numbers do not depend on which runs share its group, chunk or worker (:mod:`mmoe_np.experiments.lockstep`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .. import _validation as V
from ..data.synthetic import SyntheticTasks, sine_labels

__all__ = ["Run", "replica_streams", "noise_stream", "stack_noise", "ReplicaStreams"]


@dataclass(frozen=True, eq=False)
class Run:
    """One independent run: a task pair and the integer ``seed`` of its training stream, test set and init.

    ``label`` is free metadata carried into the results (e.g. ``{"correlation": 0.5, "run": 7}``).
    """

    tasks: SyntheticTasks
    seed: int
    label: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, SyntheticTasks):
            raise ValueError(f"tasks must be a SyntheticTasks; got {type(self.tasks).__name__}")
        V.int_at_least("seed", self.seed, 0)


def replica_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, int]:
    """``(train_rng, test_rng, init_seed)`` of a run: three independent children of ``SeedSequence(seed)``.

    Deriving them from the run's own seed (not from a position in a batch of runs) is what makes a run's numbers
    independent of which other runs share its group or worker.
    """
    train, test, init = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(train), np.random.default_rng(test), int(init.generate_state(1)[0])


def noise_stream(seed: int) -> np.random.Generator:
    """The training randomness of a run (dropout masks, gating noise): the fourth child of ``SeedSequence(seed)``,
    independent of the three of :func:`replica_streams` (``spawn(4)`` begins with the children of ``spawn(3)``).
    Every model of the run starts its own generator from it."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def stack_noise(parts: Sequence[Any]) -> Any:
    """One draw per replica (None, an array, or a dict / named tuple of them, as ``draw_noise`` returns) -> the
    stacked draw of the chunk, the replica axis first."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, np.ndarray):
        return np.stack(parts)
    if isinstance(first, dict):
        return {key: stack_noise([part[key] for part in parts]) for key in first}
    return type(first)(*(stack_noise(list(field)) for field in zip(*parts)))  # a named tuple


class ReplicaStreams:
    """The R runs' data: ``batch(B)`` -> X (R, B, d), Y (R, B, 2), row r drawn from run r's own training stream."""

    def __init__(self, runs: Sequence[Run], dtype: np.dtype) -> None:
        self.tasks = [run.tasks for run in runs]
        streams = [replica_streams(run.seed) for run in runs]
        self.train_rngs = [s[0] for s in streams]
        self.test_rngs = [s[1] for s in streams]
        self.init_seeds = [s[2] for s in streams]
        self.seeds = [run.seed for run in runs]
        self.dtype = dtype
        # Runs with one seed have identical streams: the replicas of each seed, the first of them drawing for all
        self.by_seed: dict[int, list[int]] = {}
        for r, run in enumerate(runs):
            self.by_seed.setdefault(run.seed, []).append(r)
        self.draw_of = np.empty(len(runs), dtype=np.intp)  # replica r's data: draw draw_of[r]
        for i, replicas in enumerate(self.by_seed.values()):
            self.draw_of[replicas] = i
        # every run's task pair, stacked for the batched labels; the projection weights of the runs of one draw side
        # by side, so that one product per draw gives all their projections
        self.w_of_draw = [np.concatenate([self.tasks[r].w.T for r in replicas], axis=1)       # (d, 2 k)
                          for replicas in self.by_seed.values()]
        self.alpha = np.stack([t.alpha for t in self.tasks])                      # (R, m)
        self.beta = np.stack([t.beta for t in self.tasks])
        self.noise_std = np.array([t.noise_std for t in self.tasks])[:, None, None]

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self._draw(n, self.train_rngs)

    def test_set(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self._draw(n, self.test_rngs)

    def _draw(self, n: int, rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
        # Each run keeps its own stream, so its data do not depend on the other replicas. Exactly what
        # SyntheticTasks.sample draws from that stream (X ~ N(0, I), then the noise), with the labels of all runs
        # computed in one batched pass, Y = sine_labels(X w^T, alpha, beta) + noise_std * noise. Runs that share a
        # seed (the correlations of one run) have identical streams and share one draw.
        d, R = self.tasks[0].n_features, len(self.tasks)
        X = np.empty((len(self.by_seed), n, d))
        noise = np.empty((len(self.by_seed), n, 2))
        Z = np.empty((R, n, 2))  # the projections z = X w^T of every run
        for i, replicas in enumerate(self.by_seed.values()):
            rng = rngs[replicas[0]]
            rng.standard_normal(out=X[i])  # in place: the same numbers as rng.standard_normal((n, d))
            rng.standard_normal(out=noise[i])
            Z[replicas] = (X[i] @ self.w_of_draw[i]).reshape(n, len(replicas), 2).transpose(1, 0, 2)
        Y = sine_labels(Z, self.alpha, self.beta) + self.noise_std * noise[self.draw_of]
        X = X.astype(self.dtype)
        if len(self.by_seed) < R:  # some runs share a draw: each gets its (cast) copy, (R, n, d)
            X = np.take(X, self.draw_of, axis=0)
        return X, Y.astype(self.dtype)
