"""The paper's synthetic task pair with controlled task correlation (Ma et al., KDD 2018, Sec. 3.2).

Recipe, for input dimension ``d``, task correlation ``p`` in [-1, 1] and scale ``c``:

1. draw orthonormal ``u1, u2`` in R^d;
2. ``w1 = c u1``,  ``w2 = c (p u1 + sqrt(1 - p^2) u2)``, so ``|w1| = |w2| = c`` and ``cos(w1, w2) = p``;
3. ``x ~ N(0, I_d)``;
4. ``y_t = w_t.x + sum_{j=1..m} sin(alpha_j w_t.x + beta_j) + eps_t``, with the SAME ``alpha, beta`` for both
   tasks and independent noise ``eps_t ~ N(0, noise_std^2)``.

The paper leaves ``c``, ``m``, the law of ``alpha, beta`` and the meaning of its ``N(0, 0.01)`` open; the defaults
here (``c = 1``, ``m = 10``, ``alpha, beta ~ N(0, 1)``, ``noise_std = 0.1``, i.e. variance 0.01) and the reasons for
them are in ``docs/synthetic-setup.md``.

Two levels of API:

* :class:`SyntheticSpec` is the *law* of task pairs (everything but ``p`` and ``d``); ``spec.draw(d, p, rng)``
  returns one :class:`SyntheticTasks`, the fixed generating quantities ``u, w, alpha, beta`` of one task pair.
* ``tasks.sample(n, rng)`` draws ``(X, Y)`` from that task pair, so a training and a test set of the SAME tasks are
  two calls; :func:`make_synthetic` does the whole thing in one call (``n_test=`` adds the test set).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _validation as V

__all__ = ["SyntheticSpec", "SyntheticTasks", "SyntheticData", "make_synthetic", "sine_labels", "weight_coordinates"]

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only float64 copy: the generating quantities are shared by every sample drawn from a task pair."""
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def weight_coordinates(correlation: float, scale: float) -> np.ndarray:
    """The weights in the ``(u1, u2)`` basis: ``W = c [[1, 0], [p, sqrt(1 - p^2)]]`` (2, 2), so ``w = W @ u``.

    ``correlation`` p in [-1, 1], ``scale`` c > 0.
    """
    p, c = V.correlation(correlation), V.positive_float("scale", scale)
    return c * np.array([[1.0, 0.0], [p, np.sqrt(1.0 - p * p)]])


def sine_labels(z: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Noise-free labels ``f(z) = z + sum_j sin(alpha_j z + beta_j)`` of the projections ``z_t = w_t.x``.

    ``z`` (..., n, 2); ``alpha, beta`` (..., m) of one shape, one set per leading index (broadcast against z's),
    shared by both tasks -> (..., n, 2). The ``m`` sines are added one at a time over whole arrays (a broadcast
    axis of length m summed away would be a short-axis reduction, several times slower).
    """
    z, alpha, beta = np.asarray(z), np.asarray(alpha), np.asarray(beta)
    if z.ndim < 2 or z.shape[-1] != 2:
        raise ValueError(f"z must have shape (..., n, 2), one column per task; got shape {z.shape}")
    if alpha.ndim < 1 or alpha.shape != beta.shape:
        raise ValueError(f"alpha and beta must have one shape (..., m); got {alpha.shape} and {beta.shape}")
    try:
        np.broadcast_shapes(alpha.shape[:-1], z.shape[:-2])
    except ValueError:
        raise ValueError(f"alpha and beta's leading axes {alpha.shape[:-1]} do not broadcast against z's "
                         f"{z.shape[:-2]}") from None
    a, b = alpha[..., None, None, :], beta[..., None, None, :]               # (..., 1, 1, m)
    labels = np.broadcast_to(z, np.broadcast_shapes(z.shape, a.shape[:-1])).astype(np.result_type(z, a, b))  # a copy
    term = np.empty_like(labels)
    for j in range(alpha.shape[-1]):
        np.multiply(z, a[..., j], out=term)
        term += b[..., j]
        labels += np.sin(term, out=term)
    return labels


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SyntheticTasks:
    """One task pair: orthonormal ``u`` (2, d), ``w = weight_coordinates(p, c) @ u`` (2, d), ``alpha, beta`` (m,).

    Build it with :meth:`SyntheticSpec.draw`, or directly from given ``u, alpha, beta`` (the paper calls alpha and
    beta "given parameters"). All arrays are read-only float64.
    """

    u: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    correlation: float
    scale: float
    noise_std: float
    w: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        u, alpha, beta = _frozen(self.u), _frozen(self.alpha), _frozen(self.beta)
        if u.ndim != 2 or u.shape[0] != 2 or u.shape[1] < 2:
            raise ValueError(f"u must have shape (2, n_features) with n_features >= 2; got {u.shape}")
        if not np.allclose(u @ u.T, np.eye(2), rtol=0.0, atol=1e-10):
            raise ValueError("u must hold two orthonormal rows (u @ u.T == I)")
        if alpha.ndim != 1 or alpha.shape != beta.shape:
            raise ValueError(f"alpha and beta must be 1-D of one length m; got {alpha.shape} and {beta.shape}")
        if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta))):
            raise ValueError("alpha and beta must be finite")
        p = V.correlation(self.correlation)
        c = V.positive_float("scale", self.scale)
        for name, value in (("u", u), ("alpha", alpha), ("beta", beta), ("correlation", p), ("scale", c),
                            ("noise_std", V.positive_float("noise_std", self.noise_std, allow_zero=True))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "w", _frozen(weight_coordinates(p, c) @ u))

    @property
    def n_features(self) -> int:
        return self.u.shape[1]

    @property
    def n_sines(self) -> int:
        return self.alpha.shape[0]

    def mean(self, X: np.ndarray) -> np.ndarray:
        """The noise-free labels ``E[Y | X] = sine_labels(X @ w.T, alpha, beta)``: X (n, d) -> (n, 2) float64."""
        return self._mean(V.features(X, self.n_features, np.dtype(np.float64)))

    def _mean(self, X: np.ndarray) -> np.ndarray:
        """:meth:`mean` without the checks, for the X (n, d) float64 that :meth:`sample` draws (n may be 0)."""
        return sine_labels(X @ self.w.T, self.alpha, self.beta)

    def sample(self, n: int, rng: SeedLike = None, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` fresh points ``x ~ N(0, I_d)`` and their labels -> ``X`` (n, d), ``Y`` (n, 2).

        Computed in float64 and then cast, so float32 data are the float64 data rounded. ``n = 0`` gives empty
        arrays. Pass a Generator to continue a stream (as :func:`make_synthetic` does for its test set).
        """
        n, dt, rng = V.int_at_least("n", n, 0), V.dtype(dtype), V.rng(rng)
        X = rng.standard_normal((n, self.n_features))
        Y = self._mean(X) + self.noise_std * rng.standard_normal((n, 2))
        return X.astype(dt), Y.astype(dt)


@dataclass(frozen=True)
class SyntheticSpec:
    """The law of task pairs: scale ``c``, ``m = n_sines`` sines with ``alpha ~ N(0, alpha_std^2)`` and
    ``beta ~ N(0, beta_std^2)``, label noise ``eps ~ N(0, noise_std^2)``. Defaults: docs/synthetic-setup.md."""

    scale: float = 1.0
    n_sines: int = 10
    alpha_std: float = 1.0
    beta_std: float = 1.0
    noise_std: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", V.positive_float("scale", self.scale))
        object.__setattr__(self, "n_sines", V.int_at_least("n_sines", self.n_sines, 0))
        for name in ("alpha_std", "beta_std", "noise_std"):
            object.__setattr__(self, name, V.positive_float(name, getattr(self, name), allow_zero=True))

    def draw_sines(self, rng: np.random.Generator, shape: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """``alpha, beta`` of shape (*shape, m): one set of sine parameters per index of ``shape``."""
        alpha = self.alpha_std * rng.standard_normal((*shape, self.n_sines))
        beta = self.beta_std * rng.standard_normal((*shape, self.n_sines))
        return alpha, beta

    def draw(self, n_features: int, correlation: float, rng: SeedLike = None) -> SyntheticTasks:
        """Draw one task pair: ``u`` = the Q factor of a (d, 2) Gaussian matrix (Haar-random orthonormal pair)."""
        d, rng = V.int_at_least("n_features", n_features, 2), V.rng(rng)
        q, r = np.linalg.qr(rng.standard_normal((d, 2)))
        u = (q * np.sign(np.diag(r))).T  # sign fix: makes the pair uniformly distributed, not just orthonormal
        alpha, beta = self.draw_sines(rng)
        return SyntheticTasks(u=u, alpha=alpha, beta=beta, correlation=correlation, scale=self.scale,
                              noise_std=self.noise_std)


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class SyntheticData:
    """A training set ``X`` (n, d), ``Y`` (n, 2) and a test set ``X_test`` (n_test, d), ``Y_test`` (n_test, 2)
    (empty when ``n_test = 0``) drawn from the same :class:`SyntheticTasks`, with the law and seed that made them."""

    X: np.ndarray
    Y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    tasks: SyntheticTasks
    spec: SyntheticSpec
    seed: SeedLike

    # The generating quantities, read through to the shared tasks (training and test set alike).
    u = property(lambda self: self.tasks.u, doc="(2, d) orthonormal directions u1, u2.")
    w = property(lambda self: self.tasks.w, doc="(2, d) task weights, |w_t| = c and cos(w1, w2) = p.")
    alpha = property(lambda self: self.tasks.alpha, doc="(m,) sine frequencies, shared by both tasks.")
    beta = property(lambda self: self.tasks.beta, doc="(m,) sine phases, shared by both tasks.")
    correlation = property(lambda self: self.tasks.correlation, doc="The task correlation p = cos(w1, w2).")


def make_synthetic(n_samples: int, n_features: int = 100, *, correlation: float, scale: float = 1.0,
                   n_sines: int = 10, alpha_std: float = 1.0, beta_std: float = 1.0, noise_std: float = 0.1,
                   n_test: int = 0, seed: SeedLike = None, dtype: Any = np.float64) -> SyntheticData:
    """One task pair with ``cos(w1, w2) = correlation`` and ``n_samples`` training (+ ``n_test`` test) points.

    Defaults (the paper fixes only d = 100): ``scale = 1`` makes ``w_t.x ~ N(0, 1)``, so the sines' arguments are
    O(1) and about a third of the label variance is nonlinear; ``alpha, beta ~ N(0, 1)`` as in every public
    reproduction; ``n_sines = 10``; ``noise_std = 0.1`` reads the paper's ``N(0, 0.01)`` as a variance, which is
    also the test-MSE floor (0.01). Details and sources: ``docs/synthetic-setup.md``.

    One stream ``np.random.default_rng(seed)`` draws, in order: the tasks (``u``, then ``alpha, beta``), the
    training set (``X``, then the noise), the test set. So the training set of a seed does not depend on ``n_test``,
    and the test set shares ``u, w, alpha, beta`` with it but has independent ``x`` and noise.

    >>> data = make_synthetic(1000, correlation=0.5, n_test=200, seed=0)
    >>> data.X.shape, data.Y.shape, data.X_test.shape, data.w.shape
    ((1000, 100), (1000, 2), (200, 100), (2, 100))
    """
    n_samples, n_test = V.int_at_least("n_samples", n_samples, 1), V.int_at_least("n_test", n_test, 0)
    spec = SyntheticSpec(scale=scale, n_sines=n_sines, alpha_std=alpha_std, beta_std=beta_std, noise_std=noise_std)
    dt, rng = V.dtype(dtype), V.rng(seed)
    tasks = spec.draw(n_features, V.correlation(correlation), rng)
    X, Y = tasks.sample(n_samples, rng, dt)
    X_test, Y_test = tasks.sample(n_test, rng, dt)
    return SyntheticData(X=X, Y=Y, X_test=X_test, Y_test=Y_test, tasks=tasks, spec=spec, seed=seed)
