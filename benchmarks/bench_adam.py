"""Adam's step on a whole flat buffer: the float32 second moment against the float64 one it is promoted to after a
float32 square overflows, side by side (alternating in every repeat), one BLAS thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_adam.py [--replicas 16] [--repeats 30]

The parameters are those of ``--replicas`` stacked paper MMoEs (d = 100, 8 experts of 16, towers of 8: 14,834
numbers each), the size of one chunk of the lock-step study (16 replicas: 237,344 numbers); ``--replicas 1`` is the
single-model step of ``bench_step.py``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy
import numpy as np  # noqa: E402

import mmoe_np as mn  # noqa: E402
from common import fmt, machine  # noqa: E402
from mmoe_np.models.flat import FlatArrays  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(machine())
    model = mn.stack_models([mn.MMoE(100, ("regression", "regression"), n_experts=8, expert_units=(16,),
                                     tower_units=(8,), dtype=np.float32, seed=r) for r in range(args.replicas)])
    rng = np.random.default_rng(0)
    grads = FlatArrays(rng.standard_normal(model.params.flat.size).astype(np.float32), model.params.layout)
    contenders = {}
    for name in ("float32 v", "float64 v"):
        params = FlatArrays(model.params.flat.copy(), model.params.layout)
        opt = mn.Adam(params, lr=1e-3)
        if name == "float64 v":  # what a float32 overflow of g^2 switches to (the only difference between the two)
            opt.v = FlatArrays(opt.v.flat.astype(np.float64), opt.v.layout)
        contenders[name] = opt
    times = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, opt in contenders.items():
            start = time.perf_counter()
            opt.step(grads)
            times[name].append(time.perf_counter() - start)
    n = model.params.flat.size
    print(f"Adam step on {n:,} float32 parameters ({args.replicas} stacked paper MMoEs), {args.repeats} repeats")
    for name, t in times.items():
        print(f"  {name}: min {fmt(min(t))}  median {fmt(float(np.median(t)))}")
    a, b = times["float64 v"], times["float32 v"]
    print(f"  float64 v / float32 v: {min(a) / min(b):.2f}x (min) / {np.median(a) / np.median(b):.2f}x (median)")


if __name__ == "__main__":
    main()
