"""Paired comparisons over runs that share seeds, and the one verdict function of every command.

Two models (or one model at two settings) trained in runs that share their seeds give per-run values ``a_r`` and
``b_r`` (r = 1..n). Their comparison is the set of **paired differences** ``d_r = a_r - b_r``: pairing removes what
the runs have in common (data order, initialisation draw), so the interval is narrower than one from two
independent samples.

* :func:`paired_interval` gives the mean difference ``d_bar = (1/n) sum_r d_r`` with a confidence interval:
  ``method="t"`` the Student-t interval ``d_bar +- t_{n-1, (1+level)/2} * s / sqrt(n)`` (s the sample std, ddof = 1);
  ``method="bootstrap"`` the percentile interval of the means of ``n_boot`` resamples of the n differences (with
  replacement, a fixed seed).
* :func:`verdict` turns an interval and the direction a claim states into one of three words: **holds** (the
  interval lies entirely on the claimed side of 0), **does not hold** (entirely on the other side, or entirely
  within ``[-margin, margin]`` when an equivalence margin is given: the difference is too small to matter), else
  **inconclusive at n runs** (more runs could decide). Every command prints :meth:`Verdict.line`, so two commands
  given the same runs print the same verdict.

The t quantile is computed here, without SciPy, from the closed form of the Student-t distribution for an integer
number of degrees of freedom (Abramowitz & Stegun 26.7.3-4) and bisection; ``tests/test_stats.py`` checks it
against ``scipy.stats.t.ppf``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import _validation as V

__all__ = ["PairedInterval", "Verdict", "paired_differences", "paired_by_seed", "paired_interval", "compare", "verdict",
           "t_quantile", "OUTCOMES", "DIRECTIONS", "METHODS"]

OUTCOMES = ("holds", "does not hold", "inconclusive")
DIRECTIONS = ("greater", "less")  # the claim: the mean paired difference is > 0, or < 0
METHODS = ("t", "bootstrap")


# ---------------------------------------------------------------------------------------------------------------
# The Student-t quantile, from the closed form for integer degrees of freedom
# ---------------------------------------------------------------------------------------------------------------
def _t_central_probability(t: float, df: int) -> float:
    """A(t | df) = P(|T| <= t) for T ~ Student-t with ``df`` (integer) degrees of freedom and t >= 0.

    With theta = atan(t / sqrt(df)) (Abramowitz & Stegun 26.7.3 and 26.7.4):

    * df odd:  A = (2/pi) [theta + sin(theta) cos(theta) sum_{j=0}^{(df-3)/2} a_j cos(theta)^{2j}],
      a_0 = 1, a_j = a_{j-1} (2j) / (2j + 1)   (df = 1: A = 2 theta / pi, the Cauchy case);
    * df even: A = sin(theta) sum_{j=0}^{(df-2)/2} b_j cos(theta)^{2j},  b_0 = 1, b_j = b_{j-1} (2j - 1) / (2j).
    """
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:  # odd
        total, term = 0.0, 1.0
        for j in range((df - 1) // 2):  # j = 0 .. (df-3)/2; empty for df = 1
            if j:
                term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    total, term = 0.0, 1.0
    for j in range(df // 2):  # j = 0 .. (df-2)/2
        if j:
            term *= c2 * (2 * j - 1) / (2 * j)
        total += term
    return math.sin(theta) * total


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile (0.5 < probability < 1) of the Student-t distribution with ``df`` >= 1 integer
    degrees of freedom, e.g. ``t_quantile(0.975, 19) = 2.0930``: the t of a two-sided 95% interval over 20 runs.

    Solves A(t | df) = 2 probability - 1 (:func:`_t_central_probability`, increasing in t) by bisection to
    ~1e-12 relative accuracy."""
    df = V.positive_int("df", df)
    probability = float(probability)
    if not 0.5 < probability < 1:
        raise ValueError(f"probability must lie in (0.5, 1); got {probability!r}")
    target = 2 * probability - 1
    low, high = 0.0, 1.0
    while _t_central_probability(high, df) < target:
        low, high = high, 2 * high
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_central_probability(mid, df) < target:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


# ---------------------------------------------------------------------------------------------------------------
# Paired intervals
# ---------------------------------------------------------------------------------------------------------------
def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}"


@dataclass(frozen=True)
class PairedInterval:
    """The mean paired difference ``mean`` over ``n`` runs, its ``level`` confidence interval ``[low, high]`` by
    ``method`` ("t" or "bootstrap"), and the sample std (ddof = 1) of the differences."""

    n: int
    mean: float
    low: float
    high: float
    std: float
    level: float
    method: str

    def format(self, digits: int = 4) -> str:
        """``mean difference +0.0012, 95% CI [+0.0003, +0.0021] (t, 20 runs)``."""
        return (f"mean difference {_signed(self.mean, digits)}, {100 * self.level:g}% CI "
                f"[{_signed(self.low, digits)}, {_signed(self.high, digits)}] ({self.method}, {self.n} runs)")

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "low": self.low, "high": self.high, "std": self.std,
                "level": self.level, "method": self.method}


def paired_differences(a: Any, b: Any) -> np.ndarray:
    """``a - b`` (n,) as float64, for per-run values a (n,) and b (n,) whose run r shares its seeds; a ValueError
    names ``a`` or ``b`` when they are not finite 1-D arrays of one length."""
    arrays = []
    for name, x in (("a", a), ("b", b)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1 or not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be a 1-D array of finite per-run values; got shape {x.shape}"
                             + ("" if x.ndim != 1 else " with non-finite values"))
        arrays.append(x)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"a and b must hold the same runs (the same length); got {arrays[0].size} and "
                         f"{arrays[1].size}")
    return arrays[0] - arrays[1]


def paired_by_seed(a: Mapping[int, float], b: Mapping[int, float]) -> np.ndarray:
    """:func:`paired_differences` of per-run values keyed by seed, over the seeds both have (in increasing order):
    runs that share a seed pair, whatever else either side ran."""
    seeds = sorted(set(a) & set(b))
    return paired_differences([a[s] for s in seeds], [b[s] for s in seeds])


def _check_differences(differences: Any) -> np.ndarray:
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size < 2 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences must be a 1-D array of at least 2 finite paired differences; got shape "
                         f"{d.shape}" + ("" if d.ndim != 1 or d.size < 2 else " with non-finite values"))
    return d


def paired_interval(differences: Any, *, level: float = 0.95, method: str = "t", n_boot: int = 10_000,
                    seed: int = 0) -> PairedInterval:
    """The mean of ``differences`` (n,), n >= 2, with its ``level`` confidence interval.

    ``method="t"``: ``d_bar +- t_quantile((1 + level) / 2, n - 1) * s / sqrt(n)``. ``method="bootstrap"``: the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the means of ``n_boot`` resamples (n draws with
    replacement each, ``np.random.default_rng(seed)``): no normality assumed, but it covers less than ``level`` at
    small n (its interval is about ``sqrt((n - 1) / n)`` times as wide as a z interval)."""
    d = _check_differences(differences)
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    n, mean, std = d.size, float(d.mean()), float(d.std(ddof=1))
    if method == "t":
        half = t_quantile((1 + level) / 2, n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        n_boot = V.positive_int("n_boot", n_boot)
        rng = V.rng(seed)
        means = np.empty(n_boot)
        chunk = max(1, 1_000_000 // n)  # resamples per block: at most ~1e6 indexes in memory at once
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            means[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        low, high = (float(q) for q in np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))
    return PairedInterval(n, mean, float(low), float(high), std, level, method)


def compare(a: Any, b: Any, **options: Any) -> PairedInterval:
    """:func:`paired_interval` of ``a - b`` (:func:`paired_differences`); ``options`` as there."""
    return paired_interval(paired_differences(a, b), **options)


# ---------------------------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """``outcome`` (one of :data:`OUTCOMES`) of the claim ``claim`` that the mean paired difference is on the
    ``direction`` side of 0 ("greater": > 0, "less": < 0), judged on ``interval``; ``margin`` the equivalence
    margin (None: none)."""

    outcome: str
    claim: str
    direction: str
    interval: PairedInterval
    margin: float | None

    @property
    def holds(self) -> bool | None:
        """True (holds), False (does not hold) or None (inconclusive)."""
        return {"holds": True, "does not hold": False}.get(self.outcome)

    @property
    def word(self) -> str:
        """``holds``, ``does not hold`` or ``inconclusive at 20 runs``."""
        return f"inconclusive at {self.interval.n} runs" if self.outcome == "inconclusive" else self.outcome

    def line(self, digits: int = 4) -> str:
        """The printed verdict: ``<claim>: holds (mean difference +0.0012, 95% CI [+0.0003, +0.0021] (t, 20
        runs))``; a decision by the margin says so."""
        why = self.interval.format(digits)
        if self.margin is not None:
            why += f"; equivalence margin {self.margin:g}"
        prefix = f"{self.claim}: " if self.claim else ""
        return f"{prefix}{self.word} ({why})"

    def as_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "direction": self.direction, "outcome": self.outcome, "verdict": self.word,
                "margin": self.margin, "interval": self.interval.as_dict()}


def verdict(differences: Any, direction: str, *, claim: str = "", margin: float | None = None,
            level: float = 0.95, method: str = "t", n_boot: int = 10_000, seed: int = 0) -> Verdict:
    """The verdict on the claim that the paired ``differences`` (n,) have a mean > 0 (``direction="greater"``) or
    < 0 (``"less"``), from their :func:`paired_interval` ``[low, high]``:

    * **holds**: the interval lies entirely on the claimed side (``low > 0``, or ``high < 0``);
    * **does not hold**: it lies entirely on the other side, or, with an equivalence ``margin`` m > 0, entirely
      within ``[-m, m]`` (whatever difference there is, it is smaller than m);
    * **inconclusive** otherwise: the interval reaches across 0 and beyond the margin; more runs could decide.

    The claimed side is checked first: an interval inside ``(0, m]`` still holds (the difference is real, if
    small; the printed line shows the margin beside it)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS} (the claimed sign of the mean difference); "
                         f"got {direction!r}")
    if margin is not None:
        margin = V.positive_float("margin", margin)
    if not isinstance(claim, str):
        raise ValueError(f"claim must be a str; got {claim!r}")
    interval = paired_interval(differences, level=level, method=method, n_boot=n_boot, seed=seed)
    sign = 1.0 if direction == "greater" else -1.0
    low, high = sorted((sign * interval.low, sign * interval.high))  # the claimed side is now > 0
    if low > 0:
        outcome = "holds"
    elif high < 0 or (margin is not None and -margin <= low and high <= margin):
        outcome = "does not hold"
    else:
        outcome = "inconclusive"
    return Verdict(outcome, claim, direction, interval, margin)
