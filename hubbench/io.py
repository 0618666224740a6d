"""Atomic writes and safe loads: a reader never sees a half-written file, a checkpoint never runs code."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


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


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Write through `write(fileobj)` to a temp file in the target directory, then rename over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace(".", "_")
    _sweep_orphans(path, host)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{host}-{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(path, lambda f: f.write(text), mode="w")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_torch(path: str | os.PathLike, mmap: bool = False) -> Any:
    """Load tensors and plain containers only (`weights_only=True`): checkpoints are untrusted. With `mmap`
    the tensors are memory-mapped from the file (paged in as read), not read into memory."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def cache_dir() -> Path:
    """Where built hubs, artifacts and checkpoints live: $HUBBENCH_CACHE or ~/.cache/hubbench."""
    root = os.environ.get("HUBBENCH_CACHE") or Path.home() / ".cache" / "hubbench"
    return Path(root)


DATA_DIR_ENV = "HUBBENCH_DATA_DIR"


def data_dir() -> Path:
    """Where real datasets live, one folder per task: $HUBBENCH_DATA_DIR or ~/data."""
    root = os.environ.get(DATA_DIR_ENV) or Path.home() / "data"
    return Path(root).expanduser()
