"""The studies' figures (Figs. 2-5, the gates): each draws on a ``matplotlib.figure.Figure`` imported inside the
function, and writes it with :func:`~.png.save_png`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..common import run_sem
from ..synthetic import MODEL_LABELS
from .png import save_png

__all__ = ["plot_label_correlation", "plot_curves", "plot_histograms", "plot_gate_distributions", "plot_gate_report",
           "plot_gates_study"]


def _figure(**kwargs: Any) -> Any:
    from matplotlib.figure import Figure  # lazy: plotting is optional

    return Figure(dpi=120, **kwargs)


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


# Fig. 3/4/5 styles: colour-blind-safe dark colours (no pale yellow on white) and a line style per series, so that
# curves stay apart in greyscale and where they overlap. Grey and dotted belong to the noise floor alone: PLE is
# black, dash-dot-dot, CGC purple, dash-dot.
_COLOURS = {"shared-bottom-16": "#1f5fa8", "shared-bottom": "#1f5fa8", "omoe": "#d95f02", "mmoe": "#1b7f5f",
            "cgc": "#8b2c8b", "ple": "#000000"}
_STYLES = {"shared-bottom-16": "-", "shared-bottom": "-", "omoe": "--", "mmoe": "-", "cgc": "-.",
           "ple": (0, (5, 1.5, 1.2, 1.5, 1.2, 1.5))}
_FLOOR = {"color": "0.55", "ls": ":", "lw": 1.2}  # the noise floor's line, in every figure
_P_COLOURS = ("#1f5fa8", "#d95f02", "#1b7f5f", "#8b2c8b", "#555555", "#b22222")  # Fig. 3: one per correlation
_P_STYLES = ("-", "--", "-.", ":", "-", "--")
_ERRORBAR_POINTS = 6  # evaluation steps per curve that get a +-2 s.e. bar (bars, not bands: bands of close
#                       curves overlap into mud)


def _noise_floor(study: Any) -> float:
    """The lowest test MSE a perfect model reaches: the label noise variance."""
    return float(study.config["generator"]["noise_std"]) ** 2


def _schedule_text(study: Any) -> str:
    lr, schedule = study.config["lr"], study.config.get("schedule", "constant")
    rates = ", ".join(f"{MODEL_LABELS[m]} {r:g}" for m, r in lr.items()) if isinstance(lr, dict) else f"{lr:g}"
    return f"Adam lr {rates}" + ("" if schedule == "constant" else f", {schedule} schedule")


def _with_error_bars(ax: Any, steps: np.ndarray, mean: np.ndarray, sem: np.ndarray, k: int, n_series: int,
                     **style: Any) -> None:
    """A curve, and +-2 s.e. bars at a few evenly spaced evaluations, nudged sideways per series so that the bars
    of curves that lie close together do not hide each other."""
    ax.plot(steps, mean, **style)
    marks = np.unique(np.linspace(1, len(steps) - 1, min(_ERRORBAR_POINTS, len(steps) - 1)).round().astype(int))
    shift = (k - (n_series - 1) / 2) * 0.012 * (steps[-1] - steps[0])
    ax.errorbar(steps[marks] + shift, mean[marks], yerr=2 * sem[marks], fmt="none", ecolor=style["color"],
                elinewidth=1.1, capsize=2.5)


def plot_curves(study: Any, path: str | Path) -> Path:
    """Figs. 3/4: mean task-1 test MSE over the runs vs training step (log scale, bars +-2 standard errors at a few
    steps, the noise floor dotted), and below it the paired difference that the paper's claim is about, with its
    +-2 s.e. bars: one model (Fig. 3) L(p) - L(p_hi) per correlation; several models (Fig. 4, one column per
    correlation) L(model) - L(MMoE) (or minus the last model without MMoE).
    """
    single = len(study.models) == 1
    ps = list(study.correlations)
    columns = 1 if single else len(ps)
    fig = _figure(figsize=(6.0 if single else 3.7 * columns, 6.4))
    axes = fig.subplots(2, columns, sharex=True, squeeze=False, gridspec_kw={"height_ratios": (3, 2)})
    steps, floor = np.asarray(study.steps), _noise_floor(study)
    if single:
        m = study.models[0]
        loss = study.test_loss[m][..., 0]  # (P, N, T)
        hi = int(np.argmax(ps))
        order = sorted(range(len(ps)), key=lambda j: -ps[j])
        for k, j in enumerate(order):
            style = {"color": _P_COLOURS[k % len(_P_COLOURS)], "ls": _P_STYLES[k % len(_P_STYLES)], "lw": 1.6}
            _with_error_bars(axes[0, 0], steps, loss[j].mean(axis=0), run_sem(loss[j], axis=0), k, len(ps),
                             label=f"p = {ps[j]:g}", **style)
            if j != hi:
                diff = loss[j] - loss[hi]  # (N, T), paired run by run
                _with_error_bars(axes[1, 0], steps, diff.mean(axis=0), run_sem(diff, axis=0), k, len(ps),
                                 label=f"p = {ps[j]:g}", **style)
        axes[0, 0].set_title(MODEL_LABELS[m], fontsize=10)
        axes[1, 0].set_ylabel(f"L(p) - L(p = {ps[hi]:g}), paired", fontsize=9)
    else:
        base = "mmoe" if "mmoe" in study.models else study.models[-1]
        for k, m in enumerate(study.models):
            loss = study.test_loss[m][..., 0]
            style = {"color": _COLOURS.get(m, f"C{k}"), "ls": _STYLES.get(m, "-"), "lw": 1.6}
            for j, p in enumerate(ps):
                _with_error_bars(axes[0, j], steps, loss[j].mean(axis=0), run_sem(loss[j], axis=0), k,
                                 len(study.models), label=MODEL_LABELS[m], **style)
                if m != base:
                    diff = loss[j] - study.test_loss[base][j, :, :, 0]
                    _with_error_bars(axes[1, j], steps, diff.mean(axis=0), run_sem(diff, axis=0), k,
                                     len(study.models), label=f"{MODEL_LABELS[m]} - {MODEL_LABELS[base]}", **style)
        for j, p in enumerate(ps):
            axes[0, j].set_title(f"correlation p = {p:g}", fontsize=10)
        axes[1, 0].set_ylabel(f"L(model) - L({MODEL_LABELS[base]}), paired", fontsize=9)
    for ax in axes[0]:
        ax.axhline(floor, **_FLOOR, label=f"noise floor {floor:g}")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    for ax in axes[1]:
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_yscale("symlog", linthresh=1e-3)  # differences from +-1e-3 to +-1 on one axis
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("training step")
    for row in axes:
        for ax in row[1:]:
            ax.sharey(row[0])
            ax.tick_params(labelleft=False)
    axes[0, 0].set_ylabel(f"test MSE of task 1 (mean of {study.runs} runs)", fontsize=9)
    axes[0, 0].legend(fontsize=8, loc="best")
    axes[1, 0].legend(fontsize=7, loc="best")
    fig.suptitle(f"batch {study.config['batch_size']}, {_schedule_text(study)}; bars: mean $\\pm$ 2 s.e. over "
                 f"{study.runs} runs", fontsize=8)
    return save_png(fig, path)


def plot_histograms(study: Any, path: str | Path) -> Path:
    """Fig. 5: histograms of the final task-1 test MSE over the runs; one row per correlation, one column per model,
    the same log-spaced bins and the same count axis everywhere so that the panels compare; dashed: the median,
    dotted: the noise floor."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

    floor = _noise_floor(study)
    finals = np.concatenate([study.final(m).ravel() for m in study.models])
    finals = finals[np.isfinite(finals) & (finals > 0)]
    bins = np.geomspace(finals.min(), finals.max(), 31) if finals.size and finals.min() < finals.max() else 30
    rows, cols = len(study.correlations), len(study.models)
    fig = _figure(figsize=(3.3 * cols, 2.4 * rows + 0.4))
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for j, p in enumerate(study.correlations):
        for k, m in enumerate(study.models):
            ax, x = axes[j, k], study.final(m)[j]
            ax.hist(x[np.isfinite(x)], bins=bins, color=_COLOURS.get(m, f"C{k}"), alpha=0.85)
            ax.axvline(np.median(x), color="k", lw=1, ls="--")
            ax.axvline(floor, **_FLOOR)
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
    if finals.size:
        axes[0, 0].set_xlim(min(floor, finals.min()) / 1.15, finals.max() * 1.15)
    fig.suptitle(f"{study.runs} runs per panel after {study.config['steps']} steps; dashed: median, dotted: noise "
                 f"floor {floor:g}; shared axes", fontsize=9)
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


def plot_gate_report(report: Any, path: str | Path, task_names: Sequence[str] = (), title: str = "") -> Path:
    """A :func:`mmoe_np.gate_report` of one model: per task, its mean gate weight on every expert (bars), with the
    gate's mean entropy and its share of polarised rows in the panel title, and the uniform 1/E as a line."""
    u = np.asarray(report.utilisation)
    if u.ndim != 2:
        raise ValueError(f"report must describe one model (utilisation (K, E)); got shape {u.shape}")
    K, E = u.shape
    names = list(task_names) or [f"task {k + 1}" for k in range(K)]
    fig = _figure(figsize=(1.2 + min(12.0, 0.45 * E * K + 1.0 * K), 3.6))
    axes = fig.subplots(1, K, sharey=True, squeeze=False)[0]
    for k, ax in enumerate(axes):
        ax.bar(np.arange(E), u[k], color="C0", width=0.7)
        ax.axhline(1 / E, ls=":", c="0.5", lw=1, label="uniform 1/E")
        ax.set_xticks(np.arange(E), report.expert_labels, rotation=60 if E > 6 else 0, fontsize=7)
        ax.set_title(f"{names[k]}: entropy {report.entropy[k]:.2f} / {report.max_entropy:.2f}, "
                     f"polarised {100 * report.polarised[k]:.0f}%", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("mean gate weight")
    axes[0].legend(fontsize=7, loc="upper right")
    if report.overlap is not None and K > 1:
        title = (title + "; " if title else "") + f"gate overlap of tasks 1 and 2: {report.overlap[0, 1]:.2f}"
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


def plot_gates_study(study: Any, path: str | Path) -> Path:
    """The gates study: (left) each run's share of polarised test rows (mean of its two gates), plain gates vs gate
    dropout, at every correlation; (right) each run's overlap of the two gates at every correlation, one line per
    run (paired: the same run at each p), plain and dropout side by side."""
    fig = _figure(figsize=(10.0, 4.0))
    left, right = fig.subplots(1, 2)
    ps, labels = study.correlations, ("plain gates", f"gate dropout {study.config['gate_dropout']:g}")
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    for s, label in enumerate(labels):
        for j, p in enumerate(ps):
            x = j + (s - 0.5) * 0.35
            values = study.polarised[s, j].mean(axis=-1)
            left.plot(x + rng.uniform(-0.06, 0.06, values.size), values, "o", ms=3, alpha=0.6, c=f"C{s}",
                      label=label if j == 0 else None)
            left.plot([x - 0.12, x + 0.12], [values.mean()] * 2, c=f"C{s}", lw=2)
    left.set_xticks(range(len(ps)), [f"p = {p:g}" for p in ps])
    left.set_ylabel(f"share of test rows with a gate weight > 0.95")
    top = float(study.polarised.mean(axis=-1).max())
    left.set_ylim(-0.01, min(1.03, max(0.1, 1.15 * top)))  # polarisation is often rare: show the points
    left.set_title("polarisation (dots: runs; bars: mean)", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3, axis="y")
    for s, label in enumerate(labels):
        xs = np.arange(len(ps)) + (s - 0.5) * 0.2
        for r in range(study.overlap.shape[-1]):
            right.plot(xs, study.overlap[s, :, r], c=f"C{s}", alpha=0.25, lw=0.8)
        right.plot(xs, study.overlap[s].mean(axis=-1), "o-", c=f"C{s}", lw=2.5, label=f"{label} (mean)")
    right.set_xticks(range(len(ps)), [f"p = {p:g}" for p in ps])
    right.set_ylabel("overlap of the two gates, mean sum_e min(g1, g2)")
    right.set_ylim(0, 1.02)
    right.set_title("how much the two tasks' gates agree (lines: runs)", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(f"MMoE gates on the synthetic tasks: {study.n_runs} runs per setting, "
                 f"{study.config['steps']} steps", fontsize=10)
    return save_png(fig, path)
