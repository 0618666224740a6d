"""A stop signal that waits for the training loop's checkpoint.

SLURM warns a job before its time limit or a pre-emption (submitit's USR2); submitit's handler then requeues
the job and exits at once, wherever the process is, and the next attempt resumes from the last periodic
checkpoint: what the stopped attempt trained since then is lost. Under `deferred(signum)`, the signal that
comes while a training loop runs is held until the loop has finished its step and saved a checkpoint
(`requested`, then `stop`), and only then does the handler run; the next attempt resumes where this one
was stopped. Outside a training loop (setting up, evaluating, profiling, between stages) the handler runs at
once, as without it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class _Held:
    loops = 0  # training loops running (in the main thread, where Python runs signal handlers)
    handler: Callable[[], None] | None = None  # the held signal's handler, once it has come


@contextlib.contextmanager
def deferred(signum: int) -> Iterator[None]:
    """Hold `signum` for the training loops that run in the block; nothing changes where it has no Python
    handler (the process would just end) or outside the main thread (which alone sets handlers)."""
    handler = signal.getsignal(signum)
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def hold(received: int, frame) -> None:
        if _Held.loops:
            _Held.handler = lambda: handler(received, None)
        else:
            handler(received, frame)

    signal.signal(signum, hold)
    try:
        yield
    finally:
        signal.signal(signum, handler)


@contextlib.contextmanager
def training_loop() -> Iterator[None]:
    """A training loop runs in the block; a signal held for it is handled when the block ends, however it ends."""
    _Held.loops += 1
    try:
        yield
    finally:
        _Held.loops -= 1
        if not _Held.loops and requested():
            stop()


def requested() -> bool:
    """Whether a held signal waits for the loop's checkpoint."""
    return _Held.handler is not None


def stop() -> None:
    """Run the held signal's handler (submitit's: it requeues the job and exits)."""
    handler, _Held.handler = _Held.handler, None
    if handler is not None:
        handler()
