"""The papers' classification tasks on tiny fixtures in the datasets' own layouts."""

import os

import numpy as np
import pytest
import torch
from conftest import hubbench
from PIL import Image
from test_datasets import cifar, jpegs, text

from hubbench.benchmark.cells import Cell
from hubbench.benchmark.cli import main
from hubbench.benchmark.runner import run_cell
from hubbench.benchmark.suites import Suite
from hubbench.images import to_input
from hubbench.methods import METHODS
from hubbench.tasks import TASKS, image_cache
from hubbench.tasks.base import _SPLITS
from hubbench.tasks.crops import crop_taps, random_boxes, resample
from hubbench.tasks.datasets import DatasetError
from hubbench.tasks.paper_cls import PAPER_PROTOCOL, Cifar100
from hubbench.training import predict

PAPER_TASKS = ["cifar100", "coco70", "aircraft", "cars", "indoor67", "dmlab", "eurosat"]
SMALL = {"image_size": 32, "resize": 40, "eval_batch_size": 64}  # ten views of 32 px from 40 px squashes


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A data directory of this test's own: the splits other tests cached are dropped before and after."""
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(tmp_path))
    classes = [TASKS.get(name) for name in PAPER_TASKS]
    for cls in classes:
        _SPLITS.pop(cls, None)
    yield tmp_path
    for cls in classes:
        _SPLITS.pop(cls, None)


class TopLeft(torch.nn.Module):
    """An output that depends on the view: the channels of the top-left pixel."""

    def forward(self, x):
        return x[:, :, 0, 0]


def cifar_task(data, **protocol):
    cifar(data / "cifar100", sizes=(800, 200))  # labels 7i mod 100: 8 training images per class
    cls = TASKS.get("cifar100")
    return cls(cls.protocol.replace(**protocol))


def dmlab(root, per_class=10, reverse=False):
    """DMLab's VTAB lists, 6 classes: `per_class` images each in train800val200, 2 in test."""
    trainval = [f"images/trainval/{i}.jpg {i % 6}" for i in range(6 * per_class)]
    test = [f"images/test/{i}.jpg {i % 6}" for i in range(12)]
    text(root / "train800val200.txt", trainval[::-1] if reverse else trainval)
    text(root / "test.txt", test)
    jpegs(root, *(line.split()[0] for line in trainval + test))


def test_cifar100_holds_out_a_seeded_tenth_of_each_class_for_val(data):
    splits = cifar_task(data).splits
    assert {k: len(v) for k, v in splits.items()} == {"train": 700, "val": 100, "test": 200}
    assert torch.bincount(splits["val"].targets).tolist() == [1] * 100
    assert torch.bincount(splits["train"].targets).tolist() == [7] * 100
    label_of = {image.tobytes(): label for image, label in Cifar100.read(data / "cifar100").splits["train"]}
    train, val = ([image.tobytes() for image in splits[s].items] for s in ("train", "val"))
    assert not set(train) & set(val) and len(set(train) | set(val)) == 800
    assert [label_of[key] for key in val] == splits["val"].targets.tolist()
    again = TASKS.get("cifar100")().make_splits()
    assert [image.tobytes() for image in again["val"].items] == val


def test_list_dataset_holds_out_val_whatever_the_listing_order(data, tmp_path_factory, monkeypatch):
    dmlab(data / "dmlab")
    splits = TASKS.get("dmlab")().splits
    assert {k: len(v) for k, v in splits.items()} == {"train": 54, "val": 6, "test": 12}
    assert sorted(splits["val"].targets.tolist()) == list(range(6))
    # pinned: a change to the held-out set would silently change every result on these datasets
    assert [p.name for p in splits["val"].items] == ["5.jpg", "6.jpg", "8.jpg", "31.jpg", "45.jpg", "52.jpg"]
    other = tmp_path_factory.mktemp("reversed")
    dmlab(other / "dmlab", reverse=True)
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(other))
    reordered = TASKS.get("dmlab")().make_splits()
    assert sorted(p.relative_to(other) for p in reordered["val"].items) == sorted(
        p.relative_to(data) for p in splits["val"].items)


def test_official_val_is_kept_where_it_is_disjoint_from_training(data):
    jpegs(data / "eurosat" / "2750", *(f"Class{c}/{i}.jpg" for c in range(10) for i in range(5)))
    splits = TASKS.get("eurosat")().splits
    assert {k: len(v) for k, v in splits.items()} == {"train": 30, "val": 10, "test": 10}  # the reader's 60/20/20
    assert not set(splits["train"].items) & set(splits["val"].items)


def test_train_batch_is_224_px_and_a_function_of_the_generator(data):
    task = cifar_task(data)
    assert task.protocol == PAPER_PROTOCOL
    idx = torch.tensor([5, 0, 699, 42])
    x, y = task.train_batch(idx, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and -3 < x.mean() < 3
    assert torch.equal(y, task.splits["train"].targets[idx])
    assert torch.equal(x, task.train_batch(idx, torch.Generator().manual_seed(0))[0])
    assert not torch.equal(x, task.train_batch(idx, torch.Generator().manual_seed(1))[0])


def test_files_are_decoded_into_the_cache_and_a_bad_one_is_named(data):
    dmlab(data / "dmlab")
    task = TASKS.get("dmlab")(PAPER_PROTOCOL.replace(**SMALL))
    x, y = task.train_batch(torch.arange(3), torch.Generator().manual_seed(0))
    assert x.shape == (3, 3, 32, 32) and torch.equal(y, task.splits["train"].targets[:3])
    (data / "dmlab" / "images" / "test" / "0.jpg").write_text("not a jpeg")
    with pytest.raises(DatasetError, match=r"0\.jpg: not a readable image .*; expected a complete image file"):
        next(task.eval_batches("test"))


def test_ten_views_are_centre_corners_and_mirrors_and_predict_sums_them(data):
    task = cifar_task(data, **SMALL)
    batches = list(task.eval_batches("test"))
    assert [b.shape for b in batches] == [(64, 10, 3, 32, 32)] * 3 + [(8, 10, 3, 32, 32)]
    x = batches[0]
    assert torch.equal(x[:, 5:], x[:, :5].flip(-1))
    assert len({view.sum().item() for view in x[0, :5]}) == 5  # five different crops of random pixels
    single = next(TASKS.get("cifar100")(task.protocol.replace(test_views=1)).eval_batches("test"))
    assert torch.equal(single, x[:, 0])  # the centre comes first
    squashed = to_input(task.pixels("test")[:64].contiguous())
    assert torch.equal(x[:, 1], squashed[..., :32, :32]) and torch.equal(x[:, 4], squashed[..., 8:, 8:])

    out = predict(TopLeft(), task.eval_batches("test"))
    assert torch.allclose(out, torch.cat([b[:, :, :, 0, 0].sum(1) for b in batches]))
    assert torch.equal(predict(TopLeft(), [single]), single[:, :, 0, 0])  # single views are unchanged


def test_random_boxes_are_seeded_and_inside_the_image():
    boxes = random_boxes(2000, 256, torch.Generator().manual_seed(0))
    assert boxes == random_boxes(2000, 256, torch.Generator().manual_seed(0))
    b = torch.tensor(boxes, dtype=torch.float)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, :2] >= 0).all() and (b[:, 2:] <= 256).all() and (w >= 1).all() and (h >= 1).all()
    share, aspect = w * h / 256**2, w / h
    assert share.min() > 0.07 and share.max() <= 1 and 0.7 < aspect.min() and aspect.max() < 1.4
    assert 0.4 < share.mean() < 0.6  # about the mean of U(0.08, 1), less the draws that do not fit


def test_paper_protocol_and_its_validation():
    p = PAPER_PROTOCOL
    assert (p.lr, p.batch_size, p.momentum, p.weight_decay, p.nesterov) == (0.01, 48, 0.9, 5e-4, True)
    assert p.iterations == 15000 and [p.lr_at(i) / p.lr for i in (5999, 6000, 11999, 12000)] == pytest.approx(
        [1, 0.1, 0.1, 0.01])  # the papers' milestones 6 000 and 12 000
    assert (p.resize, p.image_size, p.random_resized_crop, p.flip, p.test_views) == (256, 224, True, True, 10)
    with pytest.raises(ValueError, match=r"'test_views' must be one of \(1, 2, 5, 10\), got 3"):
        p.replace(test_views=3)
    with pytest.raises(ValueError, match=r"'resize' must be 0 or at least image_size \(224\), got 200"):
        p.replace(resize=200)


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_a_missing_dataset_names_its_path_and_layout(data, name):
    with pytest.raises(DatasetError) as err:
        TASKS.get(name)().splits  # noqa: B018
    message = str(err.value)
    assert message.startswith(str(data / name)) and "; expected <root>/" in message and "\n" not in message


def test_a_dataset_with_other_classes_is_refused(data):
    jpegs(data / "eurosat" / "2750", *(f"Class{c}/{i}.jpg" for c in range(3) for i in range(5)))
    with pytest.raises(DatasetError, match=r"eurosat: 3 classes, not 10; expected <root>/2750/"):
        TASKS.get("eurosat")().splits  # noqa: B018


def test_a_cell_trains_and_tests_on_files(data, tiny_hub, tmp_path_factory):
    cifar_task(data)
    protocol = {**SMALL, "iterations": 2, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2}
    suite = Suite("paper", "", ("tiny",), ("cifar100",), ("finetune",), (0,), protocol)
    method = METHODS.get("finetune")(model=tiny_hub.names[0])
    status, record = run_cell(Cell(suite, "tiny", "cifar100", method, 0), tmp_path_factory.mktemp("results"),
                              torch.device("cpu"))
    assert status == "ok", record.traceback
    assert record.config.task["sizes"] == {"train": 700, "val": 100, "test": 200}
    assert 0 <= record.metrics["test"]["top1"] <= 100 and record.curves["val_top1"]


def test_cli_reports_a_missing_dataset_in_one_line_before_anything_runs(tmp_path):
    env = {**os.environ, "HUBBENCH_DATA_DIR": str(tmp_path)}
    result = hubbench("run", "--suite", "paper-cls", "--results", str(tmp_path / "results"), check=False, env=env)
    assert result.returncode == 2 and not (tmp_path / "results").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hubbench: error: {tmp_path / 'cifar100'}")
    assert "expected <root>/cifar-100-python/{train,test,meta}" in lines[0]


def test_cli_data_dir_option(data, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    args = ["run", "--suite", "paper-hetero", "--task", "dmlab", "--results", str(tmp_path / "results")]
    assert main([*args, "--data-dir", str(tmp_path / "other")]) == 2  # the option wins over the environment
    assert f"error: {tmp_path / 'other' / 'dmlab' / 'train800val200.txt'}: missing;" in capsys.readouterr().err
    assert main([*args, "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert f"--data-dir {tmp_path / 'nowhere'} is not a directory" in capsys.readouterr().err


def pil_train_batch(task, idx, g):
    """The training batch as the per-batch PIL decoder made it before the cache: decode, squash, crop the
    box and resize (PIL), normalise, then flip; the generator drawn in the same order."""
    p, split = task.protocol, task.splits["train"]
    boxes = random_boxes(len(idx), task.side, g)
    crops = []
    for k, i in enumerate(idx.tolist()):
        item = split.items[i]
        with Image.fromarray(item) if isinstance(item, np.ndarray) else Image.open(item) as image:
            image = image.convert("RGB").resize((task.side, task.side), Image.Resampling.BILINEAR)
        crops.append(np.asarray(image.resize((p.image_size,) * 2, Image.Resampling.BILINEAR, box=boxes[k])))
    x = to_input(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous())
    flip = torch.rand(len(x), generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def test_train_batches_from_the_cache_equal_the_per_batch_pil_decoder_bit_for_bit(data):
    task = cifar_task(data, **SMALL)
    idx = torch.tensor([5, 0, 699, 42, 7, 300])
    for seed in range(3):
        x, y = task.train_batch(idx, torch.Generator().manual_seed(seed))
        assert torch.equal(x, pil_train_batch(task, idx, torch.Generator().manual_seed(seed)))
        assert torch.equal(y, task.splits["train"].targets[idx])


@pytest.mark.parametrize(("side", "size"), [(256, 224), (40, 32), (64, 96)])
def test_device_crops_are_pils_resize_with_box_bit_for_bit(side, size):
    """The batched integer kernels accelerators run (here on the CPU) against PIL, shrinking and enlarging."""
    rng = np.random.default_rng(side)
    images = rng.integers(0, 256, (12, side, side, 3), dtype=np.uint8)
    boxes = random_boxes(10, side, torch.Generator().manual_seed(side)) + [(0, 0, side, side), (3, 1, side - 2, side)]
    expected = np.stack([np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BILINEAR, box=b))
                         for a, b in zip(images, boxes, strict=True)])
    taps = crop_taps(torch.tensor(boxes), side, size)
    out = resample(torch.from_numpy(images).permute(0, 3, 1, 2), taps)
    assert out.dtype == torch.uint8 and np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)


def test_images_are_decoded_once_into_a_memory_mapped_cache_keyed_by_the_files(data, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    dmlab(data / "dmlab")
    decodes = []
    decode = image_cache.decode
    monkeypatch.setattr(image_cache, "decode", lambda *a: decodes.append(a[0]) or decode(*a))
    task = TASKS.get("dmlab")(PAPER_PROTOCOL.replace(**SMALL))
    pixels = task.pixels("train")
    assert pixels.shape == (54, 3, 40, 40) and len(decodes) == 54
    assert task.splits["train"].decoded(40).untyped_storage().nbytes() == 54 * 40 * 40 * 3
    _SPLITS.clear()  # a new process: the listing is read again, the images are not decoded again
    again = TASKS.get("dmlab")(PAPER_PROTOCOL.replace(**SMALL)).pixels("train")
    assert torch.equal(again, pixels) and len(decodes) == 54
    assert len(list((image_cache.cache_dir() / "images").glob("dmlab-train-40px-*.u8"))) == 1
    first = task.splits["train"].items[0]
    first.write_bytes(first.read_bytes())  # same bytes, a new modification time: a new cache file
    _SPLITS.clear()
    TASKS.get("dmlab")(PAPER_PROTOCOL.replace(**SMALL)).pixels("train")
    assert len(decodes) == 108 and len(list((image_cache.cache_dir() / "images").glob("dmlab-train-40px-*"))) == 2


def test_data_prepare_decodes_a_suites_datasets_ahead_and_names_a_bad_image(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "cache"))
    dmlab(data / "dmlab")
    suite = tmp_path / "s.toml"
    suite.write_text('description = "x"\nhubs = ["resnet50-zoo"]\ntasks = ["dmlab"]\nmethods = ["finetune"]\n'
                     'seeds = [0]\n[protocol]\nimage_size = 32\nresize = 40\n')
    assert main(["data", "prepare", "--suite", str(suite)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"dmlab/{split}: {n} images of 40 px in the cache"
                                                    for split, n in (("train", 54), ("val", 6), ("test", 12))]
    assert len(list((tmp_path / "cache" / "images").glob("dmlab-*-40px-*.u8"))) == 3
    (data / "dmlab" / "images" / "test" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    _SPLITS.clear()
    assert main(["data", "prepare", "--suite", str(suite)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{data / 'dmlab' / 'images' / 'test' / '3.jpg'}: not a readable image" in err[0]
