"""Parameters and gradients as named views into one flat buffer.

A model's parameters are a dict of readable names (``experts.0.W``, ``gates.b``, ...), but each array is a *view*
into one contiguous 1-D buffer ``flat`` (R stacked replicas: each block holds its R copies side by side). The gradients of every
``forward_backward`` call are a fresh buffer of the same layout, seen through the same names. So

* an optimizer that receives both updates ``flat`` with a handful of whole-buffer operations instead of a handful
  per array (Adam at batch 1 was 40% of a step with ten arrays);
* a model may store several parameters side by side in one **block**, so that one matmul computes them all: the
  mixture of experts keeps the first layer of every expert and every gate in one (d, E*h + G*E) matrix, and
  ``experts.0.W`` (E, d, h) and ``gates.W`` (G, d, E) are strided views of its columns.

A :class:`FlatLayout` lists the blocks (a name, a shape, an offset in ``flat``) and where each parameter sits in its
block (a range of the block's last axis, reshaped, optionally with its two leading axes swapped).
:class:`FlatArrays` is the dict of views with its ``flat`` buffer and ``layout``; ``model.params`` is one, and so is
every ``grads``. Writing into a view (``params[k][...] = value``, ``params[k] -= step``) writes into ``flat``;
replacing a key by another array would cut it off, so the optimizers check :meth:`FlatArrays.intact`.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

__all__ = ["Slot", "FlatLayout", "FlatArrays"]


class Slot(NamedTuple):
    """Where one parameter lives: columns ``[start, stop)`` of its block's last axis (None: the whole block),
    reshaped to ``shape``, and, with ``swap``, its first two axes exchanged (the stack axis moved in front)."""

    block: str
    start: int | None
    stop: int | None
    shape: tuple
    swap: bool


class FlatLayout:
    """The blocks of a flat buffer and the slot of every parameter in them.

    ``blocks`` is ``[(name, shape), ...]`` in buffer order; ``slots`` maps each parameter name (in the order of
    ``params``) to its :class:`Slot`; ``lead`` are replica axes (``(R,)`` for :func:`stack_models`) in front of every
    block and every view. Each block is contiguous, replica axes included, so a parameter that fills its block is a
    contiguous array too.
    """

    def __init__(self, blocks: Sequence[tuple[str, tuple]], slots: Mapping[str, Slot], lead: tuple = ()) -> None:
        self.lead = tuple(lead)
        self.blocks = [(name, tuple(shape)) for name, shape in blocks]
        self.slots = dict(slots)
        sizes = [math.prod(self.lead + shape) for _, shape in self.blocks]
        offsets = np.cumsum([0] + sizes)
        self.offsets = {name: (int(o), n) for (name, _), o, n in zip(self.blocks, offsets, sizes)}
        self.size = int(offsets[-1])
        self._specs: dict[Any, tuple] = {}  # itemsize -> (name, shape, byte offset, strides) of every view

    @classmethod
    def separate(cls, shapes: Mapping[str, tuple]) -> "FlatLayout":
        """Every parameter its own block, in the given order."""
        return cls(list(shapes.items()), {name: Slot(name, None, None, tuple(s), False) for name, s in shapes.items()})

    def with_lead(self, lead: tuple) -> "FlatLayout":
        """The same blocks and slots with replica axes ``lead`` in front."""
        return FlatLayout(self.blocks, self.slots, lead)

    def block_arrays(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The blocks of ``flat`` as views (*lead, *shape)."""
        return {name: np.reshape(flat[self.offsets[name][0]:sum(self.offsets[name])], self.lead + shape, copy=False)
                for name, shape in self.blocks}

    def _view_specs(self, flat: np.ndarray) -> tuple:
        """(name, shape, byte offset, strides) of every parameter's view of ``flat``, worked out once per dtype."""
        key = flat.dtype.itemsize
        if key not in self._specs:
            blocks, axis = self.block_arrays(flat), len(self.lead)
            specs = []
            for name, slot in self.slots.items():
                v = blocks[slot.block]
                if slot.start is not None:
                    v = v[..., slot.start:slot.stop]
                v = np.reshape(v, self.lead + slot.shape, copy=False)
                if slot.swap:
                    v = np.swapaxes(v, axis, axis + 1)
                offset = v.__array_interface__["data"][0] - flat.__array_interface__["data"][0]
                specs.append((name, v.shape, offset, v.strides))
            self._specs[key] = tuple(specs)
        return self._specs[key]

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Every parameter as a view of ``flat`` (a contiguous 1-D array of ``size`` numbers), in slot order."""
        if flat.ndim != 1 or not flat.flags.c_contiguous or flat.size != self.size:
            raise ValueError(f"flat must be a contiguous 1-D array of {self.size} numbers; got shape {flat.shape}")
        dtype = flat.dtype
        return {name: np.ndarray(shape, dtype, flat, offset, strides)
                for name, shape, offset, strides in self._view_specs(flat)}


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
        """A new flat buffer holding copies of ``arrays`` (the slots' names and shapes) in ``layout``."""
        packed = cls(np.zeros(layout.size, dtype=next(iter(arrays.values())).dtype), layout)
        for name, view in packed.items():
            view[...] = arrays[name]
        return packed

    @classmethod
    def stack(cls, parts: Sequence["FlatArrays"]) -> "FlatArrays":
        """R buffers of one layout as one whose every block has a leading replica axis (R, ...)."""
        layout = parts[0].layout
        blocks = [p.blocks() for p in parts]
        flat = np.concatenate([np.stack([b[name] for b in blocks]).ravel() for name, _ in layout.blocks])
        return cls(flat, layout.with_lead((len(parts),) + layout.lead))

    def unstack(self, r: int) -> "FlatArrays":
        """Replica ``r`` of a stacked buffer, as a new buffer without the replica axis."""
        lead = self.layout.lead[1:]
        flat = np.concatenate([block[r].ravel() for block in self.blocks().values()])
        return FlatArrays(flat, self.layout.with_lead(lead))

    def intact(self) -> bool:
        """True while every key still holds its own view of ``flat`` (no array was replaced or added)."""
        return len(self) == len(self._views) and all(map(operator.is_, self.values(), self._views))

    def blocks(self) -> dict[str, np.ndarray]:
        """The layout's blocks as views of ``flat``."""
        return self.layout.block_arrays(self.flat)

    def __reduce__(self) -> tuple:
        # a copy or a pickle rebuilds the views on its own buffer, so they stay views
        return FlatArrays, (self.flat, self.layout)

    def __copy__(self) -> dict:
        return dict(self)  # a shallow copy: the same arrays, in a plain dict
