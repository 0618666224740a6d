"""`build_once`, which every cache builds through: one builder under a lock, and no half-built set after a crash."""

import multiprocessing
import os
import signal
import threading
import time

import pytest

from hubbench.io import atomic_write, write_json
from hubbench.locks import build_once, is_locked


def test_a_build_that_raises_or_is_killed_leaves_nothing_half_written(tmp_path):
    weights, meta = tmp_path / "a.pt", tmp_path / "a.json"

    def fails_after_the_first_file():
        write_json(weights, "weights")
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        build_once((weights, meta), fails_after_the_first_file)
    assert not meta.exists()  # the set is incomplete: the next caller builds it again

    started = tmp_path / "started"

    def killed_while_writing():
        def write(f):
            f.write(b"half")
            f.flush()
            started.touch()
            time.sleep(60)

        build_once((weights, meta), lambda: atomic_write(weights, write))

    child = multiprocessing.get_context("fork").Process(target=killed_while_writing)
    child.start()
    while not started.exists():
        assert child.is_alive(), "the child died before it started writing"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert weights.read_text() == '"weights"\n'  # the file the killed build was replacing, whole
    assert not is_locked(str(weights))  # the kernel released the dead builder's lock

    def builds():
        write_json(weights, "new")
        write_json(meta, "done")
        return "built"

    assert build_once((weights, meta), builds) == "built"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.pt", "started"]  # its temp file swept
    assert build_once((weights, meta), lambda: pytest.fail("built twice")) is None


def test_a_concurrent_caller_waits_for_the_build_and_reuses_it(tmp_path):
    paths = (tmp_path / "b.pt", tmp_path / "b.json")
    building, go, results = threading.Event(), threading.Event(), {}

    def slow():
        building.set()
        go.wait(10)
        for p in paths:
            write_json(p, "built")
        return "first"

    def call(name, build):
        results[name] = build_once(paths, build)

    first = threading.Thread(target=call, args=("first", slow))  # flock: each open file is its own holder
    first.start()
    building.wait(10)
    second = threading.Thread(target=call, args=("second", lambda: "second built it too"))
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second caller did not wait for the build"
    go.set()
    first.join(10)
    second.join(10)
    assert results == {"first": "first", "second": None}
