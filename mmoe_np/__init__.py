"""mmoe-np: multi-task learning with Multi-gate Mixture-of-Experts (Ma et al., KDD 2018) in pure NumPy.

Every model (:mod:`mmoe_np.models`) is composed from the functional ops in :mod:`mmoe_np.ops` and
:mod:`mmoe_np.tucker` (``forward -> (out, cache)``, ``backward(dout, cache) -> grads``), with hand-written backward
passes derived in ``docs/backprop.md``.

>>> import numpy as np, mmoe_np as mn
>>> model = mn.MMoE(n_features=4, tasks=("regression", "binary"), n_experts=3, expert_units=(5,), tower_units=(2,))
>>> X = np.zeros((6, 4)); Y = np.zeros((6, 2))
>>> loss, grads = model.loss_and_grads(X, Y)
>>> sorted(grads) == sorted(model.params)
True
"""
import importlib as _importlib

from . import gating, ops, tucker
from .diagnostics import GateReport, gate_report
from .gradcheck import GradientReport, check_gradients, check_op
from .models import (CGC, MODEL_CLASSES, PLE, CrossStitch, L2Constrained, LossResult, MixtureOfExperts, MMoE,
                     MultiTaskModel, OMoE, SharedBottom, SingleTask, TensorFactorization, stack_models, unstack_models)
from .optim import SGD, Adam, Optimizer
from .persist import checkpoint_info, load
from .sizing import count_params
from .training import EarlyStopping, History, fit

__version__ = "0.2.0.dev0"  # 0.1.0 is the first release, commit e59c75a

__all__ = [
    "ops", "tucker", "gating",
    "SingleTask", "SharedBottom", "OMoE", "MMoE", "CGC", "PLE", "MixtureOfExperts", "MultiTaskModel", "LossResult",
    "gate_report", "GateReport",
    "stack_models", "unstack_models", "MODEL_CLASSES",
    "L2Constrained", "CrossStitch", "TensorFactorization", "count_params",
    "Adam", "SGD", "Optimizer",
    "load", "checkpoint_info",
    "fit", "History", "EarlyStopping",
    "check_gradients", "check_op", "GradientReport",
    "data", "metrics",
]

_SUBMODULES = ("data", "metrics", "testing")


def __getattr__(name):
    # `mn.data`, `mn.metrics` and `mn.testing` are loaded on first use (PEP 562): they are not always needed
    # (`mn.testing` imports hypothesis only when a strategy is built).
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mmoe_np' has no attribute {name!r}")
