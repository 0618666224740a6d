"""`hubbench data synth`: every paper dataset in the layout its reader expects, the same bytes for a seed."""

import filecmp

import numpy as np
import pytest
from conftest import hubbench
from PIL import Image

from hubbench.tasks import TASKS, synth_data
from hubbench.tasks.paper_cls import DMLab
from hubbench.tasks.paper_landmarks import W300
from hubbench.tasks.synth_data import MARKER, stand_ins, synthesise

CLASSES = {"cifar100": 100, "coco70": 70, "aircraft": 100, "cars": 196, "indoor67": 67, "dmlab": 6, "eurosat": 10}
POINTS = {"300w": 68, "wflw": 98, "cofw": 29, "aflw": 19}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    hubbench("data", "synth", str(root), "--seed", "3")
    return root


def test_every_paper_dataset_is_written(data):
    assert set(stand_ins()) == set(CLASSES) | set(POINTS)
    assert sorted(p.name for p in data.iterdir()) == sorted(stand_ins())  # no partial folder left
    assert all((data / name / MARKER).is_file() for name in stand_ins())


@pytest.mark.parametrize("name", CLASSES)
def test_classification_sets_read_with_their_class_counts_and_sizes(data, name):
    task = TASKS.get(name)
    listing = task.read(data / name)
    assert len(listing.classes) == CLASSES[name] == task.num_classes
    train = listing.splits[listing.train_split]
    assert np.bincount([y for _, y in train]).min() >= 6  # after the task holds out a tenth, some left
    assert {y for _, y in listing.splits["test"]} == set(range(CLASSES[name]))
    image = train[0][0]
    size = image.shape[1::-1] if isinstance(image, np.ndarray) else Image.open(image).size
    if name == "cifar100":
        assert size == (32, 32)
    elif name in ("aircraft", "cars"):
        assert min(size) >= 150 and max(size) >= 300  # several hundred pixels a side


@pytest.mark.parametrize("name", POINTS)
def test_landmark_sets_read_with_their_points(data, name):
    task = TASKS.get(name)()
    train, test = task.read(data / name)
    assert len(train) >= 54 and len(test) >= 48
    assert all(f.points.shape == (POINTS[name], 2) and f.normaliser > 0 for f in train + test)
    h, w = train[0].pixels().shape[:2]
    assert min(h, w) >= 200
    assert (train[0].points >= 0).all() and (train[0].points <= (w, h)).all()
    if name == "300w":
        assert [len(W300.load(data / name, s)) for s in ("common", "challenging")] == [32, 16]


def test_the_same_seed_writes_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(synth_data, "TRAIN", 1)  # one image per class and split is enough here
    monkeypatch.setattr(synth_data, "TEST", 1)
    monkeypatch.setattr(synth_data, "FACES_TRAIN", 3)
    monkeypatch.setattr(synth_data, "FACES_TEST", 3)
    chosen = ["cifar100", "cars", "cofw"]  # pickles, MATLAB v5 and v7.3 (whose headers would carry a time)
    first, again, other = (synthesise(tmp_path / str(n), seed, chosen) for n, seed in enumerate((3, 3, 4)))
    for a, b, c in zip(first, again, other, strict=True):
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
        assert mismatch == errors == [] and len(match) == len(files) > 2
        assert filecmp.cmpfiles(a, c, files, shallow=False)[1], f"seed 4 wrote the {a.name} of seed 3"


def test_a_rerun_replaces_its_own_folders_and_refuses_any_other(tmp_path):
    hubbench("data", "synth", str(tmp_path), "--datasets", "dmlab")
    (tmp_path / "dmlab" / "stale.txt").write_text("from an earlier run")
    hubbench("data", "synth", str(tmp_path), "--datasets", "dmlab")
    assert not (tmp_path / "dmlab" / "stale.txt").exists() and DMLab.read(tmp_path / "dmlab").classes
    (tmp_path / "eurosat").mkdir()
    (tmp_path / "eurosat" / "mine.jpg").write_bytes(b"a user's file")
    result = hubbench("data", "synth", str(tmp_path), "--datasets", "dmlab", "eurosat", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "eurosat exists and was not written by `hubbench data synth`" in result.stderr
    assert sorted(p.name for p in (tmp_path / "eurosat").iterdir()) == ["mine.jpg"]


@pytest.mark.parametrize("args, message", [
    (["--datasets", "imagenet"], "unknown dataset 'imagenet' (choose from: 300w, aflw, aircraft, cars, cifar100"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    result = hubbench("data", "synth", str(tmp_path / "out"), *args, check=False)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
