"""Atomic writes and safe loads: a reader never sees a half-written file, a checkpoint never runs code.

Files are created with the mode `open` would give them (0666 less the umask), so records, leaderboards
and caches on a shared filesystem are as readable as the user's other files. torch is imported only
by the functions that need it: the CLI's start-up stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from hubbench.errors import InputError
from hubbench.settings import current

RESULTS = Path("results")  # where records go by default (relative to the working directory)
BOARDS = Path("leaderboard")  # where leaderboards go by default


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _sweep_orphans(path: Path, host: str) -> None:
    """Remove temp files of `path` left by killed writers on this host (a SIGKILL skips every cleanup).

    The temp name carries host and pid, so a writer on another node of a shared filesystem is never touched."""
    for tmp in path.parent.glob(f".{path.name}.{host}-*.tmp"):
        pid = tmp.name.removeprefix(f".{path.name}.{host}-").split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


@cache
def umask() -> int:
    """The process's umask (read by setting it, and set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open` gives a new file: 0666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode `mkdir` gives a new directory (mkdtemp's is 0700): 0777 less the umask."""
    return 0o777 & ~umask()


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through `write(fileobj)` to a temp file in the target directory, then rename over.

    The temp file gets `file_mode()` (mkstemp's is 0600). An OSError (a full disk, a directory that
    vanished) leaves the old file as it was, removes the folders made for it, and names the file it could not
    write."""
    path = Path(path)
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "_")
    _sweep_orphans(path, host)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{host}-{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):  # another process may have written into it meanwhile
                folder.rmdir()
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from e
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(path, lambda f: f.write(text), mode="w")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: str | os.PathLike, mmap: bool = False) -> Any:
    """Load tensors and plain containers only (`weights_only=True`): checkpoints are untrusted. With `mmap`
    the tensors are memory-mapped from the file (paged in as read), not read into memory."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """`path`, if it is a directory this process can write in, or one it can create: raises `InputError`
    naming `what` otherwise. Checked before any work, so that a bad output path is refused up front and
    not once a cell has trained; nothing is created."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"{what} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {path}: {existing} is not writable")
    return path


def cache_dir() -> Path:
    """Where built hubs, artifacts and checkpoints live: the `cache` of the settings in use (`hubbench.settings`)."""
    return current().cache


def data_dir() -> Path:
    """Where real datasets live, one folder per task: the `data` of the settings in use (`hubbench.settings`)."""
    return current().data
