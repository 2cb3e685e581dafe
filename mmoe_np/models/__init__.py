"""The multi-task models, each composed from the functional ops of :mod:`mmoe_np.ops` (and :mod:`mmoe_np.tucker`).

* :mod:`.base`: :class:`MultiTaskModel` (parameters, checks, the loss, predictions, copies) and the replica helpers;
* :mod:`.moe`: :class:`MixtureOfExperts` with :class:`OMoE` (one gate) and :class:`MMoE` (one gate per task);
* :mod:`.ple`: :class:`CGC` and :class:`PLE` (Tang et al., 2020), beyond the paper: shared and task-specific experts;
* :mod:`.shared`: :class:`SingleTask` and :class:`SharedBottom`;
* :mod:`.soft_sharing`: the paper's baselines :class:`L2Constrained`, :class:`CrossStitch` and
  :class:`TensorFactorization`.

Every model maps X (N, n_features) to raw outputs (N, n_tasks): a value for a "regression" task, a logit for a
"binary" one. ``MODEL_CLASSES`` maps the class name of each of the seven models to its class.
"""
from .base import LossResult, MultiTaskModel, stack_models, unstack_models
from .moe import MMoE, MixtureOfExperts, OMoE
from .ple import CGC, PLE
from .shared import SharedBottom, SingleTask
from .soft_sharing import CrossStitch, L2Constrained, TensorFactorization

__all__ = ["MultiTaskModel", "LossResult", "MixtureOfExperts", "SingleTask", "SharedBottom", "OMoE", "MMoE",
           "CGC", "PLE", "L2Constrained", "CrossStitch", "TensorFactorization", "stack_models", "unstack_models",
           "MODEL_CLASSES"]

MODEL_CLASSES: dict[str, type[MultiTaskModel]] = {
    cls.__name__: cls
    for cls in (SingleTask, SharedBottom, OMoE, MMoE, L2Constrained, CrossStitch, TensorFactorization)
}
