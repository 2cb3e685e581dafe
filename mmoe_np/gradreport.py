"""The report of a gradient check: what was compared, the error measures, the pass rule, and the printed table.

:func:`mmoe_np.gradcheck.check_gradients` and :func:`~mmoe_np.gradcheck.check_op` fill a :class:`GradientReport`;
the rules it applies (a norm-wise relative error per array, the rounding noise of a central difference, the
resolution rule for gradients too small to resolve, a non-finite value never passing) are derived in the
docstring of :mod:`mmoe_np.gradcheck` and in ``docs/gradient-testing.md``. Everything here is importable from
:mod:`mmoe_np.gradcheck` too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validation as V

__all__ = ["GradientReport", "gradient_error", "rounding_noise", "check_step", "check_tol", "DEFAULT_STEP",
           "DEFAULT_TOL", "STEP_RANGE", "RESOLUTION"]

DEFAULT_STEP = 1e-5       # about eps_machine ** (1/3) in float64
DEFAULT_TOL = 1e-6        # relative error every analytic gradient must reach in float64
STEP_RANGE = (1e-8, 0.1)  # steps a central difference in float64 can use
RESOLUTION = 10.0         # an absolute error within RESOLUTION * noise is as close as a central difference can tell


# ----------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------
def check_step(step: Any, name: str = "step") -> float:
    """``step`` as a float in :data:`STEP_RANGE` (a ValueError naming it otherwise)."""
    V.positive_float(name, step)
    low, high = STEP_RANGE
    if not low <= step <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] (rounding swamps smaller steps, truncation larger "
                         f"ones; the default is {DEFAULT_STEP:g}); got {step!r}")
    return float(step)


def check_tol(tol: Any) -> float:
    """``tol`` as a float in (0, 1): a relative error of 1 or more says nothing."""
    V.positive_float("tol", tol)
    if tol >= 1:
        raise ValueError(f"tol must be a relative error in (0, 1), e.g. {DEFAULT_TOL:g}; got {tol!r}")
    return float(tol)


# ----------------------------------------------------------------------------------------------------------------
# The error measures
# ----------------------------------------------------------------------------------------------------------------
def gradient_error(analytic: np.ndarray, numeric: np.ndarray) -> tuple[float, float]:
    """``(relative, absolute)`` norm-wise error of two arrays of the same shape.

    A non-finite value in either is an infinite error: it can never pass.
    """
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic and numeric must have the same shape; got {a.shape} and {n.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(n))):
        return float("inf"), float("inf")
    abs_error = float(np.linalg.norm(a - n))
    scale = max(float(np.linalg.norm(a)), float(np.linalg.norm(n)))
    return (abs_error / scale if scale > 0 else 0.0), abs_error


def rounding_noise(f_value: float, n_entries: int, step: float) -> float:
    """The expected norm of the rounding error of a central-difference gradient of ``n_entries`` entries."""
    if not np.isfinite(f_value):
        raise ValueError(f"f_value must be finite (a non-finite loss has no rounding noise to speak of); got {f_value}")
    V.int_at_least("n_entries", n_entries, 0)
    return float(np.finfo(np.float64).eps * max(1.0, abs(f_value)) * np.sqrt(n_entries) / check_step(step))


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class GradientReport:
    """Per-array gradient errors: relative, absolute, and the rounding noise of the numerical gradient.

    ``analytic[name]`` and ``numeric[name]`` hold the values compared (flat): gradient entries, or in fast mode the
    directional derivatives. ``entries[name]`` says which (flat indices into an array of shape ``shapes[name]``,
    or None for random directions). ``nonfinite[name]`` says where a non-finite gradient value was.
    """

    errors: dict[str, float] = field(default_factory=dict)
    abs_errors: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    relu_margin: float = float("inf")
    step: float = DEFAULT_STEP
    mode: str = "full"
    analytic: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    numeric: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    entries: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    nonfinite: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, analytic: Any, numeric: Any, f_value: float, entries: np.ndarray | None = None,
            shape: tuple[int, ...] | None = None, directions: bool = False) -> None:
        """Record one array's compared values ``analytic`` and ``numeric`` (the same shape): the whole gradient;
        the entries at flat ``entries`` of an array of ``shape``; or, with ``directions``, directional derivatives.
        ``f_value`` is the checked function's value (it sets the rounding noise). The checkers call this."""
        a = np.asarray(analytic, dtype=np.float64).reshape(-1)
        n = np.asarray(numeric, dtype=np.float64).reshape(-1)
        self.errors[name], self.abs_errors[name] = gradient_error(a, n)
        self.noise[name] = rounding_noise(f_value, a.size, self.step)
        self.analytic[name], self.numeric[name] = a, n
        if directions:
            self.entries[name], self.shapes[name] = None, (a.size,)
        elif entries is None:
            self.entries[name], self.shapes[name] = np.arange(a.size), tuple(np.shape(analytic))
        else:
            self.entries[name], self.shapes[name] = np.asarray(entries), tuple(shape)
        if not np.all(np.isfinite(n)):
            self.nonfinite[name] = f"numerical gradient {self._where(name, n)} (the function is not finite there)"
        if not np.all(np.isfinite(a)):  # the backward pass's own fault: named last, so it is the one shown
            self.nonfinite[name] = f"analytic gradient {self._where(name, a)}"

    def _label(self, name: str, k: int) -> str:
        """Compared value ``k``: the entry ``name[i, j]`` (``name`` for a 0-d input), or ``<dname, u_k>``, the
        gradient along random direction k."""
        if self.entries.get(name) is None:
            return f"<d{name}, u_{k}>"
        if not self.shapes[name]:
            return name
        index = np.unravel_index(int(self.entries[name][k]), self.shapes[name])
        return f"{name}[{', '.join(str(int(i)) for i in index)}]"

    def _where(self, name: str, values: np.ndarray) -> str:
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        return f"{values[k]} at {self._label(name, k)}"

    def _known(self, name: Any) -> str:
        if name not in self.errors:
            raise ValueError(f"name must be one of the checked arrays {list(self.errors)}; got {name!r}")
        return name

    def resolved(self, name: str, tol: float = DEFAULT_TOL) -> bool:
        """Is the array's gradient large enough for a relative error of ``tol`` to be measured?"""
        tol, name = check_tol(tol), self._known(name)
        if name in self.nonfinite:
            return True  # nothing about a non-finite value is below the resolution
        scale = self.abs_errors[name] / self.errors[name] if self.errors[name] > 0 else float("inf")
        return scale * tol > RESOLUTION * self.noise[name]

    def passed_array(self, name: str, tol: float = DEFAULT_TOL) -> bool:
        """Finite, and a relative error below ``tol``, or (for a gradient too small to resolve) agreement to the
        noise level. A resolved gradient that fails the relative tolerance never passes on its absolute error."""
        tol, name = check_tol(tol), self._known(name)
        if name in self.nonfinite:
            return False
        return self.errors[name] < tol or (not self.resolved(name, tol)
                                           and self.abs_errors[name] <= RESOLUTION * self.noise[name])

    def passed(self, tol: float = DEFAULT_TOL) -> bool:
        """Every array passed (and at least one was checked)."""
        return bool(self.errors) and all(self.passed_array(name, tol) for name in self.errors)

    @property
    def near_kink(self) -> bool:
        """Is some ReLU input within the step of 0? Then a central difference may straddle the kink, and a failure
        can be the checker's, not the gradient's (a freshly built model with zero biases often has exact zeros)."""
        return self.relu_margin <= self.step

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def worst(self) -> str:
        """The name of the array with the largest relative error."""
        return max(self.errors, key=self.errors.get)

    def worst_entries(self, name: str, n: int = 3) -> list[tuple[str, float, float, float]]:
        """The ``n`` compared values of one array that disagree most: ``(label, analytic, numeric, rel. error)``,
        non-finite ones first, then by |analytic - numeric|. The relative error of a pair with a NaN is NaN, of one
        with an inf (and no NaN) inf; of two zeros 0."""
        V.positive_int("n", n)
        a, num = self.analytic[self._known(name)], self.numeric[name]
        finite = np.isfinite(a) & np.isfinite(num)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(finite, np.abs(a - num), np.inf)
            scale = np.maximum(np.abs(a), np.abs(num))
            rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), 0.0)
        rel = np.where(finite, rel, np.where(np.isnan(a) | np.isnan(num), np.nan, np.inf))
        order = np.argsort(-diff, kind="stable")[:n]
        return [(self._label(name, int(k)), float(a[k]), float(num[k]), float(rel[k])) for k in order]

    def format(self, tol: float = DEFAULT_TOL, worst: int = 3) -> str:
        """The table, the worst ``worst`` entries of each failing array, and a PASS/FAIL line at ``tol``."""
        tol = check_tol(tol)
        V.int_at_least("worst", worst, 0)
        width = max([len("array"), *map(len, self.errors)])
        values = "random directions (small arrays: entries)" if self.mode == "fast" else "every entry"
        rows = [f"gradient check ({self.mode}: compares {values}; step {self.step:g}; tol {tol:g})",
                f"{'array':<{width}}  {'rel. error':<10}  {'abs. error':<10}  noise"]
        for name in self.errors:
            verdict = "" if self.passed_array(name, tol) else "  FAILS"
            resolution = "" if self.resolved(name, tol) else "  (below resolution: agrees within 10x noise)"
            rows.append(f"{name:<{width}}  {self.errors[name]:<10.3e}  {self.abs_errors[name]:<10.3e}  "
                        f"{self.noise[name]:.1e}{verdict}{resolution if not verdict else ''}")
        failing = [name for name in self.errors if not self.passed_array(name, tol)]
        for name in failing:
            if name in self.nonfinite:
                rows.append(f"  {name}: non-finite {self.nonfinite[name]}")
            for label, a, num, rel in self.worst_entries(name, worst) if worst else []:
                rows.append(f"  {label}: analytic {a:.6e}  numeric {num:.6e}  rel. error {rel:.1e}")
        margin = f"; smallest |ReLU input| {self.relu_margin:.3e}" if self.relu_margin < float("inf") else ""
        worst_name = f" ({self.worst})" if self.errors else ""
        if self.passed(tol):
            rows.append(f"PASS: max rel. error {self.max_error:.3e}{worst_name} over {len(self.errors)} "
                        f"arrays{margin}")
        else:
            if margin:
                margin += " (a ReLU kink is near)" if self.near_kink else " (no ReLU kink near)"
            rows.append(f"FAIL: {len(failing)} of {len(self.errors)} arrays ({', '.join(failing) or 'none checked'}); "
                        f"max rel. error {self.max_error:.3e}{worst_name}{margin}")
        if self.near_kink and not self.passed(tol):
            rows.append("note: a ReLU input is within the step of its kink at 0, where central differences are not "
                        "valid; check again with other inputs or parameters (e.g. nonzero biases) before "
                        "suspecting the gradient")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.format()
