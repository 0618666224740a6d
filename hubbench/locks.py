"""Advisory file locks between the processes that share a cache: one process trains an artifact or runs a
cell while the others wait for it.

`flock` locks belong to an open file, so the kernel releases them when the holder dies, however it
dies (SIGKILL, pre-emption, out of memory): a killed worker never leaves a stale lock behind. Lock files
are never deleted, because a process waiting on a deleted file and one locking its replacement would
both go ahead. The holder of an exclusive lock writes in its file what it holds it for, who it is and since
when (`claim`), so that a process waiting for it says so (at once, then every progress interval).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from hubbench.io import cache_dir
from hubbench.progress import say, working
from hubbench.seeding import digest

T = TypeVar("T")


def lock_path(key: str) -> Path:
    """The lock file of `key` (any string naming what is guarded), under the cache's `locks/`."""
    return cache_dir() / "locks" / f"{digest(key)}.lock"


POLL_S = 0.05  # how often a waiter tries the lock again


def _try(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def holder(fd: int) -> str:
    """Who holds the lock of `fd` and for what, as its holder wrote it (`claim`)."""
    return os.pread(fd, 1000, 0).decode(errors="replace").strip() or "another process (that did not say what for)"


def claim(fd: int, what: str) -> None:
    """Write in the file of a lock just taken who holds it, for what and since when."""
    text = f"pid {os.getpid()} on {socket.gethostname()} ({what}, since {datetime.now():%H:%M:%S})"
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)


def take(fd: int, waiting_for: str, *, shared: bool = False, who: Callable[[], str] | None = None,
         stop: Callable[[], bool] = lambda: False, quiet_s: float = 0.0) -> bool:
    """Lock `fd`, exclusively or `shared`, waiting while another process holds it: a wait longer than `quiet_s` is
    said then, and again every progress interval, naming what is `waiting_for` and who holds it and for what
    (`who()`, default the `holder` of `fd`). Returns whether it was taken: the waiter stops waiting when `stop()`
    turns true (and at Ctrl-C, as anywhere)."""
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    since, said = time.monotonic(), False
    with contextlib.ExitStack() as saying:
        while not _try(fd, operation):
            if stop():
                return False
            if not said and time.monotonic() - since >= quiet_s:
                waiting = f"waiting for {waiting_for}, held by {who() if who else holder(fd)}"
                say(waiting)
                said = saying.enter_context(working(waiting)) is not None
            time.sleep(POLL_S)
    return True


@contextlib.contextmanager
def locked(key: str, what: str = "") -> Iterator[None]:
    """Hold the exclusive lock of `key` for `what` (default: 'using' the key), waiting as long as another
    process holds it."""
    path = lock_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as any new file
    try:
        take(fd, f"the lock of {key}")
        claim(fd, what or f"using {key}")
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
    with locked(str(paths[0]), f"building {paths[0]}"):
        if all(p.exists() for p in paths):  # built by another process while this one waited
            return None
        return build()
