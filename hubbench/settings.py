"""The settings of a process, in one `Settings` object: where hubbench keeps its caches and finds datasets and
checkpoint files, whether real hubs get random weights, how often a log gets a progress line.

They are read from the environment here, and nowhere else (`Settings.from_environment`):

| variable | setting | default |
|---|---|---|
| `HUBBENCH_CACHE` | `cache`: built hubs, artifacts, checkpoints, decoded images, locks | `~/.cache/hubbench` |
| `HUBBENCH_DATA_DIR` | `data`: real datasets, one folder per task (`--data-dir`) | `~/data` |
| `HUBBENCH_WEIGHTS_DIR` | `weights`: real hubs' checkpoint files, before torch's folder (`--weights-dir`) | none |
| `HUBBENCH_RANDOM_WEIGHTS` | `random_weights`: if `1`, real hubs get seeded random weights (`--random-weights`) | `0` |
| `HUBBENCH_PROGRESS_S` | `progress_s`: seconds between two progress lines in a log (0: one per step) | `30` |

The command line builds the settings once, from the environment and its options, and runs the command under them
(`using`); a worker process or a cluster job gets them with its job, pickled, not through the environment. Library
code reads `current()`: the settings in use, else the environment's at that moment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hubbench.errors import InputError

VARIABLES = {"cache": "HUBBENCH_CACHE", "data": "HUBBENCH_DATA_DIR", "weights": "HUBBENCH_WEIGHTS_DIR",
             "random_weights": "HUBBENCH_RANDOM_WEIGHTS", "progress_s": "HUBBENCH_PROGRESS_S"}  # setting -> variable


@dataclass(frozen=True)
class Settings:
    """Where files are and how the process reports (see the module's docstring); what a cell computes does not
    depend on them, except through the weights of a real hub (random or a file's), which its record states."""

    cache: Path
    data: Path
    weights: Path | None = None
    random_weights: bool = False
    progress_s: float = 30.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings `environ` (default: this process's environment) gives, the defaults where it is silent."""
        env = os.environ if environ is None else environ

        def given(setting: str) -> str:
            return env.get(VARIABLES[setting]) or ""

        return cls(cache=Path(given("cache") or Path.home() / ".cache" / "hubbench"),
                   data=Path(given("data") or Path.home() / "data").expanduser(),
                   weights=Path(given("weights")).expanduser() if given("weights") else None,
                   random_weights=given("random_weights") not in ("", "0"),
                   progress_s=seconds(given("progress_s") or "30"))

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def seconds(text: str) -> float:
    """The progress interval `text` gives; bad input if it is not a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"${VARIABLES['progress_s']} must be a number of seconds (0 or more), got {text!r}")
    return value


_IN_USE: list[Settings] = []  # innermost last


def current() -> Settings:
    """The settings in use (`using`), else those of the environment now."""
    return _IN_USE[-1] if _IN_USE else Settings.from_environment()


@contextlib.contextmanager
def using(settings: Settings) -> Iterator[Settings]:
    """Run the block under `settings`: what `current()` returns in it (blocks nest)."""
    _IN_USE.append(settings)
    try:
        yield settings
    finally:
        _IN_USE.pop()
