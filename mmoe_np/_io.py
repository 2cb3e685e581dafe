"""Atomic file writes: a file is either its complete old content or its complete new content, never half of each.

Every writer in the package goes through :func:`atomic_path`: the content is written to a temporary file in the same
folder (so the final ``os.replace`` is a rename within one file system, which POSIX makes atomic), flushed to disk,
and only then renamed over the target. A crash, Ctrl-C or SIGTERM before the rename leaves the old file untouched
and removes the temporary one.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text", "write_bytes"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is fsynced and renamed to ``path``, on an error
    (or an interrupt) it is removed and ``path`` keeps its old content.

    ``suffix`` (default: ``path``'s own) keeps writers that choose a format by extension (``savefig``, ``np.savez``)
    happy.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (path.suffix if suffix is None else
                                                                              suffix), dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the mode a plain open() would give it
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the content must be on disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: POSIX has no other way)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
