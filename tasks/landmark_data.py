"""Readers for the real facial-landmark benchmarks (300W, WFLW, COFW, AFLW-19) and their face crops.

Pure parsing and cropping: tasks built on them come later. Every reader returns `Face`s whose
points are continuous original-image pixels (pixel (row i, column j) covers [j, j+1) x [i, i+1),
as in `tasks.landmarks`); the files' conventions are converted on reading: 1-based coordinates
(.pts, MATLAB) by -0.5, 0-based pixel indices (HRNet CSVs, WFLW) by +0.5. A crop is a similarity
(shift and uniform scale), so the NME is the same in crop and original coordinates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hubbench.tasks.base import Split
from hubbench.tasks.landmarks import pack

CONTEXT = 1.25  # crop side = 200 * scale * 1.25 (HRNet), or 1.25 x the box's longer side
ONE_BASED, ZERO_BASED = -0.5, 0.5  # shifts to continuous coordinates

W300_PARTS = {"train": ("afw", "helen/trainset", "lfpw/trainset"), "common": ("helen/testset", "lfpw/testset"),
              "challenging": ("ibug",)}
W300_PARTS["full"] = W300_PARTS["common"] + W300_PARTS["challenging"]
W300_LAYOUT = ("<root>/{afw, helen/trainset, helen/testset, lfpw/trainset, lfpw/testset, ibug}/ "
               "with <name>.pts (68 points) beside <name>.jpg or .png")
WFLW_LIST = "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{split}.txt"
WFLW_LAYOUT = f"<root>/{WFLW_LIST.format(split='{train,test}')} and <root>/WFLW_images/<event>/<image>.jpg"
WFLW_SUBSETS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")  # flag order in a line
COFW_FILES = {"train": ("COFW_train_color.mat", "Tr"), "test": ("COFW_test_color.mat", "T")}
COFW_LAYOUT = "<root>/COFW_train_color.mat and <root>/COFW_test_color.mat (MATLAB v7.3)"
HRNET_LAYOUT = "an HRNet-style CSV with a header row (image_name, scale, ...) and images under <image_root>"
NORMALISING_POINTS = {"300w": (36, 45), "wflw": (60, 72), "cofw": (8, 9)}  # 0-based; AFLW-19 uses box_size


class LandmarkDataError(ValueError):
    """A dataset file or folder is missing or malformed; the message names it and the layout expected."""


def choose(split: str, options) -> str:
    if split not in options:
        raise ValueError(f"unknown split {split!r} (choose from: {', '.join(options)})")
    return split


def require(path: Path, layout: str) -> Path:
    if not path.exists():
        raise LandmarkDataError(f"{path} not found; expected {layout}")
    return path


@dataclass(frozen=True)
class Crop:
    """A square face crop: its centre and side in continuous original-image pixels."""

    center: tuple[float, float]
    side: float

    @classmethod
    def from_hrnet(cls, center_w: float, center_h: float, scale: float) -> Crop:
        """HRNet's centre (0-based pixel indices) and scale (side = 200 * scale), widened by 1.25."""
        return cls((center_w + ZERO_BASED, center_h + ZERO_BASED), 200 * scale * CONTEXT)

    @classmethod
    def from_box(cls, x0: float, y0: float, x1: float, y1: float) -> Crop:
        """Centred on a box (continuous corners), side 1.25 x its longer side."""
        return cls(((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) * CONTEXT)

    def to_crop(self, points: np.ndarray, size: int) -> np.ndarray:
        """Original pixels -> pixels of the `size` x `size` crop."""
        return (np.asarray(points) - self.center) * (size / self.side) + size / 2

    def to_original(self, points: np.ndarray, size: int) -> np.ndarray:
        """Pixels of the `size` x `size` crop -> original pixels (the inverse of `to_crop`)."""
        return (np.asarray(points) - size / 2) * (self.side / size) + self.center

    def image(self, image: np.ndarray, size: int) -> np.ndarray:
        """The crop of an H x W x 3 uint8 image as uint8 [3, size, size]; outside is black.

        Bilinear samples on a grid `f` times finer than the crop's pixels, averaged f x f, so a
        large face is not aliased when shrunk (f = 1 when the crop is not smaller than the face).
        """
        h, w = image.shape[:2]
        f = max(1, int(self.side // size))
        v = (torch.arange(size * f, dtype=torch.float64) + 0.5) / f  # sub-pixel centres, crop pixels
        gx = (self.center[0] + (v - size / 2) * (self.side / size)) * (2 / w) - 1
        gy = (self.center[1] + (v - size / 2) * (self.side / size)) * (2 / h) - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1).float()[None]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
        out = F.avg_pool2d(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False), f)
        return out[0].round().clamp(0, 255).to(torch.uint8).numpy()


@dataclass(frozen=True, eq=False)
class Face:
    """One annotated face: its image (a file, or pixels for COFW), points, crop and NME normaliser."""

    image: Path | np.ndarray
    points: np.ndarray  # [K, 2], continuous original pixels
    crop: Crop
    normaliser: float  # original pixels
    attributes: frozenset[str] = frozenset()  # WFLW subsets the face belongs to
    occluded: np.ndarray | None = field(default=None, repr=False)  # COFW per-point flags

    def pixels(self) -> np.ndarray:
        """The image as H x W x 3 uint8 (grayscale images repeated over the channels)."""
        if isinstance(self.image, np.ndarray):
            img = self.image
        else:
            from PIL import Image

            try:
                with Image.open(require(self.image, "the image file its annotation names")) as im:
                    img = np.asarray(im.convert("RGB"))
            except OSError as e:  # unreadable, truncated or not an image
                raise LandmarkDataError(f"{self.image}: not a readable image ({e})") from None
        return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img


def distance(points: np.ndarray, pair: tuple[int, int]) -> float:
    return float(np.linalg.norm(points[pair[0]] - points[pair[1]]))


def crop_split(faces: list[Face], size: int) -> tuple[Split, list[Crop]]:
    """Crop every face to `size` px: a task's split (targets in crop pixels, see
    `tasks.landmarks`) and the crops that map predictions back to original pixels."""
    images = np.stack([f.crop.image(f.pixels(), size)
                       for f in tqdm(faces, desc=f"cropping faces ({size} px)", unit="face", disable=None)])
    points = np.stack([f.crop.to_crop(f.points, size) for f in faces])
    norms = np.array([f.normaliser * size / f.crop.side for f in faces])
    split = Split(torch.from_numpy(images), pack(torch.from_numpy(points), torch.from_numpy(norms)))
    return split, [f.crop for f in faces]


# -- 300W -------------------------------------------------------------------------------------
def read_pts(path: Path, points: int) -> np.ndarray:
    """An ibug .pts file of `points` landmarks -> [points, 2] as written (1-based). A well-formed file of
    another count is refused here, naming it, rather than failing later in the arrays."""
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    try:
        n = int(lines[1].split(":")[1])
        if not lines[0].startswith("version") or lines[2] != "{" or lines[3 + n] != "}":
            raise ValueError
        coords = np.array([[float(v) for v in ln.split()] for ln in lines[3 : 3 + n]]).reshape(n, 2)
    except (IndexError, ValueError):
        raise LandmarkDataError(f"{path} is not a .pts file (version: 1, n_points: N, {{, N lines 'x y', }})") from None
    if n != points:
        raise LandmarkDataError(f"{path} has {n} points; this dataset's files have {points}")
    return coords


def load_300w(root: str | Path, split: str) -> list[Face]:
    """300W from the ibug folders: train (3 148), common (554), challenging (135), full (689).

    The crop is the landmarks' bounding box widened by 1.25; the normaliser is the distance
    between the outer eye corners (points 36 and 45).
    """
    root = Path(root)
    faces = []
    for part in W300_PARTS[choose(split, W300_PARTS)]:
        folder = require(root / part, W300_LAYOUT)
        files = sorted(folder.glob("*.pts"))
        if not files:
            raise LandmarkDataError(f"no .pts files in {folder}; expected {W300_LAYOUT}")
        for pts in files:
            image = next((pts.with_suffix(e) for e in (".jpg", ".png") if pts.with_suffix(e).exists()), None)
            if image is None:
                raise LandmarkDataError(f"no image beside {pts}; expected {W300_LAYOUT}")
            points = read_pts(pts, 68) + ONE_BASED
            crop = Crop.from_box(*points.min(0), *points.max(0))
            faces.append(Face(image, points, crop, distance(points, NORMALISING_POINTS["300w"])))
    return faces


def read_hrnet_csv(csv_path: str | Path, numbers: int) -> list[tuple[str, np.ndarray]]:
    """Rows of an HRNet CSV after its header: (image name, the `numbers` values that follow)."""
    path = require(Path(csv_path), HRNET_LAYOUT)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    try:
        out = [(row[0], np.array(row[1:], float)) for row in rows if row]
    except ValueError:
        raise LandmarkDataError(f"{path} has a non-numeric value; expected {HRNET_LAYOUT}") from None
    if not out or any(len(values) != numbers for _, values in out):
        raise LandmarkDataError(f"{path}: expected rows of an image name and {numbers} numbers ({HRNET_LAYOUT})")
    return out


def load_aflw_csv(csv_path: str | Path, image_root: str | Path) -> list[Face]:
    """AFLW-19 from HRNet's CSV: image_name, scale, box_size, center_w, center_h, 19 x (x, y);
    the normaliser is the face's box_size."""
    faces = []
    for name, v in read_hrnet_csv(csv_path, 4 + 38):
        points = v[4:].reshape(19, 2) + ZERO_BASED
        faces.append(Face(Path(image_root) / name, points, Crop.from_hrnet(v[2], v[3], v[0]), float(v[1])))
    return faces


# -- WFLW -------------------------------------------------------------------------------------
def load_wflw(root: str | Path, split: str, subset: str | None = None) -> list[Face]:
    """WFLW (7 500 train, 2 500 test); `subset` picks a test subset by its attribute flag, the
    faces the official `list_98pt_test_<subset>.txt` lists. The crop is the annotated box
    widened by 1.25; the normaliser is the outer eye corner distance (points 60 and 72)."""
    root = Path(root)
    if subset is not None and subset not in WFLW_SUBSETS:
        raise ValueError(f"unknown WFLW subset {subset!r} (choose from: {', '.join(WFLW_SUBSETS)})")
    listing = require(root / WFLW_LIST.format(split=choose(split, ("train", "test"))), WFLW_LAYOUT)
    faces = []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 207:
            raise LandmarkDataError(f"{listing}:{n}: expected 196 coordinates, 4 box values, 6 flags and a path")
        values = np.array(tokens[:206], float)
        flags = frozenset(s for s, flag in zip(WFLW_SUBSETS, values[200:206], strict=True) if flag)
        if subset is not None and subset not in flags:
            continue
        points = values[:196].reshape(98, 2) + ZERO_BASED
        box = values[196:200] + ZERO_BASED  # pixel-index corners, as the points
        faces.append(Face(root / "WFLW_images" / " ".join(tokens[206:]), points, Crop.from_box(*box),
                          distance(points, NORMALISING_POINTS["wflw"]), attributes=flags))
    return faces


# -- COFW -------------------------------------------------------------------------------------
def load_cofw(root: str | Path, split: str) -> list[Face]:
    """COFW (1 345 train, 507 test) from the colour MATLAB v7.3 files, images included.

    HDF5 stores MATLAB arrays transposed: phis (N x 87: x[0:29], y[29:58], occlusion[58:87])
    reads as 87 x N, each image (H x W x 3, or H x W if grey) as 3 x W x H. The crop is the
    box [x, y, w, h] (1-based) widened by 1.25; the normaliser is points 8 and 9.
    """
    import h5py

    name, tag = COFW_FILES[choose(split, COFW_FILES)]
    path = require(Path(root) / name, COFW_LAYOUT)
    with h5py.File(path, "r") as f:
        missing = [k for k in (f"Is{tag}", f"phis{tag}", f"bboxes{tag}") if k not in f]
        if missing:
            raise LandmarkDataError(f"{path} lacks {', '.join(missing)}; expected {COFW_LAYOUT}")
        phis, boxes = np.asarray(f[f"phis{tag}"]).T, np.asarray(f[f"bboxes{tag}"]).T
        images = [np.asarray(f[ref]).T for ref in np.asarray(f[f"Is{tag}"]).ravel()]
    faces = []
    for image, phi, (x, y, w, h) in zip(images, phis, boxes, strict=True):
        points = np.stack([phi[0:29], phi[29:58]], 1) + ONE_BASED
        x0, y0 = x - 1, y - 1  # the box's 1-based first pixel -> its continuous corner
        faces.append(Face(image, points, Crop.from_box(x0, y0, x0 + w, y0 + h),
                          distance(points, NORMALISING_POINTS["cofw"]), occluded=phi[58:87] > 0))
    return faces
