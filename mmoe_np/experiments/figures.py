"""Every figure of the package, as PNG; the only module that imports matplotlib (inside each function, so that
``import mmoe_np`` and the studies never need it).

The studies' figures:

* :func:`plot_label_correlation`: Fig. 2, label Pearson correlation vs weight cosine (a ``CorrelationStudy``);
* :func:`plot_curves`: Figs. 3 and 4, mean test loss vs training step (a ``SyntheticStudy``);
* :func:`plot_histograms`: Fig. 5, the final test losses of the runs (a ``SyntheticStudy``);
* :func:`plot_gate_distributions`: the census study's gates, per task and expert (an OMoE or MMoE model).

The diagrams of ``docs/`` (``mmoe-np docs-figures``, :func:`docs_figures`):

* :func:`draw_mmoe_graph`: the MMoE computation graph, 2 experts and 2 tasks, forward values up, gradients down;
* :func:`draw_architectures`: Shared-Bottom, OMoE and MMoE side by side, same conventions;
* :func:`draw_softmax_vjp`: the softmax gate's vector-Jacobian product (VJP) for three experts, with numbers.

Each draws on a ``matplotlib.figure.Figure`` (no pyplot, no global backend state) and writes it atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import ops
from .._io import atomic_path
from .common import run_sem, staged_outputs
from .synthetic import MODEL_LABELS

__all__ = ["save_png", "plot_label_correlation", "plot_curves", "plot_histograms", "plot_gate_distributions",
           "plot_gate_report", "plot_gates_study",
           "DOCS_FIGURES", "SOFTMAX_LOGITS", "SOFTMAX_UPSTREAM", "draw_mmoe_graph", "draw_architectures",
           "draw_softmax_vjp", "docs_figures"]



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


# Fig. 3/4/5 styles: colour-blind-safe dark colours (no pale yellow on white) and a line style per series, so that
# curves stay apart in greyscale and where they overlap
_COLOURS = {"shared-bottom-16": "#1f5fa8", "shared-bottom": "#1f5fa8", "omoe": "#d95f02", "mmoe": "#1b7f5f",
            "cgc": "#8b2c8b", "ple": "#555555"}
_STYLES = {"shared-bottom-16": "-", "shared-bottom": "-", "omoe": "--", "mmoe": "-", "cgc": "-.", "ple": ":"}
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
        ax.axhline(floor, color="0.35", ls=":", lw=1.2, label=f"noise floor {floor:g}")
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
            ax.axvline(floor, color="0.35", lw=1.2, ls=":")
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


# ===============================================================================================================
# The diagrams of docs/
# ===============================================================================================================
DOCS_DPI = 150           # 8 in wide: 1200 px, shown at ~800 px in a README (a 9 pt font stays ~12 px tall)
FORWARD, BACKWARD = "#1f5fa8", "#c0392b"   # values flow up in blue, gradients down in red
DOCS_FIGURES = ("mmoe-graph.png", "three-models.png", "softmax-vjp.png")


def _docs_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # lazy: plotting is optional

    return Figure(figsize=(width, height), dpi=DOCS_DPI)


# ---------------------------------------------------------------------------------------------------------------
# Graph drawing: boxes with a title, a forward line (blue) and a backward line (red); pairs of arrows between them
# ---------------------------------------------------------------------------------------------------------------
def _canvas(fig: Any) -> Any:
    """One axes over the whole figure, with axis units 0..1 in both directions and no frame: a drawing board."""
    ax = fig.add_subplot()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    return ax


def _node(ax: Any, x: float, y: float, w: float, h: float, title: str, forward: str = "", backward: str = "",
          face: str = "#f4f4f4", size: float = 9.0) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y) of size (w, h) in axes units: the title in black, then the forward formula
    in blue and the backward formula in red. Returns the box (x, y, w, h) for the arrows."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.012",
                                fc=face, ec="0.35", lw=1.0))
    lines = [(title, "black", "bold")] + [(t, c, "normal") for t, c in ((forward, FORWARD), (backward, BACKWARD))
                                          if t]
    step = h / (len(lines) + 0.6)
    for i, (text, colour, weight) in enumerate(lines):
        ax.text(x, y + h / 2 - step * (i + 0.8), text, ha="center", va="center", color=colour, fontsize=size,
                fontweight=weight)
    return (x, y, w, h)


def _edge(ax: Any, lower: tuple, upper: tuple, gap: float = 0.045) -> None:
    """A blue arrow from the top of box ``lower`` to the bottom of box ``upper`` (the forward pass) and, ``gap``
    inches to its right, a dashed red arrow back (the backward pass). The ends are spread along the boxes' edges
    towards each other, so that the arrows of one box do not all meet at its centre."""
    from matplotlib.patches import FancyArrowPatch

    (x0, y0, w0, h0), (x1, y1, w1, h1) = lower, upper
    sx = x0 + np.clip(0.5 * (x1 - x0), -0.35 * w0, 0.35 * w0)
    ex = x1 + np.clip(0.5 * (x0 - x1), -0.35 * w1, 0.35 * w1)
    start, end = np.array([sx, y0 + h0 / 2]), np.array([ex, y1 - h1 / 2])
    inches = ax.figure.get_size_inches() * ax.get_position().size      # the axes' size: units -> inches
    along = (end - start) * inches
    steep = abs(along[1]) / np.linalg.norm(along)                      # 1 for a vertical arrow
    shift = np.array([gap / max(steep, 0.3) / inches[0] / 2, 0.0])     # horizontal, so the ends stay on the edges
    for a, b, colour, style in ((start - shift, end - shift, FORWARD, "-"),
                                (end + shift, start + shift, BACKWARD, (0, (3, 2)))):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=10, color=colour, lw=1.2,
                                     linestyle=style, shrinkA=1, shrinkB=1))


def _legend(ax: Any, x: float, y: float, size: float = 9.0) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=FORWARD, lw=1.5, label="forward: values (up)"),
               Line2D([], [], color=BACKWARD, lw=1.5, ls=(0, (3, 2)), label="backward: gradients (down)")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(x, y), fontsize=size, frameon=False)


def draw_mmoe_graph(path: str | Path) -> Path:
    """MMoE with 2 experts and 2 tasks as a computation graph: each node shows its forward formula (blue) and its
    backward formula (red); every edge carries a value up and its gradient down. The notation is that of
    docs/worked-example.md."""
    fig = _docs_figure(8.0, 8.2)
    ax = _canvas(fig)
    ax.text(0.5, 0.985, "MMoE: one sample, 2 experts, 2 tasks", ha="center", va="top", fontsize=12,
            fontweight="bold")
    _legend(ax, 0.0, 0.965)
    ax.text(1.0, 0.01, "read the red lines from the top\ndown: the order in which\nbackpropagation computes them",
            ha="right", va="bottom", fontsize=8.5, color=BACKWARD, linespacing=1.3)
    w, h = 0.235, 0.085
    x = _node(ax, 0.5, 0.06, 0.42, h, "input x", "x: one sample, a row of features",
              r"$dx = dx_{\mathrm{experts}} + dx_{\mathrm{gates}}$", face="#ffffff")
    gates, experts = [], []
    for e, cx in enumerate((0.375, 0.625)):
        experts.append(_node(ax, cx, 0.25, w, h, f"expert {e + 1}", rf"$f_{e + 1} = \mathrm{{relu}}(x W_{e + 1} + "
                             rf"b_{e + 1})$", rf"$df_{e + 1} = g_1[{e + 1}]\,dm_1 + g_2[{e + 1}]\,dm_2$",
                             face="#eaf1fb"))
    for k, cx in enumerate((0.125, 0.875)):
        gates.append(_node(ax, cx, 0.25, w, h, f"gate of task {k + 1}",
                           rf"$g_{k + 1} = \mathrm{{softmax}}(x V_{k + 1} + c_{k + 1})$",
                           rf"$ds_{k + 1} = g_{k + 1} \odot (dg_{k + 1} - \langle dg_{k + 1}, g_{k + 1} \rangle)$",
                           face="#fdf2e3"))
    mixtures = [_node(ax, cx, 0.45, 0.3, h, f"mixture {k + 1}",
                      rf"$m_{k + 1} = g_{k + 1}[1]\,f_1 + g_{k + 1}[2]\,f_2$",
                      rf"$dg_{k + 1}[e] = dm_{k + 1} \cdot f_e$", face="#eef7ee")
                for k, cx in enumerate((0.27, 0.73))]
    towers = [_node(ax, cx, 0.62, 0.3, h, f"tower {k + 1}", rf"$y_{k + 1} = m_{k + 1} \cdot u_{k + 1} + a_{k + 1}$",
                    rf"$dm_{k + 1} = dy_{k + 1}\,u_{k + 1}$") for k, cx in enumerate((0.27, 0.73))]
    losses = [_node(ax, 0.27, 0.78, 0.3, h, "loss 1 (regression)", r"$L_1 = (y_1 - t_1)^2$",
                    r"$dy_1 = 2\,(y_1 - t_1)$"),
              _node(ax, 0.73, 0.78, 0.3, h, "loss 2 (binary)", r"$L_2 = \mathrm{BCE}(\sigma(y_2), t_2)$",
                    r"$dy_2 = \sigma(y_2) - t_2$")]
    total = _node(ax, 0.5, 0.915, 0.3, 0.07, "total loss", r"$L = L_1 + L_2$", r"$dL_1 = dL_2 = 1$",
                  face="#ffffff")
    for node in experts + gates:
        _edge(ax, x, node)
    for k in range(2):
        for node in experts:
            _edge(ax, node, mixtures[k])
        _edge(ax, gates[k], mixtures[k])
        _edge(ax, mixtures[k], towers[k])
        _edge(ax, towers[k], losses[k])
        _edge(ax, losses[k], total)
    return save_png(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# Three architectures side by side
# ---------------------------------------------------------------------------------------------------------------
def draw_architectures(path: str | Path) -> Path:
    """Shared-Bottom, OMoE and MMoE for two tasks, side by side, with the forward (blue) and backward (red) flow
    and, under each, where the tasks' gradients meet."""
    fig = _docs_figure(8.0, 5.4)
    ax = _canvas(fig)
    _legend(ax, 0.0, 1.0, size=8.5)
    panels = (("Shared-Bottom", 0.0, 0.22), ("OMoE (one gate)", 0.22, 0.36), ("MMoE (a gate per task)", 0.58, 0.42))
    notes = ("the bottom receives\nthe sum of both\ntowers' gradients",
             "the one gate receives\nthe sum of both\ntasks' gradients",
             "gate k receives only task k's\ngradient; expert e receives\n"
             r"$\Sigma_k\, g_k[e]\, dm_k$: each task weighs it")
    expert_w, gate_w, margin = 0.078, 0.062, 0.045   # 0.62 in, 0.5 in, 0.36 in of the 8 in width
    for (title, left, width), note in zip(panels, notes):
        cx = left + width / 2

        def at(u: float) -> float:  # a horizontal position inside the panel, u in [0, 1]
            return left + margin + u * (width - 2 * margin)

        ax.text(cx, 0.89, title, ha="center", va="center", fontsize=10, fontweight="bold")
        x = _node(ax, cx, 0.19, 0.1, 0.06, "x", face="#ffffff")
        spread = (0.0, 1.0) if left == 0.0 else (0.2, 0.8)  # Shared-Bottom's panel is the narrowest
        towers = [_node(ax, at(u), 0.63, 0.085, 0.06, f"tower {k + 1}", size=8.5) for k, u in enumerate(spread)]
        losses = [_node(ax, at(u), 0.78, 0.06, 0.06, f"$L_{k + 1}$") for k, u in enumerate(spread)]
        if left == 0.0:
            bottom = _node(ax, cx, 0.41, width - 2 * margin + 0.04, 0.07, "bottom", face="#eaf1fb")
            _edge(ax, x, bottom)
            for tower in towers:
                _edge(ax, bottom, tower)
        else:
            mmoe = left > 0.5
            expert_at, gate_at, mix_at = ((0.33, 0.67), (0.0, 1.0), (0.2, 0.8)) if mmoe else \
                ((0.45, 0.9), (0.0,), (0.5,))
            experts = [_node(ax, at(u), 0.36, expert_w, 0.06, f"expert {e + 1}", face="#eaf1fb", size=8.5)
                       for e, u in enumerate(expert_at)]
            gates = [_node(ax, at(u), 0.36, gate_w, 0.06, f"gate {g + 1}" if mmoe else "gate", face="#fdf2e3",
                           size=8.5) for g, u in enumerate(gate_at)]
            mixtures = [_node(ax, at(u), 0.495, 0.075, 0.05, f"mix {g + 1}" if mmoe else "mix", face="#eef7ee",
                              size=8.5) for g, u in enumerate(mix_at)]
            for node in experts + gates:
                _edge(ax, x, node)
            for g, mixture in enumerate(mixtures):
                for node in experts:
                    _edge(ax, node, mixture)
                _edge(ax, gates[g], mixture)
            for k, tower in enumerate(towers):
                _edge(ax, mixtures[k if mmoe else 0], tower)
        for tower, loss in zip(towers, losses):
            _edge(ax, tower, loss)
        ax.text(cx, 0.015, note, ha="center", va="bottom", fontsize=8.5, color=BACKWARD, linespacing=1.3)
    for _, left, _ in panels[1:]:
        ax.plot([left, left], [0.02, 0.92], color="0.8", lw=0.8)
    return save_png(fig, path)


# ---------------------------------------------------------------------------------------------------------------
# The softmax VJP with numbers
# ---------------------------------------------------------------------------------------------------------------
SOFTMAX_LOGITS = (1.0, 0.0, -1.0)     # the tutorial's example (docs/tutorial.md, section 7)
SOFTMAX_UPSTREAM = (0.2, -0.1, 0.5)


def draw_softmax_vjp(path: str | Path, logits: Sequence[float] = SOFTMAX_LOGITS,
                     upstream: Sequence[float] = SOFTMAX_UPSTREAM) -> Path:
    """The backward pass of a softmax gate over three experts, computed by ``ops.softmax_forward/backward``:
    g = softmax(s); the upstream gradient dg against its average <dg, g>; the VJP ds = g * (dg - <dg, g>);
    and the 3 x 3 Jacobian J = diag(g) - g g^T that the VJP never builds (ds = J^T dg)."""
    s, dg = np.asarray(logits, dtype=float), np.asarray(upstream, dtype=float)
    if s.shape != (3,) or dg.shape != (3,):
        raise ValueError(f"logits and upstream must have 3 entries (one per expert); got {s.shape} and {dg.shape}")
    g, cache = ops.softmax_forward(s)
    ds = ops.softmax_backward(dg, cache)
    mean = float(dg @ g)
    J = np.diag(g) - np.outer(g, g)
    fig = _docs_figure(8.0, 6.4)
    axes = fig.subplots(2, 2)
    experts = np.arange(1, 4)
    names = [f"expert {e}" for e in experts]

    def bars(ax: Any, values: np.ndarray, colour: str, title: str, labels: Sequence[str], room: float = 0.45) -> None:
        ax.bar(experts, values, color=colour, width=0.6)
        ax.axhline(0, color="0.3", lw=0.8)
        span = max(abs(values).max(), 1e-12)
        for e, v, label in zip(experts, values, labels):
            ax.text(e, v + (0.05 if v >= 0 else -0.05) * span, label, ha="center",
                    va="bottom" if v >= 0 else "top", fontsize=9 if "\n" not in label else 8.5, linespacing=1.2)
        below = values.min() < 0
        ax.set_ylim(min(values.min(), 0) - (room * span if below else 0), max(values.max(), 0) + room * span)
        ax.set_xlim(0.4, 3.6)
        ax.set_xticks(experts, names, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(title, fontsize=9.5)
        ax.grid(alpha=0.3, axis="y")

    s_text = ", ".join(f"{v:g}" for v in s)
    bars(axes[0, 0], g, FORWARD, f"1. forward: g = softmax(s),  s = ({s_text})", [f"{v:.4f}" for v in g])
    ax = axes[0, 1]
    bars(ax, dg, "0.6", "2. upstream dg; dashed: its average under g", [f"{v:.4f}" for v in dg])
    ax.axhline(mean, color=BACKWARD, ls="--", lw=1.2)
    ax.text(2, mean + 0.04 * max(abs(dg).max(), 1e-12), f"<dg, g> = {mean:.4f}", color=BACKWARD, ha="center",
            va="bottom", fontsize=9)
    for e, v in zip(experts, dg):  # how much better (or worse) than average each expert's gradient is
        ax.annotate("", xy=(e + 0.38, v), xytext=(e + 0.38, mean),
                    arrowprops=dict(arrowstyle="-|>", color=BACKWARD, lw=1.0, mutation_scale=8, shrinkA=0,
                                    shrinkB=0))
    bars(axes[1, 0], ds, BACKWARD, "3. the VJP: ds = g * (dg - <dg, g>); sums to 0",
         [f"{v:.4f}\n= {p:.4f} × {d - mean:.4f}" for v, p, d in zip(ds, g, dg)], room=0.9)
    ax = axes[1, 1]
    limit = 2 * abs(J).max()  # pale colours: black numbers stay readable on every cell
    ax.imshow(J, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for i in range(3):
        for j in range(3):
            ax.text(j, i, f"{J[i, j]:.4f}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(3), [f"$s_{j}$" for j in experts], fontsize=10)
    ax.set_yticks(range(3), [f"$g_{i}$" for i in experts], fontsize=10)
    ax.set_title("4. the Jacobian J = diag(g) - g gᵀ, never built:\nJᵀ dg gives the same ds", fontsize=9.5)
    return save_png(fig, path)


def docs_figures(out: str | Path) -> list[Path]:
    """Draw every figure of docs/ into the folder ``out`` (created if missing), all or none
    (:func:`~mmoe_np.experiments.common.staged_outputs`); returns the paths written."""
    drawers = (draw_mmoe_graph, draw_architectures, draw_softmax_vjp)
    with staged_outputs(out, DOCS_FIGURES) as stage:
        files = [draw(stage / name) for draw, name in zip(drawers, DOCS_FIGURES)]
    return [Path(out) / f.name for f in files]

