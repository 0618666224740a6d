"""Progress of long work wherever the output goes: a tqdm bar in a terminal; elsewhere (nohup, SLURM logs, CI) a
plain line every `progress_s` seconds (`hubbench.settings`, default 30), logged (`hubbench.logs`), so a log shows
where a run is without filling up with bar redraws.

No stretch is silent for longer than that interval: work that has no loop to count (setting up, waiting for a
lock, a step longer than the interval, an evaluation) runs under `working(what)`, and while nothing else has
been said for an interval, a watcher thread says what is being done and for how long. Every line said here and
every step of a bar counts as having said something.

A line costs one clock read per step and nothing else: its loss is the last one the loop logged
(`set_postfix`), never one read from the device for the line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from hubbench.settings import current

log = logging.getLogger(__name__)


def interval() -> float:
    """Seconds between two progress lines: the settings' `progress_s`, default 30 (0: a line per iteration)."""
    return current().progress_s


def to_terminal() -> bool:
    """Whether progress goes to a terminal (stderr, as tqdm's bars)."""
    return sys.stderr.isatty()


class _Said:
    at = time.monotonic()  # when progress was last said (a line, or a step of a bar)


def _mark() -> None:
    _Said.at = time.monotonic()


def _write(message: str, stamped: bool = True) -> None:
    log.info(f"[{datetime.now():%H:%M:%S}] {message}" if stamped else message)  # one record: never split
    _mark()


def note(message: str) -> None:
    """A timestamped line in a log (not in a terminal, where the bars show it)."""
    if not to_terminal():
        _write(message)


def say(message: str) -> None:
    """A timestamped line on stderr, in a terminal too (what no bar shows: a wait, a forecast)."""
    _write(message)


def relay(line: str) -> None:
    """A line that another process said (a cluster job, in its log), as it said it, in this process's output."""
    _write(line, stamped=False)


def clock(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"


@dataclass
class Activity:
    """What the process is doing, as the watcher says it (`what` may change while it runs)."""

    what: str
    since: float = field(default_factory=time.monotonic)


_doing: list[Activity] = []  # innermost last
_watcher: list[threading.Thread] = []


def _watch() -> None:
    """Say the innermost activity whenever nothing was said for an interval (at least a second, so that an
    interval of 0, a line per iteration, does not mean a line all the time)."""
    while True:
        quiet = max(1.0, interval())
        time.sleep(min(1.0, quiet / 4))
        doing = list(_doing)  # a copy: a block may end meanwhile
        if doing and time.monotonic() - max(_Said.at, doing[0].since) >= quiet:  # silent since the work began
            say(f"{doing[-1].what}: {clock(time.monotonic() - doing[-1].since)} elapsed")


@contextlib.contextmanager
def working(what: str) -> Iterator[Activity]:
    """Run the block as `what` (e.g. 'running mini/scenes/scratch/seed0'): while nothing else is said for an
    interval, a line says it and its time so far. Nested blocks: the innermost is said."""
    if not (_watcher and _watcher[0].is_alive()):  # started once per process (not inherited by a fork)
        _watcher[:] = [threading.Thread(target=_watch, daemon=True, name="progress-watcher")]
        _watcher[0].start()
    activity = Activity(what)
    _doing.append(activity)
    try:
        yield activity
    finally:
        _doing.remove(activity)


class Lines:
    """The log-file counterpart of a tqdm bar over `iterable`, with its interface (`set_postfix`, `close`).

    Its rate counts from the end of its first step: neither the iterations done before a resume (`initial`)
    nor the warm-up of the first step make the ETA of the rest."""

    def __init__(self, iterable: Iterable, *, total: int, initial: int = 0, desc: str = ""):
        self.iterable, self.total, self.n, self.initial, self.desc = iterable, total, initial, initial, desc
        self.postfix = ""
        self.every = interval()

    def __iter__(self) -> Iterator:
        start = last = time.monotonic()
        first: tuple[int, float] | None = None  # (n, time) at the end of the first step
        for item in self.iterable:
            yield item
            self.n += 1
            now = time.monotonic()
            first = first or (self.n, now)
            if now - last >= self.every or self.n == self.total:
                last = now
                self.line(now - start, (self.n - first[0]) / (now - first[1]) if now > first[1] else 0.0)

    def line(self, elapsed: float, rate: float) -> None:
        eta = "0:00:00" if self.n == self.total else clock((self.total - self.n) / rate) if rate else "?"
        postfix = f", {self.postfix}" if self.postfix else ""
        note(f"{self.desc}: {self.n}/{self.total} it{postfix}, {clock(elapsed)} elapsed, ETA {eta}")

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass


def _marking(iterable: Iterable) -> Iterator:
    for item in iterable:
        yield item
        _mark()  # the bar moves: something was said


def progress(iterable: Iterable, *, total: int, initial: int = 0, desc: str = ""):
    """A tqdm bar over the iterations `iterable` in a terminal, else `Lines`."""
    if to_terminal():
        from tqdm.auto import tqdm  # here: the CLI imports this module, and answers --help without tqdm

        return tqdm(_marking(iterable), total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)
    return Lines(iterable, total=total, initial=initial, desc=desc)
