"""The paper's Census-income tables beside ours: which of the paper's orderings of the seven models hold here.

Ma et al. (KDD 2018, Sec. 6.3) tuned every method, trained each tuned method 400 times and published the mean
main-task test AUC, with no interval. Those seven numbers (:data:`PAPER_MAIN_AUC`) order the models: for every pair
(A, B) the paper puts A above B when its AUC is higher. We test each such ordering on our runs, which share their
seeds across models (run r of every model starts from seed + r and sees the same shuffle): the per-run differences
``d_r = AUC_A,r - AUC_B,r`` give a paired 95% interval, and :func:`~mmoe_np.experiments.stats.verdict` says whether
"A > B" **holds** here (the interval is above 0), **does not hold** (below 0), or is **inconclusive** (it contains
0). A pair the paper reports as equal (to its four digits) is a tie: the interval is shown, with "differs here" when
it excludes 0 and "no difference found" when it does not.

The paper's differences are often a few 1e-4 (Cross-Stitch 0.9361 against L2-Constrained 0.9359); whether they were
larger than the noise of its 400 runs is not known, so an ordering that is inconclusive here is not a contradiction.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import stats

__all__ = ["PAPER_MAIN_AUC", "MAIN_TASK", "PaperOrdering", "paper_orderings", "untested_pairs",
           "format_paper_comparison", "read_census_results"]

# Mean main-task test AUC over 400 runs of each tuned method, as published (group 1: income, group 2: education).
PAPER_MAIN_AUC: dict[int, dict[str, float]] = {
    1: {"Single-Task": 0.9337, "Shared-Bottom": 0.9295, "L2-Constrained": 0.9359, "Cross-Stitch": 0.9361,
        "Tensor-Factorization": 0.6765, "OMoE": 0.9319, "MMoE": 0.9359},
    2: {"Single-Task": 0.8792, "Shared-Bottom": 0.8813, "L2-Constrained": 0.8823, "Cross-Stitch": 0.8819,
        "Tensor-Factorization": 0.7256, "OMoE": 0.8813, "MMoE": 0.8826},
}
MAIN_TASK = {1: "income > 50K", 2: "education >= college"}


@dataclass(frozen=True)
class PaperOrdering:
    """One pair of models: ``higher`` has the paper's higher AUC (either, for a tie), ``paper_difference`` =
    paper AUC of ``higher`` - of ``lower`` (>= 0), and our paired ``interval`` of the same difference with the
    ``verdict`` on "higher > lower" (``tie`` pairs: the paper's two AUCs are equal)."""

    higher: str
    lower: str
    paper_difference: float
    verdict: stats.Verdict

    @property
    def tie(self) -> bool:
        return self.paper_difference == 0.0

    @property
    def word(self) -> str:
        """``holds`` / ``does not hold`` / ``inconclusive at n runs``; for a tie ``differs here`` / ``no difference
        found``."""
        if self.tie:
            return "no difference found" if self.verdict.outcome == "inconclusive" else "differs here"
        return self.verdict.word


def read_census_results(path: Any) -> tuple[int, dict[str, dict[int, float]], dict[str, Any]]:
    """The ``group{G}.json`` that ``mmoe-np census`` wrote (plain JSON: nothing is unpickled), checked:
    ``(group, per_run, settings)`` with ``per_run`` model -> {seed: main-task test AUC} (a ValueError names
    ``results`` and says what is wrong)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"results must be a group{{G}}.json written by mmoe-np census; {str(p)!r} is not a file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"results {str(p)!r} is not JSON ({e})") from None
    try:
        settings, group = doc["settings"], doc["settings"]["group"]
        runs = {m["model"]: [(int(r["seed"]), float(r["test_auc"][0])) for r in m["runs"]] for m in doc["models"]}
    except (KeyError, TypeError, IndexError, ValueError):
        raise ValueError(f"results {str(p)!r} is not a census result (it needs settings.group and models[].runs[] "
                         "with seed and test_auc)") from None
    if not isinstance(group, int) or group not in PAPER_MAIN_AUC:
        raise ValueError(f"results {str(p)!r}: group must be 1 or 2; got {group!r}")
    per_run = {}
    for model, pairs in runs.items():
        seeds = [seed for seed, _ in pairs]
        if len(set(seeds)) < len(seeds) or not np.all(np.isfinite([auc for _, auc in pairs])):
            raise ValueError(f"results {str(p)!r}: the runs of {model} must have distinct seeds and finite test "
                             f"AUCs; got {pairs}")
        per_run[model] = dict(pairs)
    return group, per_run, settings


def _pairs(per_run: Mapping[str, Mapping[int, float]], group: int) -> list[tuple[str, str, list[int]]]:
    """Every pair of the paper's models present in ``per_run``, in the paper's order of AUC, with their shared
    seeds."""
    paper = PAPER_MAIN_AUC[group]
    ranked = sorted((m for m in paper if m in per_run), key=lambda m: -paper[m])
    return [(a, b, sorted(set(per_run[a]) & set(per_run[b]))) for a, b in itertools.combinations(ranked, 2)]


def untested_pairs(per_run: Mapping[str, Mapping[int, float]], group: int) -> list[tuple[str, str]]:
    """The pairs of :func:`paper_orderings` that cannot be tested: fewer than 2 runs of both models share a seed."""
    return [(a, b) for a, b, seeds in _pairs(per_run, group) if len(seeds) < 2]


def paper_orderings(per_run: Mapping[str, Mapping[int, float]], group: int, *, level: float = 0.95,
                    method: str = "t") -> list[PaperOrdering]:
    """Every pair of the paper's models present in ``per_run`` (model -> {seed: main-task AUC}), in the paper's
    order of AUC, with the paired ``level`` interval (``method`` "t" or "bootstrap") over the seeds both models ran
    and :func:`~mmoe_np.experiments.stats.verdict` on "higher > lower". Pairs with fewer than 2 shared runs cannot
    be tested (:func:`untested_pairs`)."""
    paper = PAPER_MAIN_AUC[group]
    orderings = []
    for higher, lower, seeds in _pairs(per_run, group):
        if len(seeds) < 2:
            continue
        diffs = stats.paired_by_seed(per_run[higher], per_run[lower])
        claim = f"{higher} > {lower}" if paper[higher] > paper[lower] else f"{higher} = {lower}"
        orderings.append(PaperOrdering(higher, lower, round(paper[higher] - paper[lower], 6),
                                       stats.verdict(diffs, "greater", claim=claim, level=level, method=method)))
    return orderings


def _ranks(values: Mapping[str, float]) -> dict[str, int]:
    """1 = the highest, compared at the four digits shown (the paper's precision); equal values share the better
    rank."""
    shown = {m: round(v, 4) for m, v in values.items()}
    return {m: 1 + sum(v > shown[m] for v in shown.values()) for m in shown}


def format_paper_comparison(group: int, per_run: Mapping[str, Mapping[int, float]], settings: Mapping[str, Any],
                            *, level: float = 0.95) -> str:
    """Markdown: the paper's AUC and rank (among its seven) beside ours (mean ± std over the runs, rank among the
    models run), then every ordering of the paper with our paired interval and verdict, the count of each verdict,
    and the pairs that could not be tested."""
    paper_all = PAPER_MAIN_AUC[group]
    paper = {m: a for m, a in paper_all.items() if m in per_run}
    ours = {m: float(np.mean(list(per_run[m].values()))) for m in paper}
    stds = {m: f"{np.std(list(per_run[m].values()), ddof=1):.4f}" if len(per_run[m]) > 1 else "n/a" for m in paper}
    paper_rank, our_rank = _ranks(paper_all), _ranks(ours)
    n_runs = sorted({len(per_run[m]) for m in paper})
    lines = [f"Census-income group {group}, main task {MAIN_TASK[group]}: the paper (mean of 400 runs) and this run "
             f"({'/'.join(map(str, n_runs))} run(s) per model, recipe {settings.get('recipe', '?')}).", "",
             f"| model | paper AUC | paper rank (of 7) | our AUC (mean ± std) | our rank (of {len(paper)}) "
             "| ours - paper |",
             "| --- | --- | --- | --- | --- | --- |"]
    for m in sorted(paper, key=lambda m: -paper[m]):
        lines.append(f"| {m} | {paper[m]:.4f} | {paper_rank[m]} | {ours[m]:.4f} ± {stds[m]} | {our_rank[m]} "
                     f"| {ours[m] - paper[m]:+.4f} |")
    orderings = paper_orderings(per_run, group, level=level)
    lines += ["", f"Every ordering of the paper, tested on our paired runs (difference = first model - second; "
                  f"{100 * level:g}% t interval):", "",
              "| the paper's ordering | paper difference | our mean difference [CI] | here |",
              "| --- | --- | --- | --- |"]
    for o in orderings:
        iv = o.verdict.interval
        lines.append(f"| {o.verdict.claim} | {o.paper_difference:+.4f} | {iv.mean:+.4f} [{iv.low:+.4f}, "
                     f"{iv.high:+.4f}] | {o.word} |")
    strict = [o for o in orderings if not o.tie]
    counts = {word: sum(o.verdict.outcome == word for o in strict) for word in stats.OUTCOMES}
    summary = (f"Of the {len(strict)} strict orderings of the paper tested here, {counts['holds']} hold, "
               f"{counts['does not hold']} are reversed and {counts['inconclusive']} are inconclusive")
    ties = [o for o in orderings if o.tie]
    if ties:
        summary += "; " + ", ".join(f"its tie {o.higher} = {o.lower}: {o.word}" for o in ties)
    lines += ["", summary + "."]
    untested = untested_pairs(per_run, group)
    if untested:
        lines.append(f"Not tested ({len(untested)} pairs: fewer than 2 runs share a seed): "
                     + ", ".join(f"{a} / {b}" for a, b in untested) + ".")
    missing = [m for m in paper_all if m not in per_run]
    if missing:
        lines.append(f"Not in this run: {', '.join(missing)}.")
    lines.append(f"Each line is its own {100 * level:g}% test, with no correction for testing {len(orderings)} "
                 f"pairs: if no pair truly differed, about 1 line in {round(1 / (1 - level))} would still come out "
                 "decisive by chance.")
    return "\n".join(lines)
