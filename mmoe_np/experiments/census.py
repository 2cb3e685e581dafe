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
:func:`mmoe_np.count_params` with ``convention="paper"``) is closest to MMoE's (:func:`census_sizes`).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import _validation as V
from ..baselines import CrossStitch, L2Constrained, TensorFactorization, _ranks
from ..data.census import _RECIPES, _group, _recipe
from ..metrics import roc_auc
from ..models import MMoE, MultiTaskModel, OMoE, SharedBottom, SingleTask
from ..optim import Adam
from ..sizing import count_params, match_width
from ..training import EarlyStopping, fit
from .common import load_average, prepare_out, run_std, save_png
from .replicas import Progress

__all__ = ["MODELS", "DEFAULTS", "parse_models", "census_sizes", "build_model", "task_aucs", "RunResult",
           "ModelResult", "CensusBenchmark", "train_runs", "standardize_non_binary", "check_settings",
           "run_census_benchmark", "format_table", "write_census_csv", "write_census_json", "CSV_COLUMNS",
           "plot_gate_distributions", "run_command", "register"]

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
GATED = ("OMoE", "MMoE")  # the models with gates, plotted by plot_gate_distributions

# The documented defaults of the benchmark (``mmoe-np census`` flags of the same names).
DEFAULTS: dict[str, Any] = {
    "group": 1, "recipe": "paper", "split_seed": 0, "runs": 5, "seed": 0,
    "epochs": 10, "batch_size": 1024, "lr": 1e-3, "patience": 2, "dtype": "float32",
    "n_experts": 8, "expert_units": (16,), "tower_units": (8,), "l2_weight": 1e-2,
}
DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "census-income"


def _key(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


_BY_KEY = {_key(name): name for name in MODELS} | {_key(cls.__name__): name for name, cls in MODELS.items()}


def parse_models(models: str | Sequence[str]) -> list[str]:
    """Display names (in the order of :data:`MODELS`) from ``"all"`` or names separated by commas.

    Matching ignores case, blanks and hyphens: ``"mmoe,shared-bottom"``, ``"MMoE, SharedBottom"`` and
    ``["MMoE", "Shared-Bottom"]`` are the same selection.
    """
    items = models.split(",") if isinstance(models, str) else list(models)
    items = [str(item).strip() for item in items if str(item).strip()]
    if not items:
        raise ValueError(f"models must be 'all' or names from {list(MODELS)}; got {models!r}")
    if any(_key(item) == "all" for item in items):
        return list(MODELS)
    chosen = set()
    for item in items:
        if _key(item) not in _BY_KEY:
            raise ValueError(f"models: unknown model {item!r}; expected 'all' or names from {list(MODELS)}")
        chosen.add(_BY_KEY[_key(item)])
    return [name for name in MODELS if name in chosen]


# ----------------------------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------------------------
def census_sizes(n_features: int, tasks: Sequence[str] = ("binary", "binary"), *,
                 models: str | Sequence[str] = "all", n_experts: int = DEFAULTS["n_experts"],
                 expert_units: Sequence[int] = DEFAULTS["expert_units"],
                 tower_units: Sequence[int] = DEFAULTS["tower_units"], l2_weight: float = DEFAULTS["l2_weight"],
                 bottom_units: Sequence[int] | None = None, hidden_units: Sequence[int] | None = None,
                 tf_hidden_units: Sequence[int] | None = None,
                 tf_ranks: Sequence[int] | None = None) -> dict[str, dict[str, Any]]:
    """The constructor keyword arguments of each of ``models``: MMoE's size, and the others matched to it.

    MMoE and OMoE: ``n_experts`` experts of ``expert_units``, towers of ``tower_units``. Every other model keeps the
    towers and the depth (``len(expert_units)``) and gets the width w whose count, in the paper's convention (weights
    of the hidden layers and of the towers' hidden layers), is closest to MMoE's:

    * Shared-Bottom: a bottom of ``(w,) * depth``;
    * Single-Task, L2-Constrained, Cross-Stitch: one network of ``(w,) * depth`` per task (so the K networks
      together match MMoE); L2-Constrained ties them with ``l2_weight``;
    * Tensor-Factorization: ``(w,) * depth`` per task with Tucker ranks ``(w, w, K)``: every task's layer is
      ``U1 M_k`` with the input factor ``U1`` (d_in x w) shared and a w x w matrix ``M_k`` of its own.

    Any of ``bottom_units``, ``hidden_units`` (Single-Task, L2-Constrained, Cross-Stitch) and ``tf_hidden_units``
    overrides the matched width; ``tf_ranks`` fixes the Tucker ranks (the width is then matched over widths that
    admit them, unless given). Given ``tf_hidden_units`` h without ``tf_ranks``, the ranks are the largest every
    layer admits: ``(min(n_features, h[:-1]), min(h), K)``. Ranks that exceed a dimension they factor raise
    ValueError here, before any training.
    """
    n_features, tasks, names = V.positive_int("n_features", n_features), V.tasks(tasks), parse_models(models)
    K = len(tasks)
    moe = {"n_experts": V.positive_int("n_experts", n_experts),
           "expert_units": V.units("expert_units", expert_units),
           "tower_units": V.units("tower_units", tower_units, allow_empty=True)}
    towers, depth = moe["tower_units"], len(moe["expert_units"])
    target = count_params(MMoE(n_features, tasks, **moe), convention="paper")

    def matched(what: str, make: Callable[[int], MultiTaskModel], max_width: int = 2048) -> tuple[int, ...]:
        try:
            return (match_width(make, target, convention="paper", max_width=max_width),) * depth
        except ValueError as err:  # no width up to max_width is large enough
            raise ValueError(f"{what}: no width up to {max_width} reaches MMoE's parameter count {target} "
                             f"({err}); give the width explicitly") from None

    def shared_bottom() -> dict[str, Any]:
        if bottom_units is not None:
            return {"bottom_units": V.units("bottom_units", bottom_units), "tower_units": towers}
        return {"bottom_units": matched("Shared-Bottom", lambda w: SharedBottom(
            n_features, tasks, bottom_units=(w,) * depth, tower_units=towers)), "tower_units": towers}

    def per_task() -> dict[str, Any]:  # Single-Task, L2-Constrained and Cross-Stitch: the same networks
        if hidden_units is not None:
            return {"hidden_units": V.units("hidden_units", hidden_units), "tower_units": towers}
        return {"hidden_units": matched("Single-Task, L2-Constrained, Cross-Stitch", lambda w: SingleTask(
            n_features, tasks, hidden_units=(w,) * depth, tower_units=towers)), "tower_units": towers}

    def tensor_factorization() -> dict[str, Any]:
        given = None if tf_hidden_units is None else V.units("tf_hidden_units", tf_hidden_units)
        if tf_ranks is not None:
            ranks = _tf_ranks(tf_ranks)
            if given is not None:
                hidden = given
            else:  # r1 <= every hidden d_in and r2 <= every hidden d_out: the width is at least both
                floor = max(ranks[:2])
                widths = matched(f"Tensor-Factorization with tf_ranks = {ranks}", lambda w: TensorFactorization(
                    n_features, tasks, hidden_units=(max(w, floor),) * depth, tower_units=towers, ranks=ranks))
                hidden = tuple(max(w, floor) for w in widths)
        elif given is not None:  # the largest ranks every layer admits
            hidden, ranks = given, (min((n_features, *given[:-1])), min(given), K)
        else:  # ranks (w, w, K); r1 = w cannot exceed the input width, hence max_width
            hidden = matched("Tensor-Factorization (ranks w, w, K)", lambda w: TensorFactorization(
                n_features, tasks, hidden_units=(w,) * depth, tower_units=towers, ranks=(w, w, K)),
                max_width=n_features)
            ranks = (hidden[0], hidden[0], K)
        _ranks(ranks, (n_features, *hidden[:-1]), hidden, K)  # the check TensorFactorization itself makes
        return {"hidden_units": hidden, "tower_units": towers, "ranks": ranks}

    sizes: dict[str, dict[str, Any]] = {}
    shared_width: dict[str, Any] | None = None  # computed once for the three per-task models
    for name in names:
        if name in GATED:
            sizes[name] = dict(moe)
        elif name == "Shared-Bottom":
            sizes[name] = shared_bottom()
        elif name == "Tensor-Factorization":
            sizes[name] = tensor_factorization()
        else:
            shared_width = per_task() if shared_width is None else shared_width
            sizes[name] = dict(shared_width)
            if name == "L2-Constrained":
                sizes[name]["l2_weight"] = V.positive_float("l2_weight", l2_weight, allow_zero=True)
    return sizes


def _tf_ranks(value: Any) -> tuple[int, int, int]:
    """``tf_ranks``: three positive integers (r1, r2, r3); whether they fit the layers is checked later."""
    ranks = V.units("tf_ranks", value)
    if len(ranks) != 3:
        raise ValueError(f"tf_ranks must be three positive integers (r1, r2, r3); got {value!r}")
    return ranks


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
    """Every run of one model: ``runs`` (list of :class:`RunResult`), its sizes and parameter counts, and the
    model of run 0 (kept for the gate plot)."""

    name: str
    sizes: dict[str, Any]
    params_full: int
    params_paper: int
    runs: list[RunResult] = field(default_factory=list)
    first_model: MultiTaskModel | None = None

    def _stack(self, key: str) -> np.ndarray:
        return np.array([getattr(r, key) for r in self.runs], dtype=np.float64)

    def mean_std(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (ddof=1; 0 for one run) over the runs of ``key`` ("test_auc", "val_auc",
        "seconds", "epochs" or "best_epoch")."""
        a = self._stack(key)  # (runs, ...)
        return a.mean(axis=0), run_std(a, axis=0)

    def as_dict(self) -> dict[str, Any]:
        summary = {}
        for key in ("test_auc", "val_auc", "seconds", "epochs", "best_epoch"):
            mean, std = self.mean_std(key)
            summary[key] = {"mean": np.round(mean, 6).tolist(), "std": np.round(std, 6).tolist()}
        sizes = {k: list(v) if isinstance(v, tuple) else v for k, v in self.sizes.items()}
        return {"model": self.name, "sizes": sizes, "params": self.params_full, "params_paper": self.params_paper,
                "summary": summary, "runs": [r.as_dict() for r in self.runs]}


class _ValidationAUC:
    """The early-stopping score: task 1's validation AUC. One forward pass per epoch also records every task's AUC
    (for the history) and prints a progress line to stderr."""

    def __init__(self, X_val: np.ndarray, Y_val: np.ndarray, label: str, progress: bool) -> None:
        self.X_val, self.Y_val, self.label, self.progress = X_val, Y_val, label, progress
        self.history: list[np.ndarray] = []
        self.start = time.perf_counter()

    def __call__(self, model: MultiTaskModel) -> float:
        aucs = task_aucs(model, self.X_val, self.Y_val)
        self.history.append(aucs)
        if self.progress:
            best = max(h[0] for h in self.history)
            print(f"  {self.label} epoch {len(self.history):3d}  val AUC " + " ".join(f"{a:.4f}" for a in aucs)
                  + f"  best task-1 {best:.4f}  {time.perf_counter() - self.start:6.1f}s",
                  file=sys.stderr, flush=True)
        return float(aucs[0])


def train_runs(name: str, data: Any, sizes: dict[str, Any], *, runs: int = DEFAULTS["runs"],
               seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
               batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
               patience: int = DEFAULTS["patience"], dtype: Any = DEFAULTS["dtype"],
               progress: bool = False, on_run: Callable[[RunResult], None] | None = None) -> ModelResult:
    """Train ``runs`` independent runs of model ``name`` on ``data`` (a :class:`~mmoe_np.data.CensusIncome` or any
    object with ``X_train, Y_train, X_val, Y_val, X_test, Y_test``), one after the other.

    Run r: init and shuffling seed ``seed + r``; Adam(lr); early stopping on task 1's validation AUC with
    ``patience``, best parameters restored; then the test AUC of every task. ``on_run(result)`` (optional) is called
    after every run.
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
        score = _ValidationAUC(data.X_val, data.Y_val, f"{name} run {r + 1}/{runs}", progress)
        history = fit(model, data.X_train, data.Y_train, optimizer=Adam(model.params, lr=lr), epochs=epochs,
                      batch_size=batch_size, seed=seed + r,
                      early_stopping=EarlyStopping(score=score, mode="max", patience=patience, restore_best=True))
        run = RunResult(seed=seed + r, test_auc=task_aucs(model, data.X_test, data.Y_test),
                        val_auc=score.history[history.best_epoch], best_epoch=int(history.best_epoch),
                        epochs=history.epochs, seconds=history.seconds, val_auc_history=np.array(score.history))
        result.runs.append(run)
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

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "Census-income (Ma et al., KDD 2018, Sec. 6.3): test AUC per task",
                "settings": self.settings, "task_names": list(self.task_names), "wall_seconds": round(self.seconds, 1),
                "load_average": self.load_average, "models": [m.as_dict() for m in self.models]}


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
                   train_rows: Any = None, **size_overrides: Any) -> dict[str, Any]:
    """Check every benchmark argument before anything is loaded or trained; returns them normalised.

    Raises ValueError naming the first bad argument: ``data_dir`` not a folder, ``group`` not 1 or 2, an unknown
    name in ``models``, a non-positive ``runs``/``epochs``/``batch_size``/``patience``/``train_rows``/``lr``, ...
    The sizes are checked as :func:`census_sizes` would, without building any model.
    """
    path = Path(data_dir)
    if not path.is_dir():
        raise ValueError(f"data_dir {str(path)!r} is not a directory; it must hold census-income.data.gz and "
                         "census-income.test.gz (see docs/data-census.md)")
    group, recipe = _group(group), _recipe(recipe)  # the loader's own checks
    settings = {"data_dir": path, "group": group, "models": parse_models(models), "recipe": recipe,
                "runs": V.positive_int("runs", runs), "split_seed": V.int_at_least("split_seed", split_seed, 0),
                "seed": V.int_at_least("seed", seed, 0), "epochs": V.positive_int("epochs", epochs),
                "batch_size": V.positive_int("batch_size", batch_size), "lr": V.positive_float("lr", lr),
                "patience": V.positive_int("patience", patience), "dtype": V.dtype(dtype),
                "train_rows": None if train_rows is None else V.positive_int("train_rows", train_rows)}
    unknown = set(size_overrides) - set(_SIZE_CHECKS)
    if unknown:
        raise ValueError(f"size overrides: unknown {sorted(unknown)}; expected names from {list(_SIZE_CHECKS)}")
    for name, value in size_overrides.items():
        if value is not None:
            _SIZE_CHECKS[name](value)
    return settings


# The size overrides of census_sizes and how each is checked (None means the default).
_SIZE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "n_experts": lambda v: V.positive_int("n_experts", v),
    "expert_units": lambda v: V.units("expert_units", v),
    "tower_units": lambda v: V.units("tower_units", v, allow_empty=True),
    "l2_weight": lambda v: V.positive_float("l2_weight", v, allow_zero=True),
    "bottom_units": lambda v: V.units("bottom_units", v),
    "hidden_units": lambda v: V.units("hidden_units", v),
    "tf_hidden_units": lambda v: V.units("tf_hidden_units", v),
    "tf_ranks": lambda v: _tf_ranks(v),
}


def run_census_benchmark(data_dir: Any, *, group: int = DEFAULTS["group"], models: str | Sequence[str] = "all",
                         runs: int = DEFAULTS["runs"], recipe: str = DEFAULTS["recipe"],
                         split_seed: int = DEFAULTS["split_seed"], seed: int = DEFAULTS["seed"],
                         epochs: int = DEFAULTS["epochs"], batch_size: int = DEFAULTS["batch_size"],
                         lr: float = DEFAULTS["lr"], patience: int = DEFAULTS["patience"],
                         dtype: Any = DEFAULTS["dtype"], train_rows: int | None = None, standardize: bool = False,
                         progress: bool = False,
                         **size_overrides: Any) -> CensusBenchmark:
    """Load Census-income (``group``, ``recipe``, validation/test split ``split_seed``) and train ``runs`` runs of
    every model in ``models``; see :func:`train_runs` for one model and :func:`census_sizes` for the sizes and the
    ``size_overrides`` (``n_experts``, ``expert_units``, ``tower_units``, ``l2_weight``, ``bottom_units``,
    ``hidden_units``, ``tf_hidden_units``, ``tf_ranks``; None means the default). ``train_rows`` keeps only the
    first rows of the training set (for quick checks and tests); ``standardize`` applies
    :func:`standardize_non_binary` (meant for the keras recipe). Every argument is checked first
    (:func:`check_settings`)."""
    from ..data import load_census_income

    start, load_start = time.perf_counter(), load_average()
    s = check_settings(data_dir, group=group, models=models, runs=runs, recipe=recipe, split_seed=split_seed,
                       seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, dtype=dtype,
                       train_rows=train_rows, **size_overrides)
    size_overrides = {k: v for k, v in size_overrides.items() if v is not None}
    data = load_census_income(s["data_dir"], group=s["group"], seed=s["split_seed"], recipe=s["recipe"],
                              dtype=s["dtype"])
    if s["train_rows"] is not None:
        data = dataclasses.replace(data, X_train=data.X_train[:s["train_rows"]], Y_train=data.Y_train[:s["train_rows"]])
    if standardize:
        data = standardize_non_binary(data)
    tasks = ("binary",) * data.Y_train.shape[1]
    sizes = census_sizes(data.n_features, tasks, models=s["models"], **size_overrides)
    settings = {**{k: s[k] for k in ("group", "recipe", "split_seed", "runs", "seed", "epochs", "batch_size", "lr",
                                     "patience")},
                "data_dir": str(s["data_dir"]), "dtype": str(s["dtype"]), "standardize": bool(standardize),
                "optimizer": "Adam",
                "early_stopping": "task 1 validation AUC, best epoch restored",
                "n_train": int(data.X_train.shape[0]), "n_val": int(data.X_val.shape[0]),
                "n_test": int(data.X_test.shape[0]), "n_features": int(data.n_features),
                "size_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in size_overrides.items()}}
    results = []
    total = len(s["models"]) * s["runs"]
    overall = Progress(total, total, label="census", interval=0.0, unit="runs") if progress else None
    for name in s["models"]:
        if progress:
            print(f"== {name} {sizes[name]}", file=sys.stderr, flush=True)
        results.append(train_runs(name, data, sizes[name], runs=s["runs"], seed=s["seed"], epochs=s["epochs"],
                                  batch_size=s["batch_size"], lr=s["lr"], patience=s["patience"], dtype=s["dtype"],
                                  progress=progress,
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
    path = Path(path)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS)
        for m in result.models:
            (tm, ts), (vm, vs) = m.mean_std("test_auc"), m.mean_std("val_auc")
            epochs, best, (secs, secs_std) = m.mean_std("epochs")[0], m.mean_std("best_epoch")[0], m.mean_std("seconds")
            out.writerow([m.name, len(m.runs), m.params_full, m.params_paper,
                          *(f"{x:.6f}" for x in (tm[0], ts[0], tm[1], ts[1], vm[0], vs[0], vm[1], vs[1])),
                          f"{epochs:.2f}", f"{best + 1:.2f}", f"{secs:.2f}", f"{secs_std:.2f}"])
    return path


def write_census_json(result: CensusBenchmark, path: str | Path) -> Path:
    """JSON of :meth:`CensusBenchmark.as_dict`: settings, wall time, load average, and every run of every model."""
    path = Path(path)
    path.write_text(json.dumps(result.as_dict(), indent=1) + "\n")
    return path


def plot_gate_distributions(model: MultiTaskModel, X: np.ndarray, path: str | Path,
                            task_names: Sequence[str] = (), title: str = "") -> Path:
    """PNG: for each task, the distribution over the samples of X of its gate weight on every expert.

    One panel per task (one for OMoE, whose single gate is shared by all tasks); per expert a box from the 25th to
    the 75th percentile, whiskers at the 5th and 95th, the median as a line and the mean as a dot.
    """
    from matplotlib.figure import Figure  # lazy: plotting is optional; Figure needs no pyplot or backend state

    if not hasattr(model, "gate_weights"):
        raise ValueError(f"model must have gates (OMoE or MMoE); got {type(model).__name__}")
    g = model.gate_weights(X)  # (N, K, E)
    n_panels = model.n_gates
    names = list(task_names) or [f"task {k + 1}" for k in range(model.n_tasks)]
    fig = Figure(figsize=(1.2 + 0.55 * model.n_experts * n_panels, 3.6), dpi=120)
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    experts = np.arange(1, model.n_experts + 1)
    for k, ax in enumerate(axes):
        weights = g[:, k, :]
        ax.boxplot([weights[:, e] for e in range(model.n_experts)], positions=experts, whis=(5, 95),
                   showfliers=False, widths=0.6)
        ax.plot(experts, weights.mean(axis=0), "o", ms=4, c="C3", label="mean")
        ax.axhline(1 / model.n_experts, ls=":", c="0.5", lw=1, label="uniform 1/E")
        ax.set_title("shared gate (every task)" if n_panels == 1 else f"gate of {names[k]}", fontsize=9)
        ax.set_xlabel("expert")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("gate weight on the test set")
    axes[0].legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


# ----------------------------------------------------------------------------------------------------------------
# The command line: mmoe-np census
# ----------------------------------------------------------------------------------------------------------------
def _units_or_auto(text: str) -> tuple[int, ...] | None:
    """``--*-units`` values: "auto" -> None, "" -> () (no hidden layer), "32,16" -> (32, 16)."""
    if text.strip().lower() == "auto":
        return None
    if not text.strip():
        return ()
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or widths separated by commas such as 16 or 32,16; "
                                         f"got {text!r}") from None


def _units(text: str) -> tuple[int, ...]:
    units = _units_or_auto(text)
    if units is None:
        raise argparse.ArgumentTypeError("expected widths separated by commas such as 16 or 32,16; got 'auto'")
    return units


def register(subparsers: Any) -> None:
    """Add ``census`` to the ``mmoe-np`` subcommands."""
    default_dir = DEFAULT_DATA_DIR if DEFAULT_DATA_DIR.is_dir() else None
    p = subparsers.add_parser(
        "census", help="Census-income benchmark: seven models, test AUC per task over several runs",
        description="Train Single-Task, Shared-Bottom, L2-Constrained, Cross-Stitch, Tensor-Factorization, OMoE and "
                    "MMoE on UCI Census-income (Ma et al., KDD 2018, Sec. 6.3), with early stopping on task 1's "
                    "validation AUC; print and write a table of test AUC per task (mean ± std over the runs), and "
                    "plot the gates of OMoE and MMoE. See docs/results-census.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=default_dir, required=default_dir is None,
                   help="folder with census-income.data.gz and census-income.test.gz")
    p.add_argument("--group", type=int, default=DEFAULTS["group"],
                   help="task group: 1 = income>50K + never married, 2 = education>=college + never married")
    p.add_argument("--models", default="all", help="'all' or a comma list, e.g. mmoe,shared-bottom")
    p.add_argument("--runs", type=int, default=DEFAULTS["runs"], help="independent runs per model")
    p.add_argument("--recipe", choices=tuple(_RECIPES), default=DEFAULTS["recipe"], help="feature recipe")
    p.add_argument("--standardize", action="store_true",
                   help="standardise every non-binary column with training mean/std (for --recipe keras)")
    p.add_argument("--split-seed", type=int, default=DEFAULTS["split_seed"], help="seed of the val/test split")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="run r uses seed + r (init and shuffling)")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="maximum epochs per run")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="minibatch size")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="Adam learning rate")
    p.add_argument("--patience", type=int, default=DEFAULTS["patience"],
                   help="stop after this many epochs without a better task-1 validation AUC")
    p.add_argument("--dtype", choices=("float32", "float64"), default=DEFAULTS["dtype"],
                   help="dtype of the data and the parameters")
    p.add_argument("--train-rows", type=int, default=None, help="use only the first N training rows (quick checks)")
    p.add_argument("--out", default="results/census", help="output folder for the table, CSV, JSON and PNGs")
    p.add_argument("--no-plot", action="store_true", help="skip the gate plots")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sizes = p.add_argument_group("sizes", "MMoE's size; the other models are parameter-matched unless overridden")
    sizes.add_argument("--experts", type=int, default=DEFAULTS["n_experts"], help="experts of OMoE and MMoE")
    widths = ",".join
    sizes.add_argument("--expert-units", type=_units, default=widths(map(str, DEFAULTS["expert_units"])),
                       help="layer widths of every expert, e.g. 16 or 32,16")
    sizes.add_argument("--tower-units", type=_units, default=widths(map(str, DEFAULTS["tower_units"])),
                       help="hidden layer widths of every model's towers")
    sizes.add_argument("--bottom-units", type=_units_or_auto, default="auto",
                       help="Shared-Bottom widths ('auto': parameter-matched)")
    sizes.add_argument("--hidden-units", type=_units_or_auto, default="auto",
                       help="per-task widths of Single-Task, L2-Constrained, Cross-Stitch ('auto': matched)")
    sizes.add_argument("--tf-hidden-units", type=_units_or_auto, default="auto",
                       help="Tensor-Factorization per-task widths ('auto': matched)")
    sizes.add_argument("--tf-ranks", type=_units_or_auto, default="auto",
                       help="Tensor-Factorization Tucker ranks r1,r2,r3 ('auto': w,w,K)")
    sizes.add_argument("--l2-weight", type=float, default=DEFAULTS["l2_weight"], help="L2-Constrained alpha")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``mmoe-np census``: run the benchmark, print the table, write ``group{G}.md/.csv/.json`` and the gate PNGs
    into ``--out``. Bad arguments print an error naming the argument and return 2."""
    overrides = {"n_experts": args.experts, "expert_units": args.expert_units, "tower_units": args.tower_units,
                 "l2_weight": args.l2_weight, "bottom_units": args.bottom_units, "hidden_units": args.hidden_units,
                 "tf_hidden_units": args.tf_hidden_units, "tf_ranks": args.tf_ranks}
    settings = dict(group=args.group, models=args.models, runs=args.runs, recipe=args.recipe,
                    split_seed=args.split_seed, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, patience=args.patience, dtype=args.dtype, train_rows=args.train_rows, **overrides)
    try:
        check_settings(args.data_dir, **settings)
        out = prepare_out(args.out)
        result = run_census_benchmark(args.data_dir, standardize=args.standardize, progress=not args.quiet,
                                      **settings)
    except (ValueError, OSError) as err:  # also: sizes that cannot be matched, a missing or damaged data file
        print(f"mmoe-np census: error: {err}", file=sys.stderr)
        return 2
    group = result.settings["group"]
    table = format_table(result)
    scaled = ", non-binary columns standardised" if args.standardize else ""
    print(f"Census-income group {group} ({args.recipe} recipe{scaled}), {args.runs} run(s) per model, "
          f"wall time {result.seconds:.0f} s, load average {result.load_average['start']} -> "
          f"{result.load_average['end']}")
    print(table)
    stem = out / f"group{group}"
    (stem.with_suffix(".md")).write_text(table + "\n")
    written = [stem.with_suffix(".md"), write_census_csv(result, stem.with_suffix(".csv")),
               write_census_json(result, stem.with_suffix(".json"))]
    if not args.no_plot:
        for m in result.models:
            if m.name in GATED and m.first_model is not None:
                written.append(plot_gate_distributions(
                    m.first_model, result.X_test, out / f"gates-{m.name.lower()}-group{group}.png",
                    task_names=result.task_names,
                    title=f"{m.name}, Census-income group {group}: gate weights on the test set (run 1)"))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
