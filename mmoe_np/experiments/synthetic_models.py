"""The synthetic study's models and settings: the names the command line accepts -> model class
(:data:`MODELS`), their sizes (:data:`SIZES`; Shared-Bottom parameter-matched to MMoE as in the paper) and
labels, the correlations of the figures, and the training profiles (:data:`QUICK`, :data:`PAPER`, :data:`LONG`,
all in :data:`PROFILES`).
:mod:`~mmoe_np.experiments.synthetic` re-exports them."""
from __future__ import annotations

from typing import Any

from ..models import MMoE, OMoE, SharedBottom
from ..models.ple import CGC, PLE
from ..sizing import shared_bottom_width
from .lockstep import ModelSpec

__all__ = ["MODELS", "SIZES", "MODEL_LABELS", "COMPARISON_MODELS", "PAPER_CORRELATIONS", "TRAINABILITY_CORRELATIONS",
           "QUICK", "PAPER", "LONG", "PROFILES", "MATCHED_BOTTOM_WIDTH", "model_spec"]

_EXPERTS = {"n_experts": 8, "expert_units": (16,), "tower_units": (8,)}
# The paper's parameter matching (Sec. 5.1): the Shared-Bottom whose bottom and tower-hidden weights cost as much as
# the MoE models' experts and tower-hidden weights, 100 w + 8 w x 2 ~ 100 x 16 x 8 + 16 x 8 x 2 = 13056: w = 113.
MATCHED_BOTTOM_WIDTH = shared_bottom_width(MMoE(100, ("regression", "regression"), **_EXPERTS), convention="paper")
# The models of the study: the name the command line accepts -> model class, and -> its size arguments.
MODELS: dict[str, type] = {"shared-bottom-16": SharedBottom, "shared-bottom": SharedBottom, "omoe": OMoE,
                           "mmoe": MMoE, "cgc": CGC, "ple": PLE}
SIZES: dict[str, dict[str, Any]] = {
    "shared-bottom-16": {"bottom_units": (16,), "tower_units": (8,)},  # Fig. 3
    "shared-bottom": {"bottom_units": (MATCHED_BOTTOM_WIDTH,), "tower_units": (8,)},
    "omoe": _EXPERTS,
    "mmoe": _EXPERTS,
    # beyond the paper (Tang et al., 2020), with MMoE's 8 first-level experts of 16 units: CGC 4 shared + 2 per
    # task; PLE two levels of 2 shared + 1 per task (its second level's experts read the first's 16-unit outputs)
    "cgc": {"n_shared_experts": 4, "n_task_experts": 2, "expert_units": (16,), "tower_units": (8,)},
    "ple": {"n_levels": 2, "n_shared_experts": 2, "n_task_experts": 1, "expert_units": (16,), "tower_units": (8,)},
}
MODEL_LABELS = {"shared-bottom-16": "Shared-Bottom (16)", "shared-bottom": "Shared-Bottom (113)", "omoe": "OMoE",
                "mmoe": "MMoE", "cgc": "CGC", "ple": "PLE"}
COMPARISON_MODELS = ("shared-bottom", "omoe", "mmoe")
PAPER_CORRELATIONS = (1.0, 0.9, 0.8, 0.5)
TRAINABILITY_CORRELATIONS = (1.0, 0.5)

# The profiles of the training studies. "paper": the paper's 200 runs per setting, trained with a
# cosine-annealed rate (the same schedule for every model) for as many steps as fit 3 models x 4 correlations x 200
# runs in 30 minutes on an idle 2-core machine; lr 1e-2 from the paper's grid {1e-4, 1e-3, 1e-2}, the best for every
# model in a pilot on other seeds (docs/results-synthetic.md, docs/results/synthetic/pilot/). "quick": the same
# setup with fewer runs and steps, about two minutes on 2 cores: a preview, its verdicts rest on 32 runs of 800 steps.
PAPER = {"runs": 200, "steps": 2000, "batch_size": 128, "lr": 1e-2, "schedule": "cosine", "eval_every": 100,
         "n_test": 2000}
QUICK = {"runs": 32, "steps": 800, "batch_size": 128, "lr": 1e-2, "schedule": "cosine", "eval_every": 50,
         "n_test": 1000}
# "long": the paper profile trained twice as long (4,000 steps; about 35 minutes on an idle 2-core machine), because
# 2,000 steps leave every model far from trained: in the pilot (docs/results-synthetic.md) the MoE models' mean final
# losses were 65-142% above the noise floor at 2,000 steps, 27-53% at 4,000 and 13-23% at 8,000.
LONG = {**PAPER, "steps": 4000, "eval_every": 200}
PROFILES = {"quick": QUICK, "paper": PAPER, "long": LONG}


def model_spec(name: str) -> ModelSpec:
    """The lock-step trainer's :class:`~mmoe_np.experiments.lockstep.ModelSpec` of model ``name``."""
    return ModelSpec(MODELS[name], SIZES[name])
