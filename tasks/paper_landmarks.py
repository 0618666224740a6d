"""The papers' facial-landmark targets on the real benchmarks: 300W, WFLW, COFW and AFLW-19.

Each benchmark is one class here holding all of it: its reader (`load`, `read`) of the layout it ships in
(`layout`), its points (their count, mirror pairs and the NME's normaliser), its synthetic stand-in for
rehearsals (`synthesise`, written by `hubbench data synth`) and its task name, which names its rows of the
papers' numbers (leaderboard/reported/). Adding a benchmark is adding its class, its test and its line in
docs/hubs-and-tasks.md; what readers share (faces, crops, .pts files, HRNet's CSVs) is `tasks.landmark_data`.

Each task reads `<data dir>/<folder>/` (`hubbench.io.data_dir()`: `--data-dir`, see `hubbench.settings`).
Importing this module reads nothing; the data are read when `splits` is first used, and a missing file is
then one `LandmarkDataError` line (an `InputError`, like `tasks.datasets.DatasetError`) naming the path and the
layout expected.

Protocol. Data as HRNet's facial-landmark code: 256 x 256 face crops (the box widened by 1.25),
64 x 64 heatmaps (the head's three stride-2 deconvolutions turn a ResNet's /32 map into /4),
unnormalised Gaussians with sigma 1.5 heatmap cells (1.0 for 300W), training augmentation by a
random scale in [0.75, 1.25], a rotation in [-30, 30] degrees (both uniform and on every image;
HRNet rotates 60% of them) and a mirror with the dataset's left/right permutation. The head is
the Zoo-Tuning supplementary's SimpleBaseline head, at SimpleBaseline's width of 256 channels.
Neither paper's landmark schedule was found, and HRNet's (Adam, lr 1e-4, 60 epochs) does not fit
the shared SGD loop, so the tasks take the papers' classification recipe: SGD with Nesterov
momentum 0.9, weight decay 5e-4, lr 0.01, batch 48, 15 000 iterations, lr x0.1 at 40% and 80%.
`LandmarkTask.loss_scale` (x10, chosen on `faces`) is kept, untuned on real faces.

Splits. Every face is cropped once to `frame` px as uint8 (WFLW: about 2 GB); cropping thousands of
full-size images takes minutes, so the cropped arrays are cached under `<cache>/landmarks/<task>/`,
keyed by the annotation files' sizes and modification times and the crop size, and memory-mapped from
there, as the classification images are (`tasks.image_cache`); `hubbench data prepare` builds them
ahead of a run. Batches are staged as every task's: the host reads the crops and draws the random
similarities, the device warps the images (`LandmarkTask.augment_images`). The datasets have no
validation split: `val` is a seeded `val_fraction` of the official training faces, which are then not
trained on; `test` is the official test set.

Evaluation is in crop pixels, with each face's normaliser scaled by its crop's zoom (see
`crop_split`). A crop is a similarity (a shift and a uniform scale s), so every point error and
the normaliser scale by the same s: the NME is the NME in original-image pixels.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hubbench.io import cache_dir, data_dir, load_torch, save_torch
from hubbench.locks import build_once
from hubbench.seeding import derive_seed, digest
from hubbench.settings import VARIABLES
from hubbench.tasks.base import Protocol, Split, register
from hubbench.tasks.landmark_data import (
    ONE_BASED,
    ZERO_BASED,
    Crop,
    Face,
    LandmarkDataError,
    choose,
    crop_split,
    distance,
    read_hrnet_csv,
    read_pts,
    require,
)
from hubbench.tasks.landmarks import LandmarkTask, decode, normalised_errors, summarise, unpack
from hubbench.tasks.synth_data import Plan, picture, wflw_line, write_cofw, write_csv, write_lines, write_pts

CACHE_VERSION = 1  # bump when the cropping or the cached format changes
DATA_HINT = f"(the data dir is --data-dir or ${VARIABLES['data']})"

PAPER_LANDMARK_PROTOCOL = Protocol(
    image_size=256, batch_size=48, iterations=15_000, lr=0.01, flip=True,
    eval_every=1_000, eval_batch_size=64, checkpoint_every=500,
)


def facing(first: int, last: int, count: int) -> list[tuple[int, int]]:
    """Mirror pairs of two runs that face each other: first + i <-> last - i, for i < count."""
    return [(first + i, last - i) for i in range(count)]


def mirror(num_points: int, pairs: Iterable[tuple[int, int]]) -> tuple[int, ...]:
    """The flip permutation that swaps each (left, right) pair; the other points lie on the face's axis."""
    perm = list(range(num_points))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


@dataclass
class SubsetSplit(Split):
    """A split whose named subsets (boolean masks over its faces) are also scored on their own."""

    subsets: dict[str, torch.Tensor] = field(default_factory=dict)


def cached(path: Path, build) -> dict:
    """`load_torch(path)`, memory-mapped, after `save_torch(path, build())` if absent: one process builds it
    while the others wait on its lock."""
    build_once((path,), lambda: save_torch(path, build()))
    return load_torch(path, mmap=True)


class PaperLandmarkTask(LandmarkTask):
    """A real landmark benchmark under the papers' protocol (see the module's docstring).

    Subclasses set `folder` (under the data dir), `layout` (with `<root>` for that folder),
    `num_points`, `flip_permutation`, `subsets` (test-face attributes scored on their own) and
    `synthesise`, and implement `annotation_files` and `read`.
    """

    folder: ClassVar[str]
    layout: ClassVar[str]
    subsets: ClassVar[tuple[str, ...]] = ()
    external_data = True
    frame = 256
    sigma = 1.5
    head_channels = 256
    scale_jitter = 0.25
    max_rotation = 30.0
    val_fraction: ClassVar[float] = 0.1
    protocol = PAPER_LANDMARK_PROTOCOL
    # plans the files of a stand-in in the benchmark's layout, with random content (`tasks.synth_data`); None: none
    synthesise: ClassVar[Callable[[Plan], None] | None] = None

    def root(self) -> Path:
        return data_dir() / self.folder

    def expected(self, root: Path) -> str:
        return f"{self.layout.replace('<root>', str(root))} {DATA_HINT}"

    @abstractmethod
    def annotation_files(self, root: Path) -> list[Path]:
        """Every annotation file the faces are read from (their sizes and times key the cache)."""

    @abstractmethod
    def read(self, root: Path) -> tuple[list[Face], list[Face]]:
        """The official training and test faces; a face's `attributes` name the subsets it is in."""

    def make_splits(self) -> dict[str, Split]:
        root = self.root()
        require(root, self.expected(root))
        stats = [(f.relative_to(root).as_posix(), f.stat().st_size, f.stat().st_mtime_ns)
                 for f in self.annotation_files(root)]
        key = digest({"version": CACHE_VERSION, "task": self.name, "frame": self.frame,
                      "val_fraction": self.val_fraction, "files": stats})
        stored = cached(cache_dir() / "landmarks" / self.name / f"{key}.pt", lambda: self.crop_splits(root))
        return {name: SubsetSplit(**parts) for name, parts in stored.items()}

    def crop_splits(self, root: Path) -> dict[str, dict]:
        """The cropped splits as plain tensors (what the cache holds)."""
        train, test = self.read(root)
        order = np.random.default_rng(derive_seed("task-data", self.name)).permutation(len(train))
        n_val = max(1, round(self.val_fraction * len(train)))
        faces = {"train": [train[i] for i in sorted(order[n_val:])], "val": [train[i] for i in sorted(order[:n_val])],
                 "test": test}
        out = {}
        for name, part in faces.items():
            split, _ = crop_split(part, self.frame)
            masks = {s: torch.tensor([s in f.attributes for f in part]) for s in self.subsets}
            out[name] = {"images": split.images, "targets": split.targets,
                         "subsets": {s: m for s, m in masks.items() if m.any()}}
        return out

    def evaluate(self, outputs, targets):
        """The metrics of `LandmarkTask`, and those of each subset of the split, suffixed with its
        name (`nme_common`). `evaluate` is given targets, not a split's name: the split is
        recognised by its targets."""
        metrics = super().evaluate(outputs, targets)
        split = next((s for s in self.splits.values() if torch.equal(s.targets, targets.cpu())), None)
        if isinstance(split, SubsetSplit) and split.subsets:
            errors = normalised_errors(decode(outputs, self.frame), *unpack(targets))
            for subset, mask in split.subsets.items():
                metrics.update({f"{k}_{subset}": v for k, v in summarise(errors[mask.to(errors.device)]).items()})
        return metrics



@register
class W300(PaperLandmarkTask):
    """300W, 68 iBUG points: train on afw + helen/trainset + lfpw/trainset (3 148 faces), test on
    `full` (689), whose `common` (helen + lfpw test sets, 554) and `challenging` (ibug, 135) halves
    are also scored (`nme_common`, `nme_challenging`). NME over the outer eye corners (36, 45);
    sigma 1.0 as HRNet's 300W configuration."""

    name = "300w"
    description = "300W: 68 facial landmarks, tested on the full set (common + challenging scored too)"
    folder = "300w"
    layout = ("<root>/{afw, helen/trainset, helen/testset, lfpw/trainset, lfpw/testset, ibug}/ "
              "with <name>.pts (68 points) beside <name>.jpg or .png")
    num_points = 68
    sigma = 1.0
    # 0-based (iBUG 68): jaw 0-16 left to right; brows 17-21 and 22-26 left to right; nose bridge 27-30; nostrils
    # 31-35 left to right; eyes 36-41 and 42-47 clockwise from their left corner; outer lips 48-59 clockwise from
    # the left corner; inner lips 60-67 likewise.
    flip_permutation = mirror(68, [*facing(0, 16, 8), *facing(17, 26, 5), *facing(31, 35, 2), *facing(36, 45, 4),
                                   *facing(40, 47, 2), *facing(48, 54, 3), *facing(55, 59, 2), *facing(60, 64, 2),
                                   (65, 67)])
    eye_corners = (36, 45)
    subsets = ("common", "challenging")
    parts: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("afw", "helen/trainset", "lfpw/trainset"), "common": ("helen/testset", "lfpw/testset"),
        "challenging": ("ibug",)}
    parts["full"] = parts["common"] + parts["challenging"]

    @classmethod
    def load(cls, root: str | Path, split: str) -> list[Face]:
        """The faces of `split` (train 3 148, common 554, challenging 135, full 689) from the ibug folders. The
        crop is the landmarks' bounding box widened by 1.25; the normaliser, the outer eye corners' distance."""
        root = Path(root)
        faces = []
        for part in cls.parts[choose(split, cls.parts)]:
            folder = require(root / part, cls.layout)
            files = sorted(folder.glob("*.pts"))
            if not files:
                raise LandmarkDataError(f"no .pts files in {folder}; expected {cls.layout}")
            for pts in files:
                image = next((pts.with_suffix(e) for e in (".jpg", ".png") if pts.with_suffix(e).exists()), None)
                if image is None:
                    raise LandmarkDataError(f"no image beside {pts}; expected {cls.layout}")
                points = read_pts(pts, 68) + ONE_BASED
                crop = Crop.from_box(*points.min(0), *points.max(0))
                faces.append(Face(image, points, crop, distance(points, cls.eye_corners)))
        return faces

    def annotation_files(self, root):
        parts = self.parts["train"] + self.parts["full"]
        return [f for part in parts for f in sorted(require(root / part, self.expected(root)).glob("*.pts"))]

    def read(self, root):
        test = [dataclasses.replace(f, attributes=frozenset({s})) for s in self.subsets for f in self.load(root, s)]
        return self.load(root, "train"), test

    @staticmethod
    def synthesise(plan):
        parts = {**dict.fromkeys(W300.parts["train"], plan.faces_train // 3),
                 **dict.fromkeys(W300.parts["full"], plan.faces_test // 3)}
        for part, count in parts.items():
            for n in range(count):
                stem = f"{part.split('/')[0]}_{n:04d}"
                width, height = plan.size(480, 900, (0.65, 1.0))
                plan.image(f"{part}/{stem}.jpg", (width, height))
                plan.add(write_pts, plan.root / part / f"{stem}.pts", plan.face(68, width, height)[0] + 1)


@register
class WFLW(PaperLandmarkTask):
    """WFLW, 98 points: 7 500 training and 2 500 test faces; the six attribute subsets of the test
    set (large pose, expression, illumination, make-up, occlusion, blur) are also scored
    (`nme_largepose`, ...). NME over the outer eye corners (60, 72)."""

    name = "wflw"
    description = "WFLW: 98 facial landmarks, tested on the full test set (its 6 attribute subsets scored too)"
    folder = "wflw"
    listed = "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{split}.txt"
    layout = f"<root>/{listed.format(split='{train,test}')} and <root>/WFLW_images/<event>/<image>.jpg"
    num_points = 98
    # 0-based: contour 0-32 left to right; left brow 33-37 upper edge left to right, 38-41 lower edge right to left;
    # right brow 42-46 upper edge left to right, 47-50 lower edge right to left; nose bridge 51-54; nostrils 55-59
    # left to right; eyes 60-67 and 68-75 clockwise from their left corner (8 points); outer lips 76-87 and inner
    # lips 88-95 clockwise from the left corner; pupils 96, 97.
    flip_permutation = mirror(98, [*facing(0, 32, 16), *facing(33, 46, 5), *facing(38, 50, 4), *facing(55, 59, 2),
                                   *facing(60, 72, 5), *facing(65, 75, 3), *facing(76, 82, 3), *facing(83, 87, 2),
                                   *facing(88, 92, 2), (93, 95), (96, 97)])
    eye_corners = (60, 72)
    subsets = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")  # flag order in a line

    @classmethod
    def load(cls, root: str | Path, split: str, subset: str | None = None) -> list[Face]:
        """The faces of `split` (train 7 500, test 2 500); `subset` picks a test subset by its attribute flag, the
        faces the official `list_98pt_test_<subset>.txt` lists. The crop is the annotated box widened by 1.25;
        the normaliser, the outer eye corners' distance."""
        root = Path(root)
        if subset is not None and subset not in cls.subsets:
            raise ValueError(f"unknown WFLW subset {subset!r} (choose from: {', '.join(cls.subsets)})")
        listing = require(root / cls.listed.format(split=choose(split, ("train", "test"))), cls.layout)
        faces = []
        for n, line in enumerate(listing.read_text().splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 207:
                raise LandmarkDataError(f"{listing}:{n}: expected 196 coordinates, 4 box values, 6 flags and a path")
            values = np.array(tokens[:206], float)
            flags = frozenset(s for s, flag in zip(cls.subsets, values[200:206], strict=True) if flag)
            if subset is not None and subset not in flags:
                continue
            points = values[:196].reshape(98, 2) + ZERO_BASED
            box = values[196:200] + ZERO_BASED  # pixel-index corners, as the points
            faces.append(Face(root / "WFLW_images" / " ".join(tokens[206:]), points, Crop.from_box(*box),
                              distance(points, cls.eye_corners), attributes=flags))
        return faces

    def annotation_files(self, root):
        return [require(root / self.listed.format(split=s), self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return self.load(root, "train"), self.load(root, "test")

    @staticmethod
    def synthesise(plan):
        for split, count in (("train", plan.faces_train), ("test", plan.faces_test)):
            lines = []
            for n in range(count):
                image = f"{n % 3}--Event/{n % 3}_Event_{split}_{n}.jpg"
                width, height = plan.size(640, 1024, (0.65, 0.8))
                plan.image(f"WFLW_images/{image}", (width, height))
                points, box = plan.face(98, width, height)
                lines.append(wflw_line(points, box, plan.rng.integers(0, 2, 6).tolist(), image))
            plan.add(write_lines, plan.root / WFLW.listed.format(split=split), lines)


@register
class COFW(PaperLandmarkTask):
    """COFW, 29 points on occluded faces: 1 345 training and 507 test faces, from the colour
    MATLAB files. NME over the outer eye corners (8, 9), as HRNet."""

    name = "cofw"
    description = "COFW: 29 facial landmarks on heavily occluded faces"
    folder = "cofw"
    files: ClassVar[dict[str, tuple[str, str]]] = {"train": ("COFW_train_color.mat", "Tr"),
                                                   "test": ("COFW_test_color.mat", "T")}  # and the variables' tag
    layout = "<root>/COFW_train_color.mat and <root>/COFW_test_color.mat (MATLAB v7.3)"
    num_points = 29
    # LFPW's definition: pairs of left and right brow outer (0, 1), inner (2, 3), top (4, 6) and bottom (5, 7); eye
    # outer (8, 9), inner (10, 11), top (12, 14), bottom (13, 15); pupils (16, 17); nose wings (18, 19); mouth
    # corners (22, 23); on the axis: nose 20, 21, lips 24-27, chin 28.
    flip_permutation = mirror(29, [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
                                   (18, 19), (22, 23)])
    eye_corners = (8, 9)

    @classmethod
    def load(cls, root: str | Path, split: str) -> list[Face]:
        """The faces of `split` (train 1 345, test 507) from the colour MATLAB v7.3 files, images included.

        HDF5 stores MATLAB arrays transposed: phis (N x 87: x[0:29], y[29:58], occlusion[58:87])
        reads as 87 x N, each image (H x W x 3, or H x W if grey) as 3 x W x H. The crop is the
        box [x, y, w, h] (1-based) widened by 1.25; the normaliser, the outer eye corners' distance.
        """
        import h5py

        name, tag = cls.files[choose(split, cls.files)]
        path = require(Path(root) / name, cls.layout)
        with h5py.File(path, "r") as f:
            missing = [k for k in (f"Is{tag}", f"phis{tag}", f"bboxes{tag}") if k not in f]
            if missing:
                raise LandmarkDataError(f"{path} lacks {', '.join(missing)}; expected {cls.layout}")
            phis, boxes = np.asarray(f[f"phis{tag}"]).T, np.asarray(f[f"bboxes{tag}"]).T
            images = [np.asarray(f[ref]).T for ref in np.asarray(f[f"Is{tag}"]).ravel()]
        faces = []
        for image, phi, (x, y, w, h) in zip(images, phis, boxes, strict=True):
            points = np.stack([phi[0:29], phi[29:58]], 1) + ONE_BASED
            x0, y0 = x - 1, y - 1  # the box's 1-based first pixel -> its continuous corner
            faces.append(Face(image, points, Crop.from_box(x0, y0, x0 + w, y0 + h),
                              distance(points, cls.eye_corners), occluded=phi[58:87] > 0))
        return faces

    def annotation_files(self, root):
        return [require(root / self.files[s][0], self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return self.load(root, "train"), self.load(root, "test")

    @staticmethod
    def synthesise(plan):
        for split, count in (("train", plan.faces_train), ("test", plan.faces_test)):
            images, phis, boxes = [], [], []
            for n in range(count):
                width, height = plan.size(250, 450, (0.8, 1.2))
                image = picture(int(plan.rng.integers(2**63)), width, height)
                images.append(image[..., 0] if n % 5 == 4 else image)  # a few grey images, as in COFW
                points, (x0, y0, x1, y1) = plan.face(29, width, height)
                phis.append(np.concatenate([points[:, 0] + 1, points[:, 1] + 1, plan.rng.integers(0, 2, 29)]))
                boxes.append([x0 + 1, y0 + 1, x1 - x0 + 1, y1 - y0 + 1])
            name, tag = COFW.files[split]
            plan.add(write_cofw, plan.root / name, images, phis, boxes, tag)


@register
class AFLW(PaperLandmarkTask):
    """AFLW-19 from HRNet's CSVs: 20 000 training and 4 386 test faces (the `full` protocol); NME
    over each face's `box_size`. The `frontal` test subset is not scored."""

    name = "aflw"
    description = "AFLW-19: 19 facial landmarks under large poses, NME over the face box size"
    folder = "aflw"
    listed = "face_landmarks_aflw_{split}.csv"
    layout = (f"<root>/{listed.format(split='{train,test}')} (HRNet's AFLW-19 CSVs) and the images they name "
              "under <root>/images/")
    num_points = 19
    # brows 0-2 and 3-5, eyes 6-8 and 9-11 (left corner, centre, right corner), nose 12-14, mouth 15-17 (each left
    # to right), chin 18.
    flip_permutation = mirror(19, [*facing(0, 5, 3), *facing(6, 11, 3), (12, 14), (15, 17)])

    @staticmethod
    def load(csv_path: str | Path, image_root: str | Path) -> list[Face]:
        """The faces of one of HRNet's CSVs: image_name, scale, box_size, center_w, center_h, 19 x (x, y); the
        normaliser is the face's box_size."""
        faces = []
        for name, v in read_hrnet_csv(csv_path, 4 + 38):
            points = v[4:].reshape(19, 2) + ZERO_BASED
            faces.append(Face(Path(image_root) / name, points, Crop.from_hrnet(v[2], v[3], v[0]), float(v[1])))
        return faces

    def annotation_files(self, root):
        return [require(root / self.listed.format(split=s), self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return tuple(self.load(root / self.listed.format(split=s), root / "images") for s in ("train", "test"))

    @staticmethod
    def synthesise(plan):
        header = ["image_name", "scale", "box_size", "center_w", "center_h",
                  *(f"original_{i}_{a}" for i in range(19) for a in "xy")]
        for split, count in (("train", plan.faces_train), ("test", plan.faces_test)):
            rows = []
            for n in range(count):
                image = f"{n % 3}/image{split}{n:05d}.jpg"
                width, height = plan.size(450, 800, (0.65, 1.0))
                plan.image(f"images/{image}", (width, height))
                points, (x0, y0, x1, y1) = plan.face(19, width, height)
                side = x1 - x0 + 1
                rows.append([image, f"{side / 200:.6f}", side, (x0 + x1) / 2, (y0 + y1) / 2,
                             *(f"{v:.6f}" for v in points.ravel())])
            plan.add(write_csv, plan.root / AFLW.listed.format(split=split), header, rows)
