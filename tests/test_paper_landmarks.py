"""The real landmark tasks on tiny copies of 300W, WFLW, COFW and AFLW-19 in their published layouts.

The fixture writers are those of test_landmark_data: ramp images (red = 4 x column, green = 4 x
row), so a crop's pixel says which original pixel it was sampled from.
"""

import numpy as np
import pytest
import torch
from test_landmark_data import indices, ramp, write_image
from torch import nn

from hubbench import tasks
from hubbench.io import cache_dir
from hubbench.tasks import TASKS, paper_landmarks
from hubbench.tasks.landmark_data import LandmarkDataError
from hubbench.tasks.landmarks import decode, encode, unpack
from hubbench.tasks.paper_landmarks import COFW, W300
from hubbench.tasks.synth_data import wflw_line, write_cofw, write_pts

SIZES = {"train": 5, "val": 1, "test": 3}  # of the 6 training faces, one is held out for val
TEST_FACES = (6, 7, 8)  # the seeds of `indices` of the test faces, in order
NORMALISING = {"300w": (36, 45), "wflw": (60, 72), "cofw": (8, 9)}
POINTS = {"300w": 68, "wflw": 98, "cofw": 29, "aflw": 19}
AFLW_SCALE = 0.15


def write_datasets(root):
    """Six training and three test faces of each dataset, face n's points `indices(K, n)`; WFLW's
    test face 6 has the large-pose and occlusion flags, face 7 the expression flag."""
    for n, part in enumerate(W300.parts["train"] * 2 + W300.parts["full"]):
        write_image(root / "300w" / part / f"face{n}.png")
        write_pts(root / "300w" / part / f"face{n}.pts", indices(68, n) + 1)
    splits = {"train": range(6), "test": TEST_FACES}
    lists = root / "wflw" / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    flags = {6: (1, 0, 0, 0, 1, 0), 7: (0, 1, 0, 0, 0, 0)}
    for split, faces in splits.items():
        lines = [wflw_line(indices(98, n), (12, 10, 47, 40), flags.get(n, (0,) * 6), f"0--Parade/{n}.png")
                 for n in faces]
        (lists / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")
        for n in faces:
            write_image(root / "wflw" / "WFLW_images" / "0--Parade" / f"{n}.png")
    (root / "cofw").mkdir()
    for split, faces in splits.items():
        name, tag = COFW.files[split]
        phis = [np.concatenate([indices(29, n)[:, 0] + 1, indices(29, n)[:, 1] + 1, np.zeros(29)]) for n in faces]
        write_cofw(root / "cofw" / name, [ramp()] * len(faces), phis, [[13, 11, 35, 30]] * len(faces), tag)
    header = ["image_name", "scale", "box_size", "center_w", "center_h"] + [f"p{i}" for i in range(38)]
    for split, faces in splits.items():
        rows = [[f"{n}.png", str(AFLW_SCALE), str(20 + n), "29", "24", *map(str, indices(19, n).ravel())]
                for n in faces]
        (root / "aflw").mkdir(exist_ok=True)
        (root / "aflw" / f"face_landmarks_aflw_{split}.csv").write_text("\n".join(map(",".join, [header, *rows])))
        for n in faces:
            write_image(root / "aflw" / "images" / f"{n}.png")


@pytest.fixture
def data(tmp_path, monkeypatch):
    """The datasets under a fresh data dir, with a fresh cache and no splits made yet."""
    write_datasets(tmp_path / "data")
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tasks.base, "_SPLITS", {})
    return tmp_path / "data"


@pytest.mark.parametrize("name", POINTS)
def test_splits_hold_the_crops_points_and_normalisers(data, name):
    task = TASKS.get(name)()
    splits = task.splits
    assert {k: len(v) for k, v in splits.items()} == SIZES
    for split in splits.values():
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 256, 256)
        assert split.targets.shape[1] == 2 * POINTS[name] + 1
    _, faces = task.read(task.root())
    points, normaliser = unpack(splits["test"].targets.double())
    for n, face, p, norm, image in zip(TEST_FACES, faces, points.numpy(), normaliser, splits["test"].images,
                                       strict=True):
        # the stored points are the annotation's, in crop pixels: the crop's inverse maps them back
        assert np.allclose(face.crop.to_original(p, 256), indices(POINTS[name], n) + 0.5, atol=1e-3)
        if name == "aflw":  # the CSV's box size, zoomed as the crop
            assert norm == pytest.approx((20 + n) * 256 / (200 * AFLW_SCALE * 1.25), rel=1e-6)
        else:
            a, b = NORMALISING[name]
            assert norm == pytest.approx(np.linalg.norm(p[a] - p[b]), rel=1e-6)
        # the crop pixel under each point was sampled at most half a crop pixel from it
        half = face.crop.side / 256 / 2 + 0.13  # and uint8 rounding
        for (qx, qy), (px, py) in zip(p, face.points, strict=True):
            red, green = image[:2, int(qy), int(qx)].double()
            assert abs(red / 4 + 0.5 - px) <= half and abs(green / 4 + 0.5 - py) <= half


def test_nme_in_crop_pixels_is_the_nme_in_original_pixels_and_subsets_are_scored(data):
    task = TASKS.get("300w")()
    test = task.splits["test"]
    points, _ = unpack(test.targets)
    noisy = points + 3 * torch.randn(points.shape, generator=torch.Generator().manual_seed(0))
    outputs = encode(noisy, (64, 64), task.frame, task.sigma)
    metrics = task.evaluate(outputs, test.targets)
    _, faces = task.read(task.root())
    predicted = decode(outputs, task.frame).double().numpy()
    errors = [np.linalg.norm(f.crop.to_original(p, task.frame) - f.points, axis=1).mean() / f.normaliser
              for f, p in zip(faces, predicted, strict=True)]
    assert metrics["nme"] == pytest.approx(100 * np.mean(errors), rel=1e-4)
    assert metrics["nme_common"] == pytest.approx(100 * np.mean(errors[:2]), rel=1e-4)  # helen, lfpw
    assert metrics["nme_challenging"] == pytest.approx(100 * errors[2], rel=1e-4)  # ibug
    val = task.splits["val"]
    assert "nme_common" not in task.evaluate(encode(unpack(val.targets)[0], (64, 64), 256, 1.0), val.targets)


def test_wflw_scores_its_non_empty_attribute_subsets(data):
    task = TASKS.get("wflw")()
    test = task.splits["test"]
    metrics = task.evaluate(encode(unpack(test.targets)[0], (64, 64), 256, task.sigma), test.targets)
    scored = {k.removeprefix("nme_") for k in metrics if k.startswith("nme_")}
    assert scored == {"largepose", "occlusion", "expression"}  # no test face is blurred
    assert metrics["fr10_expression"] == 0 and 0 < metrics["nme_largepose"] == metrics["nme_occlusion"] < 2


def arc(n):
    """A jaw line: n points from left to right along the lower half of an ellipse."""
    t = np.linspace(np.pi, 0, n)
    return list(zip(0.8 * np.cos(t), 0.2 + 0.7 * np.sin(t), strict=True))


def loop(cx, cy, n, rx, ry):
    """An eye or lips: n points clockwise (in the image) from the left corner."""
    t = np.pi - 2 * np.pi * np.arange(n) / n
    return list(zip(cx + rx * np.cos(t), cy - ry * np.sin(t), strict=True))


def row(x0, x1, n, y):
    return [(x, y) for x in np.linspace(x0, x1, n)]


def column(y0, y1, n):
    return [(0, y) for y in np.linspace(y0, y1, n)]


def pair(x, y):
    return [(-x, y), (x, y)]


# Symmetric schematic faces (x = 0 is the axis), each laid out as its dataset defines the points.
BROWS = [*row(-0.7, -0.2, 5, -0.5), *row(0.2, 0.7, 5, -0.5)]
NOSE = [*column(-0.25, 0.05, 4), *row(-0.15, 0.15, 5, 0.12)]  # bridge top down, nostrils left to right
LIPS = [*loop(0, 0.4, 12, 0.3, 0.08), *loop(0, 0.4, 8, 0.2, 0.03)]  # outer, inner


def eyes(n):
    return [*loop(-0.35, -0.3, n, 0.15, 0.05), *loop(0.35, -0.3, n, 0.15, 0.05)]


SCHEMATIC = {
    "300w": [*arc(17), *BROWS, *NOSE, *eyes(6), *LIPS],
    # brows as loops: the upper edge left to right, then the lower edge back
    "wflw": [*arc(33), *BROWS[:5], *row(-0.25, -0.625, 4, -0.45), *BROWS[5:], *row(0.625, 0.25, 4, -0.45),
             *NOSE, *eyes(8), *LIPS, *pair(0.35, -0.3)],
    # LFPW's order: brow outer, inner, then left top, bottom, right top, bottom; eye likewise; pupils;
    # nose wings, tip, bottom; mouth corners; lips from top to bottom; chin
    "cofw": [*pair(0.7, -0.5), *pair(0.2, -0.5), (-0.45, -0.55), (-0.45, -0.45), (0.45, -0.55), (0.45, -0.45),
             *pair(0.55, -0.3), *pair(0.2, -0.3), (-0.375, -0.35), (-0.375, -0.25), (0.375, -0.35),
             (0.375, -0.25), *pair(0.375, -0.3), *pair(0.15, 0.1), (0, 0), (0, 0.12), *pair(0.3, 0.4),
             *column(0.33, 0.48, 4), (0, 0.9)],
    # brows, eyes, nose, mouth: three points each, left to right; chin
    "aflw": [*row(-0.7, -0.2, 3, -0.5), *row(0.2, 0.7, 3, -0.5), *row(-0.55, -0.2, 3, -0.3),
             *row(0.2, 0.55, 3, -0.3), *row(-0.15, 0.15, 3, 0.1), *row(-0.3, 0.3, 3, 0.4), (0, 0.9)],
}


@pytest.mark.parametrize("name", POINTS)
def test_flip_permutations_are_involutions_that_mirror_a_symmetric_face(name):
    perm = list(TASKS.get(name).flip_permutation)
    face = np.array(SCHEMATIC[name])
    assert len(perm) == len(face) == POINTS[name] == len(np.unique(face.round(6), axis=0))
    assert sorted(perm) == list(range(len(perm))) and [perm[i] for i in perm] == list(range(len(perm)))
    assert np.allclose((face * [-1, 1])[perm], face)  # mirrored, then relabelled: the same face


def test_a_resnet_like_backbone_gives_64x64_heatmaps_at_256_px():
    task = TASKS.get("wflw")()
    backbone = nn.Conv2d(3, 16, 32, stride=32)  # a stand-in with a ResNet's output stride and `out_channels`
    x = torch.randn(2, 3, task.protocol.image_size, task.protocol.image_size)
    out = task.head(backbone.out_channels)(backbone(x))
    assert out.shape == (2, 98, 64, 64)
    targets = torch.cat([torch.rand(2, 196) * 256, torch.full((2, 1), 50.0)], 1)
    assert torch.isfinite(task.loss(out, targets))


@pytest.mark.parametrize("name", POINTS)
def test_a_missing_dataset_is_one_line_naming_the_expected_path(tmp_path, monkeypatch, name):
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tasks.base, "_SPLITS", {})
    task = TASKS.get(name)()  # reads nothing yet
    with pytest.raises(LandmarkDataError) as err:
        _ = task.splits
    message = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in message
    assert message.startswith(f"{tmp_path / name} not found; expected {tmp_path / name}/")
    assert "HUBBENCH_DATA_DIR" in message


def test_a_missing_file_names_it_under_the_data_dir(data):
    (data / "wflw" / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt").unlink()
    with pytest.raises(LandmarkDataError, match=r"list_98pt_rect_attr_test.txt not found; expected /") as err:
        _ = TASKS.get("wflw")().splits
    assert f"{data / 'wflw'}/WFLW_images/" in str(err.value)


def test_the_cropped_splits_are_cached_keyed_by_the_annotation_files(data, monkeypatch):
    task = TASKS.get("300w")()
    first = task.splits
    folder = cache_dir() / "landmarks" / "300w"
    assert len(list(folder.glob("*.pt"))) == 1

    def no_cropping(*args):
        raise AssertionError("cropped again")

    monkeypatch.setattr(tasks.base, "_SPLITS", {})
    monkeypatch.setattr(paper_landmarks, "crop_split", no_cropping)
    again = task.splits
    for name, split in first.items():
        assert torch.equal(split.images, again[name].images) and torch.equal(split.targets, again[name].targets)
        assert split.subsets.keys() == again[name].subsets.keys()
    with (data / "300w" / "ibug" / "face8.pts").open("a") as f:
        f.write("\n")  # another size: another key
    with pytest.raises(AssertionError, match="cropped again"):
        TASKS.get("300w").make_splits(task)
