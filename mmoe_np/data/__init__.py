"""Data sets: the synthetic task-relatedness generator and the UCI Census-income loader."""
import importlib as _importlib

_MODULES = ("synthetic", "census")


def __getattr__(name):
    # Public names are whatever each data module lists in its __all__.
    for module_name in _MODULES:
        try:
            module = _importlib.import_module(f".{module_name}", __name__)
        except ModuleNotFoundError:
            continue
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module 'mmoe_np.data' has no attribute {name!r}")
