"""The real benchmarks' readers (`tasks.paper_landmarks`) and the face crops they share, on tiny fixtures written
in the exact published formats.

Images are ramps (red = 4 x column, green = 4 x row), which bilinear sampling reproduces
exactly, so the colour of a crop's pixel says which original pixel it came from.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from hubbench.tasks.landmark_data import Crop, Face, LandmarkDataError, crop_split
from hubbench.tasks.landmarks import normalised_errors, unpack
from hubbench.tasks.paper_landmarks import AFLW, COFW, W300, WFLW
from hubbench.tasks.synth_data import wflw_line, write_cofw, write_pts

H, W = 50, 60


def ramp(h=H, w=W) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([4 * cols, 4 * rows, np.full((h, w), 100)], -1).astype(np.uint8)


def indices(k: int, seed: int) -> np.ndarray:
    """k landmark positions as 0-based pixel indices (column, row), inside the image's middle."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(15, 45, k), rng.integers(12, 38, k)], 1).astype(float)


def write_image(path, image=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ramp() if image is None else image).save(path)


def check_crop_to_the_pixel(face, size=24):
    """Each landmark falls, in the crop, on a pixel sampled at most half a crop pixel away."""
    split, _ = crop_split([face], size)
    image = split.images[0].numpy().astype(float)
    points, _ = unpack(split.targets)
    half = face.crop.side / size / 2 + 0.13  # half a crop pixel in original pixels, plus uint8 rounding
    for (qx, qy), (px, py) in zip(points[0].tolist(), face.points, strict=True):
        j, i = int(qx), int(qy)
        source = image[0, i, j] / 4 + 0.5, image[1, i, j] / 4 + 0.5  # continuous original centre
        assert abs(source[0] - px) <= half and abs(source[1] - py) <= half


def test_crop_samples_pixel_centres_exactly_and_inverts():
    crop = Crop(center=(30.0, 20.0), side=16.0)
    out = crop.image(ramp(), 16)  # one crop pixel per original pixel, aligned
    assert out.shape == (3, 16, 16) and out.dtype == np.uint8
    assert np.array_equal(out[:2].transpose(1, 2, 0), ramp()[12:28, 22:38, :2])
    shrunk = crop.image(ramp(), 8)  # 2 x 2 original pixels per crop pixel, averaged
    assert np.array_equal(shrunk[0, 0], 4 * (np.arange(8) * 2 + 22 + 0.5))
    pts = np.random.default_rng(0).uniform(0, 60, (5, 2))
    assert np.allclose(crop.to_original(crop.to_crop(pts, 8), 8), pts)
    assert Crop((-40.0, -40.0), 16).image(ramp(), 8).sum() == 0  # outside the image is black
    dot = np.zeros((16, 16, 3), np.uint8)
    dot[4, 4] = 160
    assert Crop((8.0, 8.0), 16).image(dot, 4)[0, 1, 1] == 10  # shrunk x4: averaged, not missed


def test_300w_pts_splits_points_crop_and_normaliser(tmp_path):
    truth = {}
    for n, part in enumerate(("afw", "helen/trainset", "lfpw/trainset", "helen/testset", "lfpw/testset", "ibug")):
        idx = indices(68, n)
        write_image(tmp_path / part / f"img{n}.png")
        write_pts(tmp_path / part / f"img{n}.pts", idx + 1)
        truth[part] = idx
    assert [len(W300.load(tmp_path, s)) for s in ("train", "common", "challenging", "full")] == [3, 2, 1, 3]
    face = W300.load(tmp_path, "challenging")[0]
    idx = truth["ibug"]
    assert np.allclose(face.points, idx + 0.5)
    assert face.normaliser == pytest.approx(np.linalg.norm(idx[36] - idx[45]))
    lo, hi = idx.min(0) + 0.5, idx.max(0) + 0.5
    assert np.allclose(face.crop.center, (lo + hi) / 2) and face.crop.side == pytest.approx(1.25 * (hi - lo).max())
    check_crop_to_the_pixel(face)


def test_300w_pts_with_another_point_count_is_refused_naming_the_file(tmp_path):
    write_image(tmp_path / "afw" / "img0.png")
    write_pts(tmp_path / "afw" / "img0.pts", indices(67, 0) + 1)  # well-formed, one point short
    with pytest.raises(LandmarkDataError, match=r"img0\.pts has 67 points; this dataset's files have 68"):
        W300.load(tmp_path, "train")


def test_wflw_list_files_subsets_crop_and_normaliser(tmp_path):
    listing = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    listing.mkdir(parents=True)
    faces = [(indices(98, 1), (12, 10, 47, 40), (1, 0, 0, 0, 1, 0)), (indices(98, 2), (14, 11, 46, 39), (0,) * 6)]
    lines = [wflw_line(idx, box, flags, f"0--Parade/img_{n}.png") for n, (idx, box, flags) in enumerate(faces)]
    (listing / "list_98pt_rect_attr_test.txt").write_text("\n".join(lines) + "\n")
    (listing / "list_98pt_rect_attr_train.txt").write_text(lines[1] + "\n")
    for n in range(2):
        write_image(tmp_path / "WFLW_images" / "0--Parade" / f"img_{n}.png")
    test = WFLW.load(tmp_path, "test")
    assert len(test) == 2 and len(WFLW.load(tmp_path, "train")) == 1
    assert [len(WFLW.load(tmp_path, "test", s)) for s in ("largepose", "occlusion", "blur")] == [1, 1, 0]
    face, idx = test[0], faces[0][0]
    assert face.attributes == {"largepose", "occlusion"} and face.image.name == "img_0.png"
    assert np.allclose(face.points, idx + 0.5) and face.normaliser == pytest.approx(np.linalg.norm(idx[60] - idx[72]))
    assert face.crop == Crop(((12 + 47) / 2 + 0.5, (10 + 40) / 2 + 0.5), 35 * 1.25)
    check_crop_to_the_pixel(face)
    with pytest.raises(ValueError, match="unknown WFLW subset 'pose'"):
        WFLW.load(tmp_path, "test", "pose")


def test_cofw_v73_mat_colour_and_grey(tmp_path):
    idx = [indices(29, 3), indices(29, 4)]
    occluded = np.zeros((2, 29))
    occluded[0, [3, 8]] = 1
    phis = [np.concatenate([i[:, 0] + 1, i[:, 1] + 1, o]) for i, o in zip(idx, occluded, strict=True)]
    boxes = [[13, 11, 35, 30], [15, 12, 30, 30]]  # [x, y, w, h], 1-based
    write_cofw(tmp_path / "COFW_test_color.mat", [ramp(), ramp()[..., 0]], phis, boxes, "T")
    colour, grey = COFW.load(tmp_path, "test")
    assert np.array_equal(colour.pixels(), ramp()) and np.array_equal(grey.pixels(), np.repeat(ramp()[..., :1], 3, -1))
    assert np.allclose(colour.points, idx[0] + 0.5) and list(np.flatnonzero(colour.occluded)) == [3, 8]
    assert colour.normaliser == pytest.approx(np.linalg.norm(idx[0][8] - idx[0][9]))
    assert colour.crop == Crop((12 + 35 / 2, 10 + 30 / 2), 35 * 1.25)
    check_crop_to_the_pixel(colour)


def test_aflw_hrnet_csv_uses_box_size(tmp_path):
    idx = indices(19, 5)
    header = ["image_name", "scale", "box_size", "center_w", "center_h"] + [f"p{i}" for i in range(38)]
    row = ["2/image00002.png", "0.15", "28.5", "29", "24", *map(str, idx.ravel())]
    (tmp_path / "aflw.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    write_image(tmp_path / "images" / "2" / "image00002.png")
    (face,) = AFLW.load(tmp_path / "aflw.csv", tmp_path / "images")
    assert face.normaliser == 28.5 and np.allclose(face.points, idx + 0.5)
    assert face.crop == Crop((29.5, 24.5), 200 * 0.15 * 1.25)
    check_crop_to_the_pixel(face)


def test_nme_in_crop_pixels_equals_nme_in_original_pixels(tmp_path):
    crops = [Crop((30.0, 25.0), 40.0), Crop((28.5, 22.0), 23.0)]
    faces = [face_at(tmp_path, n, c) for n, c in enumerate(crops)]
    split, kept = crop_split(faces, 32)
    points, norm = unpack(split.targets)
    pred = points + torch.randn(points.shape, generator=torch.Generator().manual_seed(0))
    in_crop = normalised_errors(pred, points, norm)
    back = torch.tensor(np.stack([c.to_original(p.numpy(), 32) for c, p in zip(kept, pred, strict=True)]))
    truth = torch.tensor(np.stack([f.points for f in faces]))
    in_original = normalised_errors(back, truth, torch.tensor([f.normaliser for f in faces], dtype=torch.float64))
    assert torch.allclose(in_crop.double(), in_original, atol=1e-5)


def face_at(tmp_path, n, crop):
    write_image(tmp_path / f"{n}.png")
    return Face(tmp_path / f"{n}.png", indices(19, n) + 0.5, crop, 20.0 + n)


@pytest.mark.parametrize("load, missing", [
    (lambda root: W300.load(root, "train"), "afw"),
    (lambda root: WFLW.load(root, "test"), "list_98pt_rect_attr_test.txt"),
    (lambda root: COFW.load(root, "train"), "COFW_train_color.mat"),
    (lambda root: AFLW.load(root / "face_landmarks_aflw_test.csv", root), "face_landmarks_aflw_test.csv"),
])
def test_an_empty_folder_names_the_missing_path_and_the_layout(tmp_path, load, missing):
    with pytest.raises(LandmarkDataError, match=rf"{missing} not found; expected .+") as err:
        load(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_malformed_and_incomplete_annotations_are_clear_errors(tmp_path):
    (tmp_path / "afw").mkdir()
    with pytest.raises(LandmarkDataError, match="no .pts files in"):
        W300.load(tmp_path, "train")
    (tmp_path / "afw" / "a.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    write_image(tmp_path / "afw" / "a.png")
    with pytest.raises(LandmarkDataError, match="is not a .pts file"):
        W300.load(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        W300.load(tmp_path, "val")
