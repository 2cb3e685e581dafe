"""The Census-income benchmark (Ma et al., KDD 2018, Sec. 6.3): seven models, test AUC per task over several runs.

Every run of every model is trained the same way (``docs/results-census.md`` gives the reasons and the numbers):

* data: :func:`mmoe_np.data.load_census_income` (training file; the test file split 1:1 into validation and test);
* Adam (lr 1e-3), minibatches of 1024, at most ``epochs`` (10) epochs; no regulariser by default: decoupled
  ``weight_decay`` in Adam, activation ``dropout`` and a cosine learning-rate ``schedule`` are each one setting, the
  same for every model (:func:`fit_run`);
* early stopping on the **main task's (task 1's) validation AUC**: after every epoch the validation AUC of task 1
  is computed; training stops once it has not improved for ``patience`` (2) epochs, and the parameters of the best
  epoch are restored (:class:`mmoe_np.EarlyStopping` with ``mode="max"``, ``restore_best=True``);
* the restored model is scored once on the test set (AUC of each task). Nothing is ever selected on the test set.

Run r (0-based) initialises every model with seed ``seed + r`` and shuffles the training set with the same seed, so
within one run all models see the same minibatch order (a paired comparison).

Sizes: MMoE and OMoE have 8 experts of 16 units and towers of 8 units, as PaddleRec's and torch-rechub's census
configurations; every other model gets the hidden width whose parameter count (the paper's convention,
:func:`mmoe_np.count_params` with ``convention="paper"``) is closest to MMoE's (:func:`census_sizes`, which asks
:func:`mmoe_np.sizing.matched_sizes`). Beyond the paper, CGC and PLE (chosen by name; ``"all"`` is the paper's
seven) keep MMoE's 8 experts of 16 units, split into 4 shared and 2 per task
(:func:`mmoe_np.sizing.progressive_experts`), and MMoE's towers; PLE has two such levels.

A **run** is one training of one model with its own seed; :func:`run_census_benchmark` returns a
:class:`CensusBenchmark` with ``summary()``, ``as_dict()`` and ``write(out)`` as every study's result, and
:meth:`CensusBenchmark.comparisons` the paired comparisons of MMoE with every other model on the main task
(:mod:`mmoe_np.experiments.stats`; run r of every model shares its seed, so the runs pair).

**Tuned models** (``mmoe-np census --config tuned.json``): the configuration written by ``mmoe-np census-tune``
(:mod:`mmoe_np.experiments.census_tune`) gives every model its own sizes, learning rate, batch size, regularisers,
epoch cap, patience and transform of the heavy-tailed columns (:func:`read_tuned_config`; a configuration written
before the regularisers were tuned trains without them); the data is then loaded once per
transform. The run with the best main-task *validation* AUC of every model is kept (``ModelResult.best_model``)
and written as ``model-{model}-group{G}-best.npz``.

Where the pieces live: the models, their sizes and one model's runs (:func:`train_runs`, :func:`fit_run`) in
:mod:`~mmoe_np.experiments.census_runs`; the data sources and the jobs that train the runs (here or on workers) in
:mod:`~mmoe_np.experiments.census_jobs`; the settings, the tuned configuration, the benchmark and its files here.
This module re-exports their names (``from mmoe_np.experiments.census import fit_run`` works).
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from ..data.census import NUMERIC_TRANSFORMS, check_group, check_numeric, check_recipe
from ..diagnostics import gate_report
from ..sizing import check_sizes, count_params
from ..training import Progress
from .._io import write_text
from . import stats
from .census_jobs import (ArraySource, CensusSource, RunJob, clear_loaded, load_source, run_jobs,
                          standardize_non_binary, train_job)
from .census_runs import (BEYOND_PAPER, DEFAULTS, GATED, KNOWN_MODELS, MODELS, REGULARISERS, FittedRun, ModelResult,
                          RunResult, build_model, census_sizes, check_regulariser, check_regularisers, fit_run,
                          parse_models, slug, task_aucs, train_runs)
from .common import load_average, staged_outputs, write_csv, write_json

__all__ = ["MODELS", "BEYOND_PAPER", "KNOWN_MODELS", "GATED", "DEFAULTS", "REGULARISERS", "parse_models",
           "census_sizes", "build_model", "task_aucs", "RunResult", "ModelResult", "CensusBenchmark", "train_runs",
           "standardize_non_binary", "check_settings", "run_census_benchmark", "run_checked", "format_table",
           "format_comparisons", "write_census_csv", "write_census_json", "CSV_COLUMNS", "output_names", "FittedRun",
           "fit_run", "CensusSource", "ArraySource", "load_source", "clear_loaded", "run_jobs", "read_tuned_config",
           "TUNED_FORMAT", "TUNED_KEYS", "slug"]

DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "census-income"


# ----------------------------------------------------------------------------------------------------------------
# The tuned configuration (written by census-tune, read by census --config)
# ----------------------------------------------------------------------------------------------------------------
TUNED_FORMAT = "mmoe-np census-tune 1"
# What the tuned configuration sets for every model (besides its sizes); a configuration without the regularisers
# (written before they were tuned) trains with their defaults (DEFAULTS: none).
TUNED_KEYS = ("lr", "batch_size", "epochs", "patience", "numeric", *REGULARISERS)


def _tuple_sizes(sizes: dict[str, Any]) -> dict[str, Any]:
    """JSON lists back to the tuples the constructors store (``[16] -> (16,)``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in sizes.items()}


def read_tuned_config(path: Any) -> dict[str, Any]:
    """The tuned configuration written by ``mmoe-np census-tune`` (``tuned.json``), checked: ``{"data": {group,
    recipe, split_seed, dtype, n_features}, "models": {name: {"sizes", "lr", "batch_size", "epochs", "patience",
    "numeric", "weight_decay", "dropout", "schedule", ...}}}`` with the names of :data:`KNOWN_MODELS` and every
    model buildable from its sizes; a model without ``weight_decay``, ``dropout`` or ``schedule`` gets its default
    (none, as it was tuned). A ValueError names ``config`` and what is wrong."""
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
                        "numeric": None if entry["numeric"] is None else check_numeric(entry["numeric"]),
                        **{key: check_regulariser(key, entry.get(key, DEFAULTS[key])) for key in REGULARISERS}}
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
            diffs = stats.paired_by_seed(ref_auc, {r.seed: r.test_auc[0] for r in m.runs})  # the runs both trained
            verdicts.append(stats.verdict(diffs, "greater", claim=f"{reference} > {m.name} ({main} test AUC)",
                                          **options))
        return verdicts

    def as_dict(self) -> dict[str, Any]:
        return {"benchmark": "Census-income (Ma et al., KDD 2018, Sec. 6.3): test AUC per task",
                "settings": self.settings, "task_names": list(self.task_names), "wall_seconds": round(self.seconds, 1),
                "load_average": self.load_average, "models": [m.as_dict() for m in self.models],
                "comparisons": [v.as_dict() for v in self.comparisons()]}

    def data_description(self, m: ModelResult) -> dict[str, Any]:
        """How model ``m``'s inputs were made, saved with its models (:func:`mmoe_np.checkpoint_info`): load them
        with ``load_census_income(dir, group=, seed=split_seed, recipe=, numeric=)``, then keep ``train_rows``
        rows and standardise the non-binary columns if ``standardize``."""
        s = self.settings
        return {"dataset": "census-income", "group": s["group"], "recipe": s.get("recipe"),
                "split_seed": s.get("split_seed"), "numeric": m.training.get("numeric"),
                "standardize": s.get("standardize", False), "train_rows": s.get("train_rows"),
                "n_features": s.get("n_features"), "task_names": list(self.task_names)}

    def write(self, out: str | Path, plots: bool = True) -> list[Path]:
        """Write ``group{G}.md`` (the table and the paired comparisons), ``.csv`` and ``.json`` into ``out``, with
        ``plots`` the gate plot ``gates-{model}-group{G}.png`` of run 1 of OMoE and MMoE (the distribution of every
        gate weight, :func:`~mmoe_np.experiments.figures.plot_gate_distributions`) and of CGC and PLE (each task's
        mean weight on the shared experts and its own, :func:`~mmoe_np.experiments.figures.plot_gate_report`;
        PLE's last level), the kept models as
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
                    path = stage / f"gates-{slug(m.name)}-group{group}.png"
                    title = f"{m.name}, Census-income group {group}: gate weights on the test set (run 1)"
                    if m.name in ("OMoE", "MMoE"):  # every gate over the same experts: their distributions
                        files.append(figures.plot_gate_distributions(m.first_model, X, path,
                                                                     task_names=self.task_names, title=title))
                    else:  # CGC, PLE: each task's gate over the shared experts and its own (PLE: the last level)
                        files.append(figures.plot_gate_report(gate_report(m.first_model, X), path,
                                                              task_names=self.task_names, title=title))
            for m in self.models:
                data = self.data_description(m)  # how to encode the inputs each saved model expects
                files += [model.save(stage / f"model-{slug(m.name)}-group{group}-run{r + 1}.npz", data=data)
                          for r, model in enumerate(m.trained)]
                if m.best_model is not None:
                    files.append(m.best_model.save(stage / f"model-{slug(m.name)}-group{group}-best.npz", data=data))
        return [Path(out) / f.name for f in files]


def output_names(group: int) -> tuple[str, ...]:
    """Every file :meth:`CensusBenchmark.write` can write for task group ``group``."""
    return (f"group{group}.md", f"group{group}.csv", f"group{group}.json",
            *(f"gates-{slug(name)}-group{group}.png" for name in GATED), f"model-*-group{group}-run*.npz",
            f"model-*-group{group}-best.npz")


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
                   patience: Any = DEFAULTS["patience"], weight_decay: Any = DEFAULTS["weight_decay"],
                   dropout: Any = DEFAULTS["dropout"], schedule: Any = DEFAULTS["schedule"],
                   dtype: Any = DEFAULTS["dtype"], train_rows: Any = None, standardize: Any = False,
                   config: Any = None, workers: Any = 0, **size_overrides: Any) -> dict[str, Any]:
    """Check every benchmark argument before anything is loaded or trained; returns them normalised, for
    :func:`run_checked`.

    Raises ValueError naming the first bad argument: ``data_dir`` not a folder, ``group`` not 1 or 2, an unknown
    name in ``models``, a non-positive ``runs``/``epochs``/``batch_size``/``patience``/``train_rows``/``lr``, a
    ``weight_decay``, ``dropout`` or ``schedule`` that :func:`fit_run` would refuse, ...
    The size overrides (None means the default) are checked by :func:`mmoe_np.sizing.check_sizes`, the check
    :func:`census_sizes` makes, without building any model. ``group``, ``recipe`` and ``split_seed`` None mean the
    defaults (1, "paper", 0).

    ``config`` (a ``tuned.json`` of ``mmoe-np census-tune``, :func:`read_tuned_config`) gives every model its own
    sizes, lr, batch size, regularisers, epochs, patience and numeric transform, and the group, recipe and split the
    models were tuned on (a different ``group``, ``recipe`` or ``split_seed`` is refused); ``models`` then chooses
    among the config's models, and ``epochs``, ``batch_size``, ``lr``, ``patience``, the regularisers and the size
    overrides must be left at their defaults. The result's ``plan`` holds every model's training settings.
    """
    path = Path(data_dir)
    if not path.is_dir():
        raise ValueError(f"data_dir {str(path)!r} is not a directory; it must hold census-income.data.gz and "
                         "census-income.test.gz (see docs/data-census.md)")
    if not isinstance(standardize, (bool, np.bool_)):
        raise ValueError(f"standardize must be True or False; got {standardize!r}")
    training = {"epochs": V.positive_int("epochs", epochs), "batch_size": V.positive_int("batch_size", batch_size),
                "lr": V.positive_float("lr", lr), "patience": V.positive_int("patience", patience),
                **check_regularisers(weight_decay, dropout, schedule)}
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
    s["models"] = [name for name in KNOWN_MODELS if name in chosen]
    s["plan"] = {name: {k: tuned["models"][name][k] for k in ("sizes", *TUNED_KEYS)} for name in s["models"]}
    return s


def run_census_benchmark(data_dir: Any, *, group: int | None = None, models: str | Sequence[str] = "all",
                         runs: int = DEFAULTS["runs"], recipe: str | None = None, split_seed: int | None = None,
                         seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
                         batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                         patience: int = DEFAULTS["patience"], weight_decay: float = DEFAULTS["weight_decay"],
                         dropout: float = DEFAULTS["dropout"], schedule: str = DEFAULTS["schedule"],
                         dtype: Any = DEFAULTS["dtype"], train_rows: int | None = None, standardize: bool = False,
                         config: Any = None, workers: int = 0, progress: bool = False, keep_models: bool = False,
                         **size_overrides: Any) -> CensusBenchmark:
    """Load Census-income (``group``, ``recipe``, validation/test split ``split_seed``) and train ``runs`` runs of
    every model in ``models`` (``keep_models``: keep every trained model, see :meth:`CensusBenchmark.write`); see
    :func:`train_runs` for one model and :func:`census_sizes` for the sizes and the
    ``size_overrides`` (``n_experts``, ``expert_units``, ``tower_units``, ``l2_weight``, ``bottom_units``,
    ``hidden_units``, ``tf_hidden_units``, ``tf_ranks``; None means the default); ``weight_decay``, ``dropout``
    and ``schedule`` regularise every model alike (:func:`fit_run`). ``train_rows`` keeps only the
    first rows of the training set (for quick checks and tests); ``standardize`` applies
    :func:`standardize_non_binary` (meant for the keras recipe); ``config`` trains the tuned models of a
    ``tuned.json`` instead; ``workers`` > 0 trains the runs on that many worker processes (one BLAS thread each).
    Every argument is checked first (:func:`check_settings`), then :func:`run_checked` runs."""
    return run_checked(check_settings(data_dir, group=group, models=models, runs=runs, recipe=recipe,
                                      split_seed=split_seed, seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
                                      patience=patience, weight_decay=weight_decay, dropout=dropout,
                                      schedule=schedule, dtype=dtype, train_rows=train_rows, standardize=standardize,
                                      config=config, workers=workers, **size_overrides),
                       progress=progress, keep_models=keep_models)


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
        jobs = [RunJob(source, name, s["plan"][name], s["sizes"], s["seed"], r, s["runs"],
                       progress and not s["workers"], scratch if s["workers"] else None, str(s["dtype"]))
                for name in order for r in range(s["runs"])]
        done = run_jobs(train_job, jobs, s["workers"], progress=overall)
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
            result.add_run(run, model, keep_models=keep_models, keep_best=True)
    for name in GATED:  # the gate plot needs the test inputs in the model's own encoding
        if name in by_name:
            by_name[name].X_gates = load_source(source, s["plan"][name]["numeric"]).X_test
    clear_loaded()
    settings = {**{k: s[k] for k in ("group", "recipe", "split_seed", "runs", "seed", "epochs", "batch_size", "lr",
                                     "patience", *REGULARISERS, "standardize", "train_rows", "config", "workers")},
                "data_dir": str(s["data_dir"]), "dtype": str(s["dtype"]), "optimizer": "Adam",
                "early_stopping": "task 1 validation AUC, best epoch restored", **done[0]["data"],
                "size_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in s["sizes"].items()}}
    if s["config"] is not None:  # the training settings and sizes are each model's own (ModelResult.training, .sizes)
        for key in ("epochs", "batch_size", "lr", "patience", *REGULARISERS, "size_overrides"):
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
    return write_json(path, result.as_dict(), indent=1, with_environment=True)
