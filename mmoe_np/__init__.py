"""mmoe-np: multi-task learning with Multi-gate Mixture-of-Experts in pure NumPy."""
import importlib as _importlib

_SUBMODULES = ("data", "metrics")


def __getattr__(name):
    # `mn.data` and `mn.metrics` are loaded on first use (PEP 562).
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'mmoe_np' has no attribute {name!r}")
