"""The diagrams of ``docs/`` (``mmoe-np docs-figures``, :func:`docs_figures`): the MMoE graph, three architectures,
the softmax VJP. matplotlib is imported inside the functions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import ops
from ..common import staged_outputs
from .png import save_png

__all__ = ["DOCS_FIGURES", "SOFTMAX_LOGITS", "SOFTMAX_UPSTREAM", "draw_mmoe_graph", "draw_architectures",
           "draw_softmax_vjp", "docs_figures"]


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

