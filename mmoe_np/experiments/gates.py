"""The gates study (``mmoe-np gates``): how MMoE's gates behave on the synthetic task pairs.

Two questions, over ``runs`` runs at every task correlation p (default 1 and 0.5), each run trained twice in
lock-step on the same data, once with plain gates and once with gate dropout (Zhao et al., RecSys 2019):

* **Polarisation.** How often does a gate collapse onto single experts (most test rows with a largest gate weight
  above 0.95), and does gate dropout prevent it?
* **Divergence.** Do MMoE's two gates mix the experts differently when the tasks are less related, as the paper's
  explanation of MMoE says (Sec. 4.3: the gates learn to use different experts)? Measured by the gate overlap
  ``mean_n sum_e min(g_1, g_2)`` on the test set (1: the same mixture; 0: disjoint experts).

Every comparison is paired over runs (same task pair, data, test set and initialisation) and judged by
:func:`mmoe_np.experiments.stats.verdict`. Training: Adam on ``L = MSE_1 + MSE_2`` with fresh minibatches, every
run's replica of a model in one stacked model; the dropout masks are drawn from one generator per model (seeded from
``seed``), so the whole study is deterministic given its settings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from ..diagnostics import POLARISED, gate_report
from ..models import MMoE, stack_models
from ..optim import Adam
from . import stats
from .common import environment, load_average, staged_outputs, write_csv, write_json
from .lockstep import TASKS, ReplicaStreams
from .synthetic import QUICK, SIZES, make_runs

__all__ = ["CORRELATIONS", "DEFAULTS", "GatesStudy", "gates_study", "output_names"]

CORRELATIONS = (1.0, 0.5)
DEFAULTS = {"runs": 24, "steps": QUICK["steps"], "batch_size": QUICK["batch_size"], "lr": QUICK["lr"],
            "n_test": QUICK["n_test"], "gate_dropout": 0.1}
SETTINGS = ("plain", "dropout")  # the two trainings of every run: gate_dropout 0 and gate_dropout p


def output_names(name: str = "gates") -> tuple[str, ...]:
    """The files :meth:`GatesStudy.write` writes (the figure only with plots)."""
    return f"{name}-runs.csv", f"{name}.json", f"{name}.png"


@dataclass(eq=False)
class GatesStudy:
    """Per run, at the end of training, on its test set. Arrays are indexed [setting, correlation, run, ...] with
    ``settings = ("plain", "dropout")``:

    * ``polarised`` (2, P, N, 2): fraction of test rows whose largest gate weight exceeds 0.95, per task's gate;
    * ``entropy`` (2, P, N, 2): mean gate entropy (nats; log 8 = 2.08 is uniform over the 8 experts);
    * ``overlap`` (2, P, N): the two gates' overlap ``mean_n sum_e min(g_1, g_2)``;
    * ``utilisation`` (2, P, N, 2, E): mean gate weight per task and expert;
    * ``test_mse`` (2, P, N, 2): each task's test MSE; ``diverged`` (2, P, N): a non-finite loss at the end.
    """

    config: dict[str, Any]
    correlations: tuple[float, ...]
    polarised: np.ndarray
    entropy: np.ndarray
    overlap: np.ndarray
    utilisation: np.ndarray
    test_mse: np.ndarray
    diverged: np.ndarray
    seconds: float
    load: Any = None
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return self.overlap.shape[-1]

    def polarised_gates(self, threshold: float = 0.5) -> np.ndarray:
        """(2, P): the share of gates (runs x tasks) that polarised: more than ``threshold`` of their rows above
        0.95."""
        return (self.polarised > threshold).mean(axis=(-2, -1))

    def claims(self) -> list[stats.Verdict]:
        """The study's verdicts, each on paired per-run differences:

        * at each p: gate dropout lowers the share of polarised rows (mean over the two gates);
        * at each p: gate dropout costs test MSE (the sum over the tasks) (the price of the fix, if any);
        * with plain gates and with dropout: the two gates overlap less at the lowest p than at the highest.
        """
        verdicts = []
        for j, p in enumerate(self.correlations):
            pol = self.polarised[:, j].mean(axis=-1)                             # (2, N)
            verdicts.append(stats.verdict(pol[1] - pol[0], "less", claim=f"p = {p:g}: gate dropout lowers the "
                                          "share of polarised rows"))
            mse = self.test_mse[:, j].sum(axis=-1)
            verdicts.append(stats.verdict(mse[1] - mse[0], "greater", claim=f"p = {p:g}: gate dropout raises the "
                                          "test MSE (task 1 + task 2)"))
        if len(self.correlations) > 1:
            hi, lo = int(np.argmax(self.correlations)), int(np.argmin(self.correlations))
            for s, setting in enumerate(SETTINGS):
                verdicts.append(stats.verdict(
                    self.overlap[s, lo] - self.overlap[s, hi], "less",
                    claim=f"{setting} gates: the two gates overlap less at p = {self.correlations[lo]:g} than at "
                          f"p = {self.correlations[hi]:g}"))
        return verdicts

    def summary(self) -> dict[str, Any]:
        """Means over the runs per setting and correlation (with the run std), and the verdicts."""
        rows = []
        for s, setting in enumerate(SETTINGS):
            for j, p in enumerate(self.correlations):
                rows.append({
                    "setting": setting, "gate_dropout": self.config["gate_dropout"] if s else 0.0, "correlation": p,
                    "polarised_rows": float(self.polarised[s, j].mean()),
                    "polarised_gates": float(self.polarised_gates()[s, j]),
                    "entropy": float(self.entropy[s, j].mean()),
                    "overlap": float(self.overlap[s, j].mean()),
                    "overlap_std": float(self.overlap[s, j].std(ddof=1)) if self.n_runs > 1 else 0.0,
                    "test_mse": [float(v) for v in self.test_mse[s, j].mean(axis=0)],
                    "diverged": int(self.diverged[s, j].sum())})
        return {"rows": rows, "claims": [v.as_dict() for v in self.claims()] if self.n_runs > 1 else []}

    def as_dict(self) -> dict[str, Any]:
        """Everything JSON-ready: config, summary, per-run arrays, time, load and environment (the JSON file)."""
        return {"study": "gates", "config": self.config, "correlations": list(self.correlations),
                "settings": list(SETTINGS), "polarised_threshold": POLARISED, "summary": self.summary(),
                "per_run": {"polarised": self.polarised.tolist(), "entropy": self.entropy.tolist(),
                            "overlap": self.overlap.tolist(), "utilisation": self.utilisation.tolist(),
                            "test_mse": self.test_mse.tolist(), "diverged": self.diverged.tolist()},
                "seconds": self.seconds, "load_average": self.load, "environment": self.environment}

    def format(self) -> str:
        """The table of :meth:`summary` and one line per verdict."""
        lines = [f"{'setting':<9} {'p':>4} {'polarised rows':>15} {'polarised gates':>16} {'entropy':>8} "
                 f"{'overlap':>8} {'test MSE 1':>11} {'test MSE 2':>11}"]
        for row in self.summary()["rows"]:
            label = row["setting"] + (f" {row['gate_dropout']:g}" if row["setting"] == "dropout" else "")
            lines.append(f"{label:<9} {row['correlation']:>4g} {row['polarised_rows']:>15.3f} "
                         f"{row['polarised_gates']:>16.3f} {row['entropy']:>8.3f} {row['overlap']:>8.3f} "
                         f"{row['test_mse'][0]:>11.4f} {row['test_mse'][1]:>11.4f}")
        if self.n_runs > 1:
            lines += [v.line() for v in self.claims()]
        if self.diverged.any():
            lines.append(f"diverged runs: {int(self.diverged.sum())}")
        return "\n".join(lines)

    def write(self, out: str | Path, name: str = "gates", plots: bool = True) -> list[Path]:
        """``{name}-runs.csv`` (one row per setting, p, run and task), ``{name}.json`` (:meth:`as_dict`) and, with
        ``plots``, ``{name}.png``; staged, so they land together. Returns the paths."""
        csv_name, json_name, png_name = output_names(name)
        with staged_outputs(out, output_names(name)) as folder:
            rows = [(setting, p, r, k + 1, self.polarised[s, j, r, k], self.entropy[s, j, r, k],
                     self.overlap[s, j, r], self.test_mse[s, j, r, k], int(self.diverged[s, j, r]))
                    for s, setting in enumerate(SETTINGS) for j, p in enumerate(self.correlations)
                    for r in range(self.n_runs) for k in range(2)]
            paths = [write_csv(folder / csv_name, ("setting", "correlation", "run", "task", "polarised_rows",
                                                   "entropy", "overlap", "test_mse", "diverged"), rows),
                     write_json(folder / json_name, self.as_dict(), with_environment=True)]
            if plots:
                from . import figures  # matplotlib is imported only when a figure is drawn
                paths.append(figures.plot_gates_study(self, folder / png_name))
        return [Path(out) / p.name for p in paths]


def gates_study(correlations: Sequence[float] = CORRELATIONS, *, runs: int = DEFAULTS["runs"],
                steps: int = DEFAULTS["steps"], batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                n_test: int = DEFAULTS["n_test"], gate_dropout: float = DEFAULTS["gate_dropout"], seed: int = 0,
                dtype: Any = np.float32, progress: Any = None) -> GatesStudy:
    """Train ``runs`` runs of the synthetic MMoE (8 experts of 16 units, towers of 8) at every correlation, with
    plain gates and with ``gate_dropout``, in lock-step on the same minibatches; then measure every gate on the
    run's test set. ``progress`` (optional) gets ``update(work=1)`` after every step."""
    steps, batch_size, n_test = (V.positive_int(n, v) for n, v in
                                 (("steps", steps), ("batch_size", batch_size), ("n_test", n_test)))
    lr = V.positive_float("lr", lr)
    if not 0 < gate_dropout < 1:
        raise ValueError(f"gate_dropout must be in (0, 1) (the setting compared with plain gates); "
                         f"got {gate_dropout!r}")
    dtype = V.dtype(dtype)
    if len(set(correlations)) != len(correlations):
        raise ValueError(f"correlations must not repeat a value; got {list(correlations)}")
    run_list = make_runs(correlations, runs, seed)                    # run-major: [(p_0, run 0), (p_1, run 0), ...]
    ps = tuple(r.label["correlation"] for r in run_list[:len(run_list) // runs])
    start = time.perf_counter()
    data = ReplicaStreams(run_list, dtype)
    models, optimizers, rngs = [], [], []
    for s, p_drop in enumerate((0.0, gate_dropout)):
        model = stack_models([MMoE(run_list[0].tasks.n_features, TASKS, seed=int(init_seed), dtype=dtype,
                                   gate_dropout=p_drop, **SIZES["mmoe"]) for init_seed in data.init_seeds])
        models.append(model)
        optimizers.append(Adam(model.params, lr=lr))
        rngs.append(np.random.default_rng(np.random.SeedSequence((seed, 15, s))))  # the masks of setting s
    X_test, Y_test = data.test_set(n_test)
    for _ in range(steps):
        X, Y = data.batch(batch_size)  # shared by both settings: a paired comparison
        for model, optimizer, rng in zip(models, optimizers, rngs):
            _, _, grads, _ = model.forward_backward(X, Y, check=False, rng=rng)
            optimizer.step(grads)
        if progress is not None:
            progress.update(work=1)
    shape = (len(ps), runs)                                           # the runs are run-major: reshape (N, P)
    results: dict[str, list[np.ndarray]] = {k: [] for k in ("polarised", "entropy", "overlap", "utilisation",
                                                             "test_mse", "diverged")}
    for model in models:
        with np.errstate(over="ignore", invalid="ignore"):
            report = gate_report(model, X_test)
            _, per_task = model.losses(X_test, Y_test) if np.all(np.isfinite(model.params.flat)) else (None, None)
        mse = per_task if per_task is not None else np.full((len(run_list), 2), np.nan)
        for key, value in (("polarised", report.polarised), ("entropy", report.entropy),
                           ("overlap", report.overlap[:, 0, 1]), ("utilisation", report.utilisation),
                           ("test_mse", mse), ("diverged", ~np.isfinite(mse).all(axis=-1))):
            value = np.asarray(value)
            results[key].append(np.swapaxes(value.reshape(shape[::-1] + value.shape[1:]), 0, 1))
    config = {"runs": runs, "steps": steps, "batch_size": batch_size, "lr": lr, "n_test": n_test,
              "gate_dropout": gate_dropout, "seed": seed, "dtype": dtype.name, "model": "MMoE",
              "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in SIZES["mmoe"].items()}}
    return GatesStudy(config, ps, *(np.stack(results[k]) for k in ("polarised", "entropy", "overlap",
                                                                      "utilisation", "test_mse", "diverged")),
                      seconds=time.perf_counter() - start, load=load_average(), environment=environment())
