"""Parameters and gradients as named views into one flat buffer.

A model's parameters are a dict of readable names (``experts.0.W``, ``gates.b``, ...), but each array is a
contiguous *view* into one 1-D buffer ``flat``, one after the other in the order of the dict (for R stacked replicas
each array is (R, ...) and still contiguous). The gradients of every ``forward_backward`` call are a fresh buffer of
the same layout, seen through the same names. An optimizer that receives both updates ``flat`` with a handful of
whole-buffer operations instead of a handful per array (Adam at batch 1 was 40% of a step with ten arrays), with the
same numbers, since every update is elementwise.

:class:`FlatLayout` lists the names, shapes and offsets; :class:`FlatArrays` is the dict of views with its ``flat``
buffer and ``layout``: ``model.params`` is one, and so is every ``grads``. Writing into a view
(``params[k][...] = value``, ``params[k] -= step``) writes into ``flat``; replacing a key by another array would cut
it off, so the optimizers check :meth:`FlatArrays.intact` before they take the whole-buffer path.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["FlatLayout", "FlatArrays"]


class FlatLayout:
    """Where each named array lives in a flat buffer: ``shapes`` (name -> shape, in buffer order) with replica axes
    ``lead`` in front of every shape. Array k occupies ``flat[offset_k : offset_k + size_k]``, contiguous."""

    def __init__(self, shapes: Mapping[str, tuple], lead: tuple = ()) -> None:
        self.lead = tuple(lead)
        self.shapes = {name: self.lead + tuple(shape) for name, shape in shapes.items()}
        self._base = {name: tuple(shape) for name, shape in shapes.items()}
        sizes = [math.prod(shape) for shape in self.shapes.values()]
        self.offsets = dict(zip(self.shapes, np.cumsum([0] + sizes[:-1]).tolist()))
        self.size = int(sum(sizes))
        self._slices = [(name, slice(self.offsets[name], self.offsets[name] + size), shape)
                        for (name, shape), size in zip(self.shapes.items(), sizes)]

    def with_lead(self, lead: tuple) -> "FlatLayout":
        """The same arrays with replica axes ``lead`` in front."""
        return FlatLayout(self._base, lead)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Every array as a view of ``flat`` (a contiguous 1-D array of ``size`` numbers), in layout order."""
        if flat.ndim != 1 or not flat.flags.c_contiguous or flat.size != self.size:
            raise ValueError(f"flat must be a contiguous 1-D array of {self.size} numbers; got shape {flat.shape}")
        return {name: flat[where].reshape(shape) for name, where, shape in self._slices}


class FlatArrays(dict):
    """A dict of named arrays that are views into the 1-D buffer ``flat``, laid out by ``layout``: a model's ``params``,
    and the ``grads`` of each ``forward_backward`` call. It behaves as a plain dict."""

    def __init__(self, flat: np.ndarray, layout: FlatLayout) -> None:
        views = layout.views(flat)
        super().__init__(views)
        self.flat, self.layout = flat, layout
        self._views = tuple(views.values())

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], layout: FlatLayout) -> "FlatArrays":
        """A new flat buffer holding copies of ``arrays`` (the layout's names and shapes)."""
        packed = cls(np.zeros(layout.size, dtype=next(iter(arrays.values())).dtype), layout)
        for name, view in packed.items():
            view[...] = arrays[name]
        return packed

    @classmethod
    def stack(cls, parts: Sequence["FlatArrays"]) -> "FlatArrays":
        """R buffers of one layout as one whose every array has a leading replica axis (R, ...)."""
        layout = parts[0].layout
        flat = np.concatenate([np.stack([p[name] for p in parts]).ravel() for name in layout.shapes])
        return cls(flat, layout.with_lead((len(parts),) + layout.lead))

    def unstack(self, r: int) -> "FlatArrays":
        """Replica ``r`` of a stacked buffer, as a new buffer without the replica axis."""
        flat = np.concatenate([self[name][r].ravel() for name in self.layout.shapes])
        return FlatArrays(flat, self.layout.with_lead(self.layout.lead[1:]))

    def intact(self) -> bool:
        """True while every key still holds its own view of ``flat`` (no array was replaced or added)."""
        return len(self) == len(self._views) and all(map(operator.is_, self.values(), self._views))

    def __reduce__(self) -> tuple:
        # a copy or a pickle rebuilds the views on its own buffer, so they stay views
        return FlatArrays, (self.flat, self.layout)

    def __copy__(self) -> dict:
        return dict(self)  # a shallow copy: the same arrays, in a plain dict
