"""The ``mmoe-np`` command (also ``python -m mmoe_np``): one subcommand per experiment.

Each experiment module in :mod:`mmoe_np.experiments` that defines ``register(subparsers)`` adds its own
subcommands; ``register`` gives every subcommand a ``func(args) -> int`` default that runs it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

EXPERIMENT_MODULES = ("synthetic", "census")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmoe-np",
        description="Multi-gate Mixture-of-Experts (Ma et al., KDD 2018) in pure NumPy: the paper's experiments.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in EXPERIMENT_MODULES:
        module = importlib.import_module(f"mmoe_np.experiments.{name}")
        module.register(subparsers)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as err:  # bad arguments or files: a message naming them, not a traceback
        print(f"mmoe-np {args.command}: error: {err}", file=sys.stderr)
        return 2
