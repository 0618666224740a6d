"""Measurements that have a shared device to themselves.

Several cells may train on one GPU (`hubbench run --cells-per-gpu`), but a record's speed and memory
figures must be those of its model alone. So every training or evaluation loop holds its device's `run`
lock shared (`sharing`) and, between steps, looks whether a measurement is waiting (`Share.pause_point`);
a measurement (`exclusive`) first takes the device's `pause` lock, which makes every neighbour wait for
its queued kernels, release `run` and block at its next step, then takes `run` exclusively: nothing else
runs on the device until it ends. The locks are `flock`s (`hubbench.locks`), so a process that dies
releases them, and a look between steps is two system calls. A CPU is a device too: cells on one host
pause while one of them measures.

The locks are scoped to what they protect, a device as the cells of one cache use it, per user (`lock_name`):
the cells of another cache (another checkout, another user) never wait for this one's measurements, nor these
for theirs. Their files stay on the host (`lock_dir`), not under the cache, which several hosts may share. A
loop that waits says who measures and what (written in the `pause` file), and stops waiting when it is told to
stop (a pre-emption's signal held for its checkpoint, `hubbench.stopping`): it then saves and ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch

from hubbench.io import cache_dir
from hubbench.locks import claim, holder, take
from hubbench.seeding import digest
from hubbench.stopping import requested


def device_key(device: torch.device) -> str:
    """Names the physical device: a GPU by its UUID (the same whatever CUDA_VISIBLE_DEVICES says), a CPU by its host."""
    if device.type == "cuda":
        return f"gpu-{torch.cuda.get_device_properties(device).uuid}"
    return f"{device.type}-{socket.gethostname()}"


def lock_dir() -> Path:
    """Where device locks live: on the host, since a device is (not under the cache directory, which may be shared
    by several hosts and which `hubbench profile` swaps for a temporary one); one folder per user."""
    return Path(tempfile.gettempdir()) / f"hubbench-devices-{getpass.getuser()}"


def lock_name(device: torch.device, cache: Path) -> str:
    """The locks of `device` for the cells of `cache` (its resolved path: one cache, however it is named)."""
    return f"{device_key(device)}-{digest(str(Path(cache).resolve()))}"


def _open(name: str, role: str) -> int:
    path = lock_dir() / f"{name}-{role}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


class Share:
    """A process's share of a device: its loops hold `run` shared and probe `pause` between steps."""

    def __init__(self, name: str, device: torch.device, cache: Path):
        self.run, self.pause = _open(name, "run"), _open(name, "pause")
        self.device, self.depth, self.running = device, 1, False  # running: `run` is held
        self.waiting_for = f"device {device_key(device)} (cache {cache})"

    def wait(self) -> None:
        """Until no measurement has the device, then hold `run` (a stop request ends the wait: no `run`)."""
        if take(self.pause, self.waiting_for, shared=True, stop=requested):
            fcntl.flock(self.pause, fcntl.LOCK_UN)
            self.running = take(self.run, self.waiting_for, shared=True, who=partial(holder, self.pause),
                                 stop=requested)

    def pause_point(self) -> None:
        """Between two steps of a loop: if a measurement waits for the device, let its queued work finish, step
        aside until the measurement ends (or a stop is requested), then go on."""
        if self.running:
            try:
                fcntl.flock(self.pause, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(self.pause, fcntl.LOCK_UN)
                return
            except BlockingIOError:  # a measurement holds the pause lock
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                fcntl.flock(self.run, fcntl.LOCK_UN)
                self.running = False
        self.wait()

    def close(self) -> None:
        os.close(self.run)
        os.close(self.pause)


class _Alone:
    """The share of a loop that runs inside its own process's measurement: it has the device already."""

    def pause_point(self) -> None:
        pass


_shares: dict[str, Share] = {}  # lock name -> this process's share of the device
_measuring: set[str] = set()  # lock names this process measures on now


@contextlib.contextmanager
def sharing(device: torch.device | str, cache: Path | None = None) -> Iterator[Share | _Alone]:
    """Run a loop on `device` alongside the other processes of `cache` (default: the settings' cache), pausing for
    their measurements at its `pause_point`s (re-entrant)."""
    device = torch.device(device)
    cache = cache or cache_dir()
    name = lock_name(device, cache)
    if name in _measuring:
        yield _Alone()
        return
    if name in _shares:
        _shares[name].depth += 1
        try:
            yield _shares[name]
        finally:
            _shares[name].depth -= 1
        return
    share = _shares[name] = Share(name, device, cache)
    try:
        share.wait()
        yield share
    finally:
        _shares.pop(name, None)
        share.close()


@contextlib.contextmanager
def exclusive(device: torch.device | str, cache: Path | None = None, what: str = "measuring",
              wait_s: float = 600.0) -> Iterator[bool]:
    """Have `device` alone among the processes of `cache` (default: the settings' cache) for the block, `what` it is
    for (said to the loops that wait): they pause at their next step, and this process's own loops in the
    block do not wait. Yields whether it is alone: after `wait_s` (a neighbour that does not reach its next
    step, as in a long compilation) the block runs anyway, and the caller says so with its figures."""
    device = torch.device(device)
    cache = cache or cache_dir()
    name = lock_name(device, cache)
    own = _shares.get(name)
    if own is not None and own.running:  # this process's own loop steps aside too (first: no deadlock of two)
        fcntl.flock(own.run, fcntl.LOCK_UN)
        own.running = False  # taken again at its next pause point
    pause, run = _open(name, "pause"), _open(name, "run")
    deadline = time.monotonic() + wait_s

    def late() -> bool:
        return time.monotonic() > deadline

    waiting_for = f"device {device_key(device)} (cache {cache}) to measure on"
    try:
        alone = take(pause, waiting_for, stop=late)
        if alone:
            claim(pause, what)  # before the loops pause: they say who they wait for
            alone = take(run, waiting_for, who=lambda: "the loops that share it, until their next step", stop=late,
                         quiet_s=5.0)
        _measuring.add(name)
        yield alone
    finally:
        _measuring.discard(name)
        os.close(run)
        os.close(pause)
