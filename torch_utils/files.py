"""Atomic file writes: the one way this project puts a file in place.

A writer gets a temporary file in the destination's folder; on success it is flushed, fsynced and
renamed over the destination, on any error (or a kill) it is removed. So a reader — a resumed run, a
benchmark, `fid.py calc` — sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# The file generate.py writes into a PNG folder after its last image: {"count": N, "seeds": [first, last]}.
# A folder without it (a killed generate.py) is partial; fid.py calc refuses it unless told otherwise.
COMPLETION_MARKER = ".complete.json"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """`with atomic_write(path) as f: f.write(...)` ('w' text, 'wb' binary; open's other keywords pass
    through). Creates the parent folder."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail before any work if `path` cannot be written: a folder in its place, or a parent that cannot be
    created or written. ValueError naming the path and the fix."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; the {what} is a file, give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{path}: cannot write the {what} there ({e.strerror}); choose another path") from None
    return path


def check_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Fail before any work if the folder `path` cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path}: is a file; the {what} must be a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{path}: cannot write the {what} there ({e.strerror}); choose another folder") from None
    return path
