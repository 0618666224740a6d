"""The papers' seven classification targets, read in their distributed layouts under the data directory.

Task `<name>` reads `<data dir>/<name>/` (`hubbench.io.data_dir`: `--data-dir`, see `hubbench.settings`;
default ~/data) with its reader from `tasks.datasets`, whose docstring gives the layout. Importing this
module reads nothing: the listing is made (and checked) on the first use of `splits`.

Splits: 'train' is the split the papers train on (the reader's `train_split`: 'trainval' for
Aircraft and DMLab, else 'train') and 'test' the official test split. 'val' is the dataset's own
validation split where it is disjoint from the training split (COCO-70's dev, EuroSAT's seeded
20%); elsewhere a seeded `VAL_FRACTION` of each class of the training split is held out of
training, so that what methods select on val (greedy soups, curves) is neither trained on nor
test data. Those tasks train on 90% of the papers' training split.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from hubbench.io import data_dir
from hubbench.seeding import derive_seed
from hubbench.tasks import datasets
from hubbench.tasks.base import Protocol, register
from hubbench.tasks.datasets import DatasetError, Item, Listing
from hubbench.tasks.files import FileSplit, FileTask, split_of

PAPER_PROTOCOL = Protocol(
    image_size=224, resize=256, random_resized_crop=True, flip=True, test_views=10,
    batch_size=48, iterations=15000, lr=0.01, eval_every=1500, eval_batch_size=48, checkpoint_every=500,
)
VAL_FRACTION = 0.1


class PaperTask(FileTask):
    """One of the papers' datasets: its reader, layout and number of classes (checked on reading)."""

    protocol = PAPER_PROTOCOL
    read: ClassVar[Callable[[Path], Listing]]
    layout: ClassVar[str]

    @property
    def root(self) -> Path:
        return data_dir() / self.name

    def make_splits(self) -> dict[str, FileSplit]:
        """The listed splits (checked, not decoded: the images are decoded into the cache on first use)."""
        listing = self.read(self.root)
        if len(listing.classes) != self.num_classes:
            raise DatasetError(self.root, f"{len(listing.classes)} classes, not {self.num_classes}", self.layout)
        train = listing.splits[listing.train_split]
        if listing.train_split == "train" and "val" in listing.splits:
            val = listing.splits["val"]
        else:
            train, val = self.hold_out(train)
            if not val:
                raise DatasetError(self.root, f"no class has 6 or more training images, so holding out "
                                              f"{VAL_FRACTION:.0%} of each (rounded) leaves the val split empty",
                                   self.layout)
        parts = {"train": train, "val": val, "test": listing.splits["test"]}
        return {name: split_of(items, self.layout, f"{self.name}-{name}") for name, items in parts.items()}

    def hold_out(self, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """(kept, held out): per class, `VAL_FRACTION` of its images (rounded), those first in the
        order of a SHA-256 of (task, class, path under the root or, for arrays, index): the same on
        every machine and whatever order the files were listed in."""
        members: dict[int, list[int]] = {}
        for i, (_, label) in enumerate(items):
            members.setdefault(label, []).append(i)

        def rank(i: int) -> int:
            image, label = items[i]
            key = image.relative_to(self.root).as_posix() if isinstance(image, Path) else i
            return derive_seed("val-split", self.name, label, key)

        held = {i for idx in members.values() for i in sorted(idx, key=rank)[: round(VAL_FRACTION * len(idx))]}
        return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]


@register
class Cifar100(PaperTask):
    """CIFAR-100, its 32 px images squashed up to 256: train 45 000, val 5 000 (held out), test 10 000."""

    name = "cifar100"
    description = "CIFAR-100 (100 classes), the papers' protocol"
    num_classes = 100
    read = staticmethod(datasets.read_cifar100)
    layout = datasets.CIFAR100_LAYOUT


@register
class Coco70(PaperTask):
    """COCO-70 (thuml/CoTuning): train 56 000, val the dev split (7 000), test 7 000."""

    name = "coco70"
    description = "COCO-70 (70 object classes cropped from COCO), the papers' protocol"
    num_classes = 70
    read = staticmethod(datasets.read_coco70)
    layout = datasets.COCO70_LAYOUT


@register
class Aircraft(PaperTask):
    """FGVC-Aircraft variants: trainval less val (700, held out), test 3 333."""

    name = "aircraft"
    description = "FGVC-Aircraft (100 variants, fine-grained), the papers' protocol"
    num_classes = 100
    read = staticmethod(datasets.read_aircraft)
    layout = datasets.AIRCRAFT_LAYOUT


@register
class Cars(PaperTask):
    """Stanford Cars: train 8 144 less val (about 810, held out), test 8 041."""

    name = "cars"
    description = "Stanford Cars (196 models, fine-grained), the papers' protocol"
    num_classes = 196
    read = staticmethod(datasets.read_cars)
    layout = datasets.CARS_LAYOUT


@register
class Indoor67(PaperTask):
    """MIT Indoor-67: train 80 per class less val (8 per class, held out), test 20 per class."""

    name = "indoor67"
    description = "MIT Indoor-67 (67 indoor scenes), the papers' protocol"
    num_classes = 67
    read = staticmethod(datasets.read_indoor67)
    layout = datasets.INDOOR_LAYOUT


@register
class DMLab(PaperTask):
    """DMLab (VTAB-1k): train800val200 less val (about 100, held out), test."""

    name = "dmlab"
    description = "DMLab (VTAB-1k: 6 classes of reward object and distance, 1 000 images), the papers' protocol"
    num_classes = 6
    read = staticmethod(datasets.read_dmlab)
    layout = datasets.DMLAB_LAYOUT


@register
class EuroSAT(PaperTask):
    """EuroSAT RGB with the reader's seeded 60/20/20 split: train 16 200, val 5 400, test 5 400."""

    name = "eurosat"
    description = "EuroSAT RGB (10 land-cover classes, satellite), the papers' protocol"
    num_classes = 10
    read = staticmethod(datasets.read_eurosat)
    layout = datasets.EUROSAT_LAYOUT
