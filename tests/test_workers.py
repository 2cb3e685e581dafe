"""map_in_workers: results in job order, one BLAS thread per worker, progress forwarded, a worker's exception raised
in the parent, and a worker that dies mid-job reported (not waited for) with every other worker stopped.

The job functions live at module level here: the spawned workers import this module by name (pytest puts tests/ on
sys.path, which the workers inherit)."""
import io
import multiprocessing
import os
import pickle
import signal
import time
from contextlib import contextmanager

import pytest

from mmoe_np.experiments.workers import WorkerDied, map_in_workers, worker_progress
from mmoe_np.training import Progress

WATCHDOG_SECONDS = 120  # a hang fails the test instead of blocking the suite


@contextmanager
def watchdog(seconds=WATCHDOG_SECONDS):
    """Raise TimeoutError in this (main) thread if the block takes more than ``seconds``."""
    def hung(signum, frame):
        raise TimeoutError(f"map_in_workers hung for {seconds} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def running(pid):
    """Whether process ``pid`` still exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ job functions
def square_slowly(x):
    """x * x, the early jobs slowest (so that they finish out of order), with what the worker sees."""
    time.sleep(0.05 * (6 - x))
    return x * x, os.environ.get("OPENBLAS_NUM_THREADS"), os.getpid()


def report_progress(x):
    reporter = worker_progress()
    reporter.update(work=x, runs=1)
    return x


def fail_on_two(x):
    if x == 2:
        raise ValueError(f"job {x} has a bad value")
    return x


class TwoArgumentError(Exception):
    """Pickles, but unpickling calls TwoArgumentError(message) and fails: the worker must not send it as it is."""

    def __init__(self, a, b):
        super().__init__(f"{a} and {b}")


def raise_unsendable(x):
    raise TwoArgumentError("first", "second")


def return_unpicklable(x):
    return lambda: x


def sleep_or_die(job):
    """("sleep", folder): write this pid to folder/sleeper, then sleep far longer than any test; ("die", folder):
    once the sleeper runs, SIGKILL this very process, as the OOM killer would."""
    kind, folder = job
    if kind == "sleep":
        (folder / "sleeper.tmp").write_text(str(os.getpid()))
        os.replace(folder / "sleeper.tmp", folder / "sleeper")
        time.sleep(600)
        return "slept"
    for _ in range(600):
        if (folder / "sleeper").exists():
            break
        time.sleep(0.1)
    os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ tests
def test_results_come_in_job_order_from_workers_with_one_blas_thread():
    with watchdog():
        results = map_in_workers(square_slowly, list(range(6)), workers=2)
    assert [r[0] for r in results] == [x * x for x in range(6)]
    assert {r[1] for r in results} == {"1"}
    pids = {r[2] for r in results}
    assert len(pids) == 2 and os.getpid() not in pids
    assert not any(running(pid) for pid in pids) and multiprocessing.active_children() == []


def test_progress_reaches_the_parent():
    assert worker_progress() is None  # in the parent
    stream = io.StringIO()
    progress = Progress(total_work=10, total_runs=4, label="jobs", stream=stream, interval=0.0)
    with watchdog():
        assert map_in_workers(report_progress, [1, 2, 3, 4], workers=2, progress=progress) == [1, 2, 3, 4]
    assert progress.work == 10 and progress.runs == 4
    assert "jobs: 100% of the steps, runs done 4/4" in stream.getvalue()


def test_a_workers_exception_is_raised_in_the_parent_with_its_traceback():
    with watchdog(), pytest.raises(ValueError, match="job 2 has a bad value") as caught:
        map_in_workers(fail_on_two, list(range(5)), workers=2)
    assert "fail_on_two" in str(caught.value.__cause__)  # the worker's traceback
    assert multiprocessing.active_children() == []


def test_an_exception_the_parent_cannot_unpickle_arrives_as_its_repr():
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(TwoArgumentError("first", "second")))  # why it cannot travel as it is
    with watchdog(), pytest.raises(RuntimeError, match=r"TwoArgumentError\('first and second'\)") as caught:
        map_in_workers(raise_unsendable, [0, 1], workers=2)
    assert "raise_unsendable" in str(caught.value.__cause__)


def test_a_result_that_cannot_be_pickled_raises_in_the_parent():
    with watchdog(), pytest.raises(Exception, match="pickle") as caught:
        map_in_workers(return_unpicklable, [0, 1, 2], workers=2)
    assert "return_unpicklable" in str(caught.value.__cause__)


def test_a_worker_killed_mid_job_raises_and_the_other_worker_is_stopped_mid_job(tmp_path):
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    jobs = [("sleep", tmp_path), ("die", tmp_path), ("sleep", tmp_path)]
    with watchdog(), pytest.raises(WorkerDied) as caught:  # a RuntimeError of its own
        map_in_workers(sleep_or_die, jobs, workers=2)
    message = str(caught.value)
    assert "died with exit code -9 (killed? out of memory?) while running jobs[1] (job 2 of 3)" in message
    assert "the other workers were stopped" in message
    sleeper = int((tmp_path / "sleeper").read_text())
    assert not running(sleeper)  # terminated in its 600 s sleep, not left to finish it
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ValueError, match="workers"):
        map_in_workers(square_slowly, [1], workers=workers)


def test_the_command_line_reports_a_dead_worker_in_one_line(capsys):
    from mmoe_np import cli

    def run():
        raise WorkerDied("worker process 12 died with exit code -9 (killed? out of memory?) while running jobs[0]")
    assert cli._handle("synthetic", run) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np synthetic: error: worker process 12 died") and err.count("\n") == 1
