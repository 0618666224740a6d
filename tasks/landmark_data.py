"""What the readers of the real facial-landmark benchmarks are made of (each benchmark's own reader is its task's,
`tasks.paper_landmarks`): annotated `Face`s, their crops, and the parsing of .pts files and HRNet's CSVs.

Pure parsing and cropping. Every reader returns `Face`s whose points are continuous original-image pixels
(pixel (row i, column j) covers [j, j+1) x [i, i+1), as in `tasks.landmarks`); the files' conventions are
converted on reading: 1-based coordinates (.pts, MATLAB) by `ONE_BASED` (-0.5), 0-based pixel indices (HRNet
CSVs, WFLW) by `ZERO_BASED` (+0.5). A crop is a similarity (shift and uniform scale), so the NME is the same in
crop and original coordinates.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hubbench.errors import InputError
from hubbench.tasks.base import Split
from hubbench.tasks.landmarks import pack

CONTEXT = 1.25  # crop side = 200 * scale * 1.25 (HRNet), or 1.25 x the box's longer side
ONE_BASED, ZERO_BASED = -0.5, 0.5  # shifts to continuous coordinates

HRNET_LAYOUT = "an HRNet-style CSV with a header row (image_name, scale, ...) and images under <image_root>"


class LandmarkDataError(InputError):
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


# -- the annotation formats ------------------------------------------------------------------
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
