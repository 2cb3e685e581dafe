"""Counting parameters, and building parameter-matched configurations.

Two counting conventions, both of ONE model (a model of stacked replicas counts one replica):

* ``"full"`` (the default): every trainable number in ``model.params``: weights, biases, gates, cross-stitch
  matrices, Tucker cores and factors, and the towers' output layers.
* ``"paper"``: Ma et al.'s budget in Sec. 5.1, "100 x 16 x 8 + 16 x 8 x 2 = 13056" for an MMoE with 8 experts of
  16 units on 100 features and two towers of 8: the weight matrices of the hidden representation (experts, bottom,
  per-task hidden layers) and of the towers' hidden layers, without biases, gates or the towers' output layer.
  The same rule applies to every model: every array except biases (``*.b``), gates (``gates.*``) and the last
  tower layer's weights; so cross-stitch matrices and Tucker cores and factors count.

Matching: the paper compares models of (about) the same size, giving Shared-Bottom a bottom of width
``13056 / (100 + 8 x 2) ~ 113``. :func:`shared_bottom_width` computes that width for any MoE model, and
:func:`match_width` the width of any model family (a function width -> model) whose count is closest to a target::

    budget = count_params(mmoe, convention="paper")
    width = match_width(lambda w: mn.CrossStitch(100, tasks, hidden_units=(w,), tower_units=(8,)), budget,
                        convention="paper")
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _validation as V
from .models import MultiTaskModel, SharedBottom

__all__ = ["CONVENTIONS", "count_params", "match_width", "shared_bottom_width"]

CONVENTIONS = ("full", "paper")


def _counted(model: MultiTaskModel, convention: str) -> list[str]:
    """The keys of the parameters that ``convention`` counts."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    if convention == "full":
        return list(model.params)
    n_tower_layers = len(model._layers("towers"))
    output_layer = f"towers.{n_tower_layers - 1}.W"
    return [name for name in model.params
            if not name.endswith(".b") and not name.startswith("gates.") and name != output_layer]


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
