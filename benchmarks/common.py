"""What every benchmark script shares: the machine's description, side-by-side timing with alternating repeats, the
ratio table, and release 0.1.0 imported beside the working tree.

Benchmarks are not tests: nothing here asserts a time. Run them with
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/<script>.py``.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

RELEASE_DIR = Path(os.environ.get("MMOE_NP_RELEASE", "/tmp/mmoe-0.1.0"))
RELEASE_HELP = ("release 0.1.0 as a work tree: git worktree add --detach /tmp/mmoe-0.1.0 e59c75a "
                "(or set MMOE_NP_RELEASE to its folder)")


def machine() -> str:
    """Python, NumPy, the BLAS library with its kernel and threads (threadpoolctl if installed), the CPU count and
    the load average: enough to tell whether two printed tables are comparable."""
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
             f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            lines.append(f"{pool['user_api']}: {pool.get('internal_api')} {pool.get('version')}, kernel "
                         f"{pool.get('architecture')}, {pool['num_threads']} threads")
    except ImportError:
        lines.append("threadpoolctl not installed; numpy.show_config():")
        np.show_config()
    threads = {name: os.environ[name] for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                   "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if name in os.environ}
    lines.append(f"thread variables: {threads or 'none set'}")
    return "\n".join(lines)


def side_by_side(contenders: dict[str, Callable[[], object]], repeats: int, number: int,
                 cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds per call of every contender: ``repeats`` rounds, each timing ``number`` calls of each contender
    in turn (alternating, so that a change of the machine's load hits all of them alike). One warm-up call each.
    ``cpu`` (optional) receives the process CPU seconds per call: with one BLAS thread, the work itself, much less
    sensitive than the wall time to other processes competing for the cores."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
            if cpu is not None:
                cpu.setdefault(name, []).append((time.process_time() - start_cpu) / number)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def ratio(slow: list[float], fast: list[float]) -> str:
    """``slow / fast`` of the minima and of the medians: how many times faster ``fast`` is."""
    (smin, smed), (fmin, fmed) = summary(slow), summary(fast)
    return f"{smin / fmin:5.2f}x (min) {smed / fmed:5.2f}x (median)"


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:7.2f} ms"
    return f"{seconds:7.3f} s "


def import_release(name: str = "mmoe_np_010"):
    """Release 0.1.0's package imported under ``name`` beside the working tree's ``mmoe_np`` (it imports itself only
    relatively, so both live in one process and run side by side)."""
    init = RELEASE_DIR / "mmoe_np" / "__init__.py"
    if not init.is_file():
        sys.exit(f"no release found at {RELEASE_DIR}: {RELEASE_HELP}")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def report_against_release(times: dict[str, list[float]], unit: str, cpu: dict[str, list[float]]) -> None:
    """Print the minimum and median of this tree's and release 0.1.0's wall and CPU times, their ratios, and the
    load average."""
    for clock, table in (("wall", times), ("CPU", cpu)):
        for name, t in table.items():
            print(f"{name:8s} {clock:4s} min {fmt(summary(t)[0])}  median {fmt(summary(t)[1])} {unit}")
        print(f"0.1.0 / mmoe-np ({clock}): {ratio(table['0.1.0'], table['mmoe-np'])}")
    print(machine().splitlines()[0])
