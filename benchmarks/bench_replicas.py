"""Time one lock-step training step of the synthetic study per model, at R replicas (default 200), batch 128, d = 100.

    python benchmarks/bench_replicas.py [--replicas 200] [--batch-size 128] [--dtype float32] [--repeats 7]

Prints, per model, the minimum over ``--repeats`` of: forward+backward (``model.forward_backward``), the Adam step, and
their sum; and the time to draw one minibatch for all replicas (every replica's own ``tasks.sample``). Set
``OPENBLAS_NUM_THREADS=1`` to time what one worker of ``mmoe-np synthetic --workers 2`` does. The machine's load
average is printed first and last: on a shared machine, compare runs made under the same load.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mmoe_np.experiments.lockstep import ReplicaStreams, Run
from mmoe_np.experiments.synthetic import MODELS, make_runs, model_spec
from mmoe_np.models import stack_models
from mmoe_np.optim import Adam


def best_of(fn, repeats: int) -> float:
    """Minimum wall time of ``fn()`` over ``repeats`` calls, in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"R={args.replicas}, batch {args.batch_size}, {args.dtype}")
    runs: list[Run] = make_runs([0.5], args.replicas, seed=0)
    streams = ReplicaStreams(runs, np.dtype(args.dtype))
    draw = best_of(lambda: streams.batch(args.batch_size), args.repeats)
    print(f"{'draw one minibatch for all replicas':40s} {1e3 * draw:7.1f} ms")
    X, Y = streams.batch(args.batch_size)
    for name in args.models:
        model = stack_models([model_spec(name).build(100, seed, args.dtype) for seed in streams.init_seeds])
        optimizer = Adam(model.params, lr=1e-3)
        grads = model.forward_backward(X, Y, check=False).grads
        fb = best_of(lambda: model.forward_backward(X, Y, check=False), args.repeats)
        adam = best_of(lambda: optimizer.step(grads), args.repeats)
        print(f"{name:20s} forward+backward {1e3 * fb:7.1f} ms   Adam {1e3 * adam:6.1f} ms   "
              f"step {1e3 * (fb + adam):7.1f} ms")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
