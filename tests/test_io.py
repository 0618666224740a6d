import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from hubbench.io import atomic_write, load_torch, read_json, save_torch, write_json


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})

    def broken(f):
        f.write("{partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken, mode="w")
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_sigkilled_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "hub.pt"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from hubbench.io import atomic_write\n"
        "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), f.flush(), time.sleep(60)))"), str(path)])
    deadline = time.time() + 30
    while not list(tmp_path.glob(".hub.pt.*.tmp")) and time.time() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [orphan] = tmp_path.glob(".hub.pt.*.tmp")
    elsewhere = tmp_path / ".hub.pt.othernode-1.x.tmp"  # a live writer on another host: never touched
    elsewhere.write_bytes(b"")
    save_torch(path, {"w": 1})
    assert not orphan.exists() and elsewhere.exists() and load_torch(path) == {"w": 1}


class Evil:
    def __reduce__(self):
        return (print, ("code ran on load",))


def test_checkpoint_loading_refuses_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": Evil()}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        load_torch(path)


def test_tensors_round_trip(tmp_path):
    obj = {"w": torch.arange(3.0), "it": 4, "curves": {"loss": [[1, 0.5]]}}
    back = load_torch(save_torch(tmp_path / "x.pt", obj))
    assert torch.equal(back["w"], obj["w"]) and back["it"] == 4 and back["curves"] == obj["curves"]
