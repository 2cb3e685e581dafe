"""Counting parameters, and building parameter-matched configurations.

Two counting conventions, both of ONE model (a model of stacked replicas counts one replica):

* ``"full"`` (the default): every trainable number in ``model.params``: weights, biases, gates, cross-stitch
  matrices, Tucker cores and factors, and the towers' output layers.
* ``"paper"``: Ma et al.'s budget in Sec. 5.1, "100 x 16 x 8 + 16 x 8 x 2 = 13056" for an MMoE with 8 experts of
  16 units on 100 features and two towers of 8: the weight matrices of the hidden representation (experts, bottom,
  per-task hidden layers) and of the towers' hidden layers, without biases, gates or the towers' output layer.
  The same rule applies to every model: every array except biases (``*.b``), gates (``gates.*``, noise scales
  included), the last tower layer's weights and the loss's own parameters (``loss.*``: uncertainty weighting's
  log-variances, which weigh the losses and compute nothing); so cross-stitch matrices, Tucker cores and factors,
  and CGC's and PLE's shared and task experts count.

Matching: the paper compares models of (about) the same size, giving Shared-Bottom a bottom of width
``13056 / (100 + 8 x 2) ~ 113``. :func:`shared_bottom_width` computes that width for any MoE model,
:func:`match_width` the width of any model family (a function width -> model) whose count is closest to a target::

    budget = count_params(mmoe, convention="paper")
    width = match_width(lambda w: mn.CrossStitch(100, tasks, hidden_units=(w,), tower_units=(8,)), budget,
                        convention="paper")

and :func:`matched_sizes` the constructor arguments of all seven models matched to one MMoE (the census study's
sizes), and of CGC and PLE with MMoE's experts split into shared and task-specific ones.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import _validation as V
from .models import MultiTaskModel, SharedBottom
from .tucker import check_ranks

__all__ = ["CONVENTIONS", "count_params", "match_width", "shared_bottom_width", "matched_sizes", "check_sizes",
           "progressive_experts", "PLE_LEVELS"]

CONVENTIONS = ("full", "paper")
PLE_LEVELS = 2  # the extraction levels of PLE in matched_sizes (the class's default)


def _counted(model: MultiTaskModel, convention: str) -> list[str]:
    """The keys of the parameters that ``convention`` counts."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    if convention == "full":
        return list(model.params)
    n_tower_layers = len(model.tower_units) + 1  # the hidden layers and the output layer
    output_layer = f"towers.{n_tower_layers - 1}.W"
    return [name for name in model.params
            if not name.endswith(".b") and not name.startswith(("gates.", "loss.")) and name != output_layer]


def count_params(model: MultiTaskModel, *, convention: str = "full") -> int:
    """The number of parameters of one model (of one replica if ``model`` stacks replicas) under ``convention``,
    ``"full"`` (every array) or ``"paper"`` (weights of the hidden layers and the towers' hidden layers only)."""
    if not isinstance(model, MultiTaskModel):
        raise ValueError(f"model must be a mmoe_np model (a MultiTaskModel); got {type(model).__name__}")
    n_replicas = int(np.prod(model.replica_shape))
    return sum(model.params[name].size for name in _counted(model, convention)) // n_replicas


def match_width(make: Callable[[int], MultiTaskModel], target: int, *, convention: str = "full",
                max_width: int = 2048) -> int:
    """The width ``w`` in ``[1, max_width]`` whose model ``make(w)`` has the count closest to ``target``.

    ``make`` must build a valid model for every width in that range, with a count that never decreases as the width
    grows (true whenever the width only sets layer sizes). A binary search finds the smallest w whose count reaches
    the target, then keeps w or w - 1, whichever is closer (the smaller on a tie). ``max_width`` defaults to 2048,
    the paper's cap on the units of any hidden layer (Sec. 6.2).
    """
    target = V.positive_int("target", target)
    max_width = V.positive_int("max_width", max_width)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")

    def count(width: int) -> int:
        return count_params(make(width), convention=convention)

    if count(max_width) < target:
        raise ValueError(f"target = {target} exceeds the count {count(max_width)} of make(max_width = {max_width}); "
                         "raise max_width")
    low, high = 1, max_width  # invariant: count(high) >= target; the answer's upper candidate lies in [low, high]
    while low < high:
        mid = (low + high) // 2
        if count(mid) >= target:
            high = mid
        else:
            low = mid + 1
    if high > 1 and target - count(high - 1) <= count(high) - target:
        return high - 1
    return high


def shared_bottom_width(model: MultiTaskModel, *, convention: str = "paper", depth: int = 1,
                        max_width: int = 2048) -> int:
    """The bottom width w of a :class:`SharedBottom` as large as ``model``: ``bottom_units = (w,) * depth``, with
    ``model``'s features, tasks and ``tower_units``, and the count (under ``convention``) closest to ``model``'s.

    The paper's setting, ``MMoE(100, 2 tasks, n_experts=8, expert_units=(16,), tower_units=(8,))``, counts 13056 and
    gives ``w = 113``: the bottom and the towers' hidden layers cost ``100 w + 8 w * 2 = 116 w``, and 116 x 113 is the
    closest to 13056.
    """
    if not hasattr(model, "tower_units"):
        raise ValueError(f"model must have tower_units (any mmoe_np model); got {type(model).__name__}")
    depth = V.positive_int("depth", depth)
    target = count_params(model, convention=convention)

    def make(width: int) -> SharedBottom:
        return SharedBottom(model.n_features, model.tasks, bottom_units=(width,) * depth,
                            tower_units=model.tower_units)

    return match_width(make, target, convention=convention, max_width=max_width)


# ---------------------------------------------------------------------------------------------------------------
# Seven models matched to one MMoE, and CGC and PLE with its experts
# ---------------------------------------------------------------------------------------------------------------
def progressive_experts(n_experts: int, n_tasks: int) -> tuple[int, int]:
    """MMoE's ``n_experts`` split into CGC's and PLE's ``(S, T)``: S shared experts and T per task, with
    ``S + K T = n_experts`` and ``T = max(1, n_experts // (2 K))``, about half of the experts task-specific
    (8 experts, 2 tasks -> 4 shared + 2 per task, the classes' defaults). A ValueError names ``n_experts`` when it is
    below K + 1 (one shared expert and one per task)."""
    n_experts, n_tasks = V.positive_int("n_experts", n_experts), V.positive_int("n_tasks", n_tasks)
    per_task = max(1, n_experts // (2 * n_tasks))
    shared = n_experts - n_tasks * per_task
    if shared < 1:
        raise ValueError(f"n_experts must be at least n_tasks + 1 = {n_tasks + 1} for CGC and PLE (one shared "
                         f"expert and one per task); got {n_experts}")
    return shared, per_task


def _tf_ranks(value: Any) -> tuple[int, int, int]:
    """``tf_ranks``: three positive integers (r1, r2, r3); whether they fit the layers is checked by
    :func:`matched_sizes`."""
    ranks = V.units("tf_ranks", value)
    if len(ranks) != 3:
        raise ValueError(f"tf_ranks must be three positive integers (r1, r2, r3); got {value!r}")
    return ranks


# The size arguments of matched_sizes and how each is checked.
_SIZE_CHECKS: dict[str, Callable[[Any], Any]] = {
    "n_experts": lambda v: V.positive_int("n_experts", v),
    "expert_units": lambda v: V.units("expert_units", v),
    "tower_units": lambda v: V.units("tower_units", v, allow_empty=True),
    "l2_weight": lambda v: V.positive_float("l2_weight", v, allow_zero=True),
    "bottom_units": lambda v: V.units("bottom_units", v),
    "hidden_units": lambda v: V.units("hidden_units", v),
    "tf_hidden_units": lambda v: V.units("tf_hidden_units", v),
    "tf_ranks": _tf_ranks,
}


def check_sizes(**sizes: Any) -> dict[str, Any]:
    """The size arguments of :func:`matched_sizes` given (``n_experts``, ``expert_units``, ``tower_units``,
    ``l2_weight``, ``bottom_units``, ``hidden_units``, ``tf_hidden_units``, ``tf_ranks``), checked and normalised
    (widths as tuples); a ValueError names the first bad or unknown one. Whether Tucker ranks fit the widths is
    checked by :func:`matched_sizes`, which knows the widths."""
    unknown = set(sizes) - set(_SIZE_CHECKS)
    if unknown:
        raise ValueError(f"sizes: unknown {sorted(unknown)}; expected names from {list(_SIZE_CHECKS)}")
    return {name: _SIZE_CHECKS[name](value) for name, value in sizes.items()}


def matched_sizes(n_features: int, tasks: Sequence[str], models: Sequence[type], *, n_experts: int = 8,
                  expert_units: Sequence[int] = (16,), tower_units: Sequence[int] = (8,), l2_weight: float = 1e-2,
                  bottom_units: Sequence[int] | None = None, hidden_units: Sequence[int] | None = None,
                  tf_hidden_units: Sequence[int] | None = None,
                  tf_ranks: Sequence[int] | None = None) -> dict[type, dict[str, Any]]:
    """The constructor keyword arguments of each model class in ``models``: MMoE's size, and the others matched.

    MMoE and OMoE: ``n_experts`` experts of ``expert_units``, towers of ``tower_units``. Every other model keeps the
    towers and the depth (``len(expert_units)``) and gets the width w whose count, in the paper's convention (weights
    of the hidden layers and of the towers' hidden layers), is closest to MMoE's:

    * SharedBottom: a bottom of ``(w,) * depth``;
    * SingleTask, L2Constrained, CrossStitch: one network of ``(w,) * depth`` per task (so the K networks
      together match MMoE); L2Constrained ties them with ``l2_weight``;
    * TensorFactorization: ``(w,) * depth`` per task with Tucker ranks ``(w, w, K)``: every task's layer is
      ``U1 M_k`` with the input factor ``U1`` (d_in x w) shared and a w x w matrix ``M_k`` of its own.

    CGC and PLE (beyond the paper) are not width-matched: they keep MMoE's experts, ``n_experts`` of
    ``expert_units``, split into shared and task-specific ones (:func:`progressive_experts`: S + K T =
    ``n_experts``), and MMoE's towers; so CGC has MMoE's expert weights and each task's gate mixes S + T of them.
    PLE stacks :data:`PLE_LEVELS` such levels; its later levels' experts read the level below (width
    ``expert_units[-1]``), so it counts more than MMoE (its count is reported beside the results).

    Any of ``bottom_units``, ``hidden_units`` (SingleTask, L2Constrained, CrossStitch) and ``tf_hidden_units``
    overrides the matched width; ``tf_ranks`` fixes the Tucker ranks (the width is then matched over widths that
    admit them, unless given). Given ``tf_hidden_units`` h without ``tf_ranks``, the ranks are the largest every
    layer admits: ``(min(n_features, h[:-1]), min(h), K)``. Ranks that exceed a dimension they factor raise
    ValueError here, before any training. A ValueError names the model when no width reaches MMoE's count.
    """
    from . import (CGC, PLE, CrossStitch, L2Constrained, MMoE, OMoE,  # the package's public classes, wherever
                   SingleTask, TensorFactorization)                     # their modules live

    n_features, tasks = V.positive_int("n_features", n_features), V.tasks(tasks)
    K = len(tasks)
    given = {"bottom_units": bottom_units, "hidden_units": hidden_units, "tf_hidden_units": tf_hidden_units,
             "tf_ranks": tf_ranks}
    checked = check_sizes(n_experts=n_experts, expert_units=expert_units, tower_units=tower_units,
                          l2_weight=l2_weight, **{k: v for k, v in given.items() if v is not None})
    bottom_units, hidden_units, tf_hidden_units, tf_ranks = (checked.get(k) for k in given)
    moe = {key: checked[key] for key in ("n_experts", "expert_units", "tower_units")}
    towers, depth = moe["tower_units"], len(moe["expert_units"])
    target = count_params(MMoE(n_features, tasks, **moe), convention="paper")

    def matched(what: str, make: Callable[[int], MultiTaskModel], max_width: int = 2048) -> tuple[int, ...]:
        try:
            return (match_width(make, target, convention="paper", max_width=max_width),) * depth
        except ValueError as err:  # no width up to max_width is large enough
            raise ValueError(f"{what}: no width up to {max_width} reaches MMoE's parameter count {target} "
                             f"({err}); give the width explicitly") from None

    def shared_bottom() -> dict[str, Any]:
        if bottom_units is not None:
            return {"bottom_units": bottom_units, "tower_units": towers}
        return {"bottom_units": matched("Shared-Bottom", lambda w: SharedBottom(
            n_features, tasks, bottom_units=(w,) * depth, tower_units=towers)), "tower_units": towers}

    def per_task() -> dict[str, Any]:  # SingleTask, L2Constrained and CrossStitch: the same networks
        if hidden_units is not None:
            return {"hidden_units": hidden_units, "tower_units": towers}
        return {"hidden_units": matched("Single-Task, L2-Constrained, Cross-Stitch", lambda w: SingleTask(
            n_features, tasks, hidden_units=(w,) * depth, tower_units=towers)), "tower_units": towers}

    def tensor_factorization() -> dict[str, Any]:
        if tf_ranks is not None:
            ranks = tf_ranks
            if tf_hidden_units is not None:
                hidden = tf_hidden_units
            else:  # r1 <= every hidden d_in and r2 <= every hidden d_out: the width is at least both
                floor = max(ranks[:2])
                widths = matched(f"Tensor-Factorization with tf_ranks = {ranks}", lambda w: TensorFactorization(
                    n_features, tasks, hidden_units=(max(w, floor),) * depth, tower_units=towers, ranks=ranks))
                hidden = tuple(max(w, floor) for w in widths)
        elif tf_hidden_units is not None:  # the largest ranks every layer admits
            hidden = tf_hidden_units
            ranks = (min((n_features, *hidden[:-1])), min(hidden), K)
        else:  # ranks (w, w, K); r1 = w cannot exceed the input width, hence max_width
            hidden = matched("Tensor-Factorization (ranks w, w, K)", lambda w: TensorFactorization(
                n_features, tasks, hidden_units=(w,) * depth, tower_units=towers, ranks=(w, w, K)),
                max_width=n_features)
            ranks = (hidden[0], hidden[0], K)
        check_ranks(ranks, (n_features, *hidden[:-1]), hidden, K)  # the check TensorFactorization itself makes
        return {"hidden_units": hidden, "tower_units": towers, "ranks": ranks}

    sizes: dict[type, dict[str, Any]] = {}
    shared_width: dict[str, Any] | None = None  # computed once for the three per-task models
    for cls in models:
        if cls in (MMoE, OMoE):
            sizes[cls] = dict(moe)
        elif cls in (CGC, PLE):
            shared, per_task = progressive_experts(moe["n_experts"], K)
            sizes[cls] = {**({"n_levels": PLE_LEVELS} if cls is PLE else {}), "n_shared_experts": shared,
                          "n_task_experts": per_task, "expert_units": moe["expert_units"], "tower_units": towers}
        elif cls is SharedBottom:
            sizes[cls] = shared_bottom()
        elif cls is TensorFactorization:
            sizes[cls] = tensor_factorization()
        elif cls in (SingleTask, L2Constrained, CrossStitch):
            shared_width = per_task() if shared_width is None else shared_width
            sizes[cls] = dict(shared_width)
            if cls is L2Constrained:
                sizes[cls]["l2_weight"] = checked["l2_weight"]
        else:
            raise ValueError(f"models: no size matching for {getattr(cls, '__name__', cls)!r}")
    return sizes
