"""Run locks on a POSIX lakehouse: one run per run date at a time, and no vacuum while any runs.

`flock` locks belong to the open file, so the kernel releases them when the holder exits in any
way, SIGKILL included: a killed run never blocks the next one. Locks live in `<root>/_locks`.
On object storage (no flock) the scheduler must serialise runs of one ds (see README).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from hybridrec.errors import RunInProgressError
from hybridrec.io.paths import checked_lakehouse_root

LOCKS_DIR = "_locks"
_LAKEHOUSE_LOCK = "lakehouse.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8") or "unknown holder"
    except OSError:
        return "unknown holder"


@contextmanager
def _flock(path: Path, mode: int, refusal: str) -> Iterator[int]:
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f" by {_holder(path)}" if mode == fcntl.LOCK_EX and path.name != _LAKEHOUSE_LOCK else ""
            raise RunInProgressError(f"{refusal} (lock {path} held{holder})") from None
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def run_lock(lakehouse_root: str, ds: date, run_id: str) -> Iterator[None]:
    """Held for a whole run of `ds`: a second run of the same ds fails at once, before any write."""
    folder = checked_lakehouse_root(lakehouse_root) / LOCKS_DIR
    with _flock(folder / _LAKEHOUSE_LOCK, fcntl.LOCK_SH, "vacuum is running on this lakehouse"), \
            _flock(folder / f"ds={ds.isoformat()}.lock", fcntl.LOCK_EX,
                   f"run date {ds} is already being computed; run {run_id} stopped before writing") as fd:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()}).encode())
        yield


@contextmanager
def exclusive_lakehouse(lakehouse_root: str) -> Iterator[None]:
    """Held by vacuum: refuses while any run holds its shared lock (its staged files are not committed yet)."""
    path = checked_lakehouse_root(lakehouse_root) / LOCKS_DIR / _LAKEHOUSE_LOCK
    with _flock(path, fcntl.LOCK_EX, "a run is in progress on this lakehouse; vacuum could delete its "
                                     "staged files"):
        yield
