"""Save a model to one ``.npz`` file and load it back, bit for bit; loading never runs code from the file.

A checkpoint is a NumPy ``.npz`` (a zip of ``.npy`` arrays, each with a CRC-32) holding

* every parameter array under its own key (``"experts.0.W"``, ...), in the model's dtype, with the leading replica
  axis of a stacked model (:func:`mmoe_np.stack_models`);
* ``"__mmoe_np__"``: a uint8 array, the UTF-8 bytes of a JSON object::

    {"format": "mmoe_np model", "format_version": 1, "package_version": "0.2.0.dev0", "class": "MMoE",
     "config": {"n_features": 4, "tasks": [...], ..., "dtype": "float32", "seed": 0}, "replica_shape": []}

  ``config`` holds every constructor argument, so ``cls(**config)`` rebuilds the model; for a stacked model
  ``seed`` is the list of the R replicas' seeds and ``replica_shape`` is ``[R]``. An optional ``"data"`` object
  (``save(..., data={...})``) says how the inputs the model expects were made, e.g. the census encoding
  ``{"dataset": "census-income", "group": 2, "numeric": "log1p", ...}``: a model trained on one encoding returns
  wrong predictions, silently, for another of the same width. :func:`checkpoint_info` reads it without the arrays.

:func:`load` reads the arrays, checks that no size in the JSON description exceeds the largest dimension among
them (a forged ``n_features=10**9`` would otherwise allocate that much), rebuilds the model from the description,
and copies the arrays in after checking that their keys, shapes and dtypes are exactly those the description builds
and that every value is finite. Nothing is unpickled: ``allow_pickle=False``.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from . import _validation as V
from ._io import atomic_path

if TYPE_CHECKING:
    from .models import MultiTaskModel

__all__ = ["save", "load", "checkpoint_info", "FORMAT_VERSION"]

FORMAT_NAME = "mmoe_np model"
FORMAT_VERSION = 1  # raised whenever a file written now could not be read by an older load
METADATA_KEY = "__mmoe_np__"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local file header, or an empty zip's directory end


def _model_classes() -> dict[str, type]:
    """The model classes that can be saved, by class name: the seven of ``mmoe_np.MODEL_CLASSES``, the public
    :class:`~mmoe_np.MixtureOfExperts` they specialise, and the beyond-the-paper CGC and PLE.

    Imported when first needed, not with this module: the models call :func:`save` themselves.
    """
    from . import models
    return {**models.MODEL_CLASSES, "MixtureOfExperts": models.MixtureOfExperts, "CGC": models.CGC,
            "PLE": models.PLE}


def _metadata(model: MultiTaskModel, data: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON description of ``model``: format, class, full config (dtype and seed included), replicas, and the
    description of its inputs ``data`` when given."""
    import mmoe_np
    config = {**model.config(), "dtype": model.dtype.name, "seed": model.seed}  # whether config() has them or not
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "package_version": mmoe_np.__version__,
            "class": type(model).__name__, "config": config, "replica_shape": list(model.replica_shape)}
    return meta if data is None else {**meta, "data": data}


def _checked_data(data: Any) -> dict[str, Any] | None:
    """``data`` as a JSON object (a dict with str keys and JSON values: str, numbers, bools, None, lists, dicts)."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"data must be a dict with str keys describing the model's inputs; got {data!r}")

    def keys_are_str(value: Any) -> bool:  # json.dumps would turn 1 into "1", and two keys into one
        if isinstance(value, dict):
            return all(isinstance(k, str) and keys_are_str(v) for k, v in value.items())
        return all(map(keys_are_str, value)) if isinstance(value, (list, tuple)) else True

    try:
        if not keys_are_str(data):
            raise ValueError("every key, at every depth, must be a str")
        return json.loads(json.dumps(data, default=_to_json, allow_nan=False))  # NumPy values as in the config
    except (TypeError, ValueError, RecursionError) as err:
        raise ValueError(f"data must hold JSON values only (str keys; str, finite numbers, bools, None, lists, "
                         f"dicts, NumPy numbers and arrays): {err}") from None


def _to_json(value: Any) -> Any:
    """``json.dumps``' fallback for the NumPy values a config may hold: scalars, arrays and dtypes."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    raise TypeError(f"config value {value!r} of type {type(value).__name__} cannot be written as JSON")


def save(model: MultiTaskModel, path: str | os.PathLike, *, data: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (single or stacked) to the ``.npz`` file ``path``, atomically; returns the path. ``data``
    (a JSON object) describes the inputs the model expects; :func:`checkpoint_info` returns it.

    The file is written under a temporary name in the same folder and renamed over ``path`` only once complete, so
    an interrupted save leaves any earlier file at ``path`` as it was. ``path`` is used as given (no suffix added).
    """
    classes = _model_classes()
    if classes.get(type(model).__name__) is not type(model):
        raise ValueError(f"model must be one of mmoe_np's models {sorted(classes)}; got {type(model).__name__}")
    if len(model.replica_shape) > 1:
        raise ValueError(f"model must be a single or a stacked model (replicas (R,)); got replicas "
                         f"{model.replica_shape}")
    if METADATA_KEY in model.params:
        raise ValueError(f"model.params must not use the key {METADATA_KEY!r}, which holds the checkpoint's metadata")
    data = _checked_data(data)
    path = _checked_path(path)
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory")
    if not path.parent.is_dir():
        raise ValueError(f"path: the folder {str(path.parent)!r} does not exist")
    text = json.dumps(_metadata(model, data), default=_to_json, allow_nan=False)
    arrays = {METADATA_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **model.checked_params()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, allow_pickle=False, **arrays)
    return path


def _checked_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a file name (str or Path); got {type(path).__name__}")
    return Path(path)


def load(path: str | os.PathLike) -> MultiTaskModel:
    """The model saved at ``path`` by :func:`save`: the same class, config, dtype, seed(s) and parameters, bit for bit.

    Raises ``ValueError`` naming the file and the problem for a missing, truncated, damaged or foreign file, an
    unknown class, a newer format version, a config with sizes beyond the file's arrays, arrays whose keys, shapes
    or dtypes do not match the config, or parameters that are NaN or inf.
    """
    path = _checked_path(path)
    with _opened(path) as npz:
        meta = _read_metadata(path, npz)
        arrays = {}
        for name in npz.files:
            if name != METADATA_KEY:
                with _reading(path, f"array {name!r}"):
                    arrays[name] = npz[name]  # the whole member is read, so its CRC-32 is checked
    _check_sizes(path, meta, arrays)
    model = _build(path, meta)
    if arrays.keys() != model.params.keys():
        missing, extra = sorted(model.params.keys() - arrays.keys()), sorted(arrays.keys() - model.params.keys())
        raise ValueError(f"{path}: the arrays do not match the config of {meta['class']}; missing {missing}, "
                         f"extra {extra}")
    for name, target in model.params.items():
        stored = arrays[name]
        if stored.shape != target.shape or stored.dtype != target.dtype:
            raise ValueError(f"{path}: array {name!r} has shape {stored.shape} and dtype {stored.dtype}; "
                             f"the config gives shape {target.shape} and dtype {target.dtype}")
        if not np.all(np.isfinite(stored)):
            raise ValueError(f"{path}: array {name!r} contains NaN or inf; a saved model's parameters are finite")
        target[...] = stored
    return model


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON description of the model file ``path``, without reading its arrays: ``format``,
    ``format_version``, ``package_version``, ``class``, ``config``, ``replica_shape``, and ``data`` (the description
    of the inputs given to :func:`save`, None if none was; :func:`load` does not keep it, so a model loaded and
    saved again needs it again). Only the description's format is checked (ValueError as :func:`load` for a file
    that is not a model file); :func:`load` checks the rest (the class, the config against the arrays)."""
    path = _checked_path(path)
    with _opened(path) as npz:
        return {"data": None, **_read_metadata(path, npz)}


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Any]:
    """The .npz archive at ``path``, opened without pickles after checking that it is a zip at all."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as f:  # ours to close, whatever np.load makes of a damaged archive
        magic = f.read(4)
        if len(magic) < 4:
            raise ValueError(f"{path}: empty or truncated file ({len(magic)} bytes)")
        if magic not in ZIP_MAGIC:  # checked here, so np.load never even considers another format (a pickle)
            raise ValueError(f"{path}: not an mmoe_np model file (not a .npz archive)")
        f.seek(0)
        with _reading(path, "the archive's directory"):
            npz = np.load(f, allow_pickle=False)
        with npz:
            yield npz


def _check_sizes(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Refuse a description whose sizes (every integer of the config but the seeds, and the replica count) exceed
    the largest dimension of the file's arrays: each size of a model is a dimension of one of its arrays, so such a
    description cannot match the file, and building it first could allocate any amount of memory."""
    largest = max((n for a in arrays.values() for n in a.shape), default=0)
    sizes = [(key, value) for key, value in meta["config"].items() if key != "seed"]
    for key, value in [*sizes, ("replica_shape", meta["replica_shape"])]:
        if any(n > largest for n in _integers(value)):
            raise ValueError(f"{path}: its config gives {key} = {value!r}, larger than any array in the file "
                             f"(largest dimension {largest}); the arrays do not match the config")


def _integers(value: Any) -> list[int]:
    """The integers in a JSON value (a number, or lists of them); booleans are not sizes."""
    if isinstance(value, list):
        return [n for item in value for n in _integers(item)]
    return [value] if isinstance(value, int) and not isinstance(value, bool) else []


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn whatever a damaged zip or .npy makes zipfile or NumPy raise into one ValueError naming the file.

    That is any ``Exception``: a bad CRC or header (BadZipFile), missing bytes (EOFError, ValueError), a garbled
    compression method or flag (NotImplementedError, RuntimeError), an unparsable .npy header (ValueError,
    tokenize.TokenError), a shape too large to allocate (MemoryError), and more. Only library reads run inside.
    """
    try:
        yield
    except Exception as err:
        raise ValueError(f"{path}: damaged or truncated file: cannot read {what} ({type(err).__name__}: {err})") \
            from err


def _read_metadata(path: Path, npz: Any) -> dict[str, Any]:
    """The checked JSON description stored in ``npz``."""
    if METADATA_KEY not in npz.files:
        raise ValueError(f"{path}: not an mmoe_np model file (a .npz without the {METADATA_KEY!r} entry)")
    with _reading(path, "the metadata"):
        raw = npz[METADATA_KEY]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path}: its {METADATA_KEY!r} entry is {raw.dtype} of shape {raw.shape}, not UTF-8 bytes")
    with _reading(path, "the metadata's JSON"):
        meta = json.loads(raw.tobytes().decode("utf-8"))  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not an mmoe_np model file (its metadata has no format {FORMAT_NAME!r})")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: written in format version {version} by mmoe_np "
                         f"{meta.get('package_version', '?')}; this mmoe_np reads format versions up to "
                         f"{FORMAT_VERSION} (upgrade mmoe_np)")
    for key, kind in (("class", str), ("config", dict), ("replica_shape", list)):
        if not isinstance(meta.get(key), kind):
            raise ValueError(f"{path}: metadata {key!r} must be a {kind.__name__}; got {meta.get(key)!r}")
    if not isinstance(meta.get("data", {}), dict):
        raise ValueError(f"{path}: metadata 'data' must be an object describing the inputs; got {meta['data']!r}")
    return meta


def _build(path: Path, meta: dict[str, Any]) -> MultiTaskModel:
    """A fresh model of the described class, config and replicas (the caller overwrites its arrays)."""
    import mmoe_np
    classes = _model_classes()
    cls = classes.get(meta["class"])
    if cls is None:
        raise ValueError(f"{path}: unknown model class {meta['class']!r}; expected one of {sorted(classes)}")
    config = dict(meta["config"])
    seed = config.pop("seed", None)
    replica_shape = meta["replica_shape"]
    if replica_shape:
        n = replica_shape[0] if len(replica_shape) == 1 else None
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or not isinstance(seed, list) or len(seed) != n:
            raise ValueError(f"{path}: a stacked model needs replica_shape [R] and R seeds; got replica_shape "
                             f"{replica_shape} and seed {seed!r}")
    try:
        if not replica_shape:
            return cls(**config, seed=seed)
        seeds = tuple(V.int_at_least("seed", s, 0) for s in seed)
        stacked = mmoe_np.stack_models([cls(**config, seed=seeds[0])] * replica_shape[0])
    except (TypeError, ValueError) as err:  # a config the constructor refuses
        raise ValueError(f"{path}: its config does not build a {cls.__name__}: {err}") from err
    stacked.seed = seeds  # as stack_models sets it: one seed per replica
    return stacked
