"""One training step of MMoE (loss and gradients, then Adam) against PyTorch eager, float32, side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_step.py
        [--batches 1 32 256 4096 16384] [--repeats 15] [--release] [--threads N]

The paper's synthetic configuration: 100 features, 8 experts of 16 units, towers of 8, two regression tasks. The
mmoe-np step is what ``fit`` runs per minibatch: ``model.forward_backward(X, Y, check=False)`` and
``Adam.step(grads)``, each step on the next of a few minibatches that every contender cycles through in the same
order (see :func:`batches`). The PyTorch step is the same network (one Linear for the experts, one for the gates, a batched
matmul for the mixture, one small MLP per task), ``zero_grad``, forward, ``backward``, ``torch.optim.Adam.step``.
Both run at their default thread counts, or at ``--threads N`` (OpenBLAS and torch; with 1 thread the CPU time of
each step is printed too: the work itself, which other processes competing for the cores disturb far less than the
wall time). ``--release`` adds release 0.1.0 (see benchmarks/common.py). Prints per batch the minimum and median time
per step over the repeats and the ratios torch / mmoe-np.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

if __name__ == "__main__":  # the thread count must reach OpenBLAS before numpy starts
    _threads = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--threads"), None)
    if _threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = _threads

import numpy as np  # noqa: E402

import mmoe_np as mn  # noqa: E402
from common import fmt, import_release, machine, ratio, side_by_side, summary  # noqa: E402

D, E, H, T, K = 100, 8, 16, 8, 2
C = E * H + K * E  # the width of the fused first layer: every expert and every gate


def flops_per_sample() -> int:
    """Multiply-adds x 2 of one training step per sample (the matrix products; elementwise work not counted).

    Forward: the first layer 2 d C, the mixture 2 K E H, the towers K (2 H T + 2 T). Backward without dX: the first
    layer's weight gradient 2 d C, the mixture's two products 2 x 2 K E H, the towers' weight and input gradients
    K (2 (2 H T) + 2 (2 T)).
    """
    forward = 2 * D * C + 2 * K * E * H + K * (2 * H * T + 2 * T)
    backward = 2 * D * C + 4 * K * E * H + K * (4 * H * T + 4 * T)
    return forward + backward


def gemm_peak(repeats: int = 5) -> float:
    """FLOP/s of one large float32 matrix product (4096^3) at the default threads: the machine's practical peak."""
    a = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    a @ a
    best = min(side_by_side({"gemm": lambda: a @ a}, repeats, 1)["gemm"])
    return 2 * 4096 ** 3 / best


def batches(B: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """The minibatches every contender cycles through, in the same order: several, with targets independent of X,
    so that no contender fits them to a zero loss (repeating one batch drives the gradients to 0 and Adam's first
    moment into subnormal numbers, which are 2x slower to compute with and are not what training does)."""
    n = max(2, min(64, 4_000_000 // (B * D)))
    return [(rng.standard_normal((B, D)).astype(np.float32), rng.standard_normal((B, K)).astype(np.float32))
            for _ in range(n)]


def numpy_step(package, data: list[tuple[np.ndarray, np.ndarray]]):
    model = package.MMoE(D, ("regression",) * K, n_experts=E, expert_units=(H,), tower_units=(T,),
                         dtype=np.float32, seed=0)
    optimizer = package.Adam(model.params, lr=1e-3)
    feed = itertools.cycle(data)
    if hasattr(model, "forward_backward"):
        return lambda: optimizer.step(model.forward_backward(*next(feed), check=False).grads)
    return lambda: optimizer.step(model.loss_and_grads(*next(feed))[1])  # release 0.1.0's API


def torch_step(torch, data: list[tuple[np.ndarray, np.ndarray]]):
    torch.manual_seed(0)
    B = data[0][0].shape[0]
    experts, gates = torch.nn.Linear(D, E * H), torch.nn.Linear(D, K * E)
    towers = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.Linear(H, T), torch.nn.ReLU(), torch.nn.Linear(T, 1))
                                 for _ in range(K))
    params = [*experts.parameters(), *gates.parameters(), *towers.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    feed = itertools.cycle([(torch.from_numpy(X), torch.from_numpy(Y)) for X, Y in data])

    def step():
        Xt, Yt = next(feed)
        optimizer.zero_grad()
        f = torch.relu(experts(Xt)).view(B, E, H)
        g = torch.softmax(gates(Xt).view(B, K, E), dim=-1)
        m = g @ f                                                       # (B, K, H)
        out = torch.cat([towers[k](m[:, k]) for k in range(K)], dim=1)  # (B, K)
        loss = ((out - Yt) ** 2).mean(dim=0).sum()
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256, 4096, 16384])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--release", action="store_true", help="also time release 0.1.0")
    parser.add_argument("--threads", type=int, default=None, help="BLAS and torch threads (default: their own)")
    args = parser.parse_args()
    try:
        import torch
        if args.threads is not None:
            torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    print(machine())
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    release = import_release() if args.release else None
    peak = gemm_peak()
    print(f"float32 GEMM peak (4096^3 product): {peak / 1e9:.0f} GFLOP/s; one step: {flops_per_sample()} FLOP per "
          "sample in matrix products")
    rng = np.random.default_rng(0)
    for B in args.batches:
        data = batches(B, rng)
        contenders = {"mmoe-np": numpy_step(mn, data)}
        if release is not None:
            contenders["0.1.0"] = numpy_step(release, data)
        if torch is not None:
            contenders["torch"] = torch_step(torch, data)
        number = max(1, min(200, 20_000 // max(B, 1)))
        cpu: dict[str, list[float]] = {}
        times = side_by_side(contenders, args.repeats, number, cpu)
        line = f"batch {B:6d}: " + "  ".join(f"{name} {fmt(summary(t)[0])} (median {fmt(summary(t)[1])})"
                                             for name, t in times.items())
        print(line)
        achieved = flops_per_sample() * B / summary(times["mmoe-np"])[0]
        print(f"    mmoe-np: {achieved / 1e9:.1f} GFLOP/s in matrix products, "
              f"{100 * achieved / peak:.0f}% of the GEMM peak")
        for other in contenders:
            if other != "mmoe-np":
                print(f"    {other} / mmoe-np: {ratio(times[other], times['mmoe-np'])}", flush=True)
                if args.threads == 1:
                    print(f"    {other} / mmoe-np (CPU time): {ratio(cpu[other], cpu['mmoe-np'])}", flush=True)
    print(machine().splitlines()[0])


if __name__ == "__main__":
    main()
