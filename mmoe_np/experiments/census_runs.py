"""The Census-income benchmark's models and one model's runs (:mod:`mmoe_np.experiments.census` runs them all).

The seven models of the paper's comparison (:data:`MODELS`, what ``"all"`` chooses) and two beyond the paper, CGC
and PLE (Tang et al., 2020; :data:`BEYOND_PAPER`, chosen by name: ``--models mmoe cgc ple``); the benchmark's
defaults, the sizes matched to MMoE (:func:`census_sizes`), and how one model is trained the
benchmark's way: :func:`fit_run` (Adam, minibatches, early stopping on task 1's validation AUC with the best epoch
restored; optionally the regularisers of :data:`REGULARISERS`, off by default) and :func:`train_runs` (``runs``
runs of one model, run r with seed ``seed + r``, each scored once on the test set) -> a :class:`ModelResult` of one
:class:`RunResult` per run.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import (CGC, PLE, CrossStitch, L2Constrained, MMoE, MultiTaskModel, OMoE, SharedBottom, SingleTask,
                TensorFactorization)
from .. import _validation as V
from ..metrics import roc_auc
from ..optim import SCHEDULES, Adam
from ..sizing import count_params, matched_sizes
from ..training import EarlyStopping, Progress, fit
from . import common
from .common import run_std

__all__ = ["MODELS", "BEYOND_PAPER", "KNOWN_MODELS", "GATED", "DEFAULTS", "REGULARISERS", "check_regulariser",
           "check_regularisers", "parse_models", "census_sizes", "build_model", "slug", "task_aucs", "RunResult",
           "ModelResult", "FittedRun", "fit_run", "train_runs"]

# The seven models of the paper's comparison, in the order of its tables (what "all" chooses): display name -> class.
MODELS: dict[str, type[MultiTaskModel]] = {
    "Single-Task": SingleTask,
    "Shared-Bottom": SharedBottom,
    "L2-Constrained": L2Constrained,
    "Cross-Stitch": CrossStitch,
    "Tensor-Factorization": TensorFactorization,
    "OMoE": OMoE,
    "MMoE": MMoE,
}
# Beyond the paper (Tang et al., 2020): run when named, listed after the paper's seven.
BEYOND_PAPER: dict[str, type[MultiTaskModel]] = {"CGC": CGC, "PLE": PLE}
# Every name --models accepts, in the order of the tables. New models go at the end: the tuner seeds its draws by
# the position here.
KNOWN_MODELS: dict[str, type[MultiTaskModel]] = {**MODELS, **BEYOND_PAPER}
GATED = ("OMoE", "MMoE", "CGC", "PLE")  # the models with gates, whose gates the benchmark plots

# The documented defaults of the benchmark (``mmoe-np census`` flags of the same names).
DEFAULTS: dict[str, Any] = {
    "group": 1, "recipe": "paper", "split_seed": 0, "runs": 5, "seed": 0,
    "epochs": 10, "batch_size": 1024, "lr": 1e-3, "patience": 2, "dtype": "float32",
    "n_experts": 8, "expert_units": (16,), "tower_units": (8,), "l2_weight": 1e-2,
    "weight_decay": 0.0, "dropout": 0.0, "schedule": "constant",
}
# fit_run's options against overfitting, the same for every model; their DEFAULTS (none) train as before they existed
REGULARISERS = ("weight_decay", "dropout", "schedule")


def check_regulariser(key: str, value: Any, name: str | None = None) -> Any:
    """``value`` of regulariser ``key`` (:data:`REGULARISERS`) checked, for settings checked before any training:
    ``weight_decay`` >= 0 (Adam's decoupled decay), ``dropout`` in [0, 1) (the models' activation dropout),
    ``schedule`` one of :data:`~mmoe_np.optim.SCHEDULES`. A ValueError names ``name`` (default ``key``)."""
    name = key if name is None else name
    if key == "weight_decay":
        return V.positive_float(name, value, allow_zero=True)
    if key == "dropout":
        p = V.positive_float(name, value, allow_zero=True)
        if p >= 1:
            raise ValueError(f"{name} must be in [0, 1) (the probability of dropping a hidden unit); got {value!r}")
        return p
    if key == "schedule":
        if value not in SCHEDULES:
            raise ValueError(f"{name} must be one of {SCHEDULES}; got {value!r}")
        return value
    raise ValueError(f"{name}: unknown regulariser {key!r}; expected one of {REGULARISERS}")


def check_regularisers(weight_decay: Any, dropout: Any, schedule: Any) -> dict[str, Any]:
    """The three regularisers checked (:func:`check_regulariser`), keyed by :data:`REGULARISERS`."""
    return {key: check_regulariser(key, value) for key, value in zip(REGULARISERS, (weight_decay, dropout, schedule))}


def parse_models(models: str | Sequence[str]) -> list[str]:
    """Names of :data:`KNOWN_MODELS` in its order (the paper's tables, then CGC and PLE), from names separated by
    commas or given as a list, matched ignoring case, blanks and hyphens
    (:func:`~mmoe_np.experiments.common.parse_models`): ``"mmoe,shared-bottom"``, ``"MMoE, SharedBottom"`` and
    ``["MMoE", "Shared-Bottom"]`` are the same selection. ``"all"`` chooses the paper's seven (:data:`MODELS`);
    CGC and PLE are added by name (``"all"`` stands alone, so list the nine to run them all)."""
    words = [models] if isinstance(models, str) else list(models)
    if len(words) == 1 and str(words[0]).strip().lower() == "all":
        return list(MODELS)
    chosen = common.parse_models(models, KNOWN_MODELS)
    return [name for name in KNOWN_MODELS if name in chosen]


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
    sizes = matched_sizes(n_features, tasks, [KNOWN_MODELS[name] for name in names], n_experts=n_experts,
                          expert_units=expert_units, tower_units=tower_units, l2_weight=l2_weight, **overrides)
    return {name: sizes[KNOWN_MODELS[name]] for name in names}


def build_model(name: str, n_features: int, sizes: dict[str, Any], *, tasks: Sequence[str] = ("binary", "binary"),
                seed: int = 0, dtype: Any = DEFAULTS["dtype"]) -> MultiTaskModel:
    """Model ``name`` (a display name of :data:`KNOWN_MODELS`) with the keyword arguments ``sizes`` (from
    :func:`census_sizes`)."""
    [name] = parse_models([name])
    return KNOWN_MODELS[name](n_features, tasks, seed=seed, dtype=dtype, **sizes)


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
    settings (``training``: lr, batch size, epochs, patience, regularisers, numeric transform), the model of run 0
    (kept for the gate plot), with ``keep_models`` every run's trained model (``trained``), and with ``keep_best``
    the model of the run with the best task-1 *validation* AUC (``best_model``, run index ``best_run``)."""

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

    def add_run(self, run: RunResult, model: MultiTaskModel, *, keep_models: bool, keep_best: bool) -> None:
        """Append ``run``, keeping ``model`` as asked (every model; the best by task-1 validation AUC)."""
        self.runs.append(run)
        if keep_models:
            self.trained.append(model)
        if keep_best and (self.best_run is None or run.val_auc[0] > self.runs[self.best_run].val_auc[0]):
            self.best_model, self.best_run = model, len(self.runs) - 1


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
            weight_decay: float = DEFAULTS["weight_decay"], dropout: float = DEFAULTS["dropout"],
            schedule: str = DEFAULTS["schedule"], dtype: Any = DEFAULTS["dtype"], label: str = "",
            progress: bool = False, on_divergence: str = "raise") -> FittedRun:
    """Train one model ``name`` with ``sizes`` (constructor keyword arguments) the benchmark's way: initialised
    and shuffled with ``seed``, Adam(lr), minibatches of ``batch_size``, at most ``epochs`` epochs, early stopping
    on task 1's validation AUC with ``patience``, the best epoch's parameters restored. It sees the training and
    validation rows only: the tuner (:mod:`~mmoe_np.experiments.census_tune`) calls it without any test set.
    ``on_divergence="stop"`` ends a run with a non-finite loss instead of raising (see :func:`mmoe_np.fit`).

    The regularisers, open to every model alike: ``weight_decay`` Adam's decoupled decay (AdamW), ``dropout`` the
    model's activation dropout (the constructor's ``dropout=p``), ``schedule`` the learning rate's course over the
    ``epochs * ceil(N / batch_size)`` steps (``fit(schedule=...)``). Their defaults (0, 0, "constant") train bit
    for bit as before they existed."""
    tasks = ("binary",) * Y_train.shape[1]
    model = build_model(name, X_train.shape[1], {**sizes, "dropout": dropout}, tasks=tasks, seed=seed, dtype=dtype)
    score = _ValidationAUC(X_val, Y_val, label, epochs, progress)
    history = fit(model, X_train, Y_train, optimizer=Adam(model.params, lr=lr, weight_decay=weight_decay),
                  epochs=epochs, batch_size=batch_size, seed=seed, on_divergence=on_divergence, schedule=schedule,
                  early_stopping=EarlyStopping(score=score, mode="max", patience=patience, restore_best=True))
    aucs = np.array(score.history, dtype=np.float64).reshape(-1, Y_train.shape[1])
    best = -1 if history.best_epoch is None else int(history.best_epoch)
    return FittedRun(model, aucs, best, history.seconds, history.stopped)


def train_runs(name: str, data: Any, sizes: dict[str, Any], *, runs: int = DEFAULTS["runs"],
               seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
               batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
               patience: int = DEFAULTS["patience"], weight_decay: float = DEFAULTS["weight_decay"],
               dropout: float = DEFAULTS["dropout"], schedule: str = DEFAULTS["schedule"],
               dtype: Any = DEFAULTS["dtype"], progress: bool = False,
               on_run: Callable[[RunResult], None] | None = None, keep_models: bool = False,
               keep_best: bool = False) -> ModelResult:
    """Train ``runs`` independent runs of model ``name`` on ``data`` (a :class:`~mmoe_np.data.CensusIncome` or any
    object with ``X_train, Y_train, X_val, Y_val, X_test, Y_test``), one after the other.

    Run r: init and shuffling seed ``seed + r`` (:func:`fit_run`, with the regularisers ``weight_decay``,
    ``dropout`` and ``schedule``), then the test AUC of every
    task. ``on_run(result)`` (optional) is called after every run; ``keep_models`` keeps every run's trained model
    in ``ModelResult.trained``; ``keep_best`` the one with the best task-1 validation AUC in ``best_model``.
    """
    [name] = parse_models([name])
    runs, epochs = V.positive_int("runs", runs), V.positive_int("epochs", epochs)
    patience, batch_size = V.positive_int("patience", patience), V.positive_int("batch_size", batch_size)
    lr = V.positive_float("lr", lr)
    seed = V.int_at_least("seed", seed, 0)
    regularisers = check_regularisers(weight_decay, dropout, schedule)
    result = None
    for r in range(runs):
        fitted = fit_run(name, sizes, data.X_train, data.Y_train, data.X_val, data.Y_val, seed=seed + r,
                         epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, **regularisers,
                         dtype=dtype, label=f"{name} run {r + 1}/{runs}", progress=progress)
        model = fitted.model
        if result is None:  # run 0's model is kept for the gate plot
            result = ModelResult(name, dict(sizes), count_params(model), count_params(model, convention="paper"),
                                 first_model=model, training={"lr": lr, "batch_size": batch_size, "epochs": epochs,
                                                              "patience": patience, **regularisers})
        run = RunResult(seed=seed + r, test_auc=task_aucs(model, data.X_test, data.Y_test),
                        val_auc=fitted.val_auc, best_epoch=fitted.best_epoch, epochs=fitted.epochs,
                        seconds=fitted.seconds, val_auc_history=fitted.val_auc_history)
        result.add_run(run, model, keep_models=keep_models, keep_best=keep_best)
        if progress:
            print(f"{name} run {r + 1}: test AUC " + " ".join(f"{a:.4f}" for a in run.test_auc)
                  + f" (best epoch {run.best_epoch + 1} of {run.epochs}, {run.seconds:.1f}s)",
                  file=sys.stderr, flush=True)
        if on_run is not None:
            on_run(run)
    return result
