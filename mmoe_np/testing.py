"""Tools for people who write gradient tests: an assertion, hypothesis strategies, and a reference Adam.

* :func:`assert_gradients_close` checks a model (``model, X, Y``) or a functional op (``(forward, backward), inputs``)
  against central differences and raises an ``AssertionError`` whose message lists the worst entries (analytic and
  numeric values, relative error) and says whether a ReLU kink is near. It works with any test runner.
* Hypothesis strategies (:func:`gradient_cases`, :func:`model_configs`, :func:`op_inputs`, ...) draw model
  configurations, inputs, task mixes and seeds, with the project's own kink avoidance: a draw whose ReLU inputs come
  within :data:`KINK_MARGIN` of 0 is rejected, not checked with a looser tolerance.
* :func:`adam_reference` is Adam written out from Kingma & Ba (2015), Algorithm 1, to test an optimizer against.

hypothesis is optional (``pip install mmoe-np[test]``): it is imported only when a strategy is built, so
``import mmoe_np.testing`` works without it. Nothing here imports pytest.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from . import _validation as V
from .gradcheck import (DEFAULT_DIRECTIONS, DEFAULT_STEP, DEFAULT_TOL, GradientReport, check_gradients, check_op,
                        check_tol)
from .models import MODEL_CLASSES

__all__ = ["TOL", "STEP", "KINK_MARGIN", "assert_gradients_close", "off_kinks", "reject_kinks", "data", "jitter",
           "adam_reference", "assert_matches_adam", "DRAWN_CLASSES", "ModelConfig",
           "widths", "layer_units", "hidden_units", "tower_units", "task_lists", "seeds", "model_configs",
           "gradient_cases", "op_inputs"]

TOL = DEFAULT_TOL    # relative error every analytic gradient must reach in float64
STEP = DEFAULT_STEP  # central-difference step: the checker's default, about eps_machine ** (1/3)
# A step of STEP in one parameter or input moves a pre-activation by STEP times a weight or an activation (O(1)),
# so a ReLU input further than KINK_MARGIN = 100 * STEP from 0 cannot cross the kink during the check.
KINK_MARGIN = 100 * STEP


# ----------------------------------------------------------------------------------------------------------------
# The assertion
# ----------------------------------------------------------------------------------------------------------------
def _is_op(obj: Any) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2 and all(callable(f) for f in obj)


def assert_gradients_close(model_or_op: Any, *args: Any, tol: float = TOL, step: float = STEP, seed: int = 0,
                           fast: bool = False, n_directions: int = DEFAULT_DIRECTIONS,
                           max_entries: int | None = None, wrt: Sequence[str] | None = None,
                           constants: Mapping[str, Any] | None = None, worst: int = 3) -> GradientReport:
    """Assert that backward passes match central differences to a relative error ``tol``; return the report.

    * a model: ``assert_gradients_close(model, X, Y)``: every parameter and X (:func:`mmoe_np.check_gradients`);
    * an op: ``assert_gradients_close((forward, backward), inputs, wrt=..., constants=...)``
      (:func:`mmoe_np.check_op`, with ``constants`` passed to ``forward`` as keywords).

    On failure the ``AssertionError`` shows the report: every array's errors, the ``worst`` entries of each failing
    array with their analytic and numeric values and relative error, and whether a ReLU kink is near.
    """
    tol = check_tol(tol)
    V.int_at_least("worst", worst, 0)
    if _is_op(model_or_op):
        if len(args) != 1:
            raise ValueError(f"an op is checked as assert_gradients_close((forward, backward), inputs); got "
                             f"{len(args)} positional arguments after the op")
        if max_entries is not None:
            raise ValueError("max_entries applies to models; an op's inputs are checked in full (or with fast=True)")
        if constants is not None and not isinstance(constants, Mapping):
            raise ValueError(f"constants must be a dict of keyword arguments for forward; got {constants!r}")
        forward, backward = model_or_op
        report = check_op(forward, backward, args[0], wrt=wrt, step=step, seed=seed, fast=fast,
                          n_directions=n_directions, **(constants or {}))
        what = f"op {getattr(forward, '__name__', 'forward')}/{getattr(backward, '__name__', 'backward')}"
    elif hasattr(model_or_op, "loss_and_grads"):
        if len(args) != 2:
            raise ValueError(f"a model is checked as assert_gradients_close(model, X, Y); got {len(args)} "
                             "positional arguments after the model")
        if wrt is not None or constants is not None:
            raise ValueError("wrt and constants apply to ops; a model's parameters and X are all checked")
        report = check_gradients(model_or_op, *args, step=step, seed=seed, fast=fast, n_directions=n_directions,
                                 max_entries=max_entries)
        what = repr(model_or_op)
    else:
        raise ValueError("model_or_op must be a model (with loss_and_grads, e.g. mn.MMoE) or a pair of functions "
                         f"(forward, backward); got {type(model_or_op).__name__}")
    if not report.passed(tol):
        raise AssertionError(f"gradients of {what} do not match central differences\n{report.format(tol, worst)}")
    return report


def off_kinks(model: Any, X: Any, margin: float = KINK_MARGIN) -> bool:
    """Is every ReLU input of ``model`` on ``X`` further than ``margin`` from its kink at 0?"""
    V.positive_float("margin", margin)
    if not hasattr(model, "relu_margin"):
        raise ValueError(f"model must have relu_margin(X) (every mmoe_np model has); got {type(model).__name__}")
    return bool(model.relu_margin(X) > margin)


def reject_kinks(model: Any, X: Any, margin: float = KINK_MARGIN) -> None:
    """Inside a hypothesis test: reject the draw (``hypothesis.assume``) if a ReLU input is within ``margin`` of 0."""
    _hypothesis().assume(off_kinks(model, X, margin))


# ----------------------------------------------------------------------------------------------------------------
# Data and parameters, as the project's own tests draw them
# ----------------------------------------------------------------------------------------------------------------
def data(n_samples: int, n_features: int, tasks: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal X (N, d) and targets Y (N, K): normal for regression, fair coin flips for binary tasks."""
    n_samples, n_features = V.positive_int("n_samples", n_samples), V.positive_int("n_features", n_features)
    tasks = V.tasks(tasks)
    rng = np.random.default_rng(V.int_at_least("seed", seed, 0))
    X = rng.standard_normal((n_samples, n_features))
    Y = np.column_stack([rng.standard_normal(n_samples) if t == "regression" else rng.integers(0, 2, n_samples)
                         for t in tasks]).astype(float)
    return X, Y


def jitter(model: Any, seed: int, scale: float = 0.3) -> Any:
    """Move every parameter (biases too, which start at 0) to a random nearby point, in place; returns the model.

    Gradients are checked away from the initial point, and non-zero biases keep ReLU inputs off exactly 0 even when
    every unit of the layer below is inactive.
    """
    if not isinstance(getattr(model, "params", None), Mapping):
        raise ValueError(f"model must have a params dict of arrays; got {type(model).__name__}")
    rng = np.random.default_rng(V.int_at_least("seed", seed, 0))
    scale = V.positive_float("scale", scale)
    for p in model.params.values():
        p += scale * rng.standard_normal(p.shape)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Adam from the paper
# ----------------------------------------------------------------------------------------------------------------
def adam_reference(param: Any, grads: Sequence[Any], *, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                   eps: float = 1e-8) -> list[np.ndarray]:
    """Adam as Kingma & Ba (2015), Algorithm 1, write it, in float64: the parameter after each of the steps.

    ``m_t = b1 m_{t-1} + (1 - b1) g_t``, ``v_t = b2 v_{t-1} + (1 - b2) g_t^2``, ``m_hat = m_t / (1 - b1^t)``,
    ``v_hat = v_t / (1 - b2^t)``, ``theta_t = theta_{t-1} - lr m_hat / (sqrt(v_hat) + eps)``.
    """
    theta = np.array(param, dtype=np.float64)
    lr, eps = V.positive_float("lr", lr), V.positive_float("eps", eps)
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0 <= V.positive_float(name, beta, allow_zero=True) < 1:
            raise ValueError(f"{name} must be in [0, 1); got {beta!r}")
    if isinstance(grads, (str, bytes, np.ndarray)) or not isinstance(grads, Sequence):
        raise ValueError(f"grads must be a list of gradients, one per step; got {type(grads).__name__}")
    m, v, trajectory = np.zeros_like(theta), np.zeros_like(theta), []
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        if g.shape != theta.shape:
            raise ValueError(f"grads[{t - 1}] has shape {g.shape}; param has {theta.shape}")
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append(theta.copy())
    return trajectory


def assert_matches_adam(optimizer_class: Callable[..., Any], *, steps: int = 5, seed: int = 0, lr: float = 1e-3,
                        beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, rtol: float = 1e-9) -> None:
    """Run ``optimizer_class(params, lr=, beta1=, beta2=, eps=)`` for ``steps`` steps on random float64 parameters
    and gradients and assert that every parameter follows :func:`adam_reference` to ``rtol`` after every step."""
    if not callable(optimizer_class):
        raise ValueError(f"optimizer_class must be an optimizer class such as mn.Adam; got {optimizer_class!r}")
    steps = V.positive_int("steps", steps)
    rtol = check_tol(rtol)
    rng = np.random.default_rng(V.int_at_least("seed", seed, 0))
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    start = {name: p.copy() for name, p in params.items()}
    grads = [{name: rng.standard_normal(p.shape) * 10.0 ** rng.uniform(-3, 1) for name, p in params.items()}
             for _ in range(steps)]
    optimizer = optimizer_class(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
    expected = {name: adam_reference(start[name], [g[name] for g in grads], lr=lr, beta1=beta1, beta2=beta2, eps=eps)
                for name in params}
    for t, g in enumerate(grads):
        optimizer.step(g)
        for name, p in params.items():
            want = expected[name][t]
            worst = float(np.max(np.abs(p - want) / np.maximum(np.abs(want - start[name]), 1e-300)))
            if not np.allclose(p - start[name], want - start[name], rtol=rtol, atol=0):
                raise AssertionError(
                    f"{getattr(optimizer_class, '__name__', optimizer_class)} differs from Adam (Kingma & Ba, "
                    f"Algorithm 1) at step {t + 1}, parameter {name!r}: largest difference {worst:.3e} relative to "
                    f"the reference's total update (rtol {rtol:g}); e.g. entry 0: got {p.reshape(-1)[0]!r}, "
                    f"expected {want.reshape(-1)[0]!r}")


# ----------------------------------------------------------------------------------------------------------------
# Hypothesis strategies (hypothesis is imported only here)
# ----------------------------------------------------------------------------------------------------------------
def _hypothesis() -> Any:
    try:
        import hypothesis
        import hypothesis.strategies  # noqa: F401  (the submodule, for hypothesis.strategies below)
    except ImportError as err:
        raise ImportError("mmoe_np.testing's strategies need hypothesis, an optional dependency: "
                          "pip install mmoe-np[test]") from err
    return hypothesis


def widths(max_width: int = 4) -> Any:
    """Layer widths 1..max_width."""
    return _hypothesis().strategies.integers(1, V.positive_int("max_width", max_width))


def layer_units(min_layers: int = 1, max_layers: int = 2, max_width: int = 4) -> Any:
    """Tuples of layer widths such as ``(3,)`` or ``(2, 4)``: hidden units, or (from 0 layers) tower units."""
    min_layers = V.int_at_least("min_layers", min_layers, 0)
    max_layers = V.int_at_least("max_layers", max_layers, min_layers)
    return _hypothesis().strategies.lists(widths(max_width), min_size=min_layers, max_size=max_layers).map(tuple)


def hidden_units(max_layers: int = 2, max_width: int = 4) -> Any:
    """One or more hidden layers: experts, bottoms, per-task networks."""
    return layer_units(1, max_layers, max_width)


def tower_units(max_layers: int = 2, max_width: int = 4) -> Any:
    """Zero or more tower layers (a tower with none is one linear output)."""
    return layer_units(0, max_layers, max_width)


def task_lists(max_tasks: int = 3) -> Any:
    """Task mixes: 1..max_tasks tasks, each "regression" or "binary"."""
    st = _hypothesis().strategies
    return st.lists(st.sampled_from(list(V.TASK_TYPES)), min_size=1,
                    max_size=V.positive_int("max_tasks", max_tasks)).map(tuple)


def seeds() -> Any:
    """Seeds for model initialisation and data."""
    return _hypothesis().strategies.integers(0, 2 ** 16)


# The models (keys of mmoe_np.MODEL_CLASSES) whose options model_configs knows how to draw
DRAWN_CLASSES = ("SingleTask", "SharedBottom", "OMoE", "MMoE", "L2Constrained", "CrossStitch", "TensorFactorization")


class ModelConfig(NamedTuple):
    """A drawn model: ``build()`` is ``MODEL_CLASSES[name](n_features, tasks, seed=seed, **options)``, jittered."""

    name: str
    n_features: int
    tasks: tuple[str, ...]
    options: dict
    seed: int

    def build(self, jitter_scale: float = 0.3) -> Any:
        """The model in float64, its parameters moved off the initial point by :func:`jitter` (0: not moved)."""
        V.positive_float("jitter_scale", jitter_scale, allow_zero=True)
        model = MODEL_CLASSES[self.name](self.n_features, self.tasks, seed=self.seed, **self.options)
        return jitter(model, self.seed, jitter_scale) if jitter_scale else model


def _classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return DRAWN_CLASSES
    if isinstance(classes, str) or not classes or any(c not in DRAWN_CLASSES for c in classes):
        raise ValueError(f"classes must be a non-empty list of model class names from {DRAWN_CLASSES}; "
                         f"got {classes!r}")
    return tuple(classes)


def model_configs(classes: Sequence[str] | None = None, max_features: int = 5, max_tasks: int = 3,
                  max_width: int = 4) -> Any:
    """Model configurations (:class:`ModelConfig`) of the named classes (default: all seven), every size and
    option drawn: widths, task mixes, experts, the baselines' options, Tucker ranks that fit the widths."""
    hypothesis = _hypothesis()
    st = hypothesis.strategies
    classes = _classes(classes)
    max_features = V.positive_int("max_features", max_features)

    @st.composite
    def draw_config(draw: Callable[[Any], Any]) -> ModelConfig:
        name = draw(st.sampled_from(classes))
        d = draw(st.integers(1, max_features))
        tasks = draw(task_lists(max_tasks))
        hidden, towers = draw(hidden_units(2, max_width)), draw(tower_units(2, max_width))
        if name in ("OMoE", "MMoE"):
            options = dict(n_experts=draw(st.integers(1, 4)), expert_units=hidden, tower_units=towers)
        elif name == "SharedBottom":
            options = dict(bottom_units=hidden, tower_units=towers)
        else:
            options = dict(hidden_units=hidden, tower_units=towers)
        if name == "L2Constrained":
            options.update(l2_weight=draw(st.floats(0, 1)), tie_towers=draw(st.booleans()))
        elif name == "CrossStitch":
            options.update(alpha_self=draw(st.floats(0, 1)))
        elif name == "TensorFactorization":
            sizes = (d, *hidden)
            options["ranks"] = tuple(draw(st.integers(1, limit)) for limit in
                                     (min(sizes[:-1]), min(sizes[1:]), len(tasks)))
        return ModelConfig(name, d, tasks, options, draw(seeds()))

    return draw_config()


def gradient_cases(classes: Sequence[str] | None = None, max_samples: int = 6, margin: float = KINK_MARGIN,
                   **config_options: Any) -> Any:
    """``(model, X, Y)``: a jittered float64 model from :func:`model_configs` and data from :func:`data`, with
    every ReLU input further than ``margin`` from 0 (closer draws are rejected), ready for
    :func:`assert_gradients_close`."""
    hypothesis = _hypothesis()
    st = hypothesis.strategies
    max_samples = V.positive_int("max_samples", max_samples)
    V.positive_float("margin", margin)
    configs = model_configs(classes, **config_options)

    @st.composite
    def draw_case(draw: Callable[[Any], Any]) -> tuple[Any, np.ndarray, np.ndarray]:
        config = draw(configs)
        model = config.build()
        X, Y = data(draw(st.integers(1, max_samples)), config.n_features, config.tasks, config.seed)
        hypothesis.assume(off_kinks(model, X, margin))
        return model, X, Y

    return draw_case()


def op_inputs(shapes: Mapping[str, Any], scale: float = 1.0, min_abs: Mapping[str, float] | None = None) -> Any:
    """Dicts of float64 arrays for an op: ``shapes`` maps each input name to a shape (a tuple, or a strategy of
    tuples); entries are ``scale`` times standard normal, drawn from a seed. ``min_abs`` maps input names to a margin
    (e.g. ``{"z": KINK_MARGIN}`` for a ReLU input): a draw with an entry closer to 0 is rejected."""
    hypothesis = _hypothesis()
    st = hypothesis.strategies
    if not isinstance(shapes, Mapping) or not shapes:
        raise ValueError(f"shapes must be a non-empty dict from input names to shapes; got {shapes!r}")
    scale = V.positive_float("scale", scale)
    min_abs = dict(min_abs or {})
    unknown = [name for name in min_abs if name not in shapes]
    if unknown:
        raise ValueError(f"min_abs names {unknown}, which are not among the shapes {list(shapes)}")
    for name, m in min_abs.items():
        V.positive_float(f"min_abs[{name!r}]", m)
    strategies = {}
    for name, shape in shapes.items():
        if isinstance(shape, st.SearchStrategy):
            strategies[name] = shape
        elif isinstance(shape, tuple) and all(isinstance(n, numbers.Integral) and n >= 1 for n in shape):
            strategies[name] = st.just(shape)
        else:
            raise ValueError(f"shapes[{name!r}] must be a tuple of positive sizes or a strategy of them; "
                             f"got {shape!r}")

    @st.composite
    def draw_inputs(draw: Callable[[Any], Any]) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(draw(seeds()))
        arrays = {name: scale * rng.standard_normal(draw(strategy)) for name, strategy in strategies.items()}
        for name, m in min_abs.items():
            hypothesis.assume(np.abs(arrays[name]).min() > m)
        return arrays

    return draw_inputs()
