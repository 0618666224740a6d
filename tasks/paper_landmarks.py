"""The papers' facial-landmark targets on the real benchmarks: 300W, WFLW, COFW and AFLW-19.

Each task reads `<data dir>/<folder>/` (`hubbench.io.data_dir()`: `--data-dir`, see `hubbench.settings`)
in the layout its reader in `tasks.landmark_data` documents. Importing this module reads nothing;
the data are read when `splits` is first used, and a missing file is then one `LandmarkDataError`
line (an `InputError`, like `tasks.datasets.DatasetError`) naming the path and the layout expected.

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
from collections.abc import Iterable
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
    COFW_FILES,
    COFW_LAYOUT,
    W300_LAYOUT,
    W300_PARTS,
    WFLW_LAYOUT,
    WFLW_LIST,
    WFLW_SUBSETS,
    Face,
    crop_split,
    load_300w,
    load_aflw_csv,
    load_cofw,
    load_wflw,
    require,
)
from hubbench.tasks.landmarks import LandmarkTask, decode, normalised_errors, summarise, unpack

CACHE_VERSION = 1  # bump when the cropping or the cached format changes
DATA_HINT = f"(the data dir is --data-dir or ${VARIABLES['data']})"
AFLW_CSV = "face_landmarks_aflw_{split}.csv"
AFLW_LAYOUT = (f"<root>/{AFLW_CSV.format(split='{train,test}')} (HRNet's AFLW-19 CSVs) and the images they name "
               "under <root>/images/")

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


# 0-based. 300W (iBUG 68): jaw 0-16 left to right; brows 17-21 and 22-26 left to right; nose bridge
# 27-30; nostrils 31-35 left to right; eyes 36-41 and 42-47 clockwise from their left corner; outer
# lips 48-59 clockwise from the left corner; inner lips 60-67 likewise.
MIRROR_300W = mirror(68, [*facing(0, 16, 8), *facing(17, 26, 5), *facing(31, 35, 2), *facing(36, 45, 4),
                          *facing(40, 47, 2), *facing(48, 54, 3), *facing(55, 59, 2), *facing(60, 64, 2), (65, 67)])
# WFLW 98: contour 0-32 left to right; left brow 33-37 upper edge left to right, 38-41 lower edge right
# to left; right brow 42-46 upper edge left to right, 47-50 lower edge right to left; nose bridge
# 51-54; nostrils 55-59 left to right; eyes 60-67 and 68-75 clockwise from their left corner (8
# points); outer lips 76-87 and inner lips 88-95 clockwise from the left corner; pupils 96, 97.
MIRROR_WFLW = mirror(98, [*facing(0, 32, 16), *facing(33, 46, 5), *facing(38, 50, 4), *facing(55, 59, 2),
                          *facing(60, 72, 5), *facing(65, 75, 3), *facing(76, 82, 3), *facing(83, 87, 2),
                          *facing(88, 92, 2), (93, 95), (96, 97)])
# COFW 29 (LFPW's definition): pairs of left and right brow outer (0, 1), inner (2, 3), top (4, 6) and
# bottom (5, 7); eye outer (8, 9), inner (10, 11), top (12, 14), bottom (13, 15); pupils (16, 17);
# nose wings (18, 19); mouth corners (22, 23); on the axis: nose 20, 21, lips 24-27, chin 28.
MIRROR_COFW = mirror(29, [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17),
                          (18, 19), (22, 23)])
# AFLW-19: brows 0-2 and 3-5, eyes 6-8 and 9-11 (left corner, centre, right corner), nose 12-14,
# mouth 15-17 (each left to right), chin 18.
MIRROR_AFLW = mirror(19, [*facing(0, 5, 3), *facing(6, 11, 3), (12, 14), (15, 17)])


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
    implement `annotation_files` and `read`.
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
    folder, layout = "300w", W300_LAYOUT
    num_points = 68
    sigma = 1.0
    flip_permutation = MIRROR_300W
    subsets = ("common", "challenging")

    def annotation_files(self, root):
        parts = W300_PARTS["train"] + W300_PARTS["full"]
        return [f for part in parts for f in sorted(require(root / part, self.expected(root)).glob("*.pts"))]

    def read(self, root):
        test = [dataclasses.replace(f, attributes=frozenset({s})) for s in self.subsets for f in load_300w(root, s)]
        return load_300w(root, "train"), test


@register
class WFLW(PaperLandmarkTask):
    """WFLW, 98 points: 7 500 training and 2 500 test faces; the six attribute subsets of the test
    set (large pose, expression, illumination, make-up, occlusion, blur) are also scored
    (`nme_largepose`, ...). NME over the outer eye corners (60, 72)."""

    name = "wflw"
    description = "WFLW: 98 facial landmarks, tested on the full test set (its 6 attribute subsets scored too)"
    folder, layout = "wflw", WFLW_LAYOUT
    num_points = 98
    flip_permutation = MIRROR_WFLW
    subsets = WFLW_SUBSETS

    def annotation_files(self, root):
        return [require(root / WFLW_LIST.format(split=s), self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return load_wflw(root, "train"), load_wflw(root, "test")


@register
class COFW(PaperLandmarkTask):
    """COFW, 29 points on occluded faces: 1 345 training and 507 test faces, from the colour
    MATLAB files. NME over the outer eye corners (8, 9), as HRNet."""

    name = "cofw"
    description = "COFW: 29 facial landmarks on heavily occluded faces"
    folder, layout = "cofw", COFW_LAYOUT
    num_points = 29
    flip_permutation = MIRROR_COFW

    def annotation_files(self, root):
        return [require(root / COFW_FILES[s][0], self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return load_cofw(root, "train"), load_cofw(root, "test")


@register
class AFLW(PaperLandmarkTask):
    """AFLW-19 from HRNet's CSVs: 20 000 training and 4 386 test faces (the `full` protocol); NME
    over each face's `box_size`. The `frontal` test subset is not scored."""

    name = "aflw"
    description = "AFLW-19: 19 facial landmarks under large poses, NME over the face box size"
    folder, layout = "aflw", AFLW_LAYOUT
    num_points = 19
    flip_permutation = MIRROR_AFLW

    def annotation_files(self, root):
        return [require(root / AFLW_CSV.format(split=s), self.expected(root)) for s in ("train", "test")]

    def read(self, root):
        return tuple(load_aflw_csv(root / AFLW_CSV.format(split=s), root / "images") for s in ("train", "test"))
