"""Every figure of the studies, as PNG; the only module that imports matplotlib (inside each function, so that
``import mmoe_np`` and the studies never need it).

* :func:`plot_label_correlation`: Fig. 2, label Pearson correlation vs weight cosine (a ``CorrelationStudy``);
* :func:`plot_curves`: Figs. 3 and 4, mean test loss vs training step (a ``SyntheticStudy``);
* :func:`plot_histograms`: Fig. 5, the final test losses of the runs (a ``SyntheticStudy``);
* :func:`plot_gate_distributions`: the census study's gates, per task and expert (an OMoE or MMoE model).

Each draws on a ``matplotlib.figure.Figure`` (no pyplot, no global backend state) and writes it atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import atomic_path
from .synthetic import MODEL_LABELS

__all__ = ["save_png", "plot_label_correlation", "plot_curves", "plot_histograms", "plot_gate_distributions"]

_COLOURS = {"shared-bottom-16": "tab:blue", "shared-bottom": "tab:blue", "omoe": "tab:orange", "mmoe": "tab:green"}


def _figure(**kwargs: Any) -> Any:
    from matplotlib.figure import Figure  # lazy: plotting is optional

    return Figure(dpi=120, **kwargs)


def save_png(fig: Any, path: str | Path) -> Path:
    """Lay out a matplotlib Figure and write it to ``path`` as PNG, atomically; returns the path."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def plot_label_correlation(result: Any, path: str | Path) -> Path:
    """Fig. 2: mean label correlation with +-2 std error bars vs ``p``, and the identity line (linear case)."""
    fig = _figure(figsize=(5.0, 4.2))
    ax = fig.add_subplot()
    lo = min(0.0, float(result.correlations.min()))
    ax.plot([lo, 1.0], [lo, 1.0], ls="--", c="0.6", lw=1, label="identity (linear tasks)")
    ax.errorbar(result.correlations, result.mean, yerr=2 * result.std, fmt="o-", ms=4, capsize=3,
                label=f"mean $\\pm$ 2 std over {result.runs} runs")
    s = result.spec
    ax.set_title(f"{result.n_points} points, c={s.scale:g}, m={s.n_sines}, noise std={s.noise_std:g}", fontsize=9)
    ax.set_xlabel("weight cosine similarity p (task correlation)")
    ax.set_ylabel("label Pearson correlation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return save_png(fig, path)


def plot_curves(study: Any, path: str | Path) -> Path:
    """Figs. 3/4: mean task-1 test MSE over the runs vs training step, with a band of +-2 standard errors.

    One model (Fig. 3): one panel, one line per correlation. Several models (Fig. 4): one panel per correlation,
    one line per model. Log y axis: the losses fall from ~1 to a few hundredths.
    """
    from matplotlib import colormaps

    single = len(study.models) == 1
    panels = 1 if single else len(study.correlations)
    fig = _figure(figsize=(5.2 if single else 3.6 * panels, 4.0))
    axes = fig.subplots(1, panels, sharey=True, squeeze=False)[0]
    cmap = colormaps["viridis"]
    for m in study.models:
        mean, sem = study.curve(m)
        for j, p in enumerate(study.correlations):
            ax = axes[0 if single else j]
            if single:
                colour, name = cmap(j / max(len(study.correlations) - 1, 1)), f"p = {p:g}"
            else:
                colour, name = _COLOURS[m], MODEL_LABELS[m]
            ax.plot(study.steps, mean[j], color=colour, lw=1.5, label=name)
            ax.fill_between(study.steps, mean[j] - 2 * sem[j], mean[j] + 2 * sem[j], color=colour, alpha=0.2, lw=0)
    for j, ax in enumerate(axes):
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(MODEL_LABELS[study.models[0]] if single else f"correlation p = {study.correlations[j]:g}",
                     fontsize=10)
    axes[0].set_ylabel(f"test MSE of task 1 (mean of {study.runs} runs)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"batch {study.config['batch_size']}, Adam lr {study.config['lr']}, band: mean $\\pm$ 2 s.e.",
                 fontsize=8)
    return save_png(fig, path)


def plot_histograms(study: Any, path: str | Path) -> Path:
    """Fig. 5: histograms of the final task-1 test MSE over the runs; one row per correlation, one column per model,
    the same log-spaced bins everywhere so that the panels compare."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

    finals = np.concatenate([study.final(m).ravel() for m in study.models])
    finals = finals[np.isfinite(finals) & (finals > 0)]
    bins = np.geomspace(finals.min(), finals.max(), 31) if finals.size and finals.min() < finals.max() else 30
    rows, cols = len(study.correlations), len(study.models)
    fig = _figure(figsize=(3.3 * cols, 2.4 * rows + 0.4))
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False)
    for j, p in enumerate(study.correlations):
        for k, m in enumerate(study.models):
            ax, x = axes[j, k], study.final(m)[j]
            ax.hist(x[np.isfinite(x)], bins=bins, color=_COLOURS[m], alpha=0.85)
            ax.axvline(np.median(x), color="k", lw=1, ls="--")
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # ticks at 1, 2, 5 x 10^k, labelled
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{MODEL_LABELS[m]}, p = {p:g}", fontsize=9)
            ax.grid(alpha=0.3)
            if k == 0:
                ax.set_ylabel("runs")
            if j == rows - 1:
                ax.set_xlabel("final test MSE of task 1")
    fig.suptitle(f"{study.runs} runs per panel after {study.config['steps']} steps; dashed: median", fontsize=9)
    return save_png(fig, path)


def plot_gate_distributions(model: Any, X: np.ndarray, path: str | Path, task_names: Sequence[str] = (),
                            title: str = "") -> Path:
    """For each task, the distribution over the samples of X of its gate weight on every expert.

    One panel per task (one for OMoE, whose single gate is shared by all tasks); per expert a box from the 25th to
    the 75th percentile, whiskers at the 5th and 95th, the median as a line and the mean as a dot.
    """
    if not hasattr(model, "gate_weights"):
        raise ValueError(f"model must have gates (OMoE or MMoE); got {type(model).__name__}")
    g = model.gate_weights(X)  # (N, K, E)
    n_panels = model.n_gates
    names = list(task_names) or [f"task {k + 1}" for k in range(model.n_tasks)]
    fig = _figure(figsize=(1.2 + 0.55 * model.n_experts * n_panels, 3.6))
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
