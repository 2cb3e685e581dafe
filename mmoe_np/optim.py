"""Optimizers that update a model's parameter arrays in place: SGD (with momentum) and Adam.

All updates are elementwise, so stacked replicas (a leading replica axis) are optimised exactly as R separate runs.
A step either applies to every parameter or to none: every gradient is checked (keys, shapes, dtypes, finite values)
before the first array changes.

**The flat path.** A model's ``params`` and the ``grads`` of its ``forward_backward`` are views into one flat buffer
each, in one layout (:mod:`mmoe_np.models.flat`). An optimizer built on such params keeps its own state (Adam's
``m`` and ``v``, SGD's velocity) in the same layout, and a step whose grads share it runs the same elementwise
update once on the whole buffers: a handful of NumPy calls instead of a handful per array, with the same numbers
bit for bit (every operation is elementwise). Any other dict of arrays takes the per-array path.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from . import _validation as V

__all__ = ["Optimizer", "SGD", "Adam", "SCHEDULES", "scheduled_lr", "check_schedule"]

FLAT_BLOCK = 16384  # numbers per block of the flat path: a block's arrays and scratch fit in a core's L2 cache


SCHEDULES = ("constant", "cosine")  # how the learning rate moves over the steps (scheduled_lr)


def scheduled_lr(lr: float, step: int, steps: int, schedule: str = "constant") -> float:
    """The learning rate of step ``step`` (1..steps) of a run of ``steps`` steps whose base rate is ``lr``.

    ``"constant"``: ``lr`` at every step. ``"cosine"`` (annealing without restarts):
    ``lr * (1 + cos(pi * (step - 1) / steps)) / 2``, ``lr`` at step 1 falling smoothly to ``lr * (1 - cos(pi / steps))
    / 2 ~ 0`` at the last step, half of ``lr`` at mid-run: the late small steps average out the minibatch noise
    that a constant rate keeps in the parameters. Set ``optimizer.lr`` to it before step ``step`` (``fit`` and the
    lock-step trainer do)."""
    if check_schedule(schedule) == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))


def check_schedule(schedule: Any) -> str:
    """``schedule`` if it is one of :data:`SCHEDULES`, else a ValueError naming it."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")
    return schedule


def _check_params(params: Any) -> Mapping[str, np.ndarray]:
    """The dict of arrays an optimizer will change in place: str keys, writable real floating numpy arrays."""
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty dict of arrays, e.g. model.params")
    for name, p in params.items():
        if not isinstance(name, str):
            raise ValueError(f"params keys must be strings; got {name!r}")
        if not isinstance(p, np.ndarray):  # a list or a float cannot be changed in place
            raise ValueError(f"params[{name!r}] must be a numpy array (updated in place); got {type(p).__name__}")
        if p.dtype.kind != "f":
            raise ValueError(f"params[{name!r}] must be a floating-point array; got dtype {p.dtype}")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}] is read-only; the optimizer updates it in place")
    return params


class Optimizer:
    """Holds references to the parameter arrays; :meth:`step` changes them in place."""

    _state_names: tuple[str, ...] = ()  # the attributes that hold state mirroring params (flat buffers on the flat path)

    def __init__(self, params: Mapping[str, np.ndarray], lr: float) -> None:
        self.params = _check_params(params)
        self.lr = V.positive_float("lr", lr)
        self.t = 0  # number of steps taken
        self._buffers: dict[str | None, tuple[np.ndarray, ...]] = {}  # scratch, see _scratch
        # the flat path: params in one buffer, and this class's own per-array update (a subclass that overrides
        # _update gets the per-array path, so its update is the one applied)
        self._flat = hasattr(params, "flat") and hasattr(params, "intact") and type(self)._update in _FLAT_UPDATES

    def _zeros(self, dtype_of: Any = lambda dtype: dtype) -> Mapping[str, np.ndarray]:
        """Optimizer state mirroring ``params``: zeros of dtype ``dtype_of(param dtype)``, in the params' flat
        layout when they have one."""
        if self._flat:
            flat = self.params.flat
            return type(self.params)(np.zeros(flat.shape, dtype=dtype_of(flat.dtype)), self.params.layout)
        return {name: np.zeros(p.shape, dtype=dtype_of(p.dtype)) for name, p in self.params.items()}

    def _flat_grads(self, grads: Any) -> np.ndarray | None:
        """``grads.flat`` when a step can run on whole buffers: params and grads intact views of one layout, the
        same dtype, every value finite. None otherwise (then the per-array path checks and names what is wrong)."""
        if not (self._flat and getattr(grads, "layout", None) is self.params.layout and grads.intact()
                and self.params.intact() and all(getattr(self, state).intact() for state in self._state_names)):
            return None
        g = grads.flat
        if g.dtype != self.params.flat.dtype or not np.isfinite(g).all():
            return None
        return g

    def _check(self, grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every gradient as a finite real array of its parameter's dtype, all checked before any parameter changes.

        A NaN or inf gradient is refused: applied, it would turn the parameters into NaN for good.
        """
        if not isinstance(grads, Mapping):
            raise ValueError(f"grads must be a dict of arrays with the keys of params; got {type(grads).__name__}")
        if grads.keys() != self.params.keys():
            missing, extra = self.params.keys() - grads.keys(), grads.keys() - self.params.keys()
            raise ValueError(f"grads must have the keys of params; missing {sorted(missing)}, extra {sorted(extra)}")
        checked = {}
        for name, g in grads.items():
            g = np.asarray(g)
            if g.shape != self.params[name].shape:
                raise ValueError(f"grads[{name!r}] has shape {g.shape}; params[{name!r}] has "
                                 f"{self.params[name].shape}")
            if g.dtype.kind not in "biuf":
                raise ValueError(f"grads[{name!r}] must be a real numeric array; got dtype {g.dtype}")
            if not np.all(np.isfinite(g)):
                raise ValueError(f"grads[{name!r}] contains NaN or inf (the loss diverged?); no parameter was changed")
            checked[name] = V.cast(f"grads[{name!r}]", g, self.params[name].dtype)
        return checked

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update from ``grads`` (the keys and shapes of ``params``, finite values)."""
        flat = self._flat_grads(grads)
        if flat is not None:  # the whole buffer, block by block: each block's dozen passes stay in the cache
            self.t += 1
            p = self.params.flat
            for start in range(0, p.size, FLAT_BLOCK):
                block = slice(start, start + FLAT_BLOCK)
                p_block = p[block]  # a view: updated in place (p[block] -= ... would also copy it back onto itself)
                p_block -= self._update(block, flat[block])
            return
        grads = self._check(grads)
        self.t += 1
        for name, p in self.params.items():
            p -= self._update(name, grads[name])

    def _update(self, name: str | slice, g: np.ndarray) -> np.ndarray:
        """The amount to subtract from ``params[name]`` for gradient ``g`` (name a slice: that block of the flat
        buffer); updates this optimizer's state."""
        raise NotImplementedError

    def _state(self, state: Any, name: str | slice) -> np.ndarray:
        """``state[name]``, or a block of the flat buffer of ``state`` for the flat path (name a slice)."""
        return state.flat[name] if isinstance(name, slice) else state[name]

    def _scratch(self, name: str | slice, like: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """Buffers shaped like ``like``, kept between steps (one set per array, one set for all flat blocks): no
        temporary is allocated (for stacked replicas these are megabytes, mapped and zeroed afresh every step)."""
        if isinstance(name, slice):
            if None not in self._buffers:
                self._buffers[None] = tuple(np.empty(FLAT_BLOCK, dtype=a.dtype) for a in like)
            return tuple(b[:like[0].size] for b in self._buffers[None])
        if name not in self._buffers:
            self._buffers[name] = tuple(np.empty_like(a) for a in like)
        return self._buffers[name]


class SGD(Optimizer):
    """Stochastic gradient descent with heavy-ball momentum and optional weight decay:
    ``v <- mu v + g + weight_decay * p``, ``p <- p - lr v`` (``torch.optim.SGD``'s convention). Without momentum
    the decay shrinks every parameter by ``lr * weight_decay * p`` per step, the gradient of an L2 penalty
    ``(weight_decay / 2) ||p||^2``; ``weight_decay=0`` (default) is plain SGD."""

    _state_names = ("velocity",)

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-2, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = V.positive_float("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
        self.weight_decay = V.positive_float("weight_decay", weight_decay, allow_zero=True)
        self.velocity = self._zeros()

    def _update(self, name: str | slice, g: np.ndarray) -> np.ndarray:
        v = self._state(self.velocity, name)
        v *= self.momentum
        v += g
        if self.weight_decay:
            v += self.weight_decay * self._state(self.params, name)
        return self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction, and optional decoupled weight decay (AdamW, Loshchilov &
    Hutter, ICLR 2019):

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``,
    ``p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``. The decay shrinks every parameter (biases included) towards 0 at a rate that does
    not depend on the gradient's scale, which L2 added to the loss would not do under Adam's normalisation;
    ``weight_decay=0`` (default) is plain Adam. The decay follows ``lr``, so a learning-rate schedule anneals it too.

    Computed in the equivalent form of the paper's Sec. 2 (as TensorFlow does), which folds both corrections into
    two scalars and saves two passes over every array:
    ``p <- p - lr_t * m / (sqrt(v) + eps_t)``, ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``eps_t = eps sqrt(1 - b2^t)``.

    ``v`` has the parameters' dtype until it cannot hold ``g^2``: a square needs twice the exponent range of its root,
    so in float32 ``g^2`` overflows once |g| > 1.8e19 and the step would silently become ``m / inf = 0``. The first
    time that happens (NumPy reports the overflow; nothing has changed yet), ``v`` is promoted to float64 for good,
    where the square of a float32 is exact and every float32 gradient (up to 3.4e38) still takes a step of about
    ``lr``. Until then a float32 step costs float32 passes, less than half the time of float64 ones.
    """

    _state_names = ("m", "v")

    def __init__(self, params: Mapping[str, np.ndarray], lr: float = 1e-3, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= V.positive_float(name, beta, allow_zero=True) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {beta!r}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = V.positive_float("eps", eps)
        self.weight_decay = V.positive_float("weight_decay", weight_decay, allow_zero=True)
        self.m = self._zeros()
        self.v = self._zeros()

    def _update(self, name: str | slice, g: np.ndarray) -> np.ndarray:
        v = self._state(self.v, name)
        m_term, v_term = self._scratch(name, (g, v))
        try:
            with np.errstate(over="raise"):
                g2 = np.square(g, out=v_term, dtype=v.dtype)
        except FloatingPointError:  # |g| > 1.8e19 in float32: v moves to float64 before anything has changed
            v = self._promote_v(name)
            m_term, v_term = self._scratch(name, (g, v))
            g2 = np.square(g, out=v_term, dtype=v.dtype)
        m = self._state(self.m, name)
        m *= self.beta1
        m += np.multiply(g, 1 - self.beta1, out=m_term)
        v *= self.beta2
        g2 *= 1 - self.beta2
        v += g2
        root = math.sqrt(1 - self.beta2 ** self.t)  # correctly rounded, as np.sqrt
        lr_t = self.lr * root / (1 - self.beta1 ** self.t)
        denominator = np.sqrt(v, out=v_term)  # the buffer of g2 is free again
        denominator += self.eps * root
        update = np.divide(m, denominator, out=denominator)
        update *= lr_t
        if self.weight_decay:
            update += (self.lr * self.weight_decay) * self._state(self.params, name)
        return update

    def _promote_v(self, name: str | slice) -> np.ndarray:
        """Move ``v`` to float64 and drop its float32 scratch: the whole flat buffer when ``v`` is one (also on the
        per-array path, so that it stays one buffer the flat path can read), else the one array ``name``; returns
        the new state of ``name``."""
        if hasattr(self.v, "flat") and self.v.intact():
            self.v = type(self.v)(self.v.flat.astype(np.float64), self.v.layout)
            self._buffers.clear()
        else:
            self.v[name] = self.v[name].astype(np.float64)
            self._buffers.pop(name, None)
        return self._state(self.v, name)


_FLAT_UPDATES = (SGD._update, Adam._update)  # the updates that may run on a whole flat buffer (not an override)
