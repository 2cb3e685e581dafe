"""Jobs on a pool of spawned worker processes: one BLAS thread each, progress forwarded to the parent, and no worker
left behind by an error, Ctrl-C or SIGTERM.

:func:`map_in_workers` runs ``function(job)`` for every job on ``workers`` fresh ("spawn") processes and returns the
results in order. A job reports progress through :func:`worker_progress`, whose updates the parent passes on to its
:class:`~mmoe_np.training.Progress`.

Why one BLAS thread: the matrices of one lock-step step are too small for BLAS threads to pay, and on a busy machine
threads that wait for each other can make a step many times slower. Why Ctrl-C is ignored in the workers: a
terminal's Ctrl-C reaches every process of the group; the parent alone handles it (one "interrupted" line, no
traceback per worker) and stops the pool, whose workers end on the SIGTERM that ``Pool.terminate`` sends.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

from ..training import Progress

__all__ = ["map_in_workers", "worker_progress"]

_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_sink: Any = None  # the progress queue of a worker process, set by _init_worker; None in the parent


class _QueueProgress:
    """A worker's stand-in for :class:`~mmoe_np.training.Progress`: sends its updates to the parent through a
    queue, at most every ``interval`` seconds (and always when runs finish)."""

    def __init__(self, sink: Any, interval: float = 1.0) -> None:
        self.sink, self.interval = sink, interval
        self.work = 0
        self._last = time.perf_counter()

    def update(self, work: int = 0, runs: int = 0) -> None:
        self.work += work
        now = time.perf_counter()
        if runs or now - self._last >= self.interval:
            self.sink.put((self.work, runs))
            self.work, self._last = 0, now


def worker_progress() -> _QueueProgress | None:
    """In a worker of :func:`map_in_workers`: an object with ``update(work, runs)`` whose counts reach the parent's
    progress; None in any other process."""
    return None if _sink is None else _QueueProgress(_sink)


def _init_worker(sink: Any) -> None:
    """Set up a worker: its progress queue, and Ctrl-C ignored (also when the pool was started from a thread, where
    :func:`_spawning_workers` cannot ignore it)."""
    global _sink
    _sink = sink
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _spawning_workers() -> Iterator[None]:
    """While a pool starts its workers: one BLAS thread each (read by their fresh numpy), and Ctrl-C ignored, which
    a spawned Python inherits and keeps, so that even a worker still starting up leaves Ctrl-C to the parent."""
    saved = {name: os.environ.get(name) for name in _BLAS_THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _BLAS_THREAD_VARIABLES})
    in_main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        yield
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, sigint)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def map_in_workers(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
                   progress: Progress | None = None) -> list[Any]:
    """``[function(job) for job in jobs]``, computed on ``min(workers, len(jobs))`` spawned processes, one job at a
    time each; the workers' progress messages go to ``progress``. ``function`` must be a module-level function (the
    workers import it). A worker's exception is raised here. Leaving the ``with pool`` block for any reason (an
    error, Ctrl-C, the command's SIGTERM exception) terminates the workers: none is left running after the parent
    has gone."""
    context = multiprocessing.get_context("spawn")
    sink = context.Queue()
    with _spawning_workers():
        pool = context.Pool(min(workers, len(jobs)), initializer=_init_worker, initargs=(sink,))
    with pool:
        pending = pool.map_async(function, jobs, chunksize=1)
        while not pending.ready():
            _drain(sink, progress, first_wait=0.5, next_wait=0.0)
        results = pending.get()  # re-raises a worker's exception here
        _drain(sink, progress, first_wait=0.2, next_wait=0.2)  # the last messages may still be in flight
    return results


def _drain(sink: Any, progress: Progress | None, first_wait: float, next_wait: float) -> None:
    """Pass every queued ``(work, runs)`` message on to ``progress``: wait up to ``first_wait`` seconds for the
    first one and ``next_wait`` for each next one, then return."""
    wait = first_wait
    while True:
        try:
            work, runs = sink.get(timeout=wait) if wait > 0 else sink.get_nowait()
        except queue_module.Empty:
            return
        if progress is not None:
            progress.update(work=work, runs=runs)
        wait = next_wait
