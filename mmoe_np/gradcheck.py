"""Gradient checking by central differences in float64.

For a scalar function ``f`` and an array ``a``, the numerical derivative of entry i is
``(f(a + h e_i) - f(a - h e_i)) / (2 h)``, whose error is O(h^2 |f'''|) from truncation plus
O(eps_machine |f| / h) from rounding. The sum is smallest near ``h = eps_machine ** (1/3)``, about 1e-5 in
float64: the default. (Over 263 random small models the worst relative error was 6.7e-7 with h = 1e-6 and
1.0e-7 with h = 1e-5; the rounding floor matters when a gradient is small next to the loss.) Steps outside
[1e-8, 0.1] are refused: below, rounding swamps every difference (and would make the resolution rule below
vacuous); above, truncation does.

Each array is compared as a whole: ``error = ||analytic - numeric|| / max(||analytic||, ||numeric||)``, the
relative error of the gradient vector (2-norms). Rounding limits what a central difference can resolve: its error
has norm about ``noise = eps_machine * max(1, |f|) * sqrt(n) / h`` for an array of n entries (over 2,591 arrays of
random small models the measured error never exceeded 1.4 * noise). A gradient whose norm is below ``noise / tol``
cannot be checked to a relative error ``tol`` by any step; such an array passes when its absolute error is within
the measurement's resolution, ``10 * noise``. Any larger gradient must meet the relative tolerance itself.
A non-finite value never passes: a NaN or inf in an input, a parameter, the loss or the step is a ``ValueError``
naming where it was, and one in an analytic or numerical gradient fails that array, with the entry named.

**Fast mode** (``fast=True``, as PyTorch's ``gradcheck(fast_mode=True)``): instead of one central difference per
entry, each array is checked along ``n_directions`` random unit directions ``u_j``: the directional derivative
``(f(a + h u_j) - f(a - h u_j)) / (2 h)`` against ``<grad, u_j>`` from the backward pass. For a model the checked
function is the scalar loss (so PyTorch's output direction v is 1); :func:`check_op` checks ``<dout, out>`` with a
random ``dout``, which is v. A unit direction has the rounding noise of one entry, so the noise, the tolerance and
the resolution rule carry over unchanged, with n = the number of directions. An array with no more entries than
directions is checked entry by entry (the coordinate directions). ``docs/gradient-testing.md`` gives the
statistical power: a wrong gradient escapes only if all directions are nearly orthogonal to its error.

ReLU networks are piecewise linear: if a step of size h moves a pre-activation across 0, the difference quotient
straddles a kink and disagrees with either one-sided derivative. :attr:`GradientReport.relu_margin` reports the
smallest |pre-activation| on the batch so a test can reject such draws instead of loosening its tolerance.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from . import _validation as V
from .gradreport import (DEFAULT_STEP, DEFAULT_TOL, RESOLUTION, STEP_RANGE, GradientReport, check_step, check_tol,
                         gradient_error, rounding_noise)

__all__ = ["numerical_gradient", "directional_derivatives", "gradient_error", "rounding_noise", "GradientReport",
           "check_gradients", "check_op", "relu_caches", "check_tol", "check_step", "DEFAULT_STEP", "DEFAULT_TOL",
           "DEFAULT_DIRECTIONS", "STEP_RANGE", "RESOLUTION"]

DEFAULT_DIRECTIONS = 8    # random directions per array in fast mode (see docs/gradient-testing.md for the power)


# ----------------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------------
def _first_nonfinite(a: np.ndarray) -> str:
    """``"nan at [1, 0]"``: the first non-finite entry of ``a`` and where it is."""
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return f"{a[index]} at {list(index)}"


def _finite_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a finite real float64 array (a copy); the ValueError names it and its first bad entry."""
    a = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array; got dtype {a.dtype}")
    a = np.array(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains a non-finite value ({_first_nonfinite(a)}); the check needs finite values")
    return a


def _perturbable(f: Any, a: Any) -> None:
    """``f`` a function of no arguments, ``a`` the float array it reads (and the checker perturbs in place)."""
    if not callable(f):
        raise ValueError(f"f must be a function of no arguments returning a float; got {type(f).__name__}")
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        raise ValueError(f"a must be a float numpy array (it is perturbed in place); got {type(a).__name__}")


# ----------------------------------------------------------------------------------------------------------------
# Central differences
# ----------------------------------------------------------------------------------------------------------------
def numerical_gradient(f: Callable[[], float], a: np.ndarray, h: float = DEFAULT_STEP,
                       indices: Sequence[int] | None = None) -> np.ndarray:
    """Central-difference gradient of ``f()`` with respect to the float array ``a``, which ``f`` reads.

    ``a`` is perturbed in place, one entry at a time, and restored exactly (also if ``f`` raises); it may be a
    strided view (a parameter that lives in a larger buffer). ``indices`` (flat, C order) limits the entries; the
    others are NaN in the result, so they can never be mistaken for checked ones.
    """
    h = check_step(h, "h")
    _perturbable(f, a)
    if indices is None:
        indices = range(a.size)
    else:
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu" or indices.ndim != 1 or np.any((indices < 0) | (indices >= a.size)):
            raise ValueError(f"indices must be flat integer indices into a's {a.size} entries; got {indices!r}")
    grad = np.full(a.shape, np.nan)
    for i in indices:
        entry = np.unravel_index(i, a.shape)  # a multi-index: works on any view, contiguous or not
        original = a[entry]
        try:
            a[entry] = original + h
            f_plus = f()
            a[entry] = original - h
            f_minus = f()
        finally:
            a[entry] = original
        grad[entry] = (f_plus - f_minus) / (2 * h)
    return grad


def directional_derivatives(f: Callable[[], float], a: np.ndarray, directions: np.ndarray,
                            h: float = DEFAULT_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of ``f()`` along each direction: ``(f(a + h u_j) - f(a - h u_j)) / (2 h)``.

    ``directions`` (k, *a.shape). Returns ``(numeric, steps)``: the k derivatives, and the k realised steps
    ``(a_plus - a_minus) / (2 h)`` flattened to (k, a.size) (``u_j`` up to the rounding of ``a + h u_j``), which an
    analytic gradient is dotted with so that both sides measure the same perturbation. ``a`` is restored exactly.
    """
    h = check_step(h, "h")
    _perturbable(f, a)
    directions = _finite_array("directions", directions)
    if directions.ndim != a.ndim + 1 or directions.shape[1:] != a.shape or len(directions) == 0:
        raise ValueError(f"directions must have shape (k, *a.shape) = (k, {', '.join(map(str, a.shape))}) with "
                         f"k >= 1; got {directions.shape}")
    original = a.copy()
    numeric = np.empty(len(directions))
    steps = np.empty((len(directions), a.size))
    try:
        for j, u in enumerate(directions):
            np.add(original, h * u, out=a)
            plus, f_plus = a.copy(), f()
            np.subtract(original, h * u, out=a)
            f_minus = f()
            steps[j] = ((plus - a) / (2 * h)).reshape(-1)
            numeric[j] = (f_plus - f_minus) / (2 * h)
    finally:
        a[...] = original
    return numeric, steps


def relu_caches(cache: Any) -> Iterator[Any]:
    """Every ReLU cache (an ``ops.ReluCache``: a ``pre_activation`` array) inside a nested cache of tuples, lists,
    dicts and NamedTuples: what a checker reads to see how close a forward pass came to a kink."""
    if hasattr(cache, "pre_activation") and not isinstance(cache, (dict, list)):
        yield cache
    elif isinstance(cache, dict):
        for value in cache.values():
            yield from relu_caches(value)
    elif isinstance(cache, (tuple, list)):
        for value in cache:
            yield from relu_caches(value)


def _relu_margin(cache: Any) -> float:
    margins = [float(np.abs(c.pre_activation).min()) for c in relu_caches(cache) if np.size(c.pre_activation)]
    return min(margins, default=float("inf"))


# ----------------------------------------------------------------------------------------------------------------
# The checkers
# ----------------------------------------------------------------------------------------------------------------
def _options(step: Any, seed: Any, fast: Any, n_directions: Any) -> tuple[float, np.random.Generator, bool, int]:
    step = check_step(step)
    seed = V.int_at_least("seed", seed, 0)
    return step, np.random.default_rng(seed), V.flag("fast", fast), V.positive_int("n_directions", n_directions)


def _compare(report: GradientReport, f: Callable[[], float], name: str, array: np.ndarray, analytic: np.ndarray,
             f_value: float, rng: np.random.Generator, fast: bool, n_directions: int,
             max_entries: int | None = None) -> None:
    """Check one array: entry by entry (all, or ``max_entries`` random ones), or in fast mode along random unit
    directions (entry by entry when it has no more entries than directions)."""
    if fast and array.size > n_directions:
        u = rng.standard_normal((n_directions, array.size))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        if not np.all(np.isfinite(analytic)):  # a dot product would hide where: record the entries themselves
            report.add(name, analytic, np.full(np.shape(analytic), np.nan), f_value)  # numeric: not computed
            return
        numeric, steps = directional_derivatives(f, array, u.reshape((n_directions, *array.shape)), report.step)
        projected = steps @ np.asarray(analytic, dtype=np.float64).reshape(-1)  # (v^T J) u_j
        report.add(name, projected, numeric, f_value, directions=True)
        return
    indices = None
    if max_entries is not None and array.size > max_entries:
        indices = np.sort(rng.choice(array.size, size=max_entries, replace=False))
    numeric = numerical_gradient(f, array, report.step, indices)
    if indices is None:
        report.add(name, analytic, numeric, f_value)
    else:
        flat = np.asarray(analytic, dtype=np.float64).reshape(-1)
        report.add(name, flat[indices], numeric.reshape(-1)[indices], f_value, entries=indices, shape=array.shape)


def _model_chain(model: Any, X: Any, Y: Any) -> tuple[Any, np.ndarray, Callable[[bool], tuple[Any, Any, Any]]]:
    """A float64 copy of ``model``, a private float64 X (perturbed in place), and ``run(backward)`` returning
    ``(loss, grads, dX)`` on it: the chain the checker differentiates.

    The model's own checks of X and Y run first (names, shapes, labels), on the model as given, after its parameters
    were found finite (a NaN weight would otherwise be blamed on X). A model with ``check_inputs`` and
    ``forward_backward`` (every mmoe_np model) then runs its chain unchecked (``check=False``): the checker itself
    sees a non-finite loss or gradient and names where it is, where the checked path would refuse it as an overflow
    of X; and the thousands of perturbed passes skip the input checks. Any other model runs through ``losses`` and
    ``loss_and_grads``.
    """
    V.model_with(model, ("params", "copy", "losses", "loss_and_grads"))
    for name, p in model.params.items():
        _finite_array(f"parameter {name!r}", p)
    unchecked = hasattr(model, "check_inputs") and hasattr(model, "forward_backward")
    if unchecked:
        model.check_inputs(X, Y)
    else:
        model.losses(X, Y)
    model = model.copy(np.float64)
    X, Y = _finite_array("X", X), _finite_array("Y", Y)  # private copies, in the copy's dtype

    def run(backward: bool) -> tuple[Any, Any, Any]:
        with np.errstate(all="ignore"):  # the checker names a non-finite loss or gradient itself, without warnings
            if unchecked:
                result = model.forward_backward(X, Y, backward=backward, input_grad=backward, check=False)
                return result.loss, result.grads, result.dX
            return model.loss_and_grads(X, Y, input_grad=True) if backward else (model.losses(X, Y)[0], None, None)

    return model, X, run


def check_gradients(model: Any, X: Any, Y: Any, *, step: float = DEFAULT_STEP, max_entries: int | None = None,
                    seed: int = 0, fast: bool = False, n_directions: int = DEFAULT_DIRECTIONS) -> GradientReport:
    """Compare the model's analytic gradients with central differences, for every parameter array and for X.

    Works on a float64 copy of the model (``model.copy(np.float64)``), so the model itself is untouched.
    ``max_entries`` checks a random subset of that many entries per array (for large models); ``None`` checks all.
    ``fast=True`` checks each array along ``n_directions`` random unit directions instead (two forward passes per
    direction, see the module docstring). The model needs ``params``, ``copy(dtype)``, ``losses(X, Y)``,
    ``loss_and_grads(X, Y, input_grad=True)`` and, optionally, ``relu_margin(X)``; with ``check_inputs`` and
    ``forward_backward`` it is run as :func:`_model_chain` says.
    """
    step, rng, fast, n_directions = _options(step, seed, fast, n_directions)
    if max_entries is not None:
        V.positive_int("max_entries", max_entries)
        if fast:
            raise ValueError("max_entries and fast=True are two ways to check a large model; choose one")
    model, X, run = _model_chain(model, X, Y)
    loss, grads, dX = run(True)
    f_value = float(np.sum(loss))
    if not np.isfinite(f_value):
        raise ValueError(f"the model's loss is {f_value} at these parameters and inputs; gradients of a non-finite "
                         "loss cannot be checked")

    def total_loss() -> float:
        return float(np.sum(run(False)[0]))  # replicas: the sum, whose gradient is each replica's own

    report = GradientReport(step=step, mode="fast" if fast else "full")
    targets = {**{name: (model.params[name], grads[name]) for name in model.params}, "X": (X, dX)}
    for name, (array, analytic) in targets.items():
        _compare(report, total_loss, name, array, analytic, f_value, rng, fast, n_directions, max_entries)
    if hasattr(model, "relu_margin"):
        report.relu_margin = model.relu_margin(X)
    return report


def check_op(forward: Callable[..., tuple[np.ndarray, Any]], backward: Callable[[np.ndarray, Any], Any],
             inputs: Mapping[str, np.ndarray], *, wrt: Sequence[str] | None = None, step: float = DEFAULT_STEP,
             seed: int = 0, fast: bool = False, n_directions: int = DEFAULT_DIRECTIONS,
             **constants: Any) -> GradientReport:
    """Check one functional op: ``out, cache = forward(**inputs, **constants)``; ``backward(dout, cache)``.

    The scalar checked is ``sum(out * dout)`` for a fixed random ``dout``, whose gradient is exactly what
    ``backward(dout, cache)`` returns. ``backward`` must return the gradients of the inputs named in ``wrt``
    (default: all of ``inputs``, in order), as a tuple or a single array. ``fast`` and ``n_directions`` as in
    :func:`check_gradients`. The report's ``relu_margin`` is read from the ReLU caches in ``cache`` (inf if none).
    """
    step, rng, fast, n_directions = _options(step, seed, fast, n_directions)
    for arg, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise ValueError(f"{arg} must be a function; got {type(fn).__name__}")
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(f"inputs must be a non-empty dict of arrays, e.g. {{'x': x}}; got {type(inputs).__name__}")
    bad_keys = [k for k in inputs if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"inputs must be keyed by the forward's argument names (strings); got keys {bad_keys}")
    inputs = {name: _finite_array(f"inputs[{name!r}]", a) for name, a in inputs.items()}
    for name, a in inputs.items():
        if a.size == 0:
            raise ValueError(f"inputs[{name!r}] is empty (shape {a.shape}); there is nothing to check")
    for name, c in constants.items():
        if isinstance(c, np.ndarray) and c.dtype.kind in "fc" and not np.all(np.isfinite(c)):
            raise ValueError(f"constant {name!r} contains a non-finite value ({_first_nonfinite(c)})")
    if wrt is None:
        wrt = list(inputs)
    elif isinstance(wrt, str) or not all(isinstance(w, str) for w in wrt):
        raise ValueError(f"wrt must be a list of input names such as [{next(iter(inputs))!r}]; got {wrt!r}")
    wrt = list(wrt)
    unknown = [name for name in wrt if name not in inputs]
    if unknown:
        raise ValueError(f"wrt names {unknown}, which are not among the inputs {list(inputs)}")
    if not wrt or len(set(wrt)) != len(wrt):
        raise ValueError(f"wrt must name each input to check once, and at least one; got {wrt}")
    with np.errstate(all="ignore"):  # the checker names every non-finite output or gradient itself
        result = forward(**inputs, **constants)
        if not isinstance(result, tuple) or len(result) != 2:
            got = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"type {type(result).__name__}"
            raise ValueError(f"forward must return (out, cache), a tuple of two; got {got}")
        out, cache = result
        out = _finite_array("forward's output", out)
        dout = rng.standard_normal(np.shape(out))
        analytic = backward(dout, cache)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)
    if len(analytic) != len(wrt):
        raise ValueError(f"backward returned {len(analytic)} gradients; wrt names {len(wrt)}: {wrt}")

    def objective() -> float:
        with np.errstate(all="ignore"):  # a non-finite value at a perturbed input fails its entry, by name
            return float(np.sum(np.asarray(forward(**inputs, **constants)[0], dtype=np.float64) * dout))

    value = float(np.sum(out * dout))  # objective() at the unperturbed inputs
    report = GradientReport(step=step, mode="fast" if fast else "full", relu_margin=_relu_margin(cache))
    for name, grad in zip(wrt, analytic):
        grad = np.asarray(grad) if grad is not None else None
        if grad is None or grad.dtype.kind not in "biuf":
            raise ValueError(f"backward's gradient of {name!r} must be a real numeric array; got "
                             f"{'None' if grad is None else grad.dtype}")
        if grad.shape != inputs[name].shape:
            raise ValueError(f"the gradient of {name!r} has shape {grad.shape}; its input has {inputs[name].shape}")
        _compare(report, objective, name, inputs[name], grad, value, rng, fast, n_directions)
    return report
