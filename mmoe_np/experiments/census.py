"""The Census-income benchmark (Ma et al., KDD 2018, Sec. 6.3): seven models, test AUC per task over several runs.

Every run of every model is trained the same way (``docs/results-census.md`` gives the reasons and the numbers):

* data: :func:`mmoe_np.data.load_census_income` (training file; the test file split 1:1 into validation and test);
* Adam (lr 1e-3), minibatches of 1024, at most ``epochs`` (10) epochs;
* early stopping on the **main task's (task 1's) validation AUC**: after every epoch the validation AUC of task 1
  is computed; training stops once it has not improved for ``patience`` (2) epochs, and the parameters of the best
  epoch are restored (:class:`mmoe_np.EarlyStopping` with ``mode="max"``, ``restore_best=True``);
* the restored model is scored once on the test set (AUC of each task). Nothing is ever selected on the test set.

Run r (0-based) initialises every model with seed ``seed + r`` and shuffles the training set with the same seed, so
within one run all models see the same minibatch order (a paired comparison).

Sizes: MMoE and OMoE have 8 experts of 16 units and towers of 8 units, as PaddleRec's and torch-rechub's census
configurations; every other model gets the hidden width whose parameter count (the paper's convention,
:func:`mmoe_np.count_params` with ``convention="paper"``) is closest to MMoE's (:func:`census_sizes`, which asks
:func:`mmoe_np.sizing.matched_sizes`).

A **run** is one training of one model with its own seed; :func:`run_census_benchmark` returns a
:class:`CensusBenchmark` with ``summary()``, ``as_dict()`` and ``write(out)`` as every study's result, and
:meth:`CensusBenchmark.comparisons` the paired comparisons of MMoE with every other model on the main task
(:mod:`mmoe_np.experiments.stats`; run r of every model shares its seed, so the runs pair).

**Tuned models** (``mmoe-np census --config tuned.json``): the configuration written by ``mmoe-np census-tune``
(:mod:`mmoe_np.experiments.census_tune`) gives every model its own sizes, learning rate, batch size, epoch cap,
patience and transform of the heavy-tailed columns (:func:`read_tuned_config`); the data is then loaded once per
transform. The run with the best main-task *validation* AUC of every model is kept (``ModelResult.best_model``)
and written as ``model-{model}-group{G}-best.npz``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from .. import (CrossStitch, L2Constrained, MMoE, MultiTaskModel, OMoE, SharedBottom, SingleTask,
                TensorFactorization)
from .. import _validation as V
from ..data.census import NUMERIC_TRANSFORMS, check_group, check_numeric, check_recipe
from ..metrics import roc_auc
from ..optim import Adam
from ..sizing import check_sizes, count_params, matched_sizes
from ..training import EarlyStopping, Progress, fit
from .._io import write_text
from . import common, stats
from .common import load_average, run_std, staged_outputs, write_csv, write_json
from .workers import map_in_workers, worker_progress

__all__ = ["MODELS", "GATED", "DEFAULTS", "parse_models", "census_sizes", "build_model", "task_aucs", "RunResult",
           "ModelResult", "CensusBenchmark", "train_runs", "standardize_non_binary", "check_settings",
           "run_census_benchmark", "run_checked", "format_table", "format_comparisons", "write_census_csv",
           "write_census_json", "CSV_COLUMNS", "output_names", "FittedRun", "fit_run", "CensusSource", "ArraySource",
           "load_source", "clear_loaded", "run_jobs", "read_tuned_config", "TUNED_FORMAT", "TUNED_KEYS", "slug"]

# The seven models of the paper's comparison, in the order of its tables: display name -> class.
MODELS: dict[str, type[MultiTaskModel]] = {
    "Single-Task": SingleTask,
    "Shared-Bottom": SharedBottom,
    "L2-Constrained": L2Constrained,
    "Cross-Stitch": CrossStitch,
    "Tensor-Factorization": TensorFactorization,
    "OMoE": OMoE,
    "MMoE": MMoE,
}
GATED = ("OMoE", "MMoE")  # the models with gates, plotted by figures.plot_gate_distributions

# The documented defaults of the benchmark (``mmoe-np census`` flags of the same names).
DEFAULTS: dict[str, Any] = {
    "group": 1, "recipe": "paper", "split_seed": 0, "runs": 5, "seed": 0,
    "epochs": 10, "batch_size": 1024, "lr": 1e-3, "patience": 2, "dtype": "float32",
    "n_experts": 8, "expert_units": (16,), "tower_units": (8,), "l2_weight": 1e-2,
}
DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "census-income"


def parse_models(models: str | Sequence[str]) -> list[str]:
    """Names of :data:`MODELS` in the order of :data:`MODELS` (the paper's tables), from ``"all"`` or names
    separated by commas or given as a list, matched ignoring case, blanks and hyphens
    (:func:`~mmoe_np.experiments.common.parse_models`): ``"mmoe,shared-bottom"``, ``"MMoE, SharedBottom"`` and
    ``["MMoE", "Shared-Bottom"]`` are the same selection."""
    chosen = common.parse_models(models, MODELS)
    return [name for name in MODELS if name in chosen]


def census_sizes(n_features: int, tasks: Sequence[str] = ("binary", "binary"), *,
                 models: str | Sequence[str] = "all", n_experts: int = DEFAULTS["n_experts"],
                 expert_units: Sequence[int] = DEFAULTS["expert_units"],
                 tower_units: Sequence[int] = DEFAULTS["tower_units"], l2_weight: float = DEFAULTS["l2_weight"],
                 **overrides: Any) -> dict[str, dict[str, Any]]:
    """The constructor keyword arguments of each of ``models`` by name: MMoE's size (``n_experts`` experts of
    ``expert_units``, towers of ``tower_units``), and the others parameter-matched to it
    (:func:`mmoe_np.sizing.matched_sizes` tells how; ``overrides`` are its ``bottom_units``, ``hidden_units``,
    ``tf_hidden_units`` and ``tf_ranks``)."""
    names = parse_models(models)
    sizes = matched_sizes(n_features, tasks, [MODELS[name] for name in names], n_experts=n_experts,
                          expert_units=expert_units, tower_units=tower_units, l2_weight=l2_weight, **overrides)
    return {name: sizes[MODELS[name]] for name in names}


def build_model(name: str, n_features: int, sizes: dict[str, Any], *, tasks: Sequence[str] = ("binary", "binary"),
                seed: int = 0, dtype: Any = DEFAULTS["dtype"]) -> MultiTaskModel:
    """Model ``name`` (a display name of :data:`MODELS`) with the keyword arguments ``sizes`` (from
    :func:`census_sizes`)."""
    [name] = parse_models([name])
    return MODELS[name](n_features, tasks, seed=seed, dtype=dtype, **sizes)


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def slug(name: str) -> str:
    """The file-name form of a model's display name: ``"Shared-Bottom" -> "shared-bottom"``."""
    return name.lower()


def task_aucs(model: MultiTaskModel, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """ROC AUC of every task (K,): the logits of ``model.forward(X)`` (N, K) ranked against the labels Y (N, K)."""
    logits = model.forward(X)
    return np.array([roc_auc(Y[:, k], logits[:, k]) for k in range(Y.shape[1])])


@dataclass
class RunResult:
    """One trained run: AUCs (K,) of the restored (best-epoch) parameters, and how training went.

    ``val_auc_history`` (epochs, K) holds the validation AUC of every task after every epoch; ``best_epoch`` is
    0-based (the epoch restored: the best of task 1); ``seconds`` is the wall time of :func:`mmoe_np.fit`
    (validation scoring included, loading excluded).
    """

    seed: int
    test_auc: np.ndarray
    val_auc: np.ndarray
    best_epoch: int
    epochs: int
    seconds: float
    val_auc_history: np.ndarray

    @property
    def task_best_epochs(self) -> np.ndarray:
        """(K,) the 0-based epoch of every task's best validation AUC. Training stops on task 1's, so a task whose
        best epoch is the last one run (``epochs - 1``) was still improving when training stopped."""
        return np.argmax(self.val_auc_history, axis=0)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "test_auc": self.test_auc.tolist(), "val_auc": self.val_auc.tolist(),
                "best_epoch": self.best_epoch, "task_best_epochs": self.task_best_epochs.tolist(),
                "epochs": self.epochs, "seconds": round(self.seconds, 2),
                "val_auc_history": np.round(self.val_auc_history, 6).tolist()}


@dataclass
class ModelResult:
    """Every run of one model: ``runs`` (list of :class:`RunResult`), its sizes and parameter counts, its training
    settings (``training``: lr, batch size, epochs, patience, numeric transform), the model of run 0 (kept for the
    gate plot), with ``keep_models`` every run's trained model (``trained``), and with ``keep_best`` the model of
    the run with the best task-1 *validation* AUC (``best_model``, run index ``best_run``)."""

    name: str
    sizes: dict[str, Any]
    params_full: int
    params_paper: int
    runs: list[RunResult] = field(default_factory=list)
    first_model: MultiTaskModel | None = None
    trained: list[MultiTaskModel] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    best_model: MultiTaskModel | None = None
    best_run: int | None = None
    X_gates: np.ndarray | None = None  # the test inputs in this model's encoding, for its gate plot (tuned runs)

    def _stack(self, key: str) -> np.ndarray:
        return np.array([getattr(r, key) for r in self.runs], dtype=np.float64)

    def mean_std(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (ddof=1; 0 for one run) over the runs of ``key`` ("test_auc", "val_auc",
        "seconds", "epochs", "best_epoch" or "task_best_epochs")."""
        a = self._stack(key)  # (runs, ...)
        return a.mean(axis=0), run_std(a, axis=0)

    def still_improving(self) -> np.ndarray:
        """(K,) how many runs ended with task k's validation AUC at its best in the last epoch (task 2's count
        tells how often the auxiliary task was cut short by task 1's early stopping)."""
        return np.sum([r.task_best_epochs == r.epochs - 1 for r in self.runs], axis=0)

    def summary(self) -> dict[str, dict[str, list]]:
        """Mean and standard deviation over the runs of the test and validation AUCs (per task), the seconds, the
        epochs run, the best epoch (0-based) and every task's best epoch."""
        out = {}
        for key in ("test_auc", "val_auc", "seconds", "epochs", "best_epoch", "task_best_epochs"):
            mean, std = self.mean_std(key)
            out[key] = {"mean": np.round(mean, 6).tolist(), "std": np.round(std, 6).tolist()}
        out["still_improving"] = self.still_improving().tolist()
        return out

    def as_dict(self) -> dict[str, Any]:
        sizes = {k: list(v) if isinstance(v, tuple) else v for k, v in self.sizes.items()}
        return {"model": self.name, "sizes": sizes, "params": self.params_full, "params_paper": self.params_paper,
                "training": self.training, "best_run": self.best_run, "summary": self.summary(),
                "runs": [r.as_dict() for r in self.runs]}


class _ValidationAUC:
    """The early-stopping score: task 1's validation AUC. One forward pass per epoch also records every task's AUC
    (for the history) and, with ``progress``, reports the epoch through a :class:`~mmoe_np.training.Progress`."""

    def __init__(self, X_val: np.ndarray, Y_val: np.ndarray, label: str, epochs: int, progress: bool) -> None:
        self.X_val, self.Y_val = X_val, Y_val
        self.history: list[np.ndarray] = []
        self.progress = Progress(epochs, label=f"  {label}", unit="epochs", interval=0.0) if progress else None

    def __call__(self, model: MultiTaskModel) -> float:
        aucs = task_aucs(model, self.X_val, self.Y_val)
        self.history.append(aucs)
        if self.progress is not None:
            best = max(h[0] for h in self.history)
            self.progress.update(work=1, detail=f"epoch {len(self.history)}, val AUC "
                                 + " ".join(f"{a:.4f}" for a in aucs) + f", best task-1 {best:.4f}")
        return float(aucs[0])


@dataclass
class FittedRun:
    """One model trained by :func:`fit_run`: the restored ``model``, the validation AUC of every task after every
    epoch ``val_auc_history`` (epochs, K), the restored epoch ``best_epoch`` (0-based, the best of task 1; -1 if no
    epoch finished), the seconds of :func:`mmoe_np.fit` and why it stopped early (``History.stopped``, or None)."""

    model: MultiTaskModel
    val_auc_history: np.ndarray
    best_epoch: int
    seconds: float
    stopped: str | None

    @property
    def epochs(self) -> int:
        return len(self.val_auc_history)

    @property
    def val_auc(self) -> np.ndarray:
        """(K,) the validation AUC of every task at the restored epoch (NaN if no epoch finished)."""
        if self.best_epoch < 0:
            return np.full(self.val_auc_history.shape[1], np.nan)
        return self.val_auc_history[self.best_epoch]


def fit_run(name: str, sizes: dict[str, Any], X_train: np.ndarray, Y_train: np.ndarray, X_val: np.ndarray,
            Y_val: np.ndarray, *, seed: int, epochs: int, batch_size: int, lr: float, patience: int,
            dtype: Any = DEFAULTS["dtype"], label: str = "", progress: bool = False,
            on_divergence: str = "raise") -> FittedRun:
    """Train one model ``name`` with ``sizes`` (constructor keyword arguments) the benchmark's way: initialised
    and shuffled with ``seed``, Adam(lr), minibatches of ``batch_size``, at most ``epochs`` epochs, early stopping
    on task 1's validation AUC with ``patience``, the best epoch's parameters restored. It sees the training and
    validation rows only: the tuner (:mod:`~mmoe_np.experiments.census_tune`) calls it without any test set.
    ``on_divergence="stop"`` ends a run with a non-finite loss instead of raising (see :func:`mmoe_np.fit`)."""
    tasks = ("binary",) * Y_train.shape[1]
    model = build_model(name, X_train.shape[1], sizes, tasks=tasks, seed=seed, dtype=dtype)
    score = _ValidationAUC(X_val, Y_val, label, epochs, progress)
    history = fit(model, X_train, Y_train, optimizer=Adam(model.params, lr=lr), epochs=epochs,
                  batch_size=batch_size, seed=seed, on_divergence=on_divergence,
                  early_stopping=EarlyStopping(score=score, mode="max", patience=patience, restore_best=True))
    aucs = np.array(score.history, dtype=np.float64).reshape(-1, Y_train.shape[1])
    best = -1 if history.best_epoch is None else int(history.best_epoch)
    return FittedRun(model, aucs, best, history.seconds, history.stopped)


def train_runs(name: str, data: Any, sizes: dict[str, Any], *, runs: int = DEFAULTS["runs"],
               seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
               batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
               patience: int = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"],
               progress: bool = False, on_run: Callable[[RunResult], None] | None = None,
               keep_models: bool = False, keep_best: bool = False) -> ModelResult:
    """Train ``runs`` independent runs of model ``name`` on ``data`` (a :class:`~mmoe_np.data.CensusIncome` or any
    object with ``X_train, Y_train, X_val, Y_val, X_test, Y_test``), one after the other.

    Run r: init and shuffling seed ``seed + r`` (:func:`fit_run`), then the test AUC of every
    task. ``on_run(result)`` (optional) is called after every run; ``keep_models`` keeps every run's trained model
    in ``ModelResult.trained``; ``keep_best`` the one with the best task-1 validation AUC in ``best_model``.
    """
    [name] = parse_models([name])
    runs, epochs = V.positive_int("runs", runs), V.positive_int("epochs", epochs)
    patience, batch_size = V.positive_int("patience", patience), V.positive_int("batch_size", batch_size)
    lr = V.positive_float("lr", lr)
    seed = V.int_at_least("seed", seed, 0)
    result = None
    for r in range(runs):
        fitted = fit_run(name, sizes, data.X_train, data.Y_train, data.X_val, data.Y_val, seed=seed + r,
                         epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, dtype=dtype,
                         label=f"{name} run {r + 1}/{runs}", progress=progress)
        model = fitted.model
        if result is None:  # run 0's model is kept for the gate plot
            result = ModelResult(name, dict(sizes), count_params(model), count_params(model, convention="paper"),
                                 first_model=model, training={"lr": lr, "batch_size": batch_size, "epochs": epochs,
                                                              "patience": patience})
        run = RunResult(seed=seed + r, test_auc=task_aucs(model, data.X_test, data.Y_test),
                        val_auc=fitted.val_auc, best_epoch=fitted.best_epoch, epochs=fitted.epochs,
                        seconds=fitted.seconds, val_auc_history=fitted.val_auc_history)
        _add_run(result, run, model, keep_models=keep_models, keep_best=keep_best)
        if progress:
            print(f"{name} run {r + 1}: test AUC " + " ".join(f"{a:.4f}" for a in run.test_auc)
                  + f" (best epoch {run.best_epoch + 1} of {run.epochs}, {run.seconds:.1f}s)",
                  file=sys.stderr, flush=True)
        if on_run is not None:
            on_run(run)
    return result


def _add_run(result: ModelResult, run: RunResult, model: MultiTaskModel, *, keep_models: bool,
             keep_best: bool) -> None:
    """Append ``run`` to ``result``, keeping ``model`` as asked (every model; the best by task-1 validation AUC)."""
    result.runs.append(run)
    if keep_models:
        result.trained.append(model)
    if keep_best and (result.best_run is None or run.val_auc[0] > result.runs[result.best_run].val_auc[0]):
        result.best_model, result.best_run = model, len(result.runs) - 1


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


# ----------------------------------------------------------------------------------------------------------------
# The tuned configuration (written by census-tune, read by census --config)
# ----------------------------------------------------------------------------------------------------------------
TUNED_FORMAT = "mmoe-np census-tune 1"
# What the tuned configuration sets for every model (besides its sizes), and the benchmark default of each.
TUNED_KEYS = ("lr", "batch_size", "epochs", "patience", "numeric")


def _tuple_sizes(sizes: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the constructors store (``[16] -> (16,)``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()}


def read_tuned_config(path: Any) -> dict[str, Any]:
    """The tuned configuration written by ``mmoe-np census-tune`` (``tuned.json``), checked: ``{"data": {group,
    recipe, split_seed, dtype, n_features}, "models": {name: {"sizes", "lr", "batch_size", "epochs", "patience",
    "numeric", ...}}}`` with the names of :data:`MODELS` and every model buildable from its sizes. A ValueError
    names ``config`` and what is wrong."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"config {str(path)!r} cannot be read as JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != TUNED_FORMAT:
        raise ValueError(f"config {str(path)!r} is not a tuned configuration ({TUNED_FORMAT!r}, written by "
                         "mmoe-np census-tune)")
    data, models = doc.get("data", {}), doc.get("models", {})
    if not models:
        raise ValueError(f"config {str(path)!r} holds no tuned model")
    out: dict[str, Any] = {"data": {"group": check_group(data.get("group")),
                                    "recipe": check_recipe(data.get("recipe")),
                                    "split_seed": V.int_at_least("split_seed", data.get("split_seed"), 0),
                                    "dtype": str(V.dtype(data.get("dtype", DEFAULTS["dtype"]))),
                                    "n_features": V.positive_int("n_features", data.get("n_features"))},
                           "models": {}}
    for given in models:
        [name] = parse_models([given])
        entry = models[given]
        try:
            sizes = _tuple_sizes(entry["sizes"])
            settings = {"lr": V.positive_float("lr", entry["lr"]),
                        "batch_size": V.positive_int("batch_size", entry["batch_size"]),
                        "epochs": V.positive_int("epochs", entry["epochs"]),
                        "patience": V.positive_int("patience", entry["patience"]),
                        "numeric": None if entry["numeric"] is None else check_numeric(entry["numeric"])}
            build_model(name, out["data"]["n_features"], sizes)  # every size checked by the constructor
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"config {str(path)!r}, model {name}: {type(err).__name__}: {err}") from None
        out["models"][name] = {"sizes": sizes, **settings,
                               **{k: v for k, v in entry.items() if k not in ("sizes", *TUNED_KEYS)}}
    return out


@dataclass
class CensusBenchmark:
    """The result of :func:`run_census_benchmark`: settings, task names and one :class:`ModelResult` per model."""

    settings: dict[str, Any]
    task_names: tuple[str, ...]
    models: list[ModelResult]
    seconds: float
    load_average: dict[str, tuple[float, float, float] | None]  # 1-, 5-, 15-minute load, None where unavailable
    X_test: np.ndarray | None = None  # test inputs (N, d) for the gate plots of models without X_gates; not in JSON

    def summary(self) -> dict[str, dict[str, dict[str, list]]]:
        """Per model, :meth:`ModelResult.summary`: AUCs, seconds and epochs, mean and std over the runs."""
        return {m.name: m.summary() for m in self.models}

    def comparisons(self, reference: str = "MMoE", **options: Any) -> list[stats.Verdict]:
        """The paired comparison of ``reference`` with every other model on the main task's test AUC: for each
        other model, :func:`~mmoe_np.experiments.stats.verdict` on the per-run differences ``reference - other``
        (run r of both shares its seed and shuffle) for the claim "reference > other". ``options`` go to
        ``verdict`` (``level``, ``method``, ``margin``, ...). Empty without the reference or with fewer than 2
        runs."""
        by_name = {m.name: m for m in self.models}
        ref = by_name.get(reference)
        if ref is None or len(ref.runs) < 2:
            return []
        main = self.task_names[0]
        ref_auc = {r.seed: r.test_auc[0] for r in ref.runs}
        verdicts = []
        for m in self.models:
            if m.name == reference:
                continue
            seeds = [r.seed for r in m.runs if r.seed in ref_auc]  # the runs both trained (normally all)
            other = {r.seed: r.test_auc[0] for r in m.runs}
            diffs = stats.paired_differences([ref_auc[s] for s in seeds], [other[s] for s in seeds])
            verdicts.append(stats.verdict(diffs, "greater", claim=f"{reference} > {m.name} ({main} test AUC)",
                                          **options))
        return verdicts

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "Census-income (Ma et al., KDD 2018, Sec. 6.3): test AUC per task",
                "settings": self.settings, "task_names": list(self.task_names), "wall_seconds": round(self.seconds, 1),
                "load_average": self.load_average, "models": [m.as_dict() for m in self.models],
                "comparisons": [v.as_dict() for v in self.comparisons()]}

    def write(self, out: str | Path, plots: bool = True) -> list[Path]:
        """Write ``group{G}.md`` (the table and the paired comparisons), ``.csv`` and ``.json`` into ``out``, with
        ``plots`` the gate plot ``gates-{model}-group{G}.png`` of run 1 of OMoE and MMoE, the kept models as
        ``model-{model}-group{G}-run{r}.npz`` and each model's best run (by task-1 validation AUC, when kept) as
        ``model-{model}-group{G}-best.npz`` (load with :func:`mmoe_np.load`); all or none
        (:func:`~mmoe_np.experiments.common.staged_outputs`). Returns the paths."""
        from . import figures  # here: only writing needs the plots (matplotlib is imported there, when drawing)

        group = self.settings["group"]
        with staged_outputs(out, output_names(group)) as stage:
            stem = stage / f"group{group}"
            comparisons = format_comparisons(self)
            files = [write_text(stem.with_suffix(".md"), format_table(self) + "\n"
                                + (f"\n{comparisons}\n" if comparisons else "")),
                     write_census_csv(self, stem.with_suffix(".csv")),
                     write_census_json(self, stem.with_suffix(".json"))]
            for m in self.models if plots else ():
                if m.name in GATED and m.first_model is not None:
                    X = self.X_test if m.X_gates is None else m.X_gates
                    files.append(figures.plot_gate_distributions(
                        m.first_model, X, stage / f"gates-{m.name.lower()}-group{group}.png",
                        task_names=self.task_names,
                        title=f"{m.name}, Census-income group {group}: gate weights on the test set (run 1)"))
            for m in self.models:
                files += [model.save(stage / f"model-{slug(m.name)}-group{group}-run{r + 1}.npz")
                          for r, model in enumerate(m.trained)]
                if m.best_model is not None:
                    files.append(m.best_model.save(stage / f"model-{slug(m.name)}-group{group}-best.npz"))
        return [Path(out) / f.name for f in files]


def output_names(group: int) -> tuple[str, ...]:
    """Every file :meth:`CensusBenchmark.write` can write for task group ``group``."""
    return (f"group{group}.md", f"group{group}.csv", f"group{group}.json",
            *(f"gates-{name.lower()}-group{group}.png" for name in GATED), f"model-*-group{group}-run*.npz",
            f"model-*-group{group}-best.npz")


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


def _same_as_config(name: str, given: Any, tuned: Any) -> Any:
    """``given`` (None: take the config's) checked against the tuned configuration's ``tuned``."""
    if given is not None and given != tuned:
        raise ValueError(f"{name} {given!r} differs from the config's {tuned!r} (the models were tuned on it); "
                         "leave it out or use another config")
    return tuned


def check_settings(data_dir: Any, *, group: Any = None, models: Any = "all",
                   runs: Any = DEFAULTS["runs"], recipe: Any = None, split_seed: Any = None,
                   seed: Any = DEFAULTS["seed"], epochs: Any = DEFAULTS["epochs"],
                   batch_size: Any = DEFAULTS["batch_size"], lr: Any = DEFAULTS["lr"],
                   patience: Any = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"], train_rows: Any = None,
                   standardize: Any = False, config: Any = None, workers: Any = 0,
                   **size_overrides: Any) -> dict[str, Any]:
    """Check every benchmark argument before anything is loaded or trained; returns them normalised, for
    :func:`run_checked`.

    Raises ValueError naming the first bad argument: ``data_dir`` not a folder, ``group`` not 1 or 2, an unknown
    name in ``models``, a non-positive ``runs``/``epochs``/``batch_size``/``patience``/``train_rows``/``lr``, ...
    The size overrides (None means the default) are checked by :func:`mmoe_np.sizing.check_sizes`, the check
    :func:`census_sizes` makes, without building any model. ``group``, ``recipe`` and ``split_seed`` None mean the
    defaults (1, "paper", 0).

    ``config`` (a ``tuned.json`` of ``mmoe-np census-tune``, :func:`read_tuned_config`) gives every model its own
    sizes, lr, batch size, epochs, patience and numeric transform, and the group, recipe and split the models were
    tuned on (a different ``group``, ``recipe`` or ``split_seed`` is refused); ``models`` then chooses among the
    config's models, and ``epochs``, ``batch_size``, ``lr``, ``patience`` and the size overrides must be left at
    their defaults. The result's ``plan`` holds every model's training settings.
    """
    path = Path(data_dir)
    if not path.is_dir():
        raise ValueError(f"data_dir {str(path)!r} is not a directory; it must hold census-income.data.gz and "
                         "census-income.test.gz (see docs/data-census.md)")
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")
    training = {"epochs": V.positive_int("epochs", epochs), "batch_size": V.positive_int("batch_size", batch_size),
                "lr": V.positive_float("lr", lr), "patience": V.positive_int("patience", patience)}
    sizes = check_sizes(**{k: v for k, v in size_overrides.items() if v is not None})
    s = {"data_dir": path, "runs": V.positive_int("runs", runs), "seed": V.int_at_least("seed", seed, 0),
         "dtype": V.dtype(dtype),
         "train_rows": None if train_rows is None else V.positive_int("train_rows", train_rows),
         "standardize": bool(standardize), "workers": V.int_at_least("workers", workers, 0), "sizes": sizes,
         "config": None if config is None else str(config), **training}
    if config is None:
        s.update(group=check_group(DEFAULTS["group"] if group is None else group),
                 recipe=check_recipe(DEFAULTS["recipe"] if recipe is None else recipe),
                 split_seed=V.int_at_least("split_seed", DEFAULTS["split_seed"] if split_seed is None else split_seed,
                                           0), models=parse_models(models))
        s["plan"] = {name: {"sizes": None, "numeric": None, **training} for name in s["models"]}
        return s
    tuned = read_tuned_config(config)
    for name, value in {**training, **sizes}.items():
        if value != DEFAULTS.get(name):
            raise ValueError(f"{name} is set by the config for every model; leave it out with config")
    s.update(group=_same_as_config("group", None if group is None else check_group(group), tuned["data"]["group"]),
             recipe=_same_as_config("recipe", None if recipe is None else check_recipe(recipe),
                                    tuned["data"]["recipe"]),
             split_seed=_same_as_config("split_seed", split_seed, tuned["data"]["split_seed"]))
    items = models.split(",") if isinstance(models, str) else [str(m) for m in models]
    everything = any(item.strip().lower() == "all" for item in items)
    chosen = list(tuned["models"]) if everything else parse_models(models)
    missing = [name for name in chosen if name not in tuned["models"]]
    if missing:
        raise ValueError(f"models: {missing} not in the config, which tunes {list(tuned['models'])}")
    s["models"] = [name for name in MODELS if name in chosen]
    s["plan"] = {name: {k: tuned["models"][name][k] for k in ("sizes", *TUNED_KEYS)} for name in s["models"]}
    return s


def run_census_benchmark(data_dir: Any, *, group: int | None = None, models: str | Sequence[str] = "all",
                         runs: int = DEFAULTS["runs"], recipe: str | None = None, split_seed: int | None = None,
                         seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
                         batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                         patience: int = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"],
                         train_rows: int | None = None, standardize: bool = False, config: Any = None,
                         workers: int = 0, progress: bool = False, keep_models: bool = False,
                         **size_overrides: Any) -> CensusBenchmark:
    """Load Census-income (``group``, ``recipe``, validation/test split ``split_seed``) and train ``runs`` runs of
    every model in ``models`` (``keep_models``: keep every trained model, see :meth:`CensusBenchmark.write`); see
    :func:`train_runs` for one model and :func:`census_sizes` for the sizes and the
    ``size_overrides`` (``n_experts``, ``expert_units``, ``tower_units``, ``l2_weight``, ``bottom_units``,
    ``hidden_units``, ``tf_hidden_units``, ``tf_ranks``; None means the default). ``train_rows`` keeps only the
    first rows of the training set (for quick checks and tests); ``standardize`` applies
    :func:`standardize_non_binary` (meant for the keras recipe); ``config`` trains the tuned models of a
    ``tuned.json`` instead; ``workers`` > 0 trains the runs on that many worker processes (one BLAS thread each).
    Every argument is checked first (:func:`check_settings`), then :func:`run_checked` runs."""
    return run_checked(check_settings(data_dir, group=group, models=models, runs=runs, recipe=recipe,
                                      split_seed=split_seed, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                                      patience=patience, dtype=dtype, train_rows=train_rows, standardize=standardize,
                                      config=config, workers=workers, **size_overrides),
                       progress=progress, keep_models=keep_models)


@dataclass(frozen=True)
class _RunJob:
    """One run of one model, everything a worker needs: the data source, the model's plan and sizes (None:
    matched to MMoE once the data gives the number of features), the run index and where to save the model
    (None: return it)."""
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


def _job_sizes(job: _RunJob, n_features: int) -> dict[str, Any]:
    if job.plan["sizes"] is not None:
        return dict(job.plan["sizes"])
    return census_sizes(n_features, models=[job.name], **job.size_overrides)[job.name]


def _train_job(job: _RunJob) -> dict[str, Any]:
    """Train one run (in this process or a worker): its :class:`RunResult`, sizes, and the model (or its file)."""
    data = load_source(job.source, job.plan["numeric"])
    sizes = _job_sizes(job, data.n_features)
    plan = job.plan
    fitted = fit_run(job.name, sizes, data.X_train, data.Y_train, data.X_val, data.Y_val, seed=job.seed + job.run,
                     epochs=plan["epochs"], batch_size=plan["batch_size"], lr=plan["lr"], patience=plan["patience"],
                     dtype=job.dtype, label=f"{job.name} run {job.run + 1}/{job.runs}", progress=job.progress)
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


def run_checked(s: dict[str, Any], *, progress: bool = False, keep_models: bool = False,
                source: Any = None) -> CensusBenchmark:
    """The benchmark of settings ``s`` already checked by :func:`check_settings` (the command line checks them,
    then its ``--out`` folder, then runs); ``keep_models`` keeps every run's trained model (for ``write``), and the
    best run of every model (by task-1 validation AUC) is always kept (``ModelResult.best_model``).

    The runs are trained grouped by numeric transform, so each encoding is loaded once; with ``s["workers"]`` > 0
    on that many worker processes (each loads the data itself; models come back as files). ``source`` replaces
    the :class:`CensusSource` of the settings (e.g. an :class:`ArraySource`, or a CensusSource with
    ``eval_rows``)."""
    from ..persist import load

    start, load_start = time.perf_counter(), load_average()
    if source is None:
        source = CensusSource(str(s["data_dir"]), s["group"], s["recipe"], s["split_seed"], str(s["dtype"]),
                              s["train_rows"], s["standardize"])
    order = sorted(s["models"], key=lambda name: str(s["plan"][name]["numeric"]))  # one load per transform
    total = len(order) * s["runs"]
    overall = Progress(total, total, label="census", interval=0.0, unit="runs") if progress else None
    with tempfile.TemporaryDirectory(prefix="mmoe-np-census-") as scratch:
        jobs = [_RunJob(source, name, s["plan"][name], s["sizes"], s["seed"], r, s["runs"],
                        progress and not s["workers"], scratch if s["workers"] else None, str(s["dtype"]))
                for name in order for r in range(s["runs"])]
        done = run_jobs(_train_job, jobs, s["workers"], progress=overall)
        by_name: dict[str, ModelResult] = {}
        for job, out in zip(jobs, done):
            run, model = out["run"], out["model"]
            result = by_name.get(job.name)
            if result is None:
                model = load(model) if isinstance(model, str) else model
                result = by_name[job.name] = ModelResult(
                    job.name, out["sizes"], count_params(model), count_params(model, convention="paper"),
                    first_model=model, training={**{k: v for k, v in job.plan.items() if k != "sizes"},
                                                 "numeric": out["numeric"]})
            keep = keep_models or result.best_run is None or run.val_auc[0] > result.runs[result.best_run].val_auc[0]
            if keep and isinstance(model, str):
                model = load(model)
            _add_run(result, run, model, keep_models=keep_models, keep_best=True)
    for name in GATED:  # the gate plot needs the test inputs in the model's own encoding
        if name in by_name:
            by_name[name].X_gates = load_source(source, s["plan"][name]["numeric"]).X_test
    clear_loaded()
    settings = {**{k: s[k] for k in ("group", "recipe", "split_seed", "runs", "seed", "epochs", "batch_size", "lr",
                                     "patience", "standardize", "config", "workers")},
                "data_dir": str(s["data_dir"]), "dtype": str(s["dtype"]), "optimizer": "Adam",
                "early_stopping": "task 1 validation AUC, best epoch restored", **done[0]["data"],
                "size_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in s["sizes"].items()}}
    if s["config"] is not None:  # the training settings are each model's own (ModelResult.training)
        for key in ("epochs", "batch_size", "lr", "patience"):
            settings.pop(key)
    return CensusBenchmark(settings, done[0]["task_names"], [by_name[name] for name in s["models"]],
                           time.perf_counter() - start, {"start": load_start, "end": load_average()})


# ----------------------------------------------------------------------------------------------------------------
# Output: table, CSV, JSON, gate plot
# ----------------------------------------------------------------------------------------------------------------
def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(result: CensusBenchmark) -> str:
    """A Markdown table: one row per model, test AUC per task and task-1 validation AUC as mean ± std over the runs,
    the parameter counts (every parameter; the paper's convention), epochs run, every task's best epoch (1-based
    means; training stops on task 1's), how many runs ended with task 2 still at its best (cut short) and seconds
    per run."""
    t1, t2 = result.task_names
    lines = [f"| model | params (paper count) | {t1} test AUC | {t2} test AUC | {t1} val AUC "
             f"| epochs (best {t1} / {t2}) | {t2} cut short | s / run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in result.models:
        test_mean, test_std = m.mean_std("test_auc")
        val_mean, val_std = m.mean_std("val_auc")
        epochs, _ = m.mean_std("epochs")
        best, _ = m.mean_std("task_best_epochs")
        secs, secs_std = m.mean_std("seconds")
        lines.append(f"| {m.name} | {m.params_full:,} ({m.params_paper:,}) | {_pm(test_mean[0], test_std[0])} "
                     f"| {_pm(test_mean[1], test_std[1])} | {_pm(val_mean[0], val_std[0])} "
                     f"| {epochs:.1f} ({best[0] + 1:.1f} / {best[1] + 1:.1f}) "
                     f"| {m.still_improving()[1]} of {len(m.runs)} | {secs:.1f} ± {secs_std:.1f} |")
    return "\n".join(lines)


def format_comparisons(result: CensusBenchmark, **options: Any) -> str:
    """One line per :meth:`CensusBenchmark.comparisons` verdict (empty without MMoE or with one run)."""
    return "\n".join(v.line() for v in result.comparisons(**options))


CSV_COLUMNS = ("model", "runs", "params", "params_paper", "test_auc_task1_mean", "test_auc_task1_std",
               "test_auc_task2_mean", "test_auc_task2_std", "val_auc_task1_mean", "val_auc_task1_std",
               "val_auc_task2_mean", "val_auc_task2_std", "epochs_mean", "best_epoch_mean", "seconds_mean",
               "seconds_std")


def write_census_csv(result: CensusBenchmark, path: str | Path) -> Path:
    """CSV of the summary, one row per model (columns :data:`CSV_COLUMNS`; ``best_epoch_mean`` is 1-based)."""
    def rows():
        for m in result.models:
            (tm, ts), (vm, vs) = m.mean_std("test_auc"), m.mean_std("val_auc")
            epochs, best, (secs, secs_std) = m.mean_std("epochs")[0], m.mean_std("best_epoch")[0], m.mean_std("seconds")
            yield [m.name, len(m.runs), m.params_full, m.params_paper,
                   *(f"{x:.6f}" for x in (tm[0], ts[0], tm[1], ts[1], vm[0], vs[0], vm[1], vs[1])),
                   f"{epochs:.2f}", f"{best + 1:.2f}", f"{secs:.2f}", f"{secs_std:.2f}"]

    return write_csv(path, CSV_COLUMNS, rows())


def write_census_json(result: CensusBenchmark, path: str | Path) -> Path:
    """JSON of :meth:`CensusBenchmark.as_dict`: settings, wall time, load average, and every run of every model."""
    return write_json(path, result.as_dict(), indent=1)
