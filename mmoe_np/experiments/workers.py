"""Jobs on a few spawned worker processes: one BLAS thread each, progress forwarded to the parent, a worker's death
reported, and no worker left behind by an error, Ctrl-C or SIGTERM.

:func:`map_in_workers` runs ``function(job)`` for every job on ``workers`` fresh ("spawn") processes and returns the
results in order. A job reports progress through :func:`worker_progress`, whose updates the parent passes on to its
:class:`~mmoe_np.training.Progress`.

Each worker talks to the parent through its own pipe: it receives a job, sends back progress messages, then the
job's result or exception, and waits for the next job. The parent waits on every pipe and on every worker's exit
at once, so a worker that dies mid-job (the OOM killer, a SIGKILL, a segfault) raises :class:`WorkerDied` (a
``RuntimeError``) here instead of leaving the parent waiting for a result that will never come.

Why one BLAS thread: the matrices of one lock-step step are too small for BLAS threads to pay, and on a busy machine
threads that wait for each other can make a step many times slower. Why Ctrl-C is ignored in the workers: a
terminal's Ctrl-C reaches every process of the group; the parent alone handles it (one "interrupted" line, no
traceback per worker) and stops the workers with SIGTERM, mid-job.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from .. import _validation as V
from ..training import Progress

__all__ = ["map_in_workers", "worker_progress", "WorkerDied"]

_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_sink: Any = None  # a worker's pipe to the parent, set by _serve; None in the parent


class WorkerDied(RuntimeError):
    """A worker process ended (killed, out of memory, crashed) while it held a job: its result is lost."""


class _PipeProgress:
    """A worker's stand-in for :class:`~mmoe_np.training.Progress`: sends its updates to the parent through the
    worker's pipe, at most every ``interval`` seconds (and always when runs finish)."""

    def __init__(self, sink: Any, interval: float = 1.0) -> None:
        self.sink, self.interval = sink, interval
        self.work = 0
        self._last = time.perf_counter()

    def update(self, work: int = 0, runs: int = 0) -> None:
        self.work += work
        now = time.perf_counter()
        if runs or now - self._last >= self.interval:
            self.sink.send(("progress", self.work, runs))
            self.work, self._last = 0, now


def worker_progress() -> _PipeProgress | None:
    """In a worker of :func:`map_in_workers`: an object with ``update(work, runs)`` whose counts reach the parent's
    progress; None in any other process."""
    return None if _sink is None else _PipeProgress(_sink)


class _WorkerTraceback(Exception):
    """The traceback of a worker's exception, text only: the cause of the exception re-raised in the parent."""


def _serve(function: Callable[[Any], Any], pipe: Any) -> None:
    """A worker's life: Ctrl-C ignored (also when the workers were started from a thread, where
    :func:`_spawning_workers` cannot ignore it); then, for every job the parent sends, ``("done", result)`` or
    ``("failed", exception, traceback text)`` back, until the parent terminates it (or goes)."""
    global _sink
    _sink = pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            job = pipe.recv()
        except EOFError:  # the parent has gone
            return
        try:
            pipe.send(("done", function(job)))  # a result that cannot be pickled raises here, and is reported
        except Exception as error:
            pipe.send(("failed", _sendable(error), traceback.format_exc()))


def _sendable(error: Exception) -> Exception:
    """``error`` if the parent can unpickle it, else a ``RuntimeError`` carrying its repr: one that cannot be
    pickled could not be sent, and one that cannot be unpickled would fail in the parent with an unrelated error."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"a worker's job raised {error!r}, which cannot be sent to the parent as it is")


@contextlib.contextmanager
def _spawning_workers() -> Iterator[None]:
    """While :func:`map_in_workers` starts its workers: one BLAS thread each (read by their fresh numpy), and Ctrl-C
    ignored, which a spawned Python inherits and keeps, so that even a worker still starting up leaves Ctrl-C to the
    parent."""
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


@dataclass
class _Worker:
    """One worker process, the parent's end of its pipe, and the index of the job it runs (None: idle)."""
    process: Any
    pipe: Any
    job: int | None = None


def map_in_workers(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
                   progress: Progress | None = None) -> list[Any]:
    """``[function(job) for job in jobs]``, computed on ``min(workers, len(jobs))`` spawned processes, one job at a
    time each; the workers' progress messages go to ``progress``. ``function`` must be a module-level function (the
    workers import it). A worker's exception is raised here (its traceback as the cause); a worker that dies mid-job
    raises :class:`WorkerDied` naming the job and the exit code. Leaving for any reason (an error, Ctrl-C, the
    command's SIGTERM exception) terminates the workers, also those mid-job: none is left running after the parent
    has gone."""
    workers = V.positive_int("workers", workers)
    context = multiprocessing.get_context("spawn")
    results: list[Any] = [None] * len(jobs)
    waiting = list(range(len(jobs)))[::-1]  # the indices of the jobs not handed out yet, the next one last
    crew: list[_Worker] = []
    try:
        with _spawning_workers():
            for _ in range(min(workers, len(jobs))):
                here, there = context.Pipe()
                process = context.Process(target=_serve, args=(function, there), daemon=True)
                process.start()
                there.close()  # the worker holds that end alone now: its exit reads as end-of-file here
                crew.append(_Worker(process, here))
        for worker in crew:
            _hand_out(worker, jobs, waiting)
        running, left = list(crew), len(jobs)
        while left:
            multiprocessing.connection.wait([w.pipe for w in running] + [w.process.sentinel for w in running])
            for worker in list(running):
                left -= _collect(worker, jobs, waiting, results, progress)
                if worker.process.exitcode is None:
                    continue
                if worker.job is not None:
                    raise WorkerDied(_death_message(worker, len(jobs)))
                running.remove(worker)  # it died idle, with nothing left to hand out: no result is lost
    finally:
        for worker in crew:
            worker.process.terminate()  # SIGTERM: a worker ends at once, even mid-job
        for worker in crew:
            worker.process.join()
            worker.pipe.close()
    return results


def _hand_out(worker: _Worker, jobs: Sequence[Any], waiting: list[int]) -> None:
    """Send ``worker`` the next waiting job, if any, and record which."""
    worker.job = waiting.pop() if waiting else None
    if worker.job is not None:
        with contextlib.suppress(BrokenPipeError):  # it has died: map_in_workers reports it with this job
            worker.pipe.send(jobs[worker.job])


def _collect(worker: _Worker, jobs: Sequence[Any], waiting: list[int], results: list[Any],
             progress: Progress | None) -> int:
    """Read what ``worker`` has sent: progress goes to ``progress``, a result into ``results`` (and the worker gets
    the next job), an exception is raised. Returns the number of results read."""
    done = 0
    try:
        while worker.pipe.poll():
            kind, *message = worker.pipe.recv()
            if kind == "progress" and progress is not None:
                progress.update(work=message[0], runs=message[1])
            elif kind == "failed":
                error, text = message
                raise error from _WorkerTraceback(text)
            elif kind == "done":
                results[worker.job], done = message[0], done + 1
                _hand_out(worker, jobs, waiting)
    except EOFError:  # the worker has exited: wait for its exit code
        worker.process.join(timeout=10)
    return done


def _death_message(worker: _Worker, n_jobs: int) -> str:
    code, i = worker.process.exitcode, worker.job
    hint = " (killed? out of memory?)" if code == -signal.SIGKILL else ""
    return (f"worker process {worker.process.pid} died with exit code {code}{hint} while running jobs[{i}] "
            f"(job {i + 1} of {n_jobs}); the other workers were stopped")
