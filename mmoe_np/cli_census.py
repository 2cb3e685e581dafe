"""The ``census``, ``census-tune`` and ``census-paper`` subcommands of :mod:`mmoe_np.cli`: their parsers and the
functions that run them (:mod:`mmoe_np.experiments.census`, :mod:`mmoe_np.experiments.census_tune`,
:mod:`mmoe_np.experiments.census_paper`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .cli_common import DefaultsHelpFormatter, models_help, option, print_written
from ._io import write_text
from .experiments import census, census_paper, census_tune
from .experiments.common import check_out, prepare_out

__all__ = ["add_census", "add_census_tune", "add_census_paper", "run_census", "run_census_tune",
           "run_census_paper"]


def _units_or_auto(text: str) -> tuple[int, ...] | None:
    """``--*-units`` values: "auto" -> None, "" -> () (no hidden layer), "32,16" -> (32, 16)."""
    if text.strip().lower() == "auto":
        return None
    if not text.strip():
        return ()
    try:
        return tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or widths separated by commas such as 16 or 32,16; "
                                         f"got {text!r}") from None


def _units(text: str) -> tuple[int, ...]:
    units = _units_or_auto(text)
    if units is None:
        raise argparse.ArgumentTypeError("expected widths separated by commas such as 16 or 32,16; got 'auto'")
    return units


def _models_help() -> str:
    return (models_help(census.KNOWN_MODELS, ["all"]).replace(" (default: all)", "")
            + "; all (the default) is the paper's seven, CGC and PLE run when named")


def _add_data_dir(p: Any) -> None:
    """``--data-dir``, by default ../shared/data/census-income where it exists (required otherwise)."""
    default_dir = census.DEFAULT_DATA_DIR if census.DEFAULT_DATA_DIR.is_dir() else None
    option(p, "--data-dir", default=default_dir, required=default_dir is None,
           help="folder with census-income.data.gz and census-income.test.gz")


def _add_regularisers(p: Any, defaults: dict[str, Any] | None) -> None:
    """``--weight-decay``, ``--dropout``, ``--schedule``: the same for every model (``defaults`` None: searched by
    census-tune unless given)."""
    from .optim import SCHEDULES

    searched = " (default: searched)" if defaults is None else ""
    D = defaults or {}
    option(p, "--weight-decay", type=float, default=D.get("weight_decay"),
           help="Adam's decoupled weight decay (AdamW), every model alike" + searched)
    option(p, "--dropout", type=float, default=D.get("dropout"),
           help="activation dropout p in [0, 1) after every hidden ReLU, every model alike" + searched)
    option(p, "--schedule", choices=SCHEDULES, default=D.get("schedule"),
           help="the learning rate over the run: constant, or cosine annealing over epochs x batches" + searched)


def add_census(subparsers: Any) -> None:
    from .data.census import GROUPS, RECIPES

    D = census.DEFAULTS
    p = subparsers.add_parser(
        "census", help="Census-income benchmark: seven models, test AUC per task over several runs",
        description="Train Single-Task, Shared-Bottom, L2-Constrained, Cross-Stitch, Tensor-Factorization, OMoE and "
                    "MMoE on UCI Census-income (Ma et al., KDD 2018, Sec. 6.3), with early stopping on task 1's "
                    "validation AUC; print and write a table of test AUC per task (mean ± std over the runs), and "
                    "plot the gates of OMoE and MMoE. Beyond the paper, CGC and PLE (Tang et al., 2020) run when "
                    "named (--models mmoe cgc ple; 'all' is the paper's seven), with MMoE's experts split into "
                    "shared and per-task ones. See docs/results-census.md.",
        formatter_class=DefaultsHelpFormatter)
    _add_data_dir(p)
    option(p, "--config", default=None, metavar="TUNED_JSON",
           help="train the tuned models of this tuned.json (written by census-tune): each model's sizes, lr, "
                "batch size, weight decay, dropout, schedule, epochs, patience and numeric transform, and the "
                "config's group, recipe and split")
    option(p, "--group", type=int, default=None,
           help=f"task group {GROUPS}: 1 = income>50K + never married, 2 = education>=college + never married "
                f"(default {D['group']}, or the config's)")
    option(p, "--models", nargs="+", default="all", metavar="MODEL",  # a string: the help shows "all"
           help=_models_help())
    option(p, "--runs", type=int, default=D["runs"], help="independent runs per model")
    option(p, "--recipe", choices=RECIPES, default=None,
           help=f"feature recipe (default {D['recipe']}, or the config's)")
    option(p, "--standardize", action="store_true",
           help="standardise every non-binary column with training mean/std (for --recipe keras)")
    option(p, "--split-seed", type=int, default=None,
           help=f"seed of the val/test split (default {D['split_seed']}, or the config's)")
    option(p, "--workers", type=int, default=0,
           help="worker processes (one BLAS thread each, each loading the data); 0: train in this process")
    option(p, "--seed", type=int, default=D["seed"], help="run r uses seed + r (init and shuffling)")
    option(p, "--epochs", type=int, default=D["epochs"], help="maximum epochs per run")
    option(p, "--batch-size", type=int, default=D["batch_size"], help="minibatch size")
    option(p, "--lr", type=float, default=D["lr"], help="Adam learning rate")
    option(p, "--patience", type=int, default=D["patience"],
           help="stop after this many epochs without a better task-1 validation AUC")
    _add_regularisers(p, D)
    option(p, "--dtype", choices=("float32", "float64"), default=D["dtype"],
           help="dtype of the data and the parameters")
    option(p, "--train-rows", type=int, default=None, help="use only the first N training rows (quick checks)")
    option(p, "--out", default="results/census", help="output folder for the table, CSV, JSON and PNGs")
    option(p, "--no-plot", action="store_true", help="skip the gate plots")
    option(p, "--save-models", action="store_true",
           help="also save every run's trained model: model-MODEL-groupG-runR.npz (read back with mmoe_np.load)")
    option(p, "--quiet", action="store_true", help="no progress lines on stderr")
    sizes = p.add_argument_group("sizes", "MMoE's size; the other models are parameter-matched unless overridden "
                                          "(CGC and PLE keep MMoE's experts, see sizing.matched_sizes)")
    widths = ",".join
    option(sizes, "--experts", dest="n_experts", type=int, default=D["n_experts"],
           help="experts of OMoE and MMoE (CGC, PLE: as many, split into shared and per-task ones)")
    option(sizes, "--expert-units", type=_units, default=widths(map(str, D["expert_units"])),
           help="layer widths of every expert, e.g. 16 or 32,16")
    option(sizes, "--tower-units", type=_units, default=widths(map(str, D["tower_units"])),
           help="hidden layer widths of every model's towers")
    option(sizes, "--bottom-units", type=_units_or_auto, default="auto",
           help="Shared-Bottom widths ('auto': parameter-matched)")
    option(sizes, "--hidden-units", type=_units_or_auto, default="auto",
           help="per-task widths of Single-Task, L2-Constrained, Cross-Stitch ('auto': matched)")
    option(sizes, "--tf-hidden-units", type=_units_or_auto, default="auto",
           help="Tensor-Factorization per-task widths ('auto': matched)")
    option(sizes, "--tf-ranks", type=_units_or_auto, default="auto",
           help="Tensor-Factorization Tucker ranks r1,r2,r3 ('auto': w,w,K)")
    option(sizes, "--l2-weight", type=float, default=D["l2_weight"], help="L2-Constrained alpha")
    p.set_defaults(func=run_census)


def add_census_tune(subparsers: Any) -> None:
    from .data.census import NUMERIC_TRANSFORMS, RECIPES

    T = census_tune.DEFAULTS
    p = subparsers.add_parser(
        "census-tune", help="Census-income: tune every model on the main task's validation AUC",
        description="Successive halving per model over its search space (learning rate, batch size, the "
                    "transform of the heavy-tailed columns, weight decay, dropout, the learning-rate schedule, the "
                    "model's own sizes within 2048 units per layer), "
                    "scored on task 1's validation AUC; the test rows are never read. Every trial is recorded in "
                    "--out as it finishes; run the same command again to resume. Then: mmoe-np census --config "
                    "OUT/tuned.json. See docs/results-census.md.",
        formatter_class=DefaultsHelpFormatter)
    _add_data_dir(p)
    option(p, "--group", type=int, default=census.DEFAULTS["group"], help="task group (1 or 2)")
    option(p, "--models", nargs="+", default="all", metavar="MODEL",  # a string: the help shows "all"
           help=_models_help())
    option(p, "--trials", type=int, default=T["trials"], help="configurations per model in the first rung")
    option(p, "--workers", type=int, default=T["workers"],
           help="worker processes, one BLAS thread each; 0: train in this process")
    option(p, "--out", default="results/census-tune", help="output folder (a search there is resumed)")
    option(p, "--seed", type=int, default=T["seed"], help="seed of the configurations; trial i trains with seed+i")
    option(p, "--recipe", choices=RECIPES, default=census.DEFAULTS["recipe"], help="feature recipe")
    option(p, "--split-seed", type=int, default=census.DEFAULTS["split_seed"], help="seed of the val/test split")
    option(p, "--min-epochs", type=int, default=T["min_epochs"], help="epochs of the first rung")
    option(p, "--max-epochs", type=int, default=T["max_epochs"], help="epochs of the last rung (the epoch cap)")
    option(p, "--eta", type=int, default=T["eta"], help="keep the best 1/eta of a rung; eta times the epochs")
    option(p, "--patience", type=int, default=T["patience"],
           help="stop a trial after this many epochs without a better task-1 validation AUC")
    option(p, "--numeric", choices=NUMERIC_TRANSFORMS, default=None,
           help="fix the transform of the heavy-tailed columns (default: searched)")
    _add_regularisers(p, None)
    option(p, "--dtype", choices=("float32", "float64"), default=census.DEFAULTS["dtype"],
           help="dtype of the data and the parameters")
    option(p, "--train-rows", type=int, default=None, help="use only the first N training rows (quick checks)")
    option(p, "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run_census_tune)


def add_census_paper(subparsers: Any) -> None:
    text = "Census-income: the paper's table beside a census run's, and which of its orderings hold here"
    p = subparsers.add_parser(
        "census-paper", help=text,
        description=text + ": the paper's mean main-task AUC of the seven models and ours, then every pair the "
                           "paper orders, tested on the paired runs (95% interval: holds, does not hold or "
                           "inconclusive). See docs/results-census.md.", formatter_class=DefaultsHelpFormatter)
    option(p, "results", metavar="RESULTS", help="the group{G}.json written by mmoe-np census")
    option(p, "--out", default=None, help="also write the Markdown as paper-group{G}.md into this folder")
    p.set_defaults(func=run_census_paper)


def run_census_paper(args: argparse.Namespace) -> int:
    out = None if args.out is None else check_out(args.out)
    group, per_run, settings = census_paper.read_census_results(args.results)
    text = census_paper.format_paper_comparison(group, per_run, settings)
    print(text)
    if out is not None:
        print(f"wrote {write_text(prepare_out(out) / f'paper-group{group}.md', text + chr(10))}")
    return 0


def run_census(args: argparse.Namespace) -> int:
    """Check every setting, then --out, then load and train: bad arguments fail before anything is created."""
    sizes = {name: getattr(args, name) for name in ("n_experts", "expert_units", "tower_units", "l2_weight",
                                                    "bottom_units", "hidden_units", "tf_hidden_units", "tf_ranks")}
    settings = census.check_settings(args.data_dir, group=args.group, models=args.models, runs=args.runs,
                                     recipe=args.recipe, split_seed=args.split_seed, seed=args.seed,
                                     epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                     patience=args.patience, weight_decay=args.weight_decay, dropout=args.dropout,
                                     schedule=args.schedule, dtype=args.dtype, train_rows=args.train_rows,
                                     standardize=args.standardize, config=args.config, workers=args.workers,
                                     **sizes)
    out = check_out(args.out)
    result = census.run_checked(settings, progress=not args.quiet, keep_models=args.save_models)
    scaled = ", non-binary columns standardised" if args.standardize else ""
    tuned = f", tuned models of {args.config}" if args.config else ""
    print(f"Census-income group {settings['group']} ({settings['recipe']} recipe{scaled}{tuned}), {args.runs} "
          f"run(s) per model, "
          f"wall time {result.seconds:.0f} s, load average {result.load_average['start']} -> "
          f"{result.load_average['end']}")
    print(census.format_table(result))
    comparisons = census.format_comparisons(result)
    if comparisons:
        print(comparisons)
    print_written(result.write(out, plots=not args.no_plot), result.seconds)
    return 0


def run_census_tune(args: argparse.Namespace) -> int:
    """Check the settings, then tune (resuming a search already in --out)."""
    settings = census.check_settings(args.data_dir, group=args.group, models=args.models, recipe=args.recipe,
                                     split_seed=args.split_seed, dtype=args.dtype, train_rows=args.train_rows)
    source = census.CensusSource(str(settings["data_dir"]), settings["group"], settings["recipe"],
                                 settings["split_seed"], str(settings["dtype"]), settings["train_rows"])
    fixed = {key: getattr(args, key) for key in ("numeric", *census.REGULARISERS) if getattr(args, key) is not None}
    for key in set(census.REGULARISERS) & set(fixed):  # checked here too, so that an error names the flag
        fixed[key] = census.check_regulariser(key, fixed[key])
    check_out(args.out)
    result = census_tune.tune(source, settings["models"], trials=args.trials, out=args.out, seed=args.seed,
                              min_epochs=args.min_epochs, max_epochs=args.max_epochs, eta=args.eta,
                              patience=args.patience, workers=args.workers, dtype=settings["dtype"], fixed=fixed,
                              progress=not args.quiet)
    print(f"Census-income group {settings['group']} ({settings['recipe']} recipe): successive halving over "
          f"{args.trials} trials per model, rungs of {result.settings['budgets']} epochs; {result.trained} trial "
          f"runs trained now, load average {result.load_average['start']} -> {result.load_average['end']}")
    print(result.format_table())
    out = Path(args.out)
    print_written([out / "tuned.json", out / "trials.csv", out / "trials.json", out / "trials"], result.seconds)
    return 0
