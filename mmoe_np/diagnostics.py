"""Gate diagnostics: what a gated model's gates do on a set of inputs.

:func:`gate_report` reads ``model.gate_weights(X)`` (N, K, E) (MMoE, OMoE, CGC, PLE: each task's row over the
experts its gate mixes) and summarises, per task k:

* **utilisation** ``u_k[e] = mean_n g_k[n, e]``: how much of the task's mixture expert e carries on average;
* **entropy** ``mean_n H(g_k[n])``, ``H(p) = -sum_e p_e log p_e`` in nats (0: one expert; log E: uniform);
* **polarisation** the fraction of rows whose largest gate weight exceeds 0.95 (Zhao et al., 2019: a gate that
  has collapsed onto single experts);
* **overlap** of two tasks' gates, when they mix the same experts (MMoE, OMoE): ``mean_n sum_e min(g_k, g_l)``,
  the mass two distributions share (1: identical gates, 0: disjoint experts).

Stacked replicas (params (R, ...)) give one value per replica: every array gains the leading axis R.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["POLARISED", "GateReport", "gate_report", "gate_overlap", "gate_entropy"]

POLARISED = 0.95  # a row is polarised when its largest gate weight exceeds this


def gate_entropy(g: np.ndarray) -> np.ndarray:
    """``-sum_e g_e log g_e`` over the last axis, in nats, with ``0 log 0 = 0`` (sparse top-k gates)."""
    logs = np.log(np.where(g > 0, g, 1.0))
    return -np.sum(g * logs, axis=-1)


def gate_overlap(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``mean_n sum_e min(g[n, e], h[n, e])``: the mass two gates (..., N, E) put on the same experts, row by row."""
    return np.mean(np.sum(np.minimum(g, h), axis=-1), axis=-1)


@dataclass(eq=False)
class GateReport:
    """The gates of ``model_name`` on ``n_rows`` inputs. Arrays carry the model's replica axes in front.

    * ``utilisation`` (..., K, E): mean gate weight per task and expert;
    * ``entropy`` (..., K): mean gate entropy per task (nats); ``max_entropy`` = log E;
    * ``polarised`` (..., K): fraction of rows whose largest weight exceeds :data:`POLARISED`;
    * ``overlap`` (..., K, K) or None: gate overlap of every task pair (1 on the diagonal); None when the tasks'
      gates mix different experts (CGC, PLE);
    * ``expert_labels``: a label per expert column (for CGC/PLE: ``shared 1..S``, then ``own 1..T``).
    """

    model_name: str
    n_rows: int
    utilisation: np.ndarray
    entropy: np.ndarray
    polarised: np.ndarray
    overlap: np.ndarray | None
    expert_labels: list[str]

    @property
    def max_entropy(self) -> float:
        return float(np.log(self.utilisation.shape[-1]))

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (nested lists)."""
        return {"model": self.model_name, "n_rows": self.n_rows, "expert_labels": self.expert_labels,
                "utilisation": self.utilisation.tolist(), "entropy": self.entropy.tolist(),
                "max_entropy": self.max_entropy, "polarised": self.polarised.tolist(),
                "overlap": None if self.overlap is None else self.overlap.tolist()}

    def format(self, digits: int = 3) -> str:
        """A table per task (one model, not replicas): utilisation per expert, entropy, polarisation; the overlap."""
        if self.utilisation.ndim != 2:
            raise ValueError("format shows one model; for stacked replicas read the arrays (leading axis R)")
        lines = [f"gates of {self.model_name} on {self.n_rows} rows (entropy in nats, max {self.max_entropy:.3f}; "
                 f"polarised: largest weight > {POLARISED})",
                 "task  " + " ".join(f"{label:>9}" for label in self.expert_labels) + "   entropy  polarised"]
        for k, row in enumerate(self.utilisation):
            lines.append(f"{k:<5} " + " ".join(f"{u:9.{digits}f}" for u in row)
                         + f"   {self.entropy[k]:7.{digits}f}  {self.polarised[k]:9.{digits}f}")
        if self.overlap is not None and self.overlap.shape[-1] > 1:
            pairs = [f"{k}-{l}: {self.overlap[k, l]:.{digits}f}" for k in range(self.overlap.shape[0])
                     for l in range(k + 1, self.overlap.shape[1])]
            lines.append("gate overlap " + ", ".join(pairs))
        return "\n".join(lines)


def _expert_labels(model: Any, n_experts: int) -> list[str]:
    if hasattr(model, "n_task_experts"):  # CGC / PLE: each task's gate over [the shared experts, its own]
        return ([f"shared {j + 1}" for j in range(model.n_shared_experts)]
                + [f"own {t + 1}" for t in range(model.n_task_experts)])
    return [f"expert {e + 1}" for e in range(n_experts)]


def gate_report(model: Any, X: Any) -> GateReport:
    """The gate diagnostics of ``model`` (anything with ``gate_weights(X) -> (..., N, K, E)``: MMoE, OMoE, CGC,
    PLE) on inputs X (N, n_features). See the module docstring for each quantity."""
    if not callable(getattr(model, "gate_weights", None)):
        raise ValueError(f"model must be a gated model (with gate_weights(X): MMoE, OMoE, CGC, PLE); got "
                         f"{type(model).__name__}")
    g = np.asarray(model.gate_weights(X), dtype=np.float64)           # (..., N, K, E)
    by_task = np.swapaxes(g, -3, -2)                                  # (..., K, N, E)
    utilisation = by_task.mean(axis=-2)
    entropy = gate_entropy(by_task).mean(axis=-1)
    polarised = (by_task.max(axis=-1) > POLARISED).mean(axis=-1)
    overlap = None
    if not hasattr(model, "n_task_experts"):  # every task's gate mixes the same experts
        overlap = gate_overlap(by_task[..., :, None, :, :], by_task[..., None, :, :, :])  # (..., K, K)
    return GateReport(type(model).__name__, g.shape[-3], utilisation, entropy, polarised, overlap,
                      _expert_labels(model, g.shape[-1]))
