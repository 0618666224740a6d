"""Progress of long loops wherever the output goes: a tqdm bar in a terminal; elsewhere (nohup, SLURM
logs, CI) a plain line every `progress_s` seconds (`hubbench.settings`, default 30), logged (`hubbench.logs`), so
a log shows where a run is without filling up with bar redraws.

A line costs one clock read per step and nothing else: its loss is the last one the loop logged
(`set_postfix`), never one read from the device for the line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import datetime

from hubbench.settings import current

log = logging.getLogger(__name__)


def interval() -> float:
    """Seconds between two progress lines: the settings' `progress_s`, default 30 (0: a line per iteration)."""
    return current().progress_s


def to_terminal() -> bool:
    """Whether progress goes to a terminal (stderr, as tqdm's bars)."""
    return sys.stderr.isatty()


def note(message: str) -> None:
    """A timestamped line in a log (not in a terminal, where the bars show it)."""
    if not to_terminal():
        log.info(f"[{datetime.now():%H:%M:%S}] {message}")


def clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"


class Lines:
    """The log-file counterpart of a tqdm bar over `iterable`, with its interface (`set_postfix`, `close`)."""

    def __init__(self, iterable: Iterable, *, total: int, initial: int = 0, desc: str = ""):
        self.iterable, self.total, self.n, self.initial, self.desc = iterable, total, initial, initial, desc
        self.postfix = ""
        self.every = interval()

    def __iter__(self) -> Iterator:
        start = last = time.monotonic()
        for item in self.iterable:
            yield item
            self.n += 1
            now = time.monotonic()
            if now - last >= self.every or self.n == self.total:
                last = now
                self.line(now - start)

    def line(self, elapsed: float) -> None:
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = clock((self.total - self.n) / rate) if rate else "?"
        postfix = f", {self.postfix}" if self.postfix else ""
        note(f"{self.desc}: {self.n}/{self.total} it{postfix}, {clock(elapsed)} elapsed, ETA {eta}")

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass


def progress(iterable: Iterable, *, total: int, initial: int = 0, desc: str = ""):
    """A tqdm bar over the iterations `iterable` in a terminal, else `Lines`."""
    if to_terminal():
        from tqdm.auto import tqdm  # here: the CLI imports this module, and answers --help without tqdm

        return tqdm(iterable, total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)
    return Lines(iterable, total=total, initial=initial, desc=desc)
