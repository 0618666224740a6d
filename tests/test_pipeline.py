"""The one path every cell runs (`runner.execute`): a full disk is not the plugin's failure, in a method's cell as in
a ranking cell, so it is raised as it came and leaves no record (nor an empty folder for one) and what the cell
made so far, for a rerun."""

import errno

import pytest
import torch

from hubbench.artifacts import checkpoint_stem
from hubbench.benchmark.cells import expand
from hubbench.benchmark.runner import run_cell
from hubbench.benchmark.suites import Suite
from hubbench.context import Context
from hubbench.rankers import base as rankers

SMALL = {"iterations": 4, "eval_every": 0, "checkpoint_every": 2}  # no evaluation while it trains


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def run_on_a_full_disk(cell, root):
    """Run `cell` into root/results with a cache of its own, root/cache (nothing there made by another test)."""
    with pytest.raises(OSError) as raised:
        run_cell(cell, root / "results", torch.device("cpu"), cache=root / "cache")
    assert raised.value.errno == errno.ENOSPC
    assert not (root / "results").exists(), "a record, or an empty folder for one"


def test_a_full_disk_in_a_methods_cell_is_raised_and_its_checkpoints_kept(tiny_hub, tmp_path, monkeypatch):
    [cell] = expand(Suite("disk", "", ("tiny",), ("digits",), ("scratch",), (0,), SMALL))
    monkeypatch.setattr(Context, "predict", full_disk)  # after training: its checkpoints are on disk
    run_on_a_full_disk(cell, tmp_path)
    stem = checkpoint_stem(cell.scope, cell.seed, cell.protocol)
    assert list((tmp_path / "cache" / "checkpoints").glob(f"{stem}-*.ckpt")), "the checkpoints a rerun resumes from"


def test_a_full_disk_in_a_ranking_cell_is_raised_and_its_features_kept(tiny_hub, tmp_path, monkeypatch):
    [cell] = expand(Suite("disk", "", ("tiny",), ("shapes",), (), (0,), SMALL, rankers=("hscore",)))
    monkeypatch.setattr(rankers, "save_torch", full_disk)  # as the ranking is cached, after the features
    run_on_a_full_disk(cell, tmp_path)
    assert len(list((tmp_path / "cache" / "features" / "tiny" / "shapes").glob("*.pt"))) == len(tiny_hub.names)
