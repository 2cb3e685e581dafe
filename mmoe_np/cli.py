"""The ``mmoe-np`` command (also ``python -m mmoe_np``): one subcommand per study, every parser and the one error
handler.

* ``correlation`` (Fig. 2), ``shared-bottom`` (Fig. 3), ``synthetic`` (Figs. 4 and 5, the main job),
  ``trainability`` (Fig. 5): :mod:`mmoe_np.experiments.correlation` and :mod:`mmoe_np.experiments.synthetic`;
* ``census``: :mod:`mmoe_np.experiments.census`; ``census-tune``: :mod:`mmoe_np.experiments.census_tune` (their
  parsers and runners in :mod:`mmoe_np.cli_census`; the flag registry :func:`~mmoe_np.cli_common.option` fills
  in :mod:`mmoe_np.cli_common`);
* ``docs-figures``: the diagrams of ``docs/`` (:func:`mmoe_np.experiments.figures.docs_figures`).

The same conventions everywhere: ``--models`` takes names separated by commas or spaces in any case
(``--models mmoe,omoe`` or ``--models MMoE OMoE``); ``--out`` is checked before any training (and created only
when the results are written) and receives a run's files all together
(:func:`mmoe_np.experiments.common.staged_outputs`); an error is one line naming the flag (``--train-rows``), exit
status 2; Ctrl-C prints "interrupted" (exit 130) and SIGTERM "terminated" (exit 143), both after stopping the
worker processes, with no traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

from . import cli_census
from .cli_common import FLAGS, models_help, option, print_written
from .experiments import correlation, figures, gates, synthetic  # figures imports matplotlib only to draw
from .experiments.common import check_out, parse_models
from .experiments.workers import WorkerDied
from .optim import SCHEDULES
from .training import Progress

__all__ = ["build_parser", "main"]

_SUBCOMMANDS: dict[str, argparse.ArgumentParser] = {}  # name -> its parser, filled by build_parser


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that the command unwinds (stopping its worker pool, removing its
    staged files) as on Ctrl-C. A BaseException, like KeyboardInterrupt: no ``except Exception`` swallows it."""


# ---------------------------------------------------------------------------------------------------------------
# The parsers
# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmoe-np",
        description="Multi-gate Mixture-of-Experts (Ma et al., KDD 2018) in pure NumPy: the paper's experiments.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_correlation(subparsers)
    for name, help_text, models, correlations in (
            ("shared-bottom", "Fig. 3: Shared-Bottom (16) test loss vs step at several correlations",
             ("shared-bottom-16",), synthetic.PAPER_CORRELATIONS),
            ("synthetic", "Figs. 4 and 5: Shared-Bottom vs OMoE vs MMoE (the main job; a ~2 minute preview "
                          "without arguments, --profile paper for the paper's scale)", synthetic.COMPARISON_MODELS,
             synthetic.PAPER_CORRELATIONS),
            ("trainability", "Fig. 5: histograms of the final loss over repeated runs",
             synthetic.COMPARISON_MODELS, synthetic.TRAINABILITY_CORRELATIONS)):
        _add_training_study(subparsers, name, help_text, models, correlations)
    cli_census.add_census(subparsers)
    cli_census.add_census_tune(subparsers)
    cli_census.add_census_paper(subparsers)
    _add_gates(subparsers)
    p = subparsers.add_parser("docs-figures", help="redraw the diagrams of docs/ (MMoE graph, three models, "
                              "softmax VJP)", description="Draw the figures docs/ links to with the package's own "
                              "plotting code: " + ", ".join(figures.DOCS_FIGURES) + ".")
    option(p, "--out", default="docs/figures", help="output directory (default: %(default)s)")
    p.set_defaults(func=_run_docs_figures)
    _SUBCOMMANDS.update(subparsers.choices)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def _add_correlation(subparsers: Any) -> None:
    p = subparsers.add_parser("correlation", help="Fig. 2: label Pearson correlation vs weight cosine p",
                              description="Fig. 2 of the paper: for each weight cosine p, the Pearson correlation "
                                          "of the two synthetic labels over --runs runs of --points points.")
    option(p, "--out", default="results/correlation", help="output directory (default: %(default)s)")
    option(p, "--seed", type=int, default=0, help="random seed (default: %(default)s)")
    option(p, "--runs", type=int, default=100, help="runs per p (default: %(default)s)")
    option(p, "--points", dest="n_points", type=int, default=10_000, help="points per run (default: %(default)s)")
    option(p, "--correlations", type=float, nargs="+", default=list(correlation.DEFAULT_CORRELATIONS),
           metavar="P", help="weight cosines (default: 0 0.1 ... 1)")
    option(p, "--no-plot", action="store_true", help="write the numbers only, no PNG")
    p.set_defaults(func=_run_correlation)


def _add_training_study(subparsers: Any, name: str, help_text: str, models: Sequence[str],
                        correlations: Sequence[float]) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text + ". Options left out take the "
                              "values of --profile.")
    option(p, "--out", default=f"results/{name}", help="output directory (default: %(default)s)")
    option(p, "--seed", type=int, default=0, help="random seed (default: %(default)s)")
    option(p, "--profile", choices=tuple(synthetic.PROFILES), default="quick",
           help="; ".join(f"{name}: {_describe(values)}" for name, values in synthetic.PROFILES.items())
           + " (default: %(default)s)")
    option(p, "--runs", type=int, help="independent runs per model and correlation")
    option(p, "--steps", type=int, help="training steps per run")
    option(p, "--batch-size", type=int, help="fresh samples per step")
    option(p, "--lr", type=_learning_rates, metavar="LR|MODEL=LR,...",
           help="Adam learning rate, one for all or per model, e.g. mmoe=1e-3,omoe=1e-2 (models not named keep "
                "the profile's rate)")
    option(p, "--schedule", choices=SCHEDULES,
           help="learning-rate schedule, the same for every model: constant, or cosine (from LR down to ~0)")
    option(p, "--eval-every", type=int, help="steps between test-loss evaluations")
    option(p, "--n-test", type=int, help="test points per run")
    option(p, "--correlations", type=float, nargs="+", default=list(correlations), metavar="P",
           help=f"task correlations (default: {' '.join(f'{c:g}' for c in correlations)})")
    option(p, "--models", nargs="+", default=list(models), metavar="MODEL",
           help=models_help(synthetic.MODELS, models))
    option(p, "--dtype", choices=("float32", "float64"), default="float32",
           help="floating-point type (default: %(default)s)")
    option(p, "--workers", type=int, default=min(2, os.cpu_count() or 1),
           help="worker processes, one BLAS thread each; 0: train in this process (default: %(default)s)")
    option(p, "--group-size", type=int, default=200,
           help="runs trained in lock-step per group (default: %(default)s)")
    option(p, "--no-plot", action="store_true", help="write the numbers only, no PNG")
    option(p, "--save-models", action="store_true",
           help=f"also save the trained models, per model and correlation the runs as one stacked model: "
                f"{name}-MODEL-pP.npz (read back with mmoe_np.load)")
    option(p, "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_run_training_study, study_name=name)


def _describe(profile: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, dict):  # one learning rate per model
            return ",".join(f"{name}={rate:g}" for name, rate in v.items())
        return v if isinstance(v, str) else f"{v:g}"

    return ", ".join(f"{k.replace('_', '-')} {value(v)}" for k, v in profile.items())


def _learning_rates(text: str) -> float | dict[str, float]:
    """``"1e-3"`` -> 0.001; ``"mmoe=1e-3,omoe=1e-2"`` -> ``{"mmoe": 0.001, "omoe": 0.01}``."""
    try:
        if "=" not in text:
            return float(text)
        return {name.strip(): float(value) for name, value in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or MODEL=LR pairs separated by commas; got {text!r}")


# ---------------------------------------------------------------------------------------------------------------
# The subcommands
# ---------------------------------------------------------------------------------------------------------------
def _add_gates(subparsers: Any) -> None:
    text = ("MMoE's gates on the synthetic tasks: how often they polarise with and without gate dropout, and how the "
            "two tasks' gates diverge as the correlation p falls")
    p = subparsers.add_parser("gates", help=text, description=text + " (each run trained with plain gates and "
                              "with --gate-dropout on the same data; paired verdicts).")
    option(p, "--out", default="results/gates", help="output directory (default: %(default)s)")
    option(p, "--seed", type=int, default=0, help="random seed (default: %(default)s)")
    for flag, key, kind, what in (("--runs", "runs", int, "runs per correlation"),
                                  ("--steps", "steps", int, "training steps per run"),
                                  ("--batch-size", "batch_size", int, "fresh samples per step"),
                                  ("--lr", "lr", float, "Adam learning rate"),
                                  ("--n-test", "n_test", int, "test points per run"),
                                  ("--gate-dropout", "gate_dropout", float, "gate dropout of the second setting")):
        option(p, flag, dest=key, type=kind, default=gates.DEFAULTS[key],
               help=f"{what} (default: %(default)s)")
    option(p, "--correlations", type=float, nargs="+", default=list(gates.CORRELATIONS), metavar="P",
           help=f"task correlations (default: {' '.join(f'{c:g}' for c in gates.CORRELATIONS)})")
    option(p, "--no-plot", action="store_true", help="write the numbers only, no PNG")
    option(p, "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_run_gates)


def _run_gates(args: argparse.Namespace) -> int:
    out = check_out(args.out)
    progress = None if args.quiet else Progress(args.steps, label="gates")
    study = gates.gates_study(args.correlations, runs=args.runs, steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, n_test=args.n_test, gate_dropout=args.gate_dropout, seed=args.seed,
                              progress=progress)
    if progress is not None:
        progress.close()
    print(study.format())
    print_written(study.write(out, plots=not args.no_plot), study.seconds)
    return 0


def _run_correlation(args: argparse.Namespace) -> int:
    if len(set(args.correlations)) != len(args.correlations):  # as the training studies refuse them
        raise ValueError(f"correlations must not repeat a value; got {args.correlations}")
    out = check_out(args.out)
    result = correlation.label_correlation_study(args.correlations, n_points=args.n_points, runs=args.runs,
                                                 seed=args.seed)
    print(f"label Pearson correlation over {result.runs} runs of {result.n_points} points (mean +- std)")
    for p, m, s in zip(result.correlations, result.mean, result.std):
        print(f"  p = {p:<4g}  {m:7.3f} +- {s:.3f}")
    print_written(result.write(out, plots=not args.no_plot), result.seconds)
    return 0


def _run_training_study(args: argparse.Namespace) -> int:
    profile = synthetic.PROFILES[args.profile]
    settings = {key: getattr(args, key) if getattr(args, key) is not None else profile[key] for key in profile}
    if isinstance(args.lr, dict):
        settings["lr"] = _rates(args.lr, profile["lr"], args.models)
    out = check_out(args.out)
    study = synthetic.synthetic_study(args.models, args.correlations, seed=args.seed, dtype=args.dtype,
                                      workers=args.workers, group_size=args.group_size, progress=not args.quiet,
                                      label=args.study_name, keep_models=args.save_models, **settings)
    print(synthetic.format_table(study))
    print(synthetic.format_convergence(synthetic.convergence(study)))
    for claim in synthetic.claims(study).values():  # the one verdict function of every training subcommand
        print("\n".join(claim.lines()))
    diverged = {m: n for m, n in study.n_diverged().items() if n}
    if diverged:
        print("diverged (non-finite loss or gradient; held at their last good parameters): "
              + ", ".join(f"{n} of {study.runs * len(study.correlations)} {synthetic.MODEL_LABELS[m]} runs"
                          for m, n in diverged.items()))
    paths = study.write(out, args.study_name, plots=not args.no_plot, histograms=args.study_name != "shared-bottom")
    print_written(paths, study.seconds)
    return 0


def _rates(named: dict[str, float], profile_lr: float | dict[str, float], models: Sequence[str]) -> dict[str, float]:
    """``--lr MODEL=LR,...``: one rate per model of ``--models``, the profile's for those the flag does not name."""
    models = parse_models(models, synthetic.MODELS)
    rates: dict[str, float] = {}
    for given, rate in named.items():
        chosen = parse_models(given, synthetic.MODELS, name="lr")
        if len(chosen) != 1:
            raise ValueError(f"lr: name one model per rate, or give one rate for all (--lr 1e-3); got {given!r}")
        if chosen[0] in rates:
            raise ValueError(f"lr names {chosen[0]!r} twice")
        if chosen[0] not in models:
            raise ValueError(f"lr names {chosen[0]!r}, which --models does not train ({', '.join(models)})")
        rates[chosen[0]] = rate
    return {m: rates[m] if m in rates else profile_lr[m] if isinstance(profile_lr, dict) else profile_lr
            for m in models}


def _run_docs_figures(args: argparse.Namespace) -> int:
    out, start = check_out(args.out), time.perf_counter()
    print_written(figures.docs_figures(out), time.perf_counter() - start)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The one error handler
# ---------------------------------------------------------------------------------------------------------------
# a library check of one value of a list flag -> that flag ("correlation must be ..." is one of --correlations)
_ELEMENT_OF = {"correlation": "correlations"}


def _name_flags(message: str) -> str:
    """``"train_rows must be ..."`` -> ``"--train-rows must be ..."``: every argument name with an underscore, and
    the one a message starts with, becomes its flag (not inside paths or longer words). A message about one value
    of a list flag gets the flag in front: ``"--correlations: correlation must be ..."``."""
    for dest in sorted(FLAGS, key=len, reverse=True):
        where = r"(?<![\w\-/.'\"])" if "_" in dest else r"^"
        message = re.sub(where + re.escape(dest) + r"(?![\w\-])", FLAGS[dest], message)
    element = re.match(r"\w+", message)
    if element and element.group() in _ELEMENT_OF and _ELEMENT_OF[element.group()] in FLAGS:
        message = f"{FLAGS[_ELEMENT_OF[element.group()]]}: {message}"
    return message


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mmoe-np`` with ``argv`` (default: the command line); returns the exit status: 0, 2 for bad arguments,
    130 after Ctrl-C, 143 after SIGTERM."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # said by the subcommand's parser, so that its usage is the one printed
            subcommand = _SUBCOMMANDS.get(getattr(args, "command", None), parser)
            subcommand.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as stop:  # --help, --version, or a usage error that argparse has printed
        return int(stop.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return _handle(args.command, lambda: int(args.func(args) or 0))


def _handle(command: str, run: Callable[[], int]) -> int:
    """Run ``run()`` with SIGTERM turned into :class:`Terminated`; every error becomes one line and a status."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return run()
    except (ValueError, OSError) as err:  # bad arguments or files: a message naming them, not a traceback
        print(f"mmoe-np {command}: error: {_name_flags(str(err))}", file=sys.stderr)
        return 2
    except WorkerDied as err:  # a worker process was killed (out of memory?): one line, not a traceback
        print(f"mmoe-np {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mmoe-np {command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"mmoe-np {command}: terminated", file=sys.stderr)
        return 143
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python
