"""One training epoch of MMoE on Census-income (group 1: 486 inputs, 199,523 rows, batch 1024) against release
0.1.0, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_census_epoch.py
        [--data ../shared/data/census-income] [--repeats 5] [--threads N]

The model of ``mmoe-np census``: 8 experts of 16 units, towers of 8, two binary tasks, float32, Adam(1e-3); one epoch
is ``fit(model, X_train, Y_train, epochs=1, batch_size=1024)`` (shuffled minibatches, no validation). Both versions
train on the same arrays, alternating in every repeat. ``--threads N`` sets OPENBLAS_NUM_THREADS before numpy starts
(default: OpenBLAS's own choice, one thread per core); docs/performance.md compares 1 and 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "census-income"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="OPENBLAS_NUM_THREADS for this run")
    args = parser.parse_args()
    if args.threads is not None:
        if "numpy" in sys.modules:
            sys.exit("--threads must be applied before numpy is imported")
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import mmoe_np as mn
    from common import import_release, machine, report_against_release, side_by_side

    print(machine())
    release = import_release()
    data = mn.data.load_census_income(args.data, group=1)
    X, Y = data.X_train, data.Y_train
    print(f"census group 1: X {X.shape} {X.dtype}, batch 1024, MMoE 8 x 16, towers 8")
    tasks = ("binary", "binary")

    def epoch(package):
        def run() -> None:
            model = package.MMoE(X.shape[1], tasks, n_experts=8, expert_units=(16,), tower_units=(8,),
                                 dtype=np.float32, seed=0)
            package.fit(model, X, Y, optimizer=package.Adam(model.params, lr=1e-3), epochs=1, batch_size=1024, seed=0)
        return run

    start = time.perf_counter()
    cpu: dict[str, list[float]] = {}
    times = side_by_side({"mmoe-np": epoch(mn), "0.1.0": epoch(release)}, args.repeats, 1, cpu)
    print(f"({time.perf_counter() - start:.0f} s)")
    report_against_release(times, "per epoch", cpu)


if __name__ == "__main__":
    main()
