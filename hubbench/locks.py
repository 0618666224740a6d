"""Advisory file locks between the processes that share a cache: one process trains an artifact or runs a
cell while the others wait for it.

`flock` locks belong to an open file, so the kernel releases them when the holder dies, however it
dies (SIGKILL, pre-emption, out of memory): a killed worker never leaves a stale lock behind. Lock files
are never deleted, because a process waiting on a deleted file and one locking its replacement would
both go ahead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hubbench.io import cache_dir
from hubbench.seeding import digest


def lock_path(key: str) -> Path:
    """The lock file of `key` (any string naming what is guarded), under the cache's `locks/`."""
    return cache_dir() / "locks" / f"{digest(key)}.lock"


@contextlib.contextmanager
def locked(key: str) -> Iterator[None]:
    """Hold the exclusive lock of `key`, waiting as long as another process holds it."""
    path = lock_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as any new file
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def is_locked(key: str) -> bool:
    """Whether a process holds the lock of `key` now (creates no file)."""
    try:
        fd = os.open(lock_path(key), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
