"""Label Pearson correlation vs weight cosine similarity: the paper's Fig. 2 (Ma et al., KDD 2018, Sec. 3.2).

For each task correlation ``p`` (the cosine of ``w1, w2``) the study draws ``runs`` independent task pairs and
data sets of ``n_points`` points and measures the Pearson correlation of the two labels; Fig. 2 plots its mean with
an error bar of 2 standard deviations over 100 trials of 10k points. In the linear case (``n_sines = 0``) the label
correlation is ``p * c^2 / (c^2 + noise_std^2)``, i.e. ~p; the sines pull it below ``p``.

Shortcut, exact in distribution: the labels see ``x`` only through ``g = U x`` (``U = [u1; u2]``), and for
``x ~ N(0, I_d)`` with orthonormal ``U``, ``g ~ N(0, I_2)`` whatever ``U`` and ``d`` are. So each run draws
``g`` (n, 2) and ``z = g @ weight_coordinates(p, c).T`` instead of ``X`` (n, d) and ``X @ w.T``: O(R n) work instead of
O(R n d), vectorised over the runs. ``tests/test_correlation_study.py`` checks it against :func:`make_synthetic`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from ..data.synthetic import SyntheticSpec, sine_labels, weight_coordinates
from .common import run_std, staged_outputs, write_csv, write_json

__all__ = ["DEFAULT_CORRELATIONS", "OUTPUT_NAMES", "CorrelationStudy", "label_correlation_study", "label_pearson",
           "write_label_correlation_csv", "write_label_correlation_json"]

DEFAULT_CORRELATIONS = tuple(round(0.1 * k, 1) for k in range(11))  # 0.0, 0.1, ..., 1.0
_CHUNK_ELEMENTS = 1 << 22  # cap on the (runs, n, 2, m) sine temporaries: 4M float64 = 32 MiB
OUTPUT_NAMES = ("correlation.csv", "correlation.json", "correlation.png")  # what CorrelationStudy.write writes


def label_pearson(Y: np.ndarray) -> np.ndarray:
    """Pearson correlation of the two label columns: Y (..., n, 2) -> (...,).

    ``r = sum(a b) / sqrt(sum(a^2) sum(b^2))`` with ``a, b`` the centred columns; one value per leading index.
    """
    Y = np.asarray(Y)
    if Y.ndim < 2 or Y.shape[-1] != 2 or Y.shape[-2] < 2:
        raise ValueError(f"Y must have shape (..., n, 2) with n >= 2 points and one column per task; "
                         f"got shape {Y.shape}")
    Yc = Y - Y.mean(axis=-2, keepdims=True)
    ss = (Yc * Yc).sum(axis=-2)
    return (Yc[..., 0] * Yc[..., 1]).sum(axis=-1) / np.sqrt(ss[..., 0] * ss[..., 1])


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class CorrelationStudy:
    """``per_run[i, r]``: label Pearson correlation of run ``r`` at weight cosine ``correlations[i]``.

    ``correlations`` (P,), ``per_run`` (P, R); ``seconds`` is the wall time of the study.
    """

    correlations: np.ndarray
    per_run: np.ndarray
    n_points: int
    seed: int | None
    spec: SyntheticSpec
    seconds: float

    @property
    def runs(self) -> int:
        return self.per_run.shape[1]

    @property
    def mean(self) -> np.ndarray:
        """Mean label correlation per ``p`` (P,)."""
        return self.per_run.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation over the runs per ``p`` (P,), ddof=1; Fig. 2's error bar is ``2 * std``."""
        return run_std(self.per_run, axis=1)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per ``p`` (as text, e.g. "0.5"), the mean and standard deviation over the runs."""
        return {f"{p:g}": {"mean": float(m), "std": float(s)} for p, m, s in zip(self.correlations, self.mean,
                                                                                 self.std)}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, wall time, and per ``p`` the mean and std."""
        return {"figure": "Ma et al. KDD 2018, Fig. 2: label Pearson correlation vs weight cosine similarity",
                "n_points": self.n_points, "runs": self.runs, "seed": self.seed, "generator": asdict(self.spec),
                "seconds": self.seconds, "correlations": self.correlations.tolist(), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "summary": self.summary()}

    def write(self, out: str | Path, plots: bool = True) -> list[Path]:
        """Write ``correlation.csv``, ``correlation.json`` and (with ``plots``) ``correlation.png`` into ``out``,
        all or none (:func:`~mmoe_np.experiments.common.staged_outputs`); returns their paths."""
        from .figures import plot_label_correlation  # here: only writing needs the plots

        with staged_outputs(out, OUTPUT_NAMES) as stage:
            files = [write_label_correlation_csv(self, stage / "correlation.csv"),
                     write_label_correlation_json(self, stage / "correlation.json")]
            if plots:
                files.append(plot_label_correlation(self, stage / "correlation.png"))
        return [Path(out) / f.name for f in files]


def label_correlation_study(correlations: Sequence[float] = DEFAULT_CORRELATIONS, n_points: int = 10_000,
                            runs: int = 100, seed: int | None = 0, **generator_kwargs: Any) -> CorrelationStudy:
    """Fig. 2: for each ``p``, the label correlation of ``runs`` fresh task pairs of ``n_points`` points each.

    Each run draws new ``alpha, beta`` (and, implicitly, ``u, w, x``) and noise. ``generator_kwargs`` are the
    :class:`SyntheticSpec` fields (``scale, n_sines, alpha_std, beta_std, noise_std``); the input dimension does
    not enter (see the module docstring). The default study (11 values, 10k points, 100 runs) takes seconds.
    """
    start = time.perf_counter()
    spec = SyntheticSpec(**generator_kwargs)
    ps = np.array([V.correlation(p) for p in correlations], dtype=np.float64)
    if ps.size == 0:
        raise ValueError("correlations must contain at least one value")
    n, R, rng = V.int_at_least("n_points", n_points, 2), V.positive_int("runs", runs), V.rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // (2 * n * max(spec.n_sines, 1)))
    per_run = np.empty((ps.size, R))
    for i, p in enumerate(ps):
        alpha, beta = spec.draw_sines(rng, (R,))  # (R, m): fresh sine parameters per run
        z = rng.standard_normal((R, n, 2)) @ weight_coordinates(p, spec.scale).T  # (R, n, 2): z_t = w_t.x
        noise = spec.noise_std * rng.standard_normal((R, n, 2))
        for r in range(0, R, chunk):  # bounds the (chunk, n, 2, m) temporary of sine_labels; no randomness here
            Y = sine_labels(z[r:r + chunk], alpha[r:r + chunk], beta[r:r + chunk]) + noise[r:r + chunk]
            per_run[i, r:r + chunk] = label_pearson(Y)
    return CorrelationStudy(correlations=ps, per_run=per_run, n_points=n, seed=seed, spec=spec,
                            seconds=time.perf_counter() - start)


def write_label_correlation_csv(result: CorrelationStudy, path: str | Path) -> Path:
    """CSV, one row per ``p``: ``correlation, mean, std, lower, upper`` with ``lower/upper = mean -+ 2 std``."""
    return write_csv(path, ["correlation", "mean", "std", "lower", "upper"],
                     ([f"{p:.6g}", f"{m:.6f}", f"{s:.6f}", f"{m - 2 * s:.6f}", f"{m + 2 * s:.6f}"]
                      for p, m, s in zip(result.correlations, result.mean, result.std)))


def write_label_correlation_json(result: CorrelationStudy, path: str | Path) -> Path:
    """JSON of :meth:`CorrelationStudy.as_dict`."""
    return write_json(path, result.as_dict(), with_environment=True)
