"""Parameters and gradients as named views into one flat buffer.

A model's parameters are a dict of readable names (``experts.0.W``, ``gates.b``, ...), but each array is a
*view* into one 1-D buffer ``flat``: one contiguous segment per array, in the order of the dict (for R stacked
replicas each array is (R, ...) and still contiguous), except where a model puts several arrays side by side in one
block that a layer reads whole (the experts' and gates' first layer of a mixture of experts: one matrix, so the
forward pass multiplies it without copying it together first; see :class:`FlatLayout`). The gradients of every ``forward_backward`` call are a fresh buffer of
the same layout, seen through the same names. An optimizer that receives both updates ``flat`` with a handful of
whole-buffer operations instead of a handful per array (Adam at batch 1 was 40% of a step with ten arrays), with the
same numbers, since every update is elementwise.

:class:`FlatLayout` lists the names, shapes, blocks and segments; :class:`FlatArrays` is the dict of views with its ``flat``
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
    """Where each named array lives in a flat buffer: ``shapes`` (name -> shape; the dict's order is the names'
    order) with replica axes ``lead`` in front of every shape.

    The buffer is a sequence of contiguous *segments*, one per array, in the order of ``shapes``, except for the
    members of a *column block* (``blocks``: block name -> member names), which share one segment: their columns side
    by side in one matrix, the way a layer that multiplies them all by the same input reads them
    (``MixtureOfExperts``' first layer ``W1 = [W_1 | ... | W_E | V_1 | ... | V_G]``). Members of shape (S, d, k)
    (S stacked layers of k columns) make a block (d, sum S k), member columns ``c0 .. c0 + S k`` seen as (S, d, k);
    members of shape (S, k) (their biases) a block (sum S k,). Each member is then a strided view of its block,
    and the block (:meth:`FlatArrays.segment`) is a contiguous array the layer uses without copying. A block takes
    the place of its first member in the buffer."""

    def __init__(self, shapes: Mapping[str, tuple], lead: tuple = (),
                 blocks: Mapping[str, Sequence[str]] | None = None) -> None:
        self.lead = tuple(lead)
        self._base = {name: tuple(shape) for name, shape in shapes.items()}
        self.shapes = {name: self.lead + base for name, base in self._base.items()}
        self.blocks = {key: tuple(members) for key, members in (blocks or {}).items()}
        self._columns: dict[str, tuple[str, int, int, int]] = {}  # member -> (block, first column, S, k)
        block_shapes = {key: self._block_shape(key, members) for key, members in self.blocks.items()}
        segments: dict[str, tuple] = {}  # segment key -> base shape, in buffer order
        for name, base in self._base.items():
            key = self._columns[name][0] if name in self._columns else name
            segments.setdefault(key, block_shapes.get(key, base))
        sizes = [math.prod(self.lead + shape) for shape in segments.values()]
        starts = np.cumsum([0] + sizes[:-1]).tolist()
        self._segments = [(key, slice(start, start + size), self.lead + shape)
                          for (key, shape), start, size in zip(segments.items(), starts, sizes)]
        self.segment_keys = tuple(segments)  # in buffer order: array names, and block names in their first member's place
        self.size = int(sum(sizes))

    def _block_shape(self, key: str, members: Sequence[str]) -> tuple:
        """The base shape of block ``key``, (d, sum S k) or (sum S k,); records where each member's columns are."""
        shapes = [self._base.get(m) for m in members]
        ranks = {len(shape) for shape in shapes if shape is not None}
        if None in shapes or not members or ranks - {2, 3} or len(ranks) > 1 or len(set(members)) < len(members) \
                or len({shape[1:-1] for shape in shapes}) > 1 or set(members) & set(self._columns):
            raise ValueError(f"blocks[{key!r}] must list arrays of the layout, each in one block, all (S, d, k) "
                             f"with one d or all (S, k); got {dict(zip(members, shapes))}")
        column = 0
        for m, shape in zip(members, shapes):
            self._columns[m] = (key, column, shape[0], shape[-1])
            column += shape[0] * shape[-1]
        return shapes[0][1:-1] + (column,)

    def __eq__(self, other: object) -> bool:
        """Two layouts are equal when they place the same arrays at the same positions of a buffer."""
        return isinstance(other, FlatLayout) and (self.lead, self._base, self.blocks) == \
            (other.lead, other._base, other.blocks) and list(self._base) == list(other._base)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking: compared by value, not used as a key

    def with_lead(self, lead: tuple) -> "FlatLayout":
        """The same arrays with replica axes ``lead`` in front."""
        return FlatLayout(self._base, lead, self.blocks)

    def segments(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Every segment of ``flat`` (a contiguous 1-D array of ``size`` numbers) as a contiguous array, in buffer
        order: the arrays that are not in a block, under their names, and the blocks, under theirs."""
        if flat.ndim != 1 or not flat.flags.c_contiguous or flat.size != self.size:
            raise ValueError(f"flat must be a contiguous 1-D array of {self.size} numbers; got shape {flat.shape}")
        return {key: flat[where].reshape(shape) for key, where, shape in self._segments}

    def views(self, flat: np.ndarray, segments: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Every array as a view of ``flat`` (whose :meth:`segments` may be given), in the order of ``shapes``."""
        segments = self.segments(flat) if segments is None else segments
        return {name: self._member(segments, name) if name in self._columns else segments[name]
                for name in self._base}

    def _member(self, segments: dict[str, np.ndarray], name: str) -> np.ndarray:
        """Member ``name`` of its block: columns c0 .. c0 + S k of (..., [d,] C), as (..., S, [d,] k)."""
        key, c0, S, k = self._columns[name]
        part = segments[key][..., c0:c0 + S * k]
        part = part.reshape(part.shape[:-1] + (S, k))          # (..., [d,] S, k): a view (the last axis is unit-stride)
        return part.swapaxes(-3, -2) if len(self._base[name]) == 3 else part  # (..., S, d, k)


class FlatArrays(dict):
    """A dict of named arrays that are views into the 1-D buffer ``flat``, laid out by ``layout``: a model's ``params``,
    and the ``grads`` of each ``forward_backward`` call. It behaves as a plain dict."""

    def __init__(self, flat: np.ndarray, layout: FlatLayout) -> None:
        self._segments = layout.segments(flat)
        views = layout.views(flat, self._segments)
        super().__init__(views)
        self.flat, self.layout = flat, layout
        self._views = tuple(views.values())

    def segment(self, key: str) -> np.ndarray:
        """Segment ``key`` of ``flat``: a block of the layout (e.g. a model's fused first layer), or an array that is
        in none, as one contiguous array (R, ...) with the replica axes."""
        return self._segments[key]

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], layout: FlatLayout, dtype: Any = None) -> "FlatArrays":
        """A new flat buffer holding copies of ``arrays`` (the layout's names and shapes), of ``dtype`` (default: the
        first array's)."""
        dtype = next(iter(arrays.values())).dtype if dtype is None else dtype
        packed = cls(np.zeros(layout.size, dtype=dtype), layout)
        for name, view in packed.items():
            view[...] = arrays[name]
        return packed

    def repacked(self) -> "FlatArrays":
        """``self`` while :meth:`intact`; else a new buffer holding the arrays the keys now name (a key replaced by
        an array of its own, ``params[k] = ...``, is what the model computes with, so a copy must hold it too),
        after :meth:`check_replaced`."""
        if self.intact():
            return self
        self.check_replaced()
        return FlatArrays.of(self, self.layout, self.flat.dtype)

    def check_replaced(self) -> None:
        """Refuse (ValueError naming the key) a dict that no longer has exactly the layout's keys, or a key replaced
        by an array whose shape or dtype is not the layout's: NumPy would broadcast a (3,) bias into a (2, 3) slot,
        or mix a float32 array into a float64 model, and compute without a word."""
        if self.intact():
            return
        missing = [name for name in self.layout.shapes if name not in self]
        extra = [name for name in self if name not in self.layout.shapes]
        if missing or extra:
            raise ValueError(f"params has lost the arrays {missing} and gained {extra}; expected exactly "
                             f"{list(self.layout.shapes)}")
        for name, shape in self.layout.shapes.items():
            value = self[name]
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != self.flat.dtype:
                got = (f"has shape {value.shape} and dtype {value.dtype}" if isinstance(value, np.ndarray)
                       else f"is a {type(value).__name__}")
                raise ValueError(f"params[{name!r}] {got}; the model's has shape {shape} and dtype "
                                 f"{self.flat.dtype} (replace a parameter only by an array of exactly that shape and "
                                 f"dtype, or write into it: params[{name!r}][...] = value)")

    @classmethod
    def stack(cls, parts: Sequence["FlatArrays"]) -> "FlatArrays":
        """R buffers of one layout as one whose every array has a leading replica axis (R, ...)."""
        parts = [p.repacked() for p in parts]
        layout = parts[0].layout
        flat = np.concatenate([np.stack([p.segment(key) for p in parts]).ravel() for key in layout.segment_keys])
        return cls(flat, layout.with_lead((len(parts),) + layout.lead))

    def unstack(self, r: int) -> "FlatArrays":
        """Replica ``r`` of a stacked buffer, as a new buffer without the replica axis."""
        flat = np.concatenate([segment[r].ravel() for segment in self.repacked()._segments.values()])
        return FlatArrays(flat, self.layout.with_lead(self.layout.lead[1:]))

    def intact(self) -> bool:
        """True while every key still holds its own view of ``flat`` (no array was replaced or added)."""
        return len(self) == len(self._views) and all(map(operator.is_, self.values(), self._views))

    def __reduce__(self) -> tuple:
        # a copy or a pickle rebuilds the views on its own buffer, so they stay views (of the arrays the keys name)
        packed = self.repacked()
        return FlatArrays, (packed.flat, packed.layout)

    def __copy__(self) -> dict:
        return dict(self)  # a shallow copy: the same arrays, in a plain dict
