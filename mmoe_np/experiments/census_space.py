"""The Census-income tuner's search spaces (:mod:`~mmoe_np.experiments.census_tune` searches them).

A configuration is flat: the keys of :data:`TRAINING_SPACE` (``lr``, ``batch_size`` and the regularisers
``weight_decay``, ``dropout``, ``schedule``: :data:`FIT_KEYS`, passed to
:func:`~mmoe_np.experiments.census_runs.fit_run`; ``numeric``, the data's transform) and the model's own
(:data:`SPACES`: its :class:`ModelSpace` turns them into constructor sizes within :data:`UNIT_CAP` units per layer).
:func:`sample_config` draws configuration ``trial`` of a model; :func:`check_fixed` checks the keys a search pins.
A regulariser or schedule the trainer learns to take is one more entry in :data:`TRAINING_SPACE` (and in
:data:`FIT_KEYS` if ``fit_run`` takes it), drawn like the regularisers from a stream of its own, so the keys drawn
before it stay as they were (a search begun without it resumes with it held at its default), or in a model's
``params``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import _validation as V
from ..data.census import NUMERIC_TRANSFORMS, check_numeric
from ..optim import SCHEDULES
from . import census_runs
from .census_runs import REGULARISERS, check_regulariser

__all__ = ["LogUniform", "IntLogUniform", "Choice", "ModelSpace", "REGULARISATION_SPACE", "TRAINING_SPACE",
           "FIT_KEYS", "SPACES", "UNIT_CAP", "TOWER_UNITS", "sample_config", "check_fixed"]

UNIT_CAP = 2048          # hidden units per layer, all tasks' networks together (the paper's cap)
TOWER_UNITS = (8,)       # every model's towers, as in the untuned benchmark


@dataclass(frozen=True)
class LogUniform:
    """A float whose logarithm is uniform on [log low, log high]."""
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))


@dataclass(frozen=True)
class IntLogUniform:
    """An integer in [low, high], log-uniform: ``floor(exp(u))``, u uniform on [log low, log(high + 1))."""
    low: int
    high: int

    def sample(self, rng: np.random.Generator) -> int:
        return min(self.high, int(np.exp(rng.uniform(np.log(self.low), np.log(self.high + 1)))))


@dataclass(frozen=True)
class Choice:
    """One of ``options``, each equally likely."""
    options: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]


# What every model tunes alike: the learning rate, the batch size, the transform of the heavy-tailed columns, and
# the regularisers (drawn from a stream of their own, see sample_config). weight_decay: L2-Constrained's range for
# its alpha. The decay shrinks every weight by exp(-lr wd) per step; a 9-epoch trial at lr 1e-3 and batch 1,024 takes
# about 1,750 steps, so below 1e-4 (two draws in five) it shrinks them by < 0.02%, as good as none, and at 0.1 by a
# sixth: the range holds "off" and strong decay alike, without a separate 0.
REGULARISATION_SPACE: dict[str, Any] = {
    "weight_decay": LogUniform(1e-6, 1e-1),
    "dropout": Choice((0.0, 0.1, 0.2, 0.3)),
    "schedule": Choice(SCHEDULES),
}
TRAINING_SPACE: dict[str, Any] = {
    "lr": LogUniform(1e-4, 1e-2),
    "batch_size": Choice((256, 512, 1024, 2048)),
    "numeric": Choice(NUMERIC_TRANSFORMS),
    **REGULARISATION_SPACE,
}
FIT_KEYS = ("lr", "batch_size", *REGULARISERS)  # the configuration keys fit_run takes


@dataclass(frozen=True)
class ModelSpace:
    """A model's own search space: ``params`` (name -> distribution); ``sizes(config, n_features)`` the
    constructor keyword arguments of a configuration; ``valid(config)`` False for configurations to redraw
    (beyond the unit cap, Tucker ranks above the width)."""
    params: dict[str, Any]
    sizes: Callable[[dict[str, Any], int], dict[str, Any]]
    valid: Callable[[dict[str, Any]], bool]


def _moe_sizes(c: dict[str, Any], n_features: int) -> dict[str, Any]:
    return {"n_experts": c["n_experts"], "expert_units": (c["expert_units"],), "tower_units": TOWER_UNITS}


def _per_task_sizes(c: dict[str, Any], n_features: int) -> dict[str, Any]:
    return {"hidden_units": (c["hidden_units"],), "tower_units": TOWER_UNITS}


def _tf_sizes(c: dict[str, Any], n_features: int) -> dict[str, Any]:
    # r1 factors the input: it cannot exceed the number of features (known once the data is loaded)
    return {"hidden_units": (c["hidden_units"],), "tower_units": TOWER_UNITS,
            "ranks": (min(c["r1"], n_features), c["r2"], c["r3"])}


def _progressive_sizes(c: dict[str, Any], n_features: int) -> dict[str, Any]:
    """CGC's and PLE's sizes (PLE's with its levels)."""
    levels = {"n_levels": c["n_levels"]} if "n_levels" in c else {}
    return {**levels, "n_shared_experts": c["n_shared_experts"], "n_task_experts": c["n_task_experts"],
            "expert_units": (c["expert_units"],), "tower_units": TOWER_UNITS}


def _always(c: dict[str, Any]) -> bool:
    return True


def _progressive_cap(c: dict[str, Any]) -> bool:
    return (c["n_shared_experts"] + 2 * c["n_task_experts"]) * c["expert_units"] <= UNIT_CAP


_MOE = ModelSpace({"n_experts": Choice((2, 4, 6, 8, 12, 16, 24, 32)),
                   "expert_units": Choice((8, 16, 32, 64, 128, 256, 512))}, _moe_sizes,
                  lambda c: c["n_experts"] * c["expert_units"] <= UNIT_CAP)
_PER_TASK_WIDTH = IntLogUniform(8, UNIT_CAP // 2)  # one network per task: 2 tasks share the cap
# CGC and PLE: MMoE's expert widths, the experts split into shared and per-task ones; a level's experts (S shared,
# T for each of the two tasks; every level of PLE alike) within the cap
_PROGRESSIVE = {"n_shared_experts": Choice((1, 2, 4, 6, 8, 12, 16)), "n_task_experts": Choice((1, 2, 3, 4, 8)),
                "expert_units": Choice((8, 16, 32, 64, 128, 256, 512))}
SPACES: dict[str, ModelSpace] = {
    "Single-Task": ModelSpace({"hidden_units": _PER_TASK_WIDTH}, _per_task_sizes, _always),
    "Shared-Bottom": ModelSpace({"bottom_units": IntLogUniform(16, UNIT_CAP)},
                                lambda c, n: {"bottom_units": (c["bottom_units"],), "tower_units": TOWER_UNITS},
                                _always),
    "L2-Constrained": ModelSpace({"hidden_units": _PER_TASK_WIDTH, "l2_weight": LogUniform(1e-6, 1e-1)},
                                 lambda c, n: {**_per_task_sizes(c, n), "l2_weight": c["l2_weight"]}, _always),
    "Cross-Stitch": ModelSpace({"hidden_units": _PER_TASK_WIDTH}, _per_task_sizes, _always),
    "Tensor-Factorization": ModelSpace({"hidden_units": _PER_TASK_WIDTH, "r1": IntLogUniform(2, 512),
                                        "r2": IntLogUniform(2, UNIT_CAP // 2), "r3": Choice((1, 2))}, _tf_sizes,
                                       lambda c: c["r1"] <= c["hidden_units"] and c["r2"] <= c["hidden_units"]),
    "OMoE": _MOE,
    "MMoE": _MOE,
    "CGC": ModelSpace(_PROGRESSIVE, _progressive_sizes, _progressive_cap),
    "PLE": ModelSpace({**_PROGRESSIVE, "n_levels": Choice((2, 3))}, _progressive_sizes, _progressive_cap),
}


def sample_config(name: str, trial: int, seed: int = 0) -> dict[str, Any]:
    """Configuration ``trial`` of model ``name`` (a display name of :data:`SPACES`): every key of
    :data:`TRAINING_SPACE` and of the model's space. The keys but the regularisers are drawn with
    ``np.random.default_rng([seed, m, trial])`` (m the model's position in
    :data:`~mmoe_np.experiments.census_runs.KNOWN_MODELS`), redrawn until the space's ``valid`` accepts them; then
    the regularisers (:data:`REGULARISATION_SPACE`) with ``default_rng([seed, m, trial, 1])``, so the other keys
    are the ones drawn before the regularisers were searched. The same (name, trial, seed) always gives the same
    configuration, whatever else is searched."""
    [name] = census_runs.parse_models([name])
    trial, seed = V.int_at_least("trial", trial, 0), V.int_at_least("seed", seed, 0)
    space = SPACES[name]
    m = list(census_runs.KNOWN_MODELS).index(name)
    rng = np.random.default_rng([seed, m, trial])
    drawn_first = {key: dist for key, dist in TRAINING_SPACE.items() if key not in REGULARISATION_SPACE}
    for _ in range(1000):
        config = {key: dist.sample(rng) for key, dist in {**drawn_first, **space.params}.items()}
        if space.valid(config):
            own = np.random.default_rng([seed, m, trial, 1])
            return {**config, **{key: dist.sample(own) for key, dist in REGULARISATION_SPACE.items()}}
    raise RuntimeError(f"{name}: no valid configuration in 1000 draws; the space's constraints are too tight")


def check_fixed(fixed: Any) -> dict[str, Any]:
    """``fixed``: a dict of :data:`TRAINING_SPACE` keys and valid values (a ValueError names ``fixed``)."""
    if fixed is None:
        return {}
    if not isinstance(fixed, dict) or set(fixed) - set(TRAINING_SPACE):
        raise ValueError(f"fixed must map keys of {sorted(TRAINING_SPACE)} to values; got {fixed!r}")
    checks = {"lr": lambda v: V.positive_float("fixed lr", v), "numeric": check_numeric,
              "batch_size": lambda v: V.positive_int("fixed batch_size", v),
              **{key: lambda v, key=key: check_regulariser(key, v, f"fixed {key}") for key in REGULARISERS}}
    return {key: checks[key](value) for key, value in fixed.items()}
