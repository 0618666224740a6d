"""Measurements have the device to themselves: loops sharing it pause at their next step."""

import multiprocessing
import os
import time
from pathlib import Path

from hubbench.exclusive import exclusive, pause_point, sharing


def neighbour(log: str, stop) -> None:
    """A training loop on the CPU that logs the time of every step (another process: its own cache, the same host)."""
    os.environ["HUBBENCH_CACHE"] = log + "-cache"
    with sharing("cpu"), open(log, "a") as f:
        while not stop.is_set():
            pause_point("cpu")
            f.write(f"{time.monotonic()}\n")
            f.flush()
            time.sleep(0.002)


def test_a_measurement_pauses_the_loops_sharing_its_device_and_they_resume_after(tmp_path):
    log = tmp_path / "steps"
    log.touch()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    loop = context.Process(target=neighbour, args=(str(log), stop))
    loop.start()
    try:
        while len(log.read_text().split()) < 5:  # the neighbour is stepping
            time.sleep(0.05)
        with sharing("cpu"):  # this process's own loop steps aside as well (no deadlock)
            with exclusive("cpu", wait_s=20) as alone:
                start = time.monotonic()
                time.sleep(0.5)
                end = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        loop.join(10)
    steps = [float(t) for t in Path(log).read_text().split()]
    assert alone
    assert not [t for t in steps if start < t < end]
    assert [t for t in steps if t > end]  # and it went on afterwards
