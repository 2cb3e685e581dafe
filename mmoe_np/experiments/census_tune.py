"""Tuning every Census-income model the paper's way: a search per model over its own space, scored on the main
task's validation AUC only (Ma et al., KDD 2018, Sec. 6.3, tuned every method with a cap of 2048 hidden units
per layer). ``mmoe-np census-tune`` runs it; ``mmoe-np census --config OUT/tuned.json`` trains the result.

**The search: successive halving** (Jamieson & Talwalkar, 2016; one bracket of Hyperband, Li et al., 2018). For
each model, ``trials`` configurations are drawn at random from its space (:mod:`~mmoe_np.experiments.census_space`:
:data:`TRAINING_SPACE`, with the regularisers weight decay, dropout and the learning-rate schedule, and the model's
own :data:`SPACES`; :func:`sample_config`).
Rung 0 trains every trial for ``min_epochs`` epochs; the best ``1/eta`` of them (by validation AUC) go on to
``eta`` times as many epochs, and so on up to ``max_epochs`` (:func:`rung_budgets`). A trial in rung k is trained
again from scratch with its own seed, so with the constant schedule its first epochs repeat those of rung k-1
exactly; every run stops early once task 1's validation AUC has not improved for ``patience`` epochs and keeps its
best epoch. A constant-rate trial that stopped early (or diverged) in one rung would repeat itself in the next, so
its record is reused, not retrained. A cosine trial anneals over its rung's budget (epochs x batches, as
:func:`mmoe_np.fit` does), so each rung trains it as a complete annealed run of that budget (never reused), and the
last rung's run is the one ``census --config`` repeats.
Cost: with eta = 3 and budgets 1, 3, 9, at most ``trials * (1 + 1 + 1)`` epochs instead of ``9 * trials``.
``--models all`` searches the paper's seven; CGC and PLE are searched when named, over their shared and per-task
experts and the experts' width (a level's S + 2 T experts within the cap) and, for PLE, 2 or 3 levels.

**What is read**: the training and validation rows (:func:`~mmoe_np.experiments.census.fit_run`); the test rows
are never passed on to training or scoring. **Where things are written** (``out``), each file atomically:

* ``search.json``: the settings; a search resumes in the same ``out`` only with the same settings;
* ``trials/{model}-t{trial}-r{rung}.json``: one record per trained (or reused) trial and rung, written by the
  process that trained it as soon as it finished: config, sizes, validation AUC of every task after every epoch,
  best epoch, seconds, seed. A search that is interrupted resumes from these files: the configurations and seeds
  are drawn from ``seed`` alone, so the resumed search runs exactly the trials the uninterrupted one would. A
  search begun before the regularisers were searched (its ``search.json`` lists them in no space) resumes with
  them at their defaults (:data:`~mmoe_np.experiments.census_runs.DEFAULTS`: none), as its records trained;
* ``trials.csv`` / ``trials.json``: every record, rewritten after every rung;
* ``tuned.json``: per model the best trial of the last rung reached, in the format
  :func:`~mmoe_np.experiments.census.read_tuned_config` reads.

The spaces, the draws and the checks of ``fixed`` live in :mod:`~mmoe_np.experiments.census_space` (which tells
how to plug in more options); this module re-exports their names.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import _validation as V
from ..sizing import count_params
from ..training import Progress
from . import census
from .census_space import (FIT_KEYS, REGULARISATION_SPACE, SPACES, TOWER_UNITS, TRAINING_SPACE, UNIT_CAP, Choice,
                           IntLogUniform, LogUniform, ModelSpace, check_fixed, sample_config)
from .common import load_average, write_csv, write_json

__all__ = ["LogUniform", "IntLogUniform", "Choice", "ModelSpace", "REGULARISATION_SPACE", "TRAINING_SPACE",
           "FIT_KEYS", "SPACES", "UNIT_CAP", "TOWER_UNITS", "sample_config", "check_fixed", "rung_budgets",
           "TuneResult", "tune", "TRIAL_COLUMNS", "DEFAULTS"]

DEFAULTS: dict[str, Any] = {"trials": 27, "seed": 0, "min_epochs": 1, "max_epochs": 9, "eta": 3, "patience": 2,
                            "workers": 2}


def rung_budgets(min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The epochs of every rung: ``min_epochs * eta**k`` while below ``max_epochs``, then ``max_epochs``
    (``(1, 9, 3) -> [1, 3, 9]``, ``(2, 10, 3) -> [2, 6, 10]``, ``(5, 5, 3) -> [5]``)."""
    min_epochs, max_epochs = V.positive_int("min_epochs", min_epochs), V.positive_int("max_epochs", max_epochs)
    eta = V.int_at_least("eta", eta, 2)
    if min_epochs > max_epochs:
        raise ValueError(f"min_epochs ({min_epochs}) must not exceed max_epochs ({max_epochs})")
    budgets = []
    budget = min_epochs
    while budget < max_epochs:
        budgets.append(budget)
        budget *= eta
    return budgets + [max_epochs]


# ---------------------------------------------------------------------------------------------------------------
# One trial in one rung (in this process or a worker)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TrialJob:
    source: Any
    name: str
    trial: int
    rung: int
    budget: int
    seed: int
    config: dict[str, Any]
    patience: int
    dtype: str
    path: str


def _record_path(out: Path, name: str, trial: int, rung: int) -> Path:
    return out / "trials" / f"{census.slug(name)}-t{trial:04d}-r{rung}.json"


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _run_trial(job: _TrialJob) -> dict[str, Any]:
    """Train one trial for its rung's budget, write its record (atomically) and return it. Only the training and
    validation rows of the loaded data are read."""
    data = census.load_source(job.source, job.config["numeric"])
    X_train, Y_train, X_val, Y_val = data.X_train, data.Y_train, data.X_val, data.Y_val  # never the test rows
    n_features = X_train.shape[1]
    sizes = SPACES[job.name].sizes(job.config, n_features)
    fitted = census.fit_run(job.name, sizes, X_train, Y_train, X_val, Y_val, seed=job.seed, epochs=job.budget,
                            patience=job.patience, dtype=job.dtype, on_divergence="stop",
                            **{key: job.config[key] for key in FIT_KEYS})
    best = fitted.val_auc
    record = {"model": job.name, "trial": job.trial, "rung": job.rung, "budget": job.budget, "seed": job.seed,
              "config": job.config, "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
              "params": count_params(fitted.model), "n_features": int(n_features),
              "val_auc": _finite_or_none(best[0]), "val_auc_tasks": [_finite_or_none(a) for a in best],
              "best_epoch": fitted.best_epoch + 1, "epochs": fitted.epochs,
              "val_auc_history": np.round(fitted.val_auc_history, 6).tolist(), "stopped": fitted.stopped,
              "seconds": round(fitted.seconds, 3), "reused_from_rung": None}
    write_json(job.path, record)
    return record


def _reused(previous: dict[str, Any], rung: int, budget: int) -> dict[str, Any] | None:
    """The record of rung ``rung`` for a trial whose previous record stopped before its budget (early stopping or
    divergence): training it again with more epochs would repeat the same epochs and stop at the same point. Not
    so under a schedule other than "constant", which spreads over the budget: None, as for a finished record."""
    if previous["epochs"] >= previous["budget"] or previous["config"]["schedule"] != "constant":
        return None
    return {**previous, "rung": rung, "budget": budget, "seconds": 0.0,
            "reused_from_rung": previous["reused_from_rung"] if previous["reused_from_rung"] is not None
            else previous["rung"]}


# ---------------------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """Every trial record (``records``, in (model, rung, trial) order), the best record of every model
    (``best``: the highest validation AUC of the last rung it reached), the settings and the wall time."""
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    seconds: float
    load_average: dict[str, Any] = field(default_factory=dict)
    trained: int = 0  # jobs trained by this call (not resumed or reused)

    def summary(self) -> dict[str, Any]:
        """Per model: the best trial, its validation AUC and config, and the trials and seconds spent."""
        out = {}
        for name, best in self.best.items():
            mine = [r for r in self.records if r["model"] == name]
            out[name] = {"trial": best["trial"], "val_auc": best["val_auc"], "config": best["config"],
                         "sizes": best["sizes"], "jobs": len(mine),
                         "seconds": round(sum(r["seconds"] for r in mine), 1)}
        return out

    def tuned_config(self) -> dict[str, Any]:
        """The ``tuned.json`` document (:func:`~mmoe_np.experiments.census.read_tuned_config`)."""
        data = dict(self.settings["source"])
        models = {}
        for name, best in self.best.items():
            data["n_features"] = best["n_features"]
            models[name] = {"sizes": best["sizes"], **{key: best["config"][key] for key in FIT_KEYS},
                            "epochs": self.settings["max_epochs"], "patience": self.settings["patience"],
                            "numeric": best["config"]["numeric"], "trial": best["trial"], "seed": best["seed"],
                            "val_auc": best["val_auc"], "best_epoch": best["best_epoch"], "config": best["config"]}
        return {"format": census.TUNED_FORMAT, "data": data, "search": {k: v for k, v in self.settings.items()
                                                                        if k != "source"}, "models": models}

    def format_table(self) -> str:
        """A Markdown table: per model the best trial's validation AUC, its configuration, and the search's cost."""
        lines = ["| model | best val AUC (task 1) | trial | best epoch | lr | batch | numeric | weight decay | dropout "
                 "| schedule | sizes | jobs | s |", "|" + " --- |" * 13]
        for name, s in self.summary().items():
            best = self.best[name]
            auc = "n/a" if s["val_auc"] is None else f"{s['val_auc']:.4f}"
            lines.append(f"| {name} | {auc} | {s['trial']} | {best['best_epoch']} of {best['epochs']} "
                         f"| {s['config']['lr']:.2e} | {s['config']['batch_size']} | {s['config']['numeric']} "
                         f"| {s['config']['weight_decay']:.2g} | {s['config']['dropout']} | {s['config']['schedule']} "
                         f"| {json.dumps(s['sizes'])} | {s['jobs']} | {s['seconds']:.0f} |")
        return "\n".join(lines)


TRIAL_COLUMNS = ("model", "trial", "rung", "budget", "seed", "lr", "batch_size", "numeric", "weight_decay", "dropout",
                 "schedule", "model_config", "params", "val_auc", "val_auc_task2", "best_epoch", "epochs", "stopped",
                 "seconds", "reused_from_rung")


def _csv_rows(records: Sequence[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in records:
        c = r["config"]
        own = {k: v for k, v in c.items() if k not in TRAINING_SPACE}
        rows.append([r["model"], r["trial"], r["rung"], r["budget"], r["seed"], f"{c['lr']:.6g}", c["batch_size"],
                     c["numeric"], f"{c['weight_decay']:.6g}", c["dropout"], c["schedule"], json.dumps(own),
                     r["params"], r["val_auc"], r["val_auc_tasks"][-1],
                     r["best_epoch"], r["epochs"], r["stopped"] or "", r["seconds"], r["reused_from_rung"]])
    return rows


def _rank_key(record: dict[str, Any]) -> tuple[float, int]:
    """Best first: the higher validation AUC (a missing one last), then the lower trial index."""
    auc = record["val_auc"]
    return (-auc if auc is not None else math.inf, record["trial"])


def _check_resume(out: Path, settings: dict[str, Any]) -> None:
    """Write ``search.json``, or check that the one in ``out`` has the same settings (``models``, their spaces and
    ``workers`` may differ: every model's search is independent, and a resumed record whose configuration is not
    the one drawn now is refused by :func:`tune`)."""
    path = out / "search.json"
    free = ("models", "workers", "space")
    mine = {k: v for k, v in settings.items() if k not in free}
    if path.is_file():
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k not in free}
        if theirs != json.loads(json.dumps(mine)):
            changed = sorted(k for k in set(mine) | set(theirs) if json.loads(json.dumps(mine.get(k)))
                             != theirs.get(k))
            raise ValueError(f"out {str(out)!r} holds a search with other settings ({', '.join(changed)}); resume it "
                             "with the same settings or use another out")
    write_json(path, settings)


def _predating(out: Path) -> dict[str, Any]:
    """The regularisers a search already in ``out`` predates (its ``search.json`` lists them in no model's space),
    each at the default its records trained with (:data:`~mmoe_np.experiments.census_runs.DEFAULTS`); {} for a new
    search."""
    path = out / "search.json"
    if not path.is_file():
        return {}
    spaces = json.loads(path.read_text())["space"].values()
    return {key: census.DEFAULTS[key] for key in REGULARISATION_SPACE if not any(key in keys for keys in spaces)}


def tune(source: Any, models: str | Sequence[str] = "all", *, trials: int = DEFAULTS["trials"], out: Any,
         seed: int = DEFAULTS["seed"], min_epochs: int = DEFAULTS["min_epochs"],
         max_epochs: int = DEFAULTS["max_epochs"], eta: int = DEFAULTS["eta"], patience: int = DEFAULTS["patience"],
         workers: int = 0, dtype: Any = census.DEFAULTS["dtype"], fixed: dict[str, Any] | None = None,
         progress: bool = False, on_record: Callable[[dict[str, Any]], None] | None = None) -> TuneResult:
    """Successive halving for every model of ``models`` on ``source`` (a
    :class:`~mmoe_np.experiments.census.CensusSource`, or any picklable object with ``load(numeric)`` and
    ``describe()``), writing into ``out`` (see the module's docstring); resumes a search already in ``out``.

    ``trials`` configurations per model (:func:`sample_config` with ``seed``; trial i trains with seed
    ``seed + i``), rungs of :func:`rung_budgets` epochs, early stopping with ``patience``. ``fixed`` pins keys of
    :data:`TRAINING_SPACE` for every trial (e.g. ``{"numeric": "log1p"}``, or ``{"dropout": 0.0}`` to search
    without dropout), after the draw. ``workers`` > 0: the
    trials of a rung are trained on that many spawned processes (one BLAS thread each, each loading the data
    itself); 0: in this process. ``on_record(record)`` is called after every record this call writes (in this
    process; with workers, after the rung). Returns a :class:`TuneResult`; ``tuned.json`` is in ``out``.
    """
    names = census.parse_models(models)
    trials = V.positive_int("trials", trials)
    seed, patience = V.int_at_least("seed", seed, 0), V.positive_int("patience", patience)
    workers = V.int_at_least("workers", workers, 0)
    budgets = rung_budgets(min_epochs, max_epochs, eta)
    dtype = str(V.dtype(dtype))
    fixed = check_fixed(fixed)
    out = Path(out)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    held = _predating(out)  # a search begun before the regularisers were searched resumes without them
    settings = {"format": "mmoe-np census-tune search 1", "source": source.describe(), "models": names,
                "trials": trials, "seed": seed, "min_epochs": min_epochs, "max_epochs": max_epochs, "eta": eta,
                "budgets": budgets, "patience": patience, "dtype": dtype, "workers": workers, "fixed": fixed,
                "space": {name: sorted(key for key in {**TRAINING_SPACE, **SPACES[name].params} if key not in held)
                          for name in names}}
    _check_resume(out, settings)
    start, load_start = time.perf_counter(), load_average()
    configs = {name: [{**sample_config(name, i, seed), **held, **fixed} for i in range(trials)] for name in names}
    alive = {name: list(range(trials)) for name in names}
    records: list[dict[str, Any]] = []
    rung_records_before: dict[tuple[str, int], dict[str, Any]] = {}  # the previous rung's records
    trained = 0
    try:
        for rung, budget in enumerate(budgets):
            rung_records: dict[tuple[str, int], dict[str, Any]] = {}
            jobs = []
            for name in names:
                for trial in alive[name]:
                    path = _record_path(out, name, trial, rung)
                    if path.is_file():  # resumed: trained before the interruption
                        record = json.loads(path.read_text())
                        record["config"] = {**record["config"],  # a record older than the regularisers: defaults
                                            **{k: v for k, v in held.items() if k not in record["config"]}}
                        if record["config"] != configs[name][trial]:
                            raise ValueError(f"out {str(out)!r}: {path.name} holds another configuration than "
                                             f"{name}'s trial {trial} draws now (the search space changed); use "
                                             "another out")
                        rung_records[name, trial] = record
                        continue
                    previous = rung_records_before.get((name, trial))
                    reused = None if previous is None else _reused(previous, rung, budget)
                    if reused is not None:
                        write_json(path, reused)
                        rung_records[name, trial] = reused
                        if on_record is not None:
                            on_record(reused)
                        continue
                    jobs.append(_TrialJob(source, name, trial, rung, budget, seed + trial, configs[name][trial],
                                          patience, dtype, str(path)))
            jobs.sort(key=lambda j: (j.config["numeric"], -j.budget))  # one data load per transform and worker
            bar = (Progress(len(jobs), len(jobs), label=f"census-tune rung {rung + 1}/{len(budgets)} "
                            f"({budget} epochs)", interval=0.0, unit="trials") if progress and jobs else None)
            done = census.run_jobs(_run_trial, jobs, workers, progress=bar, on_done=on_record)
            trained += len(done)
            for record in done:
                rung_records[record["model"], record["trial"]] = record
            ordered = sorted(rung_records.values(), key=lambda r: (names.index(r["model"]), r["trial"]))
            records += ordered
            rung_records_before = dict(rung_records)
            for name in names:
                ranked = sorted((r for r in ordered if r["model"] == name), key=_rank_key)
                alive[name] = sorted(r["trial"] for r in ranked[:max(1, len(ranked) // eta)])
            result = _result(settings, records, names, start, load_start, trained)
            _write_summaries(out, result)
            if progress:
                print(f"rung {rung + 1}/{len(budgets)} ({budget} epochs) done: "
                      + ", ".join(f"{name} {_auc_text(result.best[name])}" for name in names),
                      file=sys.stderr, flush=True)
    finally:
        if not workers:
            census.clear_loaded()  # the data this process loaded for the trials
    return result


def _auc_text(record: dict[str, Any]) -> str:
    return "n/a" if record["val_auc"] is None else f"{record['val_auc']:.4f}"


def _result(settings: dict[str, Any], records: list[dict[str, Any]], names: list[str], start: float,
            load_start: Any, trained: int) -> TuneResult:
    best = {}
    for name in names:
        mine = [r for r in records if r["model"] == name]
        last = max(r["rung"] for r in mine)
        best[name] = min((r for r in mine if r["rung"] == last), key=_rank_key)
    return TuneResult(settings, records, best, time.perf_counter() - start,
                      {"start": load_start, "end": load_average()}, trained)


def _write_summaries(out: Path, result: TuneResult) -> None:
    write_csv(out / "trials.csv", TRIAL_COLUMNS, _csv_rows(result.records))
    write_json(out / "trials.json", {"settings": result.settings, "records": result.records}, indent=1,
               with_environment=True)
    write_json(out / "tuned.json", result.tuned_config())
