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
:class:`CensusBenchmark` with ``summary()``, ``as_dict()`` and ``write(out)`` as every study's result.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import (CrossStitch, L2Constrained, MMoE, MultiTaskModel, OMoE, SharedBottom, SingleTask,
                TensorFactorization)
from .. import _validation as V
from ..data.census import check_group, check_recipe
from ..metrics import roc_auc
from ..optim import Adam
from ..sizing import check_sizes, count_params, matched_sizes
from ..training import EarlyStopping, Progress, fit
from .._io import write_text
from . import common
from .common import load_average, run_std, staged_outputs, write_csv, write_json

__all__ = ["MODELS", "GATED", "DEFAULTS", "parse_models", "census_sizes", "build_model", "task_aucs", "RunResult",
           "ModelResult", "CensusBenchmark", "train_runs", "standardize_non_binary", "check_settings",
           "run_census_benchmark", "run_checked", "format_table", "write_census_csv", "write_census_json",
           "CSV_COLUMNS", "output_names"]

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
def task_aucs(model: MultiTaskModel, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """ROC AUC of every task (K,): the logits of ``model.forward(X)`` (N, K) ranked against the labels Y (N, K)."""
    logits = model.forward(X)
    return np.array([roc_auc(Y[:, k], logits[:, k]) for k in range(Y.shape[1])])


@dataclass
class RunResult:
    """One trained run: AUCs (K,) of the restored (best-epoch) parameters, and how training went.

    ``val_auc_history`` (epochs, K) holds the validation AUC of every task after every epoch; ``best_epoch`` is
    0-based; ``seconds`` is the wall time of :func:`mmoe_np.fit` (validation scoring included, loading excluded).
    """

    seed: int
    test_auc: np.ndarray
    val_auc: np.ndarray
    best_epoch: int
    epochs: int
    seconds: float
    val_auc_history: np.ndarray

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "test_auc": self.test_auc.tolist(), "val_auc": self.val_auc.tolist(),
                "best_epoch": self.best_epoch, "epochs": self.epochs, "seconds": round(self.seconds, 2),
                "val_auc_history": np.round(self.val_auc_history, 6).tolist()}


@dataclass
class ModelResult:
    """Every run of one model: ``runs`` (list of :class:`RunResult`), its sizes and parameter counts, the model of
    run 0 (kept for the gate plot) and, with ``keep_models``, every run's trained model (``trained``)."""

    name: str
    sizes: dict[str, Any]
    params_full: int
    params_paper: int
    runs: list[RunResult] = field(default_factory=list)
    first_model: MultiTaskModel | None = None
    trained: list[MultiTaskModel] = field(default_factory=list)

    def _stack(self, key: str) -> np.ndarray:
        return np.array([getattr(r, key) for r in self.runs], dtype=np.float64)

    def mean_std(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (ddof=1; 0 for one run) over the runs of ``key`` ("test_auc", "val_auc",
        "seconds", "epochs" or "best_epoch")."""
        a = self._stack(key)  # (runs, ...)
        return a.mean(axis=0), run_std(a, axis=0)

    def summary(self) -> dict[str, dict[str, list]]:
        """Mean and standard deviation over the runs of the test and validation AUCs (per task), the seconds, the
        epochs run and the best epoch (0-based)."""
        out = {}
        for key in ("test_auc", "val_auc", "seconds", "epochs", "best_epoch"):
            mean, std = self.mean_std(key)
            out[key] = {"mean": np.round(mean, 6).tolist(), "std": np.round(std, 6).tolist()}
        return out

    def as_dict(self) -> dict[str, Any]:
        sizes = {k: list(v) if isinstance(v, tuple) else v for k, v in self.sizes.items()}
        return {"model": self.name, "sizes": sizes, "params": self.params_full, "params_paper": self.params_paper,
                "summary": self.summary(), "runs": [r.as_dict() for r in self.runs]}


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


def train_runs(name: str, data: Any, sizes: dict[str, Any], *, runs: int = DEFAULTS["runs"],
               seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
               batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
               patience: int = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"],
               progress: bool = False, on_run: Callable[[RunResult], None] | None = None,
               keep_models: bool = False) -> ModelResult:
    """Train ``runs`` independent runs of model ``name`` on ``data`` (a :class:`~mmoe_np.data.CensusIncome` or any
    object with ``X_train, Y_train, X_val, Y_val, X_test, Y_test``), one after the other.

    Run r: init and shuffling seed ``seed + r``; Adam(lr); early stopping on task 1's validation AUC with
    ``patience``, best parameters restored; then the test AUC of every task. ``on_run(result)`` (optional) is called
    after every run; ``keep_models`` keeps every run's trained model in ``ModelResult.trained``.
    """
    [name] = parse_models([name])
    runs, epochs = V.positive_int("runs", runs), V.positive_int("epochs", epochs)
    patience, batch_size = V.positive_int("patience", patience), V.positive_int("batch_size", batch_size)
    lr = V.positive_float("lr", lr)
    seed = V.int_at_least("seed", seed, 0)
    tasks = ("binary",) * data.Y_train.shape[1]
    n_features = data.X_train.shape[1]
    result = None
    for r in range(runs):
        model = build_model(name, n_features, sizes, tasks=tasks, seed=seed + r, dtype=dtype)
        if result is None:  # run 0's model is kept (trained in place below) for the gate plot
            result = ModelResult(name, dict(sizes), count_params(model), count_params(model, convention="paper"),
                                 first_model=model)
        score = _ValidationAUC(data.X_val, data.Y_val, f"{name} run {r + 1}/{runs}", epochs, progress)
        history = fit(model, data.X_train, data.Y_train, optimizer=Adam(model.params, lr=lr), epochs=epochs,
                      batch_size=batch_size, seed=seed + r,
                      early_stopping=EarlyStopping(score=score, mode="max", patience=patience, restore_best=True))
        run = RunResult(seed=seed + r, test_auc=task_aucs(model, data.X_test, data.Y_test),
                        val_auc=score.history[history.best_epoch], best_epoch=int(history.best_epoch),
                        epochs=history.epochs, seconds=history.seconds, val_auc_history=np.array(score.history))
        result.runs.append(run)
        if keep_models:
            result.trained.append(model)
        if progress:
            print(f"{name} run {r + 1}/{runs}: test AUC " + " ".join(f"{a:.4f}" for a in run.test_auc)
                  + f" (best epoch {run.best_epoch + 1} of {run.epochs}, {run.seconds:.1f}s)",
                  file=sys.stderr, flush=True)
        if on_run is not None:
            on_run(run)
    return result


@dataclass
class CensusBenchmark:
    """The result of :func:`run_census_benchmark`: settings, task names and one :class:`ModelResult` per model."""

    settings: dict[str, Any]
    task_names: tuple[str, ...]
    models: list[ModelResult]
    seconds: float
    load_average: dict[str, tuple[float, float, float] | None]  # 1-, 5-, 15-minute load, None where unavailable
    X_test: np.ndarray | None = None  # the test inputs (N, d), for the gate plots; not written to JSON

    def summary(self) -> dict[str, dict[str, dict[str, list]]]:
        """Per model, :meth:`ModelResult.summary`: AUCs, seconds and epochs, mean and std over the runs."""
        return {m.name: m.summary() for m in self.models}

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "Census-income (Ma et al., KDD 2018, Sec. 6.3): test AUC per task",
                "settings": self.settings, "task_names": list(self.task_names), "wall_seconds": round(self.seconds, 1),
                "load_average": self.load_average, "models": [m.as_dict() for m in self.models]}

    def write(self, out: str | Path, plots: bool = True) -> list[Path]:
        """Write ``group{G}.md`` (the table), ``.csv`` and ``.json`` into ``out``, with ``plots`` the gate plot
        ``gates-{model}-group{G}.png`` of run 1 of OMoE and MMoE, and the kept models as
        ``model-{model}-group{G}-run{r}.npz`` (load with :func:`mmoe_np.load`); all or none
        (:func:`~mmoe_np.experiments.common.staged_outputs`). Returns the paths."""
        from . import figures  # here: only writing needs the plots (matplotlib is imported there, when drawing)

        group = self.settings["group"]
        with staged_outputs(out, output_names(group)) as stage:
            stem = stage / f"group{group}"
            files = [write_text(stem.with_suffix(".md"), format_table(self) + "\n"),
                     write_census_csv(self, stem.with_suffix(".csv")),
                     write_census_json(self, stem.with_suffix(".json"))]
            for m in self.models if plots else ():
                if m.name in GATED and m.first_model is not None:
                    files.append(figures.plot_gate_distributions(
                        m.first_model, self.X_test, stage / f"gates-{m.name.lower()}-group{group}.png",
                        task_names=self.task_names,
                        title=f"{m.name}, Census-income group {group}: gate weights on the test set (run 1)"))
            for m in self.models:
                files += [model.save(stage / f"model-{m.name.lower()}-group{group}-run{r + 1}.npz")
                          for r, model in enumerate(m.trained)]
        return [Path(out) / f.name for f in files]


def output_names(group: int) -> tuple[str, ...]:
    """Every file :meth:`CensusBenchmark.write` can write for task group ``group``."""
    return (f"group{group}.md", f"group{group}.csv", f"group{group}.json",
            *(f"gates-{name.lower()}-group{group}.png" for name in GATED), f"model-*-group{group}-run*.npz")


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


def check_settings(data_dir: Any, *, group: Any = DEFAULTS["group"], models: Any = "all",
                   runs: Any = DEFAULTS["runs"], recipe: Any = DEFAULTS["recipe"],
                   split_seed: Any = DEFAULTS["split_seed"], seed: Any = DEFAULTS["seed"],
                   epochs: Any = DEFAULTS["epochs"], batch_size: Any = DEFAULTS["batch_size"],
                   lr: Any = DEFAULTS["lr"], patience: Any = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"],
                   train_rows: Any = None, standardize: Any = False, **size_overrides: Any) -> dict[str, Any]:
    """Check every benchmark argument before anything is loaded or trained; returns them normalised, for
    :func:`run_checked`.

    Raises ValueError naming the first bad argument: ``data_dir`` not a folder, ``group`` not 1 or 2, an unknown
    name in ``models``, a non-positive ``runs``/``epochs``/``batch_size``/``patience``/``train_rows``/``lr``, ...
    The size overrides (None means the default) are checked by :func:`mmoe_np.sizing.check_sizes`, the check
    :func:`census_sizes` makes, without building any model.
    """
    path = Path(data_dir)
    if not path.is_dir():
        raise ValueError(f"data_dir {str(path)!r} is not a directory; it must hold census-income.data.gz and "
                         "census-income.test.gz (see docs/data-census.md)")
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")
    return {"data_dir": path, "group": check_group(group), "models": parse_models(models),
            "recipe": check_recipe(recipe), "runs": V.positive_int("runs", runs),
            "split_seed": V.int_at_least("split_seed", split_seed, 0), "seed": V.int_at_least("seed", seed, 0),
            "epochs": V.positive_int("epochs", epochs), "batch_size": V.positive_int("batch_size", batch_size),
            "lr": V.positive_float("lr", lr), "patience": V.positive_int("patience", patience),
            "dtype": V.dtype(dtype),
            "train_rows": None if train_rows is None else V.positive_int("train_rows", train_rows),
            "standardize": bool(standardize),
            "sizes": check_sizes(**{k: v for k, v in size_overrides.items() if v is not None})}


def run_census_benchmark(data_dir: Any, *, group: int = DEFAULTS["group"], models: str | Sequence[str] = "all",
                         runs: int = DEFAULTS["runs"], recipe: str = DEFAULTS["recipe"],
                         split_seed: int = DEFAULTS["split_seed"], seed: int = DEFAULTS["seed"],
                         epochs: int = DEFAULTS["epochs"], batch_size: int = DEFAULTS["batch_size"],
                         lr: float = DEFAULTS["lr"], patience: int = DEFAULTS["patience"],
                         dtype: Any = DEFAULTS["dtype"], train_rows: int | None = None, standardize: bool = False,
                         progress: bool = False, keep_models: bool = False,
                         **size_overrides: Any) -> CensusBenchmark:
    """Load Census-income (``group``, ``recipe``, validation/test split ``split_seed``) and train ``runs`` runs of
    every model in ``models`` (``keep_models``: keep every trained model, see :meth:`CensusBenchmark.write`); see
    :func:`train_runs` for one model and :func:`census_sizes` for the sizes and the
    ``size_overrides`` (``n_experts``, ``expert_units``, ``tower_units``, ``l2_weight``, ``bottom_units``,
    ``hidden_units``, ``tf_hidden_units``, ``tf_ranks``; None means the default). ``train_rows`` keeps only the
    first rows of the training set (for quick checks and tests); ``standardize`` applies
    :func:`standardize_non_binary` (meant for the keras recipe). Every argument is checked first
    (:func:`check_settings`), then :func:`run_checked` runs."""
    return run_checked(check_settings(data_dir, group=group, models=models, runs=runs, recipe=recipe,
                                      split_seed=split_seed, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                                      patience=patience, dtype=dtype, train_rows=train_rows, standardize=standardize,
                                      **size_overrides), progress=progress, keep_models=keep_models)


def run_checked(s: dict[str, Any], *, progress: bool = False, keep_models: bool = False) -> CensusBenchmark:
    """The benchmark of settings ``s`` already checked by :func:`check_settings` (the command line checks them,
    then its ``--out`` folder, then runs); ``keep_models`` keeps every run's trained model (for ``write``)."""
    from ..data import load_census_income

    start, load_start = time.perf_counter(), load_average()
    data = load_census_income(s["data_dir"], group=s["group"], seed=s["split_seed"], recipe=s["recipe"],
                              dtype=s["dtype"])
    if s["train_rows"] is not None:
        data = dataclasses.replace(data, X_train=data.X_train[:s["train_rows"]], Y_train=data.Y_train[:s["train_rows"]])
    if s["standardize"]:
        data = standardize_non_binary(data)
    tasks = ("binary",) * data.Y_train.shape[1]
    sizes = census_sizes(data.n_features, tasks, models=s["models"], **s["sizes"])
    settings = {**{k: s[k] for k in ("group", "recipe", "split_seed", "runs", "seed", "epochs", "batch_size", "lr",
                                     "patience", "standardize")},
                "data_dir": str(s["data_dir"]), "dtype": str(s["dtype"]), "optimizer": "Adam",
                "early_stopping": "task 1 validation AUC, best epoch restored",
                "n_train": int(data.X_train.shape[0]), "n_val": int(data.X_val.shape[0]),
                "n_test": int(data.X_test.shape[0]), "n_features": int(data.n_features),
                "size_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in s["sizes"].items()}}
    results = []
    total = len(s["models"]) * s["runs"]
    overall = Progress(total, total, label="census", interval=0.0, unit="runs") if progress else None
    for name in s["models"]:
        if progress:
            print(f"== {name} {sizes[name]}", file=sys.stderr, flush=True)
        results.append(train_runs(name, data, sizes[name], runs=s["runs"], seed=s["seed"], epochs=s["epochs"],
                                  batch_size=s["batch_size"], lr=s["lr"], patience=s["patience"], dtype=s["dtype"],
                                  progress=progress, keep_models=keep_models,
                                  on_run=None if overall is None else lambda run: overall.update(work=1, runs=1)))
    return CensusBenchmark(settings, tuple(data.task_names), results, time.perf_counter() - start,
                           {"start": load_start, "end": load_average()}, X_test=data.X_test)


# ----------------------------------------------------------------------------------------------------------------
# Output: table, CSV, JSON, gate plot
# ----------------------------------------------------------------------------------------------------------------
def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(result: CensusBenchmark) -> str:
    """A Markdown table: one row per model, test AUC per task and task-1 validation AUC as mean ± std over the runs,
    the parameter counts (every parameter; the paper's convention), epochs run, best epoch and seconds per run."""
    t1, t2 = result.task_names
    lines = [f"| model | params (paper count) | {t1} test AUC | {t2} test AUC | {t1} val AUC | epochs (best) "
             "| s / run |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in result.models:
        test_mean, test_std = m.mean_std("test_auc")
        val_mean, val_std = m.mean_std("val_auc")
        epochs, _ = m.mean_std("epochs")
        best, _ = m.mean_std("best_epoch")
        secs, secs_std = m.mean_std("seconds")
        lines.append(f"| {m.name} | {m.params_full:,} ({m.params_paper:,}) | {_pm(test_mean[0], test_std[0])} "
                     f"| {_pm(test_mean[1], test_std[1])} | {_pm(val_mean[0], val_std[0])} "
                     f"| {epochs:.1f} ({best + 1:.1f}) | {secs:.1f} ± {secs_std:.1f} |")
    return "\n".join(lines)


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
