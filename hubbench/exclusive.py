"""Measurements that have a shared device to themselves.

Several cells may train on one GPU (`hubbench run --cells-per-gpu`), but a record's speed and memory
figures must be those of its model alone. So every training or evaluation loop holds its device's `run`
lock shared (`sharing`) and, between steps, looks whether a measurement is waiting (`pause_point`);
a measurement (`exclusive`) first takes the device's `pause` lock, which makes every neighbour wait for
its queued kernels, release `run` and block at its next step, then takes `run` exclusively: nothing else
runs on the device until it ends. The locks are `flock`s (`hubbench.locks`), so a process that dies
releases them, and a look between steps is two system calls. A CPU is a device too: cells on one host
pause while one of them measures. The lock files are the host's (`lock_dir`).
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
from dataclasses import dataclass
from pathlib import Path

import torch


def device_key(device: torch.device) -> str:
    """Names the physical device: a GPU by its UUID (the same whatever CUDA_VISIBLE_DEVICES says), a CPU by its host."""
    if device.type == "cuda":
        return f"gpu-{torch.cuda.get_device_properties(device).uuid}"
    return f"{device.type}-{socket.gethostname()}"


def lock_dir() -> Path:
    """Where device locks live: on the host, since a device is (not under the cache directory, which may be shared
    by several hosts and which `hubbench profile` swaps for a temporary one)."""
    return Path(tempfile.gettempdir()) / f"hubbench-devices-{getpass.getuser()}"


def _open(key: str, role: str) -> int:
    path = lock_dir() / f"{key}-{role}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@dataclass
class _Share:
    run: int  # fd of the run lock, held shared
    pause: int  # fd of the pause lock, probed
    depth: int = 1


_shares: dict[str, _Share] = {}  # device key -> this process's share of it


def _wait_unpaused(pause_fd: int) -> None:
    fcntl.flock(pause_fd, fcntl.LOCK_SH)
    fcntl.flock(pause_fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def sharing(device: torch.device | str) -> Iterator[None]:
    """Run a loop on `device` alongside other processes, pausing for their measurements (re-entrant)."""
    key = device_key(torch.device(device))
    if key in _shares:
        _shares[key].depth += 1
        try:
            yield
        finally:
            _shares[key].depth -= 1
        return
    share = _Share(_open(key, "run"), _open(key, "pause"))
    try:
        _wait_unpaused(share.pause)
        fcntl.flock(share.run, fcntl.LOCK_SH)
        _shares[key] = share
        yield
    finally:
        _shares.pop(key, None)
        os.close(share.run)
        os.close(share.pause)


def pause_point(device: torch.device | str) -> None:
    """Between two steps of a loop: if a measurement waits for the device, let its queued work finish, step
    aside until the measurement ends, then go on."""
    device = torch.device(device)
    share = _shares.get(device_key(device))
    if share is None:
        return
    try:
        fcntl.flock(share.pause, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(share.pause, fcntl.LOCK_UN)
    except BlockingIOError:  # a measurement holds the pause lock
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        fcntl.flock(share.run, fcntl.LOCK_UN)
        _wait_unpaused(share.pause)
        fcntl.flock(share.run, fcntl.LOCK_SH)


def _lock_within(fd: int, deadline: float) -> bool:
    """Take `fd`'s exclusive lock, polling until `deadline` (time.monotonic); whether it was taken."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


@contextlib.contextmanager
def exclusive(device: torch.device | str, wait_s: float = 600.0) -> Iterator[bool]:
    """Have `device` alone for the block: the loops sharing it pause at their next step. Yields whether it
    is alone: after `wait_s` (a neighbour that does not reach its next step, as in a long compilation)
    the block runs anyway, and the caller says so with its figures."""
    key = device_key(torch.device(device))
    own = _shares.get(key)
    if own is not None:  # this process's own loop steps aside too (first, so two measurers cannot deadlock)
        fcntl.flock(own.run, fcntl.LOCK_UN)
    pause, run = _open(key, "pause"), _open(key, "run")
    deadline = time.monotonic() + wait_s
    try:
        yield _lock_within(pause, deadline) and _lock_within(run, deadline)
    finally:
        os.close(run)
        if own is not None:
            fcntl.flock(own.run, fcntl.LOCK_SH)
        os.close(pause)
