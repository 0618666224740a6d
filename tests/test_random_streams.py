"""Common random numbers: at one (task, seed) every method, suite name and `--set` variant trains on the same
batches with the same augmentation draws; a model's initialisation is keyed by (hub, task, method, seed)."""

import pytest
import torch
from conftest import write_suite

from hubbench.benchmark.cells import expand
from hubbench.benchmark.runner import run_cell
from hubbench.benchmark.suites import Suite
from hubbench.tasks.base import Task

CPU = torch.device("cpu")


@pytest.fixture
def drawn(monkeypatch):
    """Every training batch drawn, as (rows, augmentation parameters), in order."""
    batches = []
    original = Task.stage_train

    def spy(self, idx, g, splits=("train",)):
        staged = original(self, idx, g, splits)
        batches.append((idx.tolist(), {k: v.tolist() for k, v in staged.host[2].items()}))
        return staged

    monkeypatch.setattr(Task, "stage_train", spy)
    return batches


def batches_of(suite: Suite, method: str, results, drawn: list) -> list:
    drawn.clear()
    (cell,) = expand(suite, methods=[method])
    status, record = run_cell(cell, results, CPU)
    assert status == "ok", record.reason
    return list(drawn)


def test_methods_suites_and_variants_draw_the_same_batches(tiny_hub, tmp_path, drawn):
    suite = Suite.load(str(write_suite(tmp_path, "one", methods=("scratch", "finetune[model=selfsup]"),
                                       iterations=4, crop_padding=2, flip=True)))
    renamed = Suite.load(str(write_suite(tmp_path, "two", methods=("scratch",), iterations=4, crop_padding=2,
                                         flip=True)))
    scratch = batches_of(suite, "scratch", tmp_path / "r", drawn)
    assert len(scratch) >= 4 and any(params for _, params in scratch)  # crops and flips drawn (and the profiler's)
    assert batches_of(suite, "finetune[model=selfsup]", tmp_path / "r", drawn) == scratch  # its artifact's training
    assert batches_of(renamed, "scratch", tmp_path / "r", drawn) == scratch
    assert batches_of(suite.overridden({"lr": 0.05}), "scratch", tmp_path / "r", drawn) == scratch
    other_seed = Suite.load(str(write_suite(tmp_path, "three", methods=("scratch",), seeds=(1,), iterations=4,
                                            crop_padding=2, flip=True)))
    assert batches_of(other_seed, "scratch", tmp_path / "r", drawn) != scratch


def test_a_model_starts_alike_in_every_suite_and_differs_between_methods(tiny_hub, tmp_path, monkeypatch):
    """The initial weights of a cell's model (here: `scratch`'s, recorded before its first step) depend on (hub,
    task, method, seed), not on the suite's name or its protocol."""
    from hubbench import context

    starts = []
    original = context.Context.train

    def spy(self, model, *args, **kw):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return original(self, model, *args, **kw)

    monkeypatch.setattr(context.Context, "train", spy)
    one = Suite.load(str(write_suite(tmp_path, "one", methods=("scratch", "finetune[model=selfsup]"), iterations=2)))
    two = Suite.load(str(write_suite(tmp_path, "two", methods=("scratch",), iterations=2)))
    runs = ((one, "scratch"), (two, "scratch"), (one.overridden({"lr": 0.05}), "scratch"),
            (one, "finetune[model=selfsup]"))
    for suite, method in runs:
        (cell,) = expand(suite, methods=[method])
        run_cell(cell, tmp_path / "r", CPU)
    scratch, *again, finetune = starts
    assert all(torch.equal(scratch[k], s[k]) for s in again for k in scratch)
    head = [k for k in scratch if k.startswith("head.")]
    assert head and not all(torch.equal(scratch[k], finetune[k]) for k in head)  # another method, another stream
