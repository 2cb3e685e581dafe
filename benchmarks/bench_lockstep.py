"""The lock-step study's step against release 0.1.0, side by side: one group of R replicas of the three compared
models (Shared-Bottom, OMoE, MMoE), batch 128, d = 100, float32, one BLAS thread (as each worker of
``mmoe-np synthetic --workers N`` has).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_lockstep.py [--runs 200]
        [--correlations 1] [--short 4] [--long 24] [--repeats 3]

The time per step is measured as ``mmoe-np synthetic`` spends it, without its fixed costs: ``train_replicas`` for
``--long`` steps minus ``train_replicas`` for ``--short`` steps (same runs, the test set, initialisation and
evaluations cancel), divided by the difference. The group holds ``--runs`` runs per correlation, ordered as the study
orders them (``make_runs``): with ``--correlations 4`` a group of 200 runs is 50 seeds x 4 correlations, whose
correlations share their data draw. Release 0.1.0 and this tree alternate in every repeat. BLAS threads: 1 unless
OPENBLAS_NUM_THREADS is set (read before numpy starts).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one BLAS thread, as a study worker
import importlib  # noqa: E402

import numpy as np  # noqa: E402

from common import fmt, import_release, machine, report_against_release  # noqa: E402
from mmoe_np.experiments import lockstep, synthetic  # noqa: E402

CORRELATIONS = (1.0, 0.9, 0.8, 0.5)
MODELS = ("shared-bottom", "omoe", "mmoe")


def trainers(n_runs: int, n_correlations: int) -> dict:
    """``steps -> seconds`` of one group for this tree and for release 0.1.0 (same runs, same settings)."""
    release = import_release()
    old_synthetic = importlib.import_module(f"{release.__name__}.experiments.synthetic")
    old_replicas = importlib.import_module(f"{release.__name__}.experiments.replicas")
    correlations = CORRELATIONS[:n_correlations]
    settings = dict(batch_size=128, lr=1e-2, n_test=2000, dtype=np.float32)
    runs = synthetic.make_runs(correlations, n_runs // n_correlations, seed=0)
    old_runs = old_synthetic.make_runs(correlations, n_runs // n_correlations, seed=0)
    new_models = {name: synthetic.model_spec(name) for name in MODELS}
    old_models = {name: old_synthetic.MODELS[name] for name in MODELS}

    def timed(train, *args):
        def run(steps: int) -> tuple[float, float]:
            start, start_cpu = time.perf_counter(), time.process_time()
            train(*args, steps=steps, eval_every=steps, **settings)
            return time.perf_counter() - start, time.process_time() - start_cpu
        return run
    return {"mmoe-np": timed(lockstep.train_replicas, new_models, runs),
            "0.1.0": timed(old_replicas.train_replicas, old_models, old_runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="replicas in the group (all correlations together)")
    parser.add_argument("--correlations", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--short", type=int, default=4)
    parser.add_argument("--long", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    print(f"group of {args.runs} runs ({args.correlations} correlation(s)), models {', '.join(MODELS)}, batch 128, "
          f"float32; per step = (t({args.long} steps) - t({args.short} steps)) / {args.long - args.short}")
    contenders = trainers(args.runs, args.correlations)
    per_step: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn(1)  # warm-up: imports, first allocations
    for _ in range(args.repeats):
        for name, fn in contenders.items():  # alternating: a change of load hits both alike
            (short, short_cpu), (long, long_cpu) = fn(args.short), fn(args.long)
            per_step[name].append((long - short) / (args.long - args.short))
            cpu[name].append((long_cpu - short_cpu) / (args.long - args.short))
            print(f"  {name:8s} {fmt(per_step[name][-1])} wall, {fmt(cpu[name][-1])} CPU per group-step", flush=True)
    report_against_release(per_step, "per group-step", cpu)


if __name__ == "__main__":
    main()
