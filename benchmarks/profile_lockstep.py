"""Where a lock-step group-step spends its time, and what that says about a 2x target against release 0.1.0.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/profile_lockstep.py [--runs 200]
        [--correlations 1] [--short 3] [--long 13]

The group of ``bench_lockstep.py`` (``--runs`` replicas of Shared-Bottom, OMoE and MMoE, batch 128, d = 100,
float32, one BLAS thread) is trained under cProfile for ``--short`` and for ``--long`` steps; the difference of each
function's own time, divided by the difference of the steps, is its time per step (set-up, initialisation and
evaluations cancel). The functions are put in four groups:

* **matrix products**: ``ops.dense_forward`` / ``ops.dense_backward`` (each a matmul, its bias, its reduction);
* **data draw**: the per-run normal draws, projections and sine labels of ``experiments/streams.py`` and
  ``data/synthetic.py``;
* **Adam**: ``optim.py`` (the flat update, its scratch and checks);
* **everything else**: the elementwise passes, softmaxes, mixtures, reductions and Python glue of the chain.

Release 0.1.0's group-step is timed beside it (no profiler). A 2x target means a step of half 0.1.0's; the script
prints how much of that half the first three groups already take, which no change to the elementwise code can
recover. cProfile adds about a microsecond to every Python call, so "everything else" is somewhat inflated; the
first three are whole NumPy calls and barely affected.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one BLAS thread, as a study worker
import numpy as np  # noqa: E402

from bench_lockstep import trainers  # noqa: E402
from common import fmt, machine  # noqa: E402
from mmoe_np.experiments import lockstep, synthetic  # noqa: E402

GROUPS = {
    "matrix products": lambda f, fn: f.endswith("ops.py") and fn.startswith("dense_"),
    "data draw": lambda f, fn: f.endswith(("streams.py", "data/synthetic.py")),
    "Adam": lambda f, fn: f.endswith("optim.py"),
}


def own_times(steps: int, models: dict, runs: list, settings: dict) -> dict[tuple, float]:
    profile = cProfile.Profile()
    profile.enable()
    lockstep.train_replicas(models, runs, steps=steps, eval_every=steps, **settings)
    profile.disable()
    return {key: value[2] for key, value in pstats.Stats(profile).stats.items()}  # own ("tot") time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--correlations", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--short", type=int, default=3)
    parser.add_argument("--long", type=int, default=13)
    args = parser.parse_args()
    print(machine())
    correlations = (1.0, 0.9, 0.8, 0.5)[:args.correlations]
    settings = dict(batch_size=128, lr=1e-2, n_test=2000, dtype=np.float32)
    runs = synthetic.make_runs(correlations, args.runs // args.correlations, seed=0)
    models = {name: synthetic.model_spec(name) for name in ("shared-bottom", "omoe", "mmoe")}
    release = trainers(args.runs, args.correlations)["0.1.0"]
    release(1)
    lockstep.train_replicas(models, runs, steps=1, eval_every=1, **settings)  # warm-up
    (short, _), (long, _) = release(args.short), release(args.long)
    release_step = (long - short) / (args.long - args.short)
    start = time.perf_counter()
    a, b = own_times(args.short, models, runs, settings), own_times(args.long, models, runs, settings)
    per_step = {key: (b[key] - a.get(key, 0.0)) / (args.long - args.short) for key in b}
    totals = dict.fromkeys([*GROUPS, "everything else"], 0.0)
    for (filename, _, function), seconds in per_step.items():
        group = next((g for g, belongs in GROUPS.items() if belongs(filename, function)), "everything else")
        totals[group] += seconds
    step = sum(totals.values())
    print(f"group of {args.runs} runs ({args.correlations} correlation(s)), batch 128, float32; profiled "
          f"{args.short} and {args.long} steps ({time.perf_counter() - start:.0f} s)")
    print("| part of a group-step | time per step (profiled) | share |")
    print("| --- | --- | --- |")
    for group, seconds in totals.items():
        print(f"| {group} | {fmt(seconds)} | {seconds / step:.0%} |")
    print(f"| all (profiled) | {fmt(step)} | 100% |")
    floor = sum(totals[g] for g in GROUPS)
    half = release_step / 2
    print(f"release 0.1.0: {fmt(release_step)} per group-step (not profiled); a 2x target is {fmt(half)}")
    print(f"matrix products + data draw + Adam: {fmt(floor)} = {floor / half:.0%} of that target, leaving "
          f"{fmt(max(half - floor, 0.0))} for the rest, which takes {fmt(totals['everything else'])} here")


if __name__ == "__main__":
    main()
