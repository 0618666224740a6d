"""Plugin files, devices, settings and logs, as every process that runs cells (the CLI, workers, cluster jobs) has
them."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hubbench import logs
from hubbench.discovery import PROVENANCE
from hubbench.errors import InputError
from hubbench.settings import Settings, using

if TYPE_CHECKING:
    import torch

_LOADED: set[str] = set()  # plugin files this process has loaded


class PluginError(InputError):
    """A plugin file that is missing or fails to import: bad input, reported in one line."""


def load_plugin(path: str) -> None:
    """Import a Python file that registers hubs, tasks or methods."""
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        raise PluginError(f"plugin {path} is not a .py file")
    spec = importlib.util.spec_from_file_location(f"hubbench_plugin_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    # the code as it runs, by its content (a changed file makes the records of what it registers stale) and, for
    # the reader, its file as every process that loads it finds it (workers may start elsewhere)
    PROVENANCE[spec.name] = {"plugin": str(file.resolve()), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del PROVENANCE[spec.name]
        raise PluginError(f"cannot load plugin {path}: {type(e).__name__}: {e}") from None


def load_plugins(paths: Sequence[str]) -> None:
    """Load each plugin file once per process."""
    for path in paths:
        if path not in _LOADED:
            load_plugin(path)
            _LOADED.add(path)


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for an absent CUDA is bad input."""
    import torch  # here, not above: the CLI imports this module and answers --help without torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    return torch.device(name)


@contextlib.contextmanager
def started_as(settings: Settings) -> Iterator[None]:
    """The block of a worker process (or a cluster job) as it would run in the command that started it: under that
    command's `settings`, which come with the work, pickled (not through the environment), the log on stderr."""
    with using(settings), logs.to_stderr():
        yield
