"""What the studies share: model names, statistics over repeated runs, how busy the machine is, and how a run's
output files reach their folder.

The vocabulary of every study: a **run** is one independent repetition of a setting (its own seeds, data and
initialisation); ``MODELS`` maps the names the command line accepts to model classes; a study returns a result with
``summary()`` (the statistics over the runs), ``as_dict()`` (everything JSON-ready) and ``write(out)`` (its files).
"""
from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .._io import write_text

__all__ = ["parse_models", "run_std", "run_sem", "load_average", "environment", "check_out", "prepare_out",
           "staged_outputs", "write_csv", "write_json", "THREAD_VARIABLES"]


# ---------------------------------------------------------------------------------------------------------------
# Model names
# ---------------------------------------------------------------------------------------------------------------
def _key(name: str) -> str:
    """What a model name is matched by: its letters and digits, lower case ("Shared-Bottom" -> "sharedbottom")."""
    return "".join(c for c in str(name).lower() if c.isalnum())


def parse_models(models: str | Sequence[str], known: Mapping[str, Any], name: str = "models") -> list[str]:
    """The names of ``known`` chosen by ``models``, in the order given: ``"all"``, or names separated by commas
    and/or blanks, in one string or a list of them (the words of a command line). Matching ignores case, blanks and
    hyphens, so ``"mmoe,omoe"``, ``"mmoe omoe"``, ``["MMoE", "OMoE"]`` and ``["mmoe,", "OMoE"]`` are the same
    choice; a part with blanks that is itself a known name (``"shared bottom"``) is that one name.
    A ValueError naming ``name`` refuses an unknown name, a name given twice, an empty name (``"mmoe,"`` or
    ``"mmoe,,omoe"``: a comma too many) and ``"all"`` beside other names.
    """
    text = models if isinstance(models, str) else "\n".join(str(item) for item in models)  # a line per word
    parts = [part.strip() for part in text.split(",")]
    expected = f"'all' or names from {', '.join(known)}"
    if not any(parts):
        raise ValueError(f"{name} must be {expected}; got {models!r}")
    if not all(parts):
        raise ValueError(f"{name}: an empty name in {models!r} (a comma too many?); expected {expected}")
    by_key = {_key(k): k for k in known}
    items = [word for part in parts for line in part.splitlines()  # a line known as a whole is one name
             for word in ([line.strip()] if _key(line) in by_key else line.split())]
    if any(_key(item) == "all" for item in items):
        if len(items) > 1:
            raise ValueError(f"{name}: 'all' chooses every model and stands alone; got {models!r}")
        return list(known)
    chosen: list[str] = []
    for item in items:
        if _key(item) not in by_key:
            raise ValueError(f"{name}: unknown model {item!r}; expected {expected}")
        model = by_key[_key(item)]
        if model in chosen:
            raise ValueError(f"{name} must not repeat a name; got {item!r} twice")
        chosen.append(model)
    return chosen


# ---------------------------------------------------------------------------------------------------------------
# Statistics over runs, machine load
# ---------------------------------------------------------------------------------------------------------------
def run_std(x: Any, axis: int | None = None) -> Any:
    """Sample standard deviation over repeated runs (ddof = 1), and 0 for a single run (where it is undefined)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis] if axis is not None else x.size
    return x.std(axis=axis, ddof=1) if n > 1 else np.zeros_like(x.mean(axis=axis))


def run_sem(x: Any, axis: int | None = None) -> Any:
    """Standard error of the mean over repeated runs: ``run_std / sqrt(n)``."""
    n = np.shape(x)[axis] if axis is not None else np.size(x)
    return run_std(x, axis) / np.sqrt(n)


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the platform has none (e.g. Windows)."""
    try:
        return tuple(round(float(v), 2) for v in os.getloadavg())
    except (AttributeError, OSError):
        return None


# The environment variables that set how many threads the BLAS libraries (and OpenMP) start
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "OPENBLAS_CORETYPE")


def environment() -> dict[str, Any]:
    """The machine and software a result was computed on, for its JSON file: package version, git commit of the
    source tree (None outside a git checkout; ``dirty`` if it has uncommitted changes), Python, NumPy, the BLAS
    library NumPy calls (from threadpoolctl if installed, else ``numpy.show_config``: name, version, kernel, threads),
    the thread environment variables set, the platform and the number of cores. Worker processes of the studies run
    with one BLAS thread each, whatever is recorded here for the parent."""
    from .. import __version__

    return {"mmoe_np": __version__, "git_commit": _git_commit(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": _blas(),
            "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
            "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count()}


def _git_commit() -> str | None:
    """The commit of the tree this package was imported from, ``+dirty`` if it has uncommitted changes; None when
    it is not a git checkout (an installed wheel) or git is missing."""
    root = Path(__file__).resolve().parents[2]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _blas() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process (threadpoolctl's view), or NumPy's build record of its BLAS."""
    try:
        from threadpoolctl import threadpool_info  # optional: it sees the library actually loaded and its kernel
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        return [{k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
                for info in threadpool_info() if info.get("user_api") == "blas"]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return [{"internal_api": blas.get("name"), "version": blas.get("version"), "architecture": None,
                 "num_threads": None, "filepath": None}]
    except Exception:  # an older NumPy without mode="dicts", or a build without the record  # noqa: BLE001
        return []


# ---------------------------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------------------------
def check_out(out: Any) -> Path:
    """``--out`` checked *before* a long run starts (a study that can only fail when it writes its results would
    lose them), without creating anything: an existing writable folder, or a path whose nearest existing ancestor
    is a writable folder (the rest is created when the files are written, by :func:`prepare_out`)."""
    path = Path(out)
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {str(path)!r} is not a writable folder: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {str(path)!r} is not a writable folder: {str(existing)!r} is not writable")
    return path


def prepare_out(out: Any) -> Path:
    """The output folder ``--out``, created if needed and checked to be writable (by creating a file in it)."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {str(path)!r} is not a writable folder: {err.strerror or err}") from None
    return path


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM arriving inside the block wait until it ends, then go to the handlers in place before
    (Ctrl-C raises KeyboardInterrupt there). Outside the main thread, where handlers cannot be set, nothing waits.

    Held in Python rather than by a signal mask: a mask holds a signal off one thread only, and the process may
    have others (a worker pool's), to which the kernel would deliver it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: arrived.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for signum in arrived:
            signal.raise_signal(signum)


@contextlib.contextmanager
def staged_outputs(out: Any, names: Iterable[str] = ()) -> Iterator[Path]:
    """Write one run's files so that ``out`` holds either all of the earlier run's files or all of the new ones.

    Yields a fresh hidden folder inside ``out`` (the same file system, so a move is a rename) to write the files
    into. On a clean exit the files are moved into ``out`` with SIGINT and SIGTERM held off, and every file of
    ``out`` matching ``names`` (all the files this study can write: names or glob patterns such as
    ``"model-*.npz"``) that the run did not write is removed, so an earlier run's figure cannot stay beside new
    numbers. On an error or an interrupt the hidden folder is removed and ``out`` is left as it was.
    """
    out = prepare_out(out)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield stage
        written = sorted(p.name for p in stage.iterdir())
        with _signals_held():
            for name in written:
                os.replace(stage / name, out / name)
            patterns = list(names)
            for old in out.iterdir():
                ours = old.is_file() and any(fnmatch.fnmatchcase(old.name, p) for p in patterns)
                if ours and old.name not in written:
                    old.unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file (header, then rows) atomically; returns the path."""
    text = io.StringIO(newline="")
    table = csv.writer(text)
    table.writerow(header)
    table.writerows(rows)
    return write_text(path, text.getvalue())


def write_json(path: str | Path, doc: Any, indent: int = 2, with_environment: bool = False) -> Path:
    """Write ``doc`` as JSON atomically (NumPy scalars and arrays as numbers and lists); returns the path. With
    ``with_environment=True`` (a study's result file) the dict ``doc`` gets an ``"environment"`` entry,
    :func:`environment`: where and with what the numbers were computed. A ``doc`` that already has one (recorded
    when its study started, so that the commit is the code that ran, not the one checked out when the file is
    written) keeps it."""
    if with_environment:
        if not isinstance(doc, Mapping):
            raise ValueError(f"doc must be a dict to record the environment in; got {type(doc).__name__}")
        doc = {**doc, "environment": doc.get("environment") or environment()}
    return write_text(path, json.dumps(doc, indent=indent, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
