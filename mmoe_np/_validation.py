"""Argument checks shared by the public API. Every failure is a ``ValueError`` that names the argument."""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

TASK_TYPES = ("regression", "binary")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def int_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (bools and floats are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return int(value)


def model_with(value: Any, parts: Sequence[str]) -> Any:
    """``value`` if it has every attribute in ``parts`` (what the caller uses of a model), else a ValueError naming
    ``model`` and what it lacks (a dict of params, None, a class instead of an instance, ...)."""
    missing = [part for part in parts if not hasattr(value, part)]
    if missing:
        raise ValueError(f"model must be a model such as mn.MMoE(...) (with {', '.join(parts)}); "
                         f"{type(value).__name__} lacks {missing}")
    return value


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1."""
    return int_at_least(name, value, 1)


def correlation(value: Any) -> float:
    """A task correlation (the cosine of two weight vectors): a real number in [-1, 1]."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not ok or not -1.0 <= value <= 1.0:  # NaN fails the comparison too
        raise ValueError(f"correlation must be a number in [-1, 1]; got {value!r}")
    return float(value)


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool; anything else (the string "no" is true, 1 is not a flag) is refused by name."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def positive_float(name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return float(value)


def units(name: str, value: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """A tuple of layer widths, each a positive int, e.g. ``(16,)`` or ``(32, 16)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a sequence of layer widths such as ({value},); got the integer {value!r}")
    try:
        widths = tuple(value)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive layer widths; got {value!r}") from None
    if not widths and not allow_empty:
        raise ValueError(f"{name} must name at least one hidden layer; got an empty sequence")
    for w in widths:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral) or w < 1:
            raise ValueError(f"{name} must contain positive integers; got {value!r}")
    return tuple(int(w) for w in widths)


def tasks(value: Any) -> tuple[str, ...]:
    """A non-empty sequence of task types, each "regression" or "binary"."""
    if isinstance(value, str):
        raise ValueError(f"tasks must be a sequence of task types such as ({value!r},); got the string {value!r}")
    try:
        kinds = tuple(value)
    except TypeError:
        raise ValueError(f"tasks must be a sequence of task types; got {value!r}") from None
    if not kinds:
        raise ValueError("tasks must contain at least one task; got an empty sequence")
    for kind in kinds:
        if not isinstance(kind, str) or kind not in TASK_TYPES:
            raise ValueError(f"tasks: unknown task type {kind!r}; expected one of {TASK_TYPES}")
    return kinds


def rng(seed: Any) -> np.random.Generator:
    """``np.random.default_rng(seed)``; a Generator passes through unchanged, so callers can share one stream."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as err:
        raise ValueError(f"seed must be None, a non-negative int, a SeedSequence or a Generator; got {seed!r}") from err


def dtype(value: Any) -> np.dtype:
    """float32 or float64."""
    if value is None:  # np.dtype(None) would silently mean float64
        raise ValueError("dtype must be float32 or float64; got None")
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64; got {value!r}") from None
    if dt not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


def task_weights(value: Any, n_tasks: int, dt: np.dtype) -> np.ndarray:
    """Per-task loss weights: ``None`` means all ones; otherwise n_tasks finite numbers >= 0."""
    if value is None:
        return np.ones(n_tasks, dtype=dt)
    try:
        w = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"task_weights must be {n_tasks} numbers, one per task; got {value!r}") from None
    if w.shape != (n_tasks,):
        raise ValueError(f"task_weights must have one weight per task, shape ({n_tasks},); got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"task_weights must be finite and >= 0; got {value!r}")
    return w.astype(dt)


def all_finite(a: np.ndarray, block: int = 1 << 20) -> bool:
    """``np.isfinite(a).all()``, in blocks of ``block`` numbers when ``a`` is contiguous: no boolean temporary the
    size of ``a`` (97 MB for the census training set, whose check was then a quarter slower), and the first block
    with a NaN or inf ends the scan."""
    if a.dtype.kind in "biu":
        return True
    if not a.flags.c_contiguous or a.size <= block:
        return bool(np.isfinite(a).all())
    flat, finite = a.reshape(-1), np.empty(block, dtype=bool)
    for start in range(0, flat.size, block):
        part = flat[start:start + block]
        if not np.isfinite(part, out=finite[:part.size]).all():
            return False
    return True


def numeric(name: str, value: Any, shape_name: str) -> np.ndarray:
    """``value`` as a finite, non-empty real numeric array, in its own dtype (nothing converted yet)."""
    try:
        a = np.asarray(value)
    except ValueError:  # e.g. ragged nested lists
        raise ValueError(f"{name} must be a numeric array {shape_name}; got rows of different lengths") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array {shape_name}; got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); expected a non-empty array {shape_name}")
    if not all_finite(a):
        raise ValueError(f"{name} contains NaN or inf; expected finite values")
    return a


def cast(name: str, a: np.ndarray, dt: np.dtype) -> np.ndarray:
    """A checked array in dtype ``dt``; values beyond ``dt``'s range (e.g. 1e300 in float32) are an error."""
    with np.errstate(over="ignore"):  # reported below, by name
        out = a.astype(dt, copy=False)
    if out is not a and not np.all(np.isfinite(out)):
        raise ValueError(f"{name} has values beyond the range of {dt} (largest |value| {np.max(np.abs(a)):g})")
    return out


def array(name: str, value: Any, dt: np.dtype, shape_name: str) -> np.ndarray:
    """``value`` as a finite, non-empty numeric array of dtype ``dt`` (converted, never truncated)."""
    return cast(name, numeric(name, value, shape_name), dt)


def features(X: Any, n_features: int, dt: np.dtype, replica_shape: tuple[int, ...] = ()) -> np.ndarray:
    """Inputs X (N, n_features), or (*replica_shape, N, n_features) for one data set per replica."""
    expected = f"of shape (n_samples, {n_features})"
    if replica_shape:
        expected += f" or {(*replica_shape, 'n_samples', n_features)}".replace("'", "")
    X = array("X", X, dt, expected)
    if X.ndim not in (2, 2 + len(replica_shape)):
        raise ValueError(f"X must be a 2-D array {expected}; got {X.ndim}-D shape {X.shape}")
    if X.ndim > 2 and X.shape[:-2] != replica_shape:
        raise ValueError(f"X must be {expected}; its leading axes {X.shape[:-2]} do not match the replicas")
    if X.shape[-1] != n_features:
        raise ValueError(f"X must have n_features={n_features} columns; got shape {X.shape}")
    return X


def targets(Y: Any, task_types: Sequence[str], X: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Targets Y (N, n_tasks) matching X's samples (and replicas); binary columns must be exactly 0 or 1."""
    n_tasks = len(task_types)
    Y = numeric("Y", Y, f"of shape (n_samples, {n_tasks})")  # labels are checked before rounding to dt
    if Y.ndim == 1 and n_tasks == 1:
        raise ValueError(f"Y must be 2-D of shape (n_samples, 1) for one task; got 1-D shape {Y.shape} "
                         "(use Y.reshape(-1, 1))")
    if Y.ndim not in (2, X.ndim):
        raise ValueError(f"Y must be a 2-D array of shape (n_samples, {n_tasks}); got {Y.ndim}-D shape {Y.shape}")
    if Y.shape[-1] != n_tasks:
        raise ValueError(f"Y must have one column per task ({n_tasks}); got shape {Y.shape}")
    if Y.shape[-2] != X.shape[-2]:
        raise ValueError(f"X and Y must have the same number of samples; got X {X.shape[-2]} and Y {Y.shape[-2]}")
    if Y.ndim > 2 and Y.shape[:-2] != X.shape[:-2]:
        raise ValueError(f"Y's leading (replica) axes {Y.shape[:-2]} must match X's {X.shape[:-2]}")
    binary = [k for k, t in enumerate(task_types) if t == "binary"]
    if binary:
        labels = Y[..., binary]
        if not np.all((labels == 0) | (labels == 1)):
            bad = np.unique(labels[(labels != 0) & (labels != 1)])[:5]
            raise ValueError(f"Y: binary task columns {binary} must contain only 0 and 1; found {bad.tolist()}")
    return cast("Y", Y, dt)
