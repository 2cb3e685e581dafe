"""The paper's claims (a)-(d) judged on a :class:`~mmoe_np.experiments.synthetic.SyntheticStudy`
(:func:`claims`, paired verdicts of :mod:`~mmoe_np.experiments.stats`), and whether its mean curves have
stopped moving (:func:`convergence`). :mod:`~mmoe_np.experiments.synthetic` re-exports them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _validation as V
from .stats import OUTCOMES, Verdict, verdict
from .synthetic_models import MODEL_LABELS

if TYPE_CHECKING:  # for the type hints only (synthetic imports this module)
    from .synthetic import SyntheticStudy

__all__ = ["CONVERGENCE_WINDOW", "CONVERGENCE_TOLERANCE", "MARGIN", "convergence", "format_convergence", "Claim",
           "claims", "claims_as_dict"]


# ---------------------------------------------------------------------------------------------------------------
# Convergence, and the paper's claims checked on a study
# ---------------------------------------------------------------------------------------------------------------
# A cell (model, p) has converged when the mean over the runs of its task-1 test MSE moves by at most TOLERANCE
# (relative) over the last WINDOW of the steps: (max - min) / min over the evaluations at steps >= (1 - WINDOW) x steps.
CONVERGENCE_WINDOW = 0.2
CONVERGENCE_TOLERANCE = 0.02
# The equivalence margin of every claim, as a fraction of the mean final loss of the comparison's reference cell: a
# difference whose whole interval lies within +-2% of the loss is "no effect", the resolution the convergence
# tolerance leaves (a converged loss is only known to ~2%).
MARGIN = 0.02
# The models each claim names, in the order they are compared
MOE_MODELS = ("omoe", "mmoe")


def convergence(study: SyntheticStudy, window: float = CONVERGENCE_WINDOW,
                tolerance: float = CONVERGENCE_TOLERANCE) -> dict[str, Any]:
    """Per model and correlation, whether the mean task-1 test MSE over the runs has stopped moving.

    The window is the last ``window`` of the steps: the evaluation steps ``>= (1 - window) * steps``. A cell's
    ``change`` is ``(max - min) / min`` of its mean curve over those evaluations; it ``converged`` when ``change <=
    tolerance``. With fewer than two evaluations in the window nothing can be said (``converged`` None; evaluate more
    often). Returns ``{"window": [first step, last step], "evaluations": n, "tolerance", "cells": {model: {"p":
    {"change", "first", "last", "converged"}}}, "all_converged"}`` (None when undecidable)."""
    window, tolerance = V.positive_float("window", window), V.positive_float("tolerance", tolerance)
    if window > 1:
        raise ValueError(f"window must be a fraction of the steps in (0, 1]; got {window!r}")
    steps = np.asarray(study.steps)
    inside = steps >= (1 - window) * steps[-1]
    cells: dict[str, dict[str, Any]] = {}
    for m in study.models:
        mean = study.curve(m)[0][:, inside]  # (P, W)
        cells[m] = {}
        for j, p in enumerate(study.correlations):
            curve = mean[j]
            if curve.size < 2:
                cells[m][f"{p:g}"] = {"change": None, "first": float(curve[0]), "last": float(curve[-1]),
                                      "converged": None}
                continue
            change = float((curve.max() - curve.min()) / curve.min())
            cells[m][f"{p:g}"] = {"change": change, "first": float(curve[0]), "last": float(curve[-1]),
                                  "converged": bool(change <= tolerance)}
    flags = [c["converged"] for per_p in cells.values() for c in per_p.values()]
    return {"window": [int(steps[inside][0]), int(steps[-1])], "evaluations": int(inside.sum()),
            "tolerance": tolerance, "cells": cells, "all_converged": None if None in flags else all(flags)}


def format_convergence(result: dict[str, Any]) -> str:
    """The table of :func:`convergence`: one row per model, per correlation the relative change and yes/no."""
    first, last = result["window"]
    lines = [f"convergence: mean test MSE of task 1 over steps {first}-{last} ({result['evaluations']} evaluations) "
             f"moves by at most {100 * result['tolerance']:g}% (max - min) / min"]
    for m, per_p in result["cells"].items():
        cells = [f"p = {p}: " + ("undecided" if c["change"] is None else
                                 f"{100 * c['change']:.1f}% {'yes' if c['converged'] else 'NO'}")
                 for p, c in per_p.items()]
        lines.append(f"  {MODEL_LABELS[m]:<20} " + "   ".join(cells))
    verdict = {True: "every cell converged", False: "NOT every cell converged: the claims below are for this "
               "budget, not for trained models", None: "too few evaluations in the window to decide"}
    lines.append("  " + verdict[result["all_converged"]])
    return "\n".join(lines)


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims judged on a study: ``key`` ("a".."d"), the claim's ``text``, and the
    :class:`~mmoe_np.experiments.stats.Verdict` of every paired comparison it rests on. ``outcome``: "holds" if
    every comparison holds, "does not hold" if any does not hold, else "inconclusive"; None when the study lacks
    the models or correlations the claim needs (``why``)."""

    key: str
    text: str
    comparisons: tuple[Verdict, ...] = ()
    why: str = ""

    @property
    def outcome(self) -> str | None:
        outcomes = {v.outcome for v in self.comparisons}
        if not outcomes:
            return None
        if outcomes == {"holds"}:
            return "holds"
        return "does not hold" if "does not hold" in outcomes else "inconclusive"

    @property
    def runs(self) -> int | None:
        return self.comparisons[0].interval.n if self.comparisons else None

    def line(self) -> str:
        """``claim (b) ...: inconclusive at 32 runs (2 paired comparisons, below)``."""
        if self.outcome is None:
            return f"claim ({self.key}) {self.text}: not tested ({self.why})"
        word = f"inconclusive at {self.runs} runs" if self.outcome == "inconclusive" else self.outcome
        counts = {o: sum(v.outcome == o for v in self.comparisons) for o in OUTCOMES}
        detail = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
        return f"claim ({self.key}) {self.text}: {word} ({len(self.comparisons)} paired comparisons: {detail})"

    def lines(self, digits: int = 4) -> list[str]:
        """:meth:`line`, then one indented :meth:`Verdict.line` per comparison."""
        return [self.line()] + [f"    {v.line(digits)}" for v in self.comparisons]

    def as_dict(self) -> dict[str, Any]:
        word = None if self.outcome is None else (f"inconclusive at {self.runs} runs"
                                                  if self.outcome == "inconclusive" else self.outcome)
        return {"claim": self.text, "outcome": self.outcome, "verdict": word, "runs": self.runs,
                "comparisons": [v.as_dict() for v in self.comparisons], **({"why": self.why} if self.why else {})}


def claims(study: SyntheticStudy, margin: float = MARGIN, level: float = 0.95) -> dict[str, Claim]:
    """The paper's claims (a)-(d) on ``study``: the one function behind every command's verdicts.

    Every comparison is a set of paired per-run differences of the final task-1 test MSE L (run r of every model and
    correlation shares its seeds), judged by :func:`~mmoe_np.experiments.stats.verdict` (a t interval at
    ``level``; equivalence margin ``margin`` x the mean loss of the comparison's reference cell). With p_hi and
    p_lo the highest and lowest correlations of the study:

    (a) every model does worse at lower correlation: per model and per p < p_hi, L(p) - L(p_hi) > 0 (ref. L(p_hi));
    (b) MMoE degrades less from p_hi to p_lo than OMoE and Shared-Bottom: per other model X,
        [L_X(p_lo) - L_X(p_hi)] - [L_MMoE(p_lo) - L_MMoE(p_hi)] > 0 (ref. L_MMoE(p_hi));
    (c) the MoE models beat Shared-Bottom: per MoE model M and per p, L_SB(p) - L_M(p) > 0 (ref. L_M(p));
    (d) Shared-Bottom's final losses spread wider than the MoE models': per MoE model M and per p, the paired
        difference of the runs' absolute deviations from their cell's median, |L_SB - med L_SB| - |L_M - med L_M|
        > 0 (its mean is the difference of the mean absolute deviations; ref. L_M(p)).

    Each comparison depends only on the runs of the cells it names, so two studies that share runs (``synthetic``
    and ``trainability`` with one seed) give the same verdict on every comparison they share.
    """
    ps = list(study.correlations)
    hi, lo = max(ps), min(ps)
    final = {m: {p: study.final(m)[j].astype(np.float64) for j, p in enumerate(ps)} for m in study.models}
    options = {"level": level}

    def judge(label: str, differences: np.ndarray, reference: np.ndarray) -> Verdict:
        return verdict(differences, "greater", claim=label, margin=margin * float(np.mean(reference)), **options)

    def label(m: str) -> str:
        return MODEL_LABELS[m]

    out: dict[str, Claim] = {}
    too_few = study.runs < 2
    few = "needs at least 2 runs"
    lower = [p for p in sorted(ps, reverse=True) if p != hi]
    text = f"every model does worse at lower correlation (p = {', '.join(f'{p:g}' for p in lower)} vs {hi:g})"
    if too_few or not lower:
        out["a"] = Claim("a", "every model does worse at lower correlation", why=few if too_few else
                         "needs two correlations")
    else:
        out["a"] = Claim("a", text, tuple(
            judge(f"{label(m)}: L(p={p:g}) - L(p={hi:g})", final[m][p] - final[m][hi], final[m][hi])
            for m in study.models for p in lower))

    others = [m for m in ("omoe", "shared-bottom") if m in study.models]
    text = f"MMoE degrades less from p = {hi:g} to {lo:g} than OMoE and Shared-Bottom"
    if too_few or hi == lo or "mmoe" not in study.models or not others:
        why = few if too_few else ("needs two correlations" if hi == lo else "needs MMoE and OMoE or Shared-Bottom")
        out["b"] = Claim("b", "MMoE degrades less at lower correlation than OMoE and Shared-Bottom", why=why)
    else:
        degradation = {m: final[m][lo] - final[m][hi] for m in ["mmoe", *others]}
        out["b"] = Claim("b", text, tuple(
            judge(f"degradation of {label(m)} - degradation of MMoE", degradation[m] - degradation["mmoe"],
                  final["mmoe"][hi]) for m in others))

    moes = [m for m in MOE_MODELS if m in study.models]
    usable = not too_few and "shared-bottom" in study.models and moes
    why = few if too_few else "needs Shared-Bottom (113) and OMoE or MMoE"
    sb = final.get("shared-bottom")
    out["c"] = Claim("c", "the MoE models beat Shared-Bottom", tuple(
        judge(f"L(Shared-Bottom) - L({label(m)}) at p={p:g}", sb[p] - final[m][p], final[m][p])
        for m in moes for p in ps) if usable else (), "" if usable else why)

    def deviation(x: np.ndarray) -> np.ndarray:
        return np.abs(x - np.median(x))

    # two runs sit at the same distance |L_1 - L_2| / 2 from their median: the paired deviations would not vary, and
    # a t interval of width 0 would give a verdict from no evidence; three runs are the least that can vary
    spread = usable and study.runs >= 3
    out["d"] = Claim("d", "Shared-Bottom's final losses spread wider than the MoE models'", tuple(
        judge(f"|L - median| of Shared-Bottom - of {label(m)} at p={p:g}", deviation(sb[p]) - deviation(final[m][p]),
              final[m][p]) for m in moes for p in ps) if spread else (),
        "" if spread else (why if not usable else "needs at least 3 runs (two runs are always equally far from "
                           "their median)"))
    return out


def claims_as_dict(study: SyntheticStudy) -> dict[str, Any]:
    """:func:`claims` as JSON-ready dicts (the ``claims`` of :meth:`SyntheticStudy.as_dict`)."""
    return {key: claim.as_dict() for key, claim in claims(study).items()}
