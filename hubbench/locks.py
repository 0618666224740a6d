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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from hubbench.io import cache_dir
from hubbench.seeding import digest

T = TypeVar("T")


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


def build_once(paths: Sequence[Path], build: Callable[[], T]) -> T | None:
    """Run `build`, which writes the files `paths` (each whole, through `hubbench.io.atomic_write`), unless
    they all exist; returns what it returned, or None where they did.

    Processes that need them at once take the lock of `paths[0]`: one builds, the others wait, then find
    the files and build nothing. A build that raises or is killed leaves no file half-written and the set
    incomplete, so the next caller builds it again: write the file that completes the set last."""
    if all(p.exists() for p in paths):
        return None
    with locked(str(paths[0])):
        if all(p.exists() for p in paths):  # built by another process while this one waited
            return None
        return build()
