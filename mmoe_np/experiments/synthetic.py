"""The paper's synthetic task-relatedness study (Ma et al., KDD 2018, Secs. 3.3 and 5.1-5.2) and its subcommands.

* Fig. 3 (:func:`shared_bottom_study`): Shared-Bottom (bottom 16, towers 8) at several task correlations p;
  test loss vs training step, averaged over runs. Claim: lower correlation, worse loss.
* Fig. 4 (:func:`model_comparison_study`): Shared-Bottom (bottom 113), OMoE and MMoE (8 experts x 16, towers 8),
  parameter-matched as in the paper, at the same correlations.
* Fig. 5 (:func:`trainability_study`): histograms of the final test loss over the repeated runs at p = 1.0 and 0.5.

Every figure comes from one :func:`synthetic_study`: ``runs`` independent runs per correlation, each with its own task
pair, data stream, test set and initialisation, all trained in lock-step (:mod:`mmoe_np.experiments.lockstep`).
Design (see ``docs/results-synthetic.md``):

* **streamed data**: every step draws a fresh minibatch, as the paper's "repeat until enough data are generated";
  the "loss" is the MSE of task 1 on a fixed test set of the same task pair (the tasks are symmetric, as the paper
  says, so one task is reported; task 2 is recorded too);
* **common random numbers**: run i has one task-pair seed and one data/init seed, shared by every correlation and
  every model. Only p changes the weights ``w2 = c (p u1 + sqrt(1 - p^2) u2)``; ``u1, u2, alpha, beta``, the inputs x,
  the noise and the initial parameters of run i are the same. So "model A vs model B" and "p = 1 vs p = 0.5" are
  paired comparisons, with a paired standard error, while different runs are independent as in the paper.

The models, sizes and profiles are in :mod:`~mmoe_np.experiments.synthetic_models`, the claims and the
convergence check in :mod:`~mmoe_np.experiments.synthetic_claims`; this module re-exports their names.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from ..data.synthetic import SyntheticSpec
from ..models import stack_models, unstack_models
from .common import (environment, load_average, parse_models, run_sem, run_std, staged_outputs, write_csv,
                     write_json)
from .lockstep import Run, train_in_groups
from .synthetic_claims import (CONVERGENCE_TOLERANCE, CONVERGENCE_WINDOW, Claim, MARGIN, MOE_MODELS, claims,
                               claims_as_dict, convergence, format_convergence)
from .synthetic_models import (COMPARISON_MODELS, LONG, MATCHED_BOTTOM_WIDTH, MODELS, MODEL_LABELS, PAPER,
                               PAPER_CORRELATIONS, PROFILES, QUICK, SIZES, TRAINABILITY_CORRELATIONS, model_spec)

__all__ = ["MODELS", "SIZES", "MODEL_LABELS", "COMPARISON_MODELS", "PAPER_CORRELATIONS", "TRAINABILITY_CORRELATIONS",
           "QUICK", "PAPER", "LONG", "PROFILES", "MATCHED_BOTTOM_WIDTH", "model_spec", "make_runs", "output_names",
           "SyntheticStudy", "synthetic_study", "shared_bottom_study", "model_comparison_study",
           "trainability_study", "CONVERGENCE_WINDOW", "CONVERGENCE_TOLERANCE", "MARGIN", "convergence",
           "format_convergence", "Claim", "claims", "claims_as_dict", "format_table", "write_curves_csv",
           "write_final_csv", "write_summary_json"]


def output_names(name: str) -> tuple[str, ...]:
    """Every file :meth:`SyntheticStudy.write` can write under ``name`` (the saved models as a pattern)."""
    return (f"{name}-curves.csv", f"{name}-final.csv", f"{name}.json", f"{name}-curves.png",
            f"{name}-histograms.png", f"{name}-*-p*.npz")


# ---------------------------------------------------------------------------------------------------------------
# The runs and the study
# ---------------------------------------------------------------------------------------------------------------
def make_runs(correlations: Sequence[float], runs: int, seed: int, spec: SyntheticSpec = SyntheticSpec(),
              n_features: int = 100) -> list[Run]:
    """``runs * len(correlations)`` runs, ordered run by run: ``[(p_0, run 0), (p_1, run 0), ..., (p_0, run 1), ...]``.

    Run i draws two integers from ``SeedSequence((seed, i))``: the task-pair seed (``u, alpha, beta`` via
    ``spec.draw``) and the run seed (data stream, test set, init). Both are shared by every p, so the task pairs of
    run i differ only in ``w2``.
    """
    runs, seed = V.positive_int("runs", runs), V.int_at_least("seed", seed, 0)
    ps = [V.correlation(p) for p in correlations]
    if not ps:
        raise ValueError("correlations must contain at least one value")
    out = []
    for i in range(runs):
        task_seed, run_seed = (int(s) for s in np.random.SeedSequence((seed, i)).generate_state(2))
        for p in ps:
            tasks = spec.draw(n_features, p, task_seed)  # same u, alpha, beta for every p: only w2 moves
            out.append(Run(tasks, run_seed, {"correlation": p, "run": i, "task_seed": task_seed}))
    return out


@dataclass(eq=False)
class SyntheticStudy:
    """The results of :func:`synthetic_study`, P = len(correlations), N = runs, T = evaluation points.

    ``test_loss[model]`` (P, N, T, 2) and ``train_loss[model]`` (P, N, T, 2): MSE of each task (see
    :class:`~mmoe_np.experiments.lockstep.ReplicaHistory`); ``diverged[model]`` (P, N): the step at which a run's
    loss or gradient became non-finite (it was then held at its last good parameters), 0 if never; ``steps`` (T,);
    ``seeds`` (N, 2): each run's task-pair and run seed; ``config``: every setting; ``seconds``: wall time;
    ``load``: the (1, 5, 15-minute) load averages at the start and the end, None where the platform has none (how
    busy the machine was); ``trained[model]`` (with ``keep_models``): per correlation, the N trained runs as one
    stacked model (replica i = run i).
    """

    config: dict[str, Any]
    steps: np.ndarray
    test_loss: dict[str, np.ndarray]
    train_loss: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]
    seeds: np.ndarray
    seconds: float
    load: tuple[tuple[float, float, float] | None, tuple[float, float, float] | None] = (None, None)
    extra: dict[str, Any] = field(default_factory=dict)
    trained: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.test_loss)

    @property
    def correlations(self) -> tuple[float, ...]:
        return tuple(self.config["correlations"])

    @property
    def runs(self) -> int:
        return self.seeds.shape[0]

    def final(self, model: str, task: int = 0) -> np.ndarray:
        """Final test MSE of ``task`` (0 = task 1, the reported one): (P, N)."""
        return self.test_loss[model][:, :, -1, task]

    def curve(self, model: str, task: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs of the test MSE of ``task`` and its standard error: two (P, T) arrays."""
        loss = self.test_loss[model][..., task]
        return loss.mean(axis=1), run_sem(loss, axis=1)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per model and correlation, statistics of the final task-1 test MSE over the runs."""
        out = {}
        for model in self.models:
            out[model], final = {}, self.final(model)
            for j, p in enumerate(self.correlations):
                x = final[j]
                q10, q25, q50, q75, q90 = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9])
                out[model][f"{p:g}"] = {"mean": float(x.mean()), "std": float(run_std(x)), "sem": float(run_sem(x)),
                                        "min": float(x.min()), "q10": float(q10), "q25": float(q25),
                                        "median": float(q50), "q75": float(q75), "q90": float(q90),
                                        "max": float(x.max()), "nonfinite": int(np.sum(~np.isfinite(x))),
                                        "diverged": int(np.count_nonzero(self.diverged[model][j]))}
        return out

    def n_diverged(self) -> dict[str, int]:
        """Per model, how many runs (over every correlation) diverged and were held at their last good parameters."""
        return {m: int(np.count_nonzero(self.diverged[m])) for m in self.models}

    def as_dict(self) -> dict[str, Any]:
        """Settings, wall time, machine load, the statistics of the final losses, the diverged runs, the convergence
        check and the claims (a)-(d): the JSON file (:func:`write_summary_json` adds the environment)."""
        load_1min = {key: None if load is None else load[0] for key, load in zip(("start", "end"), self.load)}
        return {"config": self.config, "seconds": self.seconds, "load_average_1min": load_1min,
                "cpu_count": os.cpu_count(), "summary": self.summary(),
                "diverged": {m: {"runs": n, "steps": self.diverged[m].tolist()} for m, n in self.n_diverged().items()},
                "convergence": convergence(self), "claims": claims_as_dict(self), **self.extra}

    def write(self, out: str | Path, name: str = "synthetic", plots: bool = True,
              histograms: bool = True) -> list[Path]:
        """Write ``{name}-curves.csv``, ``{name}-final.csv`` and ``{name}.json`` into ``out`` (created if needed),
        with ``plots`` ``{name}-curves.png`` and (with ``histograms``) ``{name}-histograms.png``, and the kept
        models as ``{name}-{model}-p{p}.npz`` (load with :func:`mmoe_np.load`); all or none
        (:func:`~mmoe_np.experiments.common.staged_outputs`: an earlier run's files of this name that this run
        does not write are removed). Returns the paths."""
        from . import figures  # here, not above: figures imports this module (the model labels)

        with staged_outputs(out, output_names(name)) as stage:
            files = [write_curves_csv(self, stage / f"{name}-curves.csv"),
                     write_final_csv(self, stage / f"{name}-final.csv"),
                     write_summary_json(self, stage / f"{name}.json")]
            if plots:
                files.append(figures.plot_curves(self, stage / f"{name}-curves.png"))
            if plots and histograms:
                files.append(figures.plot_histograms(self, stage / f"{name}-histograms.png"))
            for m, per_correlation in self.trained.items():
                files += [stacked.save(stage / f"{name}-{m}-p{p:g}.npz")
                          for p, stacked in zip(self.correlations, per_correlation)]
        return [Path(out) / f.name for f in files]


def synthetic_study(models: Sequence[str] = COMPARISON_MODELS, correlations: Sequence[float] = PAPER_CORRELATIONS,
                    *, runs: int = QUICK["runs"], steps: int = QUICK["steps"], batch_size: int = QUICK["batch_size"],
                    lr: float | dict[str, float] = QUICK["lr"], schedule: str = QUICK["schedule"],
                    eval_every: int = QUICK["eval_every"], n_test: int = QUICK["n_test"], seed: int = 0,
                    dtype: Any = np.float32, workers: int = 0, group_size: int = 200,
                    spec: SyntheticSpec = SyntheticSpec(), n_features: int = 100,
                    progress: bool = False, label: str = "synthetic", keep_models: bool = False) -> SyntheticStudy:
    """Train ``runs`` independent runs of every model at every correlation; record the test MSE every ``eval_every``
    steps. Adam with ``lr`` (one rate, or one per model) moved by ``schedule`` (``"constant"`` or ``"cosine"``,
    :func:`~mmoe_np.optim.scheduled_lr`), minibatches of ``batch_size`` fresh samples.

    ``models``: names of :data:`MODELS` as :func:`~mmoe_np.experiments.common.parse_models` reads them
    ("mmoe,omoe", ["MMoE", "OMoE"], "all"). ``workers=0`` trains in this process, ``workers=N`` in N spawned
    processes with one BLAS thread each (faster; see :func:`~mmoe_np.experiments.lockstep.train_in_groups`). The
    numbers depend on ``seed`` and the settings, not on ``workers`` or ``group_size`` (each run derives everything
    from its own seeds). ``progress=True`` prints runs done, elapsed and ETA to stderr. ``keep_models=True`` keeps
    the trained models (``SyntheticStudy.trained``; :meth:`SyntheticStudy.write` saves them).
    """
    models = tuple(parse_models(models, MODELS))
    if isinstance(lr, dict):  # one rate per model: named as the models are, each model once
        lr = dict(zip(parse_models(list(lr), MODELS), lr.values()))
        if set(lr) != set(models):
            raise ValueError(f"lr: give one rate for each of the models {list(models)}; got {sorted(lr)}")
    try:
        correlations = tuple(correlations)  # once: a generator would be used up by make_runs
    except TypeError:
        raise ValueError(f"correlations must be a sequence of numbers in [-1, 1]; got {correlations!r}") from None
    all_runs = make_runs(correlations, runs, seed, spec, n_features)
    ps = tuple(float(p) for p in dict.fromkeys(run.label["correlation"] for run in all_runs))
    if len(ps) != len(correlations):
        raise ValueError(f"correlations must not repeat a value; got {list(correlations)}")
    dtype = V.dtype(dtype)
    load_start, started_in = load_average(), environment()  # the code and machine that ran, recorded before it runs
    history = train_in_groups({m: model_spec(m) for m in models}, all_runs, group_size=group_size, workers=workers,
                              progress=progress, label=label, steps=steps, batch_size=batch_size, lr=lr,
                              schedule=schedule, eval_every=eval_every, n_test=n_test, dtype=dtype,
                              keep_models=keep_models)
    P, N = len(ps), runs

    def by_setting(loss: np.ndarray) -> np.ndarray:  # (T, N * P, 2), run-major -> (P, N, T, 2)
        return loss.reshape(loss.shape[0], N, P, 2).transpose(2, 1, 0, 3)

    def runs_by_setting(per_run: np.ndarray) -> np.ndarray:  # (N * P,), run-major -> (P, N)
        return per_run.reshape(N, P).T

    def models_by_setting(stacked: Any) -> list[Any]:  # N * P replicas, run-major -> per p, one stacked model of N
        replicas = unstack_models(stacked)
        return [stack_models(replicas[j::P]) for j in range(P)]

    config = {"models": list(models), "correlations": list(ps), "runs": N, "steps": steps, "batch_size": batch_size,
              "lr": lr if isinstance(lr, dict) else float(lr), "schedule": schedule, "eval_every": eval_every,
              "n_test": n_test, "seed": seed, "dtype": str(dtype), "workers": workers, "group_size": group_size,
              "n_features": n_features, "generator": asdict(spec),
              "optimizer": "Adam(beta1=0.9, beta2=0.999, eps=1e-8)",
              "architectures": {m: {"class": MODELS[m].__name__, **SIZES[m]} for m in models},
              "data": "fresh minibatches every step; test set of n_test points per run",
              "reported_loss": "test MSE of task 1"}
    seeds = np.array([[all_runs[i * P].label["task_seed"], all_runs[i * P].seed] for i in range(N)], dtype=np.int64)
    return SyntheticStudy(config=config, steps=history.steps,
                          test_loss={m: by_setting(history.test_loss[m]) for m in models},
                          train_loss={m: by_setting(history.train_loss[m]) for m in models},
                          diverged={m: runs_by_setting(history.diverged[m]) for m in models}, seeds=seeds,
                          seconds=history.seconds, load=(load_start, load_average()),
                          extra={"environment": started_in},
                          trained={m: models_by_setting(history.models[m]) for m in history.models})


def shared_bottom_study(correlations: Sequence[float] = PAPER_CORRELATIONS, **kwargs: Any) -> SyntheticStudy:
    """Fig. 3: Shared-Bottom with bottom 16 and towers 8 (the paper's Sec. 3.3 sizes) at each correlation."""
    return synthetic_study(("shared-bottom-16",), correlations, label="shared-bottom", **kwargs)


def model_comparison_study(correlations: Sequence[float] = PAPER_CORRELATIONS, **kwargs: Any) -> SyntheticStudy:
    """Fig. 4: Shared-Bottom (113), OMoE and MMoE (8 experts x 16, towers 8) on the same runs."""
    return synthetic_study(COMPARISON_MODELS, correlations, **kwargs)


def trainability_study(correlations: Sequence[float] = TRAINABILITY_CORRELATIONS, **kwargs: Any) -> SyntheticStudy:
    """Fig. 5: the Fig. 4 models at p = 1.0 and 0.5 (by default); plot with :func:`plot_histograms`."""
    return synthetic_study(COMPARISON_MODELS, correlations, label="trainability", **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Table, CSV, JSON, figures
# ---------------------------------------------------------------------------------------------------------------
def format_table(study: SyntheticStudy, digits: int = 4) -> str:
    """Final task-1 test MSE, mean +- std over the runs, one row per model and one column per correlation."""
    head = [f"p = {p:g}" for p in study.correlations]
    rows = []
    for m in study.models:
        x = study.final(m)
        rows.append([MODEL_LABELS[m]] + [f"{mu:.{digits}f} +- {sd:.{digits}f}"
                                         for mu, sd in zip(x.mean(axis=1), run_std(x, axis=1))])
    width0 = max(len("model"), *(len(r[0]) for r in rows))
    widths = [max(len(h), *(len(r[k + 1]) for r in rows)) for k, h in enumerate(head)]
    lines = [f"final test MSE of task 1 after {study.config['steps']} steps "
             f"(mean +- std over {study.runs} runs; noise floor {study.config['generator']['noise_std'] ** 2:g})",
             "  ".join(["model".ljust(width0)] + [h.rjust(w) for h, w in zip(head, widths)])]
    lines += ["  ".join([r[0].ljust(width0)] + [c.rjust(w) for c, w in zip(r[1:], widths)]) for r in rows]
    return "\n".join(lines)


def write_curves_csv(study: SyntheticStudy, path: str | Path) -> Path:
    """One row per (model, correlation, step): mean, std and standard error over runs of the task-1 test MSE,
    the task-2 mean, and the mean training (minibatch) MSE of task 1."""
    def rows():
        for m in study.models:
            test, train = study.test_loss[m], study.train_loss[m]
            for j, p in enumerate(study.correlations):
                for t, step in enumerate(study.steps):
                    x = test[j, :, t, 0]
                    yield [m, f"{p:g}", int(step), f"{x.mean():.6g}", f"{run_std(x):.6g}", f"{run_sem(x):.6g}",
                           f"{test[j, :, t, 1].mean():.6g}", f"{np.mean(train[j, :, t, 0]):.6g}", study.runs]

    return write_csv(path, ["model", "correlation", "step", "mean_test_mse", "std_test_mse", "sem_test_mse",
                            "mean_test_mse_task2", "mean_train_mse", "runs"], rows())


def write_final_csv(study: SyntheticStudy, path: str | Path) -> Path:
    """One row per (model, correlation, run): the run's seeds and its final test MSE of both tasks (Fig. 5's data)."""
    def rows():
        for m in study.models:
            task1, task2 = study.final(m, 0), study.final(m, 1)  # (P, N) each
            for j, p in enumerate(study.correlations):
                for i in range(study.runs):
                    yield [m, f"{p:g}", i, int(study.seeds[i, 0]), int(study.seeds[i, 1]), f"{task1[j, i]:.6g}",
                           f"{task2[j, i]:.6g}"]

    return write_csv(path, ["model", "correlation", "run", "task_seed", "run_seed", "final_test_mse",
                            "final_test_mse_task2"], rows())


def write_summary_json(study: SyntheticStudy, path: str | Path) -> Path:
    """JSON of :meth:`SyntheticStudy.as_dict`, with the machine and software it ran on
    (:func:`~mmoe_np.experiments.common.environment`)."""
    return write_json(path, study.as_dict(), with_environment=True)
