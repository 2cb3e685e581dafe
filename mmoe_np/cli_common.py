"""What every subcommand of :mod:`mmoe_np.cli` shares: the registry of its flags (:data:`FLAGS`, read by the error
handler to name them), :func:`option` that fills it, and the help and output lines of every subcommand."""
from __future__ import annotations

import argparse

from pathlib import Path
from typing import Any, Sequence

from .training import format_seconds

__all__ = ["FLAGS", "DefaultsHelpFormatter", "option", "models_help", "print_written"]

# dest -> flag of every option, filled as the parsers are built: the library's errors name its arguments
# ("train_rows"), the command's name the flags ("--train-rows").
FLAGS: dict[str, str] = {}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to a flag's help, unless the help already says what the default is or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "(default" in help_text or action.default is None:
            return help_text
        return super()._get_help_string(action)


def option(parser: Any, *flags: str, **kwargs: Any) -> None:
    action = parser.add_argument(*flags, **kwargs)
    FLAGS[action.dest] = flags[0]


def models_help(known: Sequence[str], default: Sequence[str]) -> str:
    return (f"models among {', '.join(known)}, or all; separated by commas or spaces, any case "
            f"(default: {' '.join(default)})")


def print_written(paths: Sequence[Path], seconds: float) -> None:
    print(f"wall time {format_seconds(seconds)}; wrote " + ", ".join(str(p) for p in paths))
