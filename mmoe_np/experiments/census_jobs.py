"""The Census-income benchmark's runs as jobs: the data a run reads, the job that trains it, where jobs run.

A source (:class:`CensusSource`, or :class:`ArraySource` for arrays in memory) is picklable and loads the data
itself, so a worker process never receives 0.6 GB through a pipe; :func:`load_source` keeps one loaded encoding per
process. A :class:`RunJob` is one run of one model, :func:`train_job` trains it (:func:`~.census_runs.fit_run`,
then the test AUCs). :func:`run_jobs` runs jobs here or on spawned workers (:mod:`~mmoe_np.experiments.workers`),
for the benchmark (:mod:`~mmoe_np.experiments.census`) and the tuner (:mod:`~mmoe_np.experiments.census_tune`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from ..training import Progress
from .census_runs import DEFAULTS, REGULARISERS, RunResult, census_sizes, fit_run, slug, task_aucs
from .workers import map_in_workers, worker_progress

__all__ = ["standardize_non_binary", "CensusSource", "ArraySource", "load_source", "clear_loaded", "run_jobs",
           "RunJob", "train_job"]


def standardize_non_binary(data: Any) -> Any:
    """A copy of ``data`` whose non-binary columns (any value other than 0 and 1 in training) are standardised
    with the training mean and standard deviation (ddof=0), in every split. One-hot columns are left as they are.

    The keras recipe keeps 11 columns as raw numbers (instance weight up to ~18,000, capital gains up to 99,999);
    standardising them is what the paper recipe does for its 7 continuous columns. Columns that are already
    standardised (the paper recipe) change only by rounding.
    """
    X = data.X_train
    numeric = np.flatnonzero(~np.all((X == 0) | (X == 1), axis=0))      # (n_numeric,) column indexes
    columns = X[:, numeric]                                              # (N, n_numeric), gathered once
    mean = columns.mean(axis=0, dtype=np.float64)
    std = columns.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0

    def scaled(A: np.ndarray) -> np.ndarray:
        A = A.copy()
        A[:, numeric] = ((A[:, numeric] - mean) / std).astype(A.dtype)
        return A

    return dataclasses.replace(data, X_train=scaled(data.X_train), X_val=scaled(data.X_val),
                               X_test=scaled(data.X_test))


# ----------------------------------------------------------------------------------------------------------------
# The data a run reads, loaded once per process
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CensusSource:
    """Where and how to load Census-income: picklable, so a worker process loads the data itself
    (:func:`load_source`) instead of receiving 0.6 GB through a pipe. ``train_rows`` keeps the first training rows
    and ``eval_rows`` the first validation and test rows (quick checks); ``standardize`` applies
    :func:`standardize_non_binary` (for the keras recipe)."""

    data_dir: str
    group: int = DEFAULTS["group"]
    recipe: str = DEFAULTS["recipe"]
    split_seed: int = DEFAULTS["split_seed"]
    dtype: str = DEFAULTS["dtype"]
    train_rows: int | None = None
    standardize: bool = False
    eval_rows: int | None = None

    def load(self, numeric: str | None = None) -> Any:
        """The :class:`~mmoe_np.data.CensusIncome` of this source, with ``numeric`` the transform of the
        heavy-tailed columns (None: the recipe's own)."""
        from .. import data as data_module  # looked up at call time, so a test can stand in for the loader

        data = data_module.load_census_income(self.data_dir, group=self.group, seed=self.split_seed,
                                              recipe=self.recipe, dtype=self.dtype, numeric=numeric)
        if self.train_rows is not None:
            data = dataclasses.replace(data, X_train=data.X_train[:self.train_rows],
                                       Y_train=data.Y_train[:self.train_rows])
        if self.eval_rows is not None:
            n = self.eval_rows
            data = dataclasses.replace(data, X_val=data.X_val[:n], Y_val=data.Y_val[:n], X_test=data.X_test[:n],
                                       Y_test=data.Y_test[:n])
        return standardize_non_binary(data) if self.standardize else data

    def describe(self) -> dict[str, Any]:
        """The source's settings, JSON-ready."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class ArraySource:
    """An in-memory stand-in for :class:`CensusSource` (tests, small experiments): splits given as arrays;
    ``numeric_columns`` are the raw numeric columns that ``load(numeric)`` transforms with
    :class:`~mmoe_np.data.census.NumericTransform` (every one of them heavy; statistics from the training rows)."""

    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    numeric_columns: tuple[int, ...] = ()
    task_names: tuple[str, ...] = ("task 1", "task 2")

    def load(self, numeric: str | None = None) -> Any:
        from ..data.census import NumericTransform

        splits = {"X_train": self.X_train, "X_val": self.X_val, "X_test": self.X_test}
        cols = list(self.numeric_columns)
        if cols and numeric is not None:
            transform = NumericTransform.fit(self.X_train[:, cols], method=numeric)
            splits = {key: X.copy() for key, X in splits.items()}
            for X in splits.values():
                X[:, cols] = transform.apply(X[:, cols]).astype(X.dtype)
        return SimpleNamespace(**splits, Y_train=self.Y_train, Y_val=self.Y_val, Y_test=self.Y_test,
                               n_features=self.X_train.shape[1], task_names=self.task_names, numeric=numeric)

    def describe(self) -> dict[str, Any]:
        return {"arrays": {"n_train": int(self.X_train.shape[0]), "n_features": int(self.X_train.shape[1])}}


_LOADED: dict[tuple[Any, Any], Any] = {}  # this process's data: one (source, numeric) at a time


def load_source(source: Any, numeric: str | None = None) -> Any:
    """``source.load(numeric)``, kept in this process until another (source, numeric) is asked for (the previous
    one is dropped first: one encoding, ~0.6 GB, at a time)."""
    key = (source, numeric)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = source.load(numeric)
    return _LOADED[key]


def clear_loaded() -> None:
    """Drop the data :func:`load_source` keeps in this process."""
    _LOADED.clear()


def _reporting(call: tuple[Callable[[Any], Any], Any]) -> Any:
    """In a worker: ``function(job)``, then one finished job reported to the parent's progress."""
    function, job = call
    result = function(job)
    reporter = worker_progress()
    if reporter is not None:
        reporter.update(work=1, runs=1)
    return result


def run_jobs(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int, *,
             progress: Progress | None = None, on_done: Callable[[Any], None] | None = None) -> list[Any]:
    """``[function(job) for job in jobs]``: with ``workers`` > 0 on that many spawned processes
    (:func:`~mmoe_np.experiments.workers.map_in_workers`, one BLAS thread each; ``function`` must be a module-level
    function), else here, one after the other. ``progress`` counts finished jobs; ``on_done(result)`` is called
    for every result (here: as each job finishes; with workers: once all have)."""
    if not workers or not jobs:
        done = []
        for job in jobs:
            done.append(function(job))
            if progress is not None:
                progress.update(work=1, runs=1)
            if on_done is not None:
                on_done(done[-1])
        return done
    done = map_in_workers(_reporting, [(function, job) for job in jobs], workers, progress=progress)
    if on_done is not None:
        for result in done:
            on_done(result)
    return done


@dataclass(frozen=True)
class RunJob:
    """One run of one model, everything a worker needs: the data source, the model's plan (its sizes, None:
    matched to MMoE once the data gives the number of features; its numeric transform and the settings of
    :func:`~.census_runs.fit_run`, regularisers included), the run index and where to save the model (None:
    return it)."""
    source: CensusSource
    name: str
    plan: dict[str, Any]
    size_overrides: dict[str, Any]
    seed: int
    run: int
    runs: int
    progress: bool
    save_dir: str | None
    dtype: str


def _job_sizes(job: RunJob, n_features: int) -> dict[str, Any]:
    if job.plan["sizes"] is not None:
        return dict(job.plan["sizes"])
    return census_sizes(n_features, models=[job.name], **job.size_overrides)[job.name]


def train_job(job: RunJob) -> dict[str, Any]:
    """Train one run (in this process or a worker): its :class:`RunResult`, sizes, and the model (or its file)."""
    data = load_source(job.source, job.plan["numeric"])
    sizes = _job_sizes(job, data.n_features)
    plan = job.plan
    fitted = fit_run(job.name, sizes, data.X_train, data.Y_train, data.X_val, data.Y_val, seed=job.seed + job.run,
                     epochs=plan["epochs"], batch_size=plan["batch_size"], lr=plan["lr"], patience=plan["patience"],
                     **{key: plan[key] for key in REGULARISERS}, dtype=job.dtype,
                     label=f"{job.name} run {job.run + 1}/{job.runs}", progress=job.progress)
    run = RunResult(seed=job.seed + job.run, test_auc=task_aucs(fitted.model, data.X_test, data.Y_test),
                    val_auc=fitted.val_auc, best_epoch=fitted.best_epoch, epochs=fitted.epochs,
                    seconds=fitted.seconds, val_auc_history=fitted.val_auc_history)
    model: Any = fitted.model
    if job.save_dir is not None:  # a worker: the model travels as a file, read back only if it is kept
        model = str(model.save(Path(job.save_dir) / f"{slug(job.name)}-run{job.run}.npz"))
    shapes = {"n_train": int(data.X_train.shape[0]), "n_val": int(data.X_val.shape[0]),
              "n_test": int(data.X_test.shape[0]), "n_features": int(data.n_features)}
    return {"run": run, "sizes": sizes, "model": model, "data": shapes, "task_names": tuple(data.task_names),
            "numeric": getattr(data, "numeric", None)}
