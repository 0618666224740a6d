"""Measurements have the device to themselves among the cells of their cache: loops sharing it pause at their next
step, say who measures and what, and stop waiting when told to stop; loops of another cache go on."""

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

from hubbench import logs
from hubbench.exclusive import exclusive, sharing
from hubbench.stopping import deferred
from hubbench.training import Checkpoint, Schedule, train


def neighbour(log: str, cache: str, stop) -> None:
    """A training loop on the CPU that logs the time of every step (another process of the same host), its
    stderr (where hubbench's log goes, as in the command line's processes) in `log`.err."""
    sys.stderr = open(log + ".err", "w")  # noqa: SIM115 (the process's stderr until it ends)
    os.environ["HUBBENCH_PROGRESS_S"] = "0.2"  # the wait is said again every second, the least
    with logs.to_stderr(), sharing("cpu", Path(cache)) as share, open(log, "a") as f:
        while not stop.is_set():
            share.pause_point()
            f.write(f"{time.monotonic()}\n")
            f.flush()
            time.sleep(0.002)


def measured_beside(tmp_path: Path, neighbours_cache: Path) -> tuple[list[float], float, float, str]:
    """Measure for 1.5 s on the CPU of the test's cache beside a neighbour of `neighbours_cache`: (its step times,
    start and end of the measurement, what the neighbour said)."""
    log = tmp_path / "steps"
    log.touch()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    loop = context.Process(target=neighbour, args=(str(log), str(neighbours_cache), stop))
    loop.start()
    try:
        while len(log.read_text().split()) < 5:  # the neighbour is stepping
            time.sleep(0.05)
        with sharing("cpu", tmp_path / "cache"):  # this process's own loop steps aside as well (no deadlock)
            with exclusive("cpu", tmp_path / "cache", "measuring the test", wait_s=20) as alone:
                start = time.monotonic()
                time.sleep(1.5)
                end = time.monotonic()
        assert alone
        time.sleep(0.3)
    finally:
        stop.set()
        loop.join(10)
    return [float(t) for t in log.read_text().split()], start, end, Path(f"{log}.err").read_text()


def test_a_measurement_pauses_the_loops_of_its_cache_which_say_who_measures_and_resume_after(tmp_path):
    steps, start, end, said = measured_beside(tmp_path, tmp_path / "cache")
    assert not [t for t in steps if start < t < end]
    assert [t for t in steps if t > end]  # and it went on afterwards
    waiting = [line for line in said.splitlines() if "waiting for device cpu-" in line]
    assert f"held by pid {os.getpid()} on " in waiting[0] and "(measuring the test, since " in waiting[0]
    assert len(waiting) >= 2, said  # said again while the wait lasts (every second at the least)


def test_the_loops_of_another_cache_never_wait_for_a_measurement(tmp_path):
    steps, start, end, said = measured_beside(tmp_path, tmp_path / "elsewhere")
    assert len([t for t in steps if start < t < end]) > 10 and "waiting" not in said


def stopped_in_a_pause(ckpt: str, cache: str, stopped) -> None:
    """A training loop with a checkpoint, under a held stop signal whose handler sets `stopped` and ends (its
    stderr, where hubbench's log goes, in `ckpt`.err)."""
    sys.stderr = open(ckpt + ".err", "w")  # noqa: SIM115 (the process's stderr until it ends)

    def handler(signum, frame):
        stopped.set()
        os._exit(0)

    signal.signal(signal.SIGUSR2, handler)
    model = nn.Linear(2, 1)
    with logs.to_stderr(), deferred(signal.SIGUSR2):
        train(model, lambda m, x, y: ((m(x) - y) ** 2).mean(), lambda i: (torch.ones(4, 2), torch.zeros(4, 1)),
              Schedule(iterations=10**6, lr=0.01, batch_size=4), seed=0, checkpoint=Checkpoint(ckpt, every=10**6),
              cache=Path(cache))


def test_a_loop_told_to_stop_while_it_waits_for_a_measurement_saves_and_stops(tmp_path):
    """Pre-emption's warning signal, held for the loop's checkpoint, ends its wait: the job is requeued now, not
    once the measurement ends (which could be after the cluster's grace period)."""
    ckpt, cache = tmp_path / "stage.ckpt", tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    stopped = context.Event()
    with exclusive("cpu", cache, "measuring for ever", wait_s=20):
        loop = context.Process(target=stopped_in_a_pause, args=(str(ckpt), str(cache), stopped))
        loop.start()
        err, deadline = tmp_path / "stage.ckpt.err", time.monotonic() + 120
        while "waiting for device" not in (err.read_text() if err.exists() else ""):  # for the measurement
            assert loop.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)
        assert not ckpt.exists()
        os.kill(loop.pid, signal.SIGUSR2)
        loop.join(30)
        assert stopped.is_set() and ckpt.exists()  # while the measurement still holds the device
