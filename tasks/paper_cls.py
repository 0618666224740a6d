"""The papers' seven classification targets, read in their distributed layouts under the data directory.

Each dataset is one class here holding all of it: its reader (`read`) of the layout it ships in (`layout`), its
number of classes, its synthetic stand-in for rehearsals (`synthesise`, written by `hubbench data synth`) and
its task name, which names its folder under the data dir and its rows of the papers' numbers
(leaderboard/reported/). Adding a dataset is adding its class, its test and its line in docs/hubs-and-tasks.md.

Task `<name>` reads `<data dir>/<name>/` (`hubbench.io.data_dir`: `--data-dir`, see `hubbench.settings`;
default ~/data). Importing this module reads nothing: the listing is made (and checked) on the first use of
`splits`. A reader is pure parsing (`tasks.datasets`): a `Listing` of image paths (or, for CIFAR, arrays) and
0-based labels per official split, no image decoded, a missing or malformed file a one-line `DatasetError` naming
the path and the layout.

Splits: 'train' is the split the papers train on (the reader's `train_split`: 'trainval' for
Aircraft and DMLab, else 'train') and 'test' the official test split. 'val' is the dataset's own
validation split where it is disjoint from the training split (COCO-70's dev, EuroSAT's seeded
20%); elsewhere a seeded `VAL_FRACTION` of each class of the training split is held out of
training, so that what methods select on val (greedy soups, curves) is neither trained on nor
test data. Those tasks train on 90% of the papers' training split.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from hubbench.io import data_dir
from hubbench.seeding import derive_seed
from hubbench.tasks.base import Protocol, register
from hubbench.tasks.datasets import (
    DatasetError,
    Item,
    Listing,
    checked,
    class_folders,
    class_images,
    entry,
    label,
    lines,
    loadmat,
    pairs,
    path_labels,
    unpickle,
)
from hubbench.tasks.files import FileSplit, FileTask, split_of
from hubbench.tasks.synth_data import Plan, cars_annotations, picture, py2_pickle, savemat_v5, write_lines

PAPER_PROTOCOL = Protocol(
    image_size=224, resize=256, random_resized_crop=True, flip=True, test_views=10,
    batch_size=48, iterations=15000, lr=0.01, eval_every=1500, eval_batch_size=48, checkpoint_every=500,
)
VAL_FRACTION = 0.1


class PaperTask(FileTask):
    """One of the papers' datasets: its reader, layout and number of classes (checked on reading), and its
    synthetic stand-in (`synthesise`)."""

    protocol = PAPER_PROTOCOL
    layout: ClassVar[str]  # the files under the dataset's folder (`<root>`), as errors and the docs state them
    # plans the files of a stand-in in the dataset's layout, with random content (`tasks.synth_data`); None: none
    synthesise: ClassVar[Callable[[Plan], None] | None] = None

    @classmethod
    @abstractmethod
    def read(cls, root: Path) -> Listing:
        """The dataset's classes and official splits, from its files under `root`."""

    @property
    def root(self) -> Path:
        return data_dir() / self.name

    def make_splits(self) -> dict[str, FileSplit]:
        """The listed splits (checked, not decoded: the images are decoded into the cache on first use)."""
        found = self.read(self.root)
        if len(found.classes) != self.num_classes:
            raise DatasetError(self.root, f"{len(found.classes)} classes, not {self.num_classes}", self.layout)
        train = found.splits[found.train_split]
        if found.train_split == "train" and "val" in found.splits:
            val = found.splits["val"]
        else:
            train, val = self.hold_out(train)
            if not val:
                raise DatasetError(self.root, f"no class has 6 or more training images, so holding out "
                                              f"{VAL_FRACTION:.0%} of each (rounded) leaves the val split empty",
                                   self.layout)
        parts = {"train": train, "val": val, "test": found.splits["test"]}
        return {name: split_of(items, self.layout, f"{self.name}-{name}") for name, items in parts.items()}

    def hold_out(self, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """(kept, held out): per class, `VAL_FRACTION` of its images (rounded), those first in the
        order of a SHA-256 of (task, class, path under the root or, for arrays, index): the same on
        every machine and whatever order the files were listed in."""
        members: dict[int, list[int]] = {}
        for i, (_, y) in enumerate(items):
            members.setdefault(y, []).append(i)

        def rank(i: int) -> int:
            image, y = items[i]
            key = image.relative_to(self.root).as_posix() if isinstance(image, Path) else i
            return derive_seed("val-split", self.name, y, key)

        held = {i for idx in members.values() for i in sorted(idx, key=rank)[: round(VAL_FRACTION * len(idx))]}
        return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]


@register
class Cifar100(PaperTask):
    """CIFAR-100, its 32 px images squashed up to 256: train 45 000, val 5 000 (held out), test 10 000."""

    name = "cifar100"
    description = "CIFAR-100 (100 classes), the papers' protocol"
    num_classes = 100
    layout = ("<root>/cifar-100-python/{train,test,meta}: Python pickles of dicts, 'data' uint8 N x 3072 "
              "(R, G, B planes of 32x32, row-major) and 'fine_labels'; 'meta' with 'fine_label_names'")

    @classmethod
    def read(cls, root):
        """torchvision's `cifar-100-python`: 100 fine classes, 'train' (50 000, the papers' training split) and
        'test' (10 000). Items are 32x32x3 uint8 arrays (HWC, RGB)."""
        base = Path(root) / "cifar-100-python"
        meta = base / "meta"
        classes = entry(unpickle(meta, cls.layout), "fine_label_names", meta, cls.layout)
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise DatasetError(meta, "'fine_label_names' is not a list of strings", cls.layout)
        splits = {}
        for split in ("train", "test"):
            file = base / split
            obj = unpickle(file, cls.layout)
            data, labels = entry(obj, "data", file, cls.layout), entry(obj, "fine_labels", file, cls.layout)
            if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                    and data.shape[1] == 3 * 32 * 32):
                raise DatasetError(file, "'data' is not a uint8 array of N x 3072", cls.layout)
            if not (isinstance(labels, list) and len(labels) == len(data)
                    and all(type(y) is int and 0 <= y < len(classes) for y in labels)):
                raise DatasetError(file, f"'fine_labels' is not {len(data)} labels in [0, {len(classes)})",
                                   cls.layout)
            images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            splits[split] = list(zip(images, labels, strict=True))
        return checked(classes, splits, cls.layout)

    @staticmethod
    def synthesise(plan):
        base = plan.root / "cifar-100-python"
        plan.add(py2_pickle, base / "meta", {"fine_label_names": [f"class_{i:03d}" for i in range(100)],
                                             "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)]})
        for split, per_class in (("train", plan.train), ("test", plan.test)):
            labels = plan.labels(100, per_class)
            data = np.stack([picture(int(s), 32, 32).transpose(2, 0, 1).ravel()
                             for s in plan.rng.integers(2**63, size=len(labels))])
            plan.add(py2_pickle, base / split, {
                "batch_label": f"{split} batch 1 of 1",
                "filenames": [f"synthetic_{i:05d}.png" for i in range(len(labels))],
                "fine_labels": labels, "coarse_labels": [y // 5 for y in labels], "data": data})


@register
class Coco70(PaperTask):
    """COCO-70 (thuml/CoTuning): train 56 000, val the dev split (7 000), test 7 000."""

    name = "coco70"
    description = "COCO-70 (70 object classes cropped from COCO), the papers' protocol"
    num_classes = 70
    layout = ("<root>/classes.txt (one class per line), and for each of train, dev (optional), test: "
              "<split>.txt of '<path relative to root> <0-based class index>' lines, "
              "or else <split>/<class name>/*.jpg")

    @classmethod
    def read(cls, root):
        """70 classes, 'train' (800 per class, the papers' training split), 'val' (the `dev` split, 100 per
        class, when present) and 'test' (100 per class).

        A split's list file, when present, is the official labelling; without it the split's class
        folders are read, named as in `classes.txt`.
        """
        root = Path(root)
        classes = lines(root / "classes.txt", cls.layout)
        splits = {}
        for name, split in (("train", "train"), ("val", "dev"), ("test", "test")):
            listed, folder = root / f"{split}.txt", root / split
            if listed.is_file():
                splits[name] = path_labels(root, listed, len(classes), cls.layout)
            elif folder.is_dir():
                splits[name] = class_folders(folder, classes, cls.layout)
            elif name != "val":
                raise DatasetError(listed, f"missing, and so is {folder}", cls.layout)
        return checked(classes, splits, cls.layout)

    @staticmethod
    def synthesise(plan):
        classes = [f"object {i:02d}" for i in range(70)]
        plan.add(write_lines, plan.root / "classes.txt", classes)
        for split, per_class in (("train", plan.train), ("dev", plan.test), ("test", plan.test)):
            for n, y in enumerate(plan.labels(70, per_class)):
                plan.image(f"{split}/{classes[y]}/{n:06d}.jpg", plan.size(120, 480, (0.7, 1.3)))


@register
class Aircraft(PaperTask):
    """FGVC-Aircraft variants: trainval less val (700, held out), test 3 333."""

    name = "aircraft"
    description = "FGVC-Aircraft (100 variants, fine-grained), the papers' protocol"
    num_classes = 100
    layout = ("<root>/fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt (one variant per line), "
              "images_variant_{train,val,trainval,test}.txt of '<id> <variant name>' lines}")

    @classmethod
    def read(cls, root):
        """FGVC-Aircraft 2013b at the variant level (100 classes, in the order of `variants.txt`):
        'train', 'val', 'trainval' and 'test' (3 333 images). The papers train on 'trainval' (6 667),
        the usual protocol of fine-grained transfer."""
        data = Path(root) / "fgvc-aircraft-2013b" / "data"
        classes = lines(data / "variants.txt", cls.layout)
        index = {name: i for i, name in enumerate(classes)}
        splits = {}
        for split in ("train", "val", "trainval", "test"):
            file = data / f"images_variant_{split}.txt"
            splits[split] = [(data / "images" / f"{image_id}.jpg", label(variant, index, file, cls.layout))
                             for image_id, variant in pairs(file, cls.layout)]
        return checked(classes, splits, cls.layout, train_split="trainval")

    @staticmethod
    def synthesise(plan):
        data = plan.root / "fgvc-aircraft-2013b" / "data"
        variants = [f"Model-{i:03d}/{chr(65 + i % 26)}" for i in range(100)]
        plan.add(write_lines, data / "variants.txt", variants)
        ids = iter(plan.rng.choice(10**7, 100 * (plan.train + plan.test), replace=False).tolist())
        lists = {}
        for split, per_class in (("train", plan.train // 2), ("val", plan.train - plan.train // 2),
                                 ("test", plan.test)):
            lists[split] = []
            for y in plan.labels(100, per_class):
                image_id = f"{next(ids):07d}"
                plan.image(f"fgvc-aircraft-2013b/data/images/{image_id}.jpg", plan.size(600, 1000, (0.6, 0.75)))
                lists[split].append(f"{image_id} {variants[y]}")
        lists["trainval"] = lists["train"] + lists["val"]
        for split, listed in lists.items():
            plan.add(write_lines, data / f"images_variant_{split}.txt", listed)


@register
class Cars(PaperTask):
    """Stanford Cars: train 8 144 less val (about 810, held out), test 8 041."""

    name = "cars"
    description = "Stanford Cars (196 models, fine-grained), the papers' protocol"
    num_classes = 196
    layout = ("<root>/stanford_cars/{cars_train/, cars_test/, devkit/cars_meta.mat ('class_names'), "
              "devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (struct array 'annotations' "
              "with fields bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-based), fname)}: MATLAB v5 files")

    @classmethod
    def read(cls, root):
        """torchvision's layout: 196 classes, 'train' (8 144, the papers' training split) and 'test' (8 041).
        The annotations number classes from 1; labels here are class - 1."""
        base = Path(root) / "stanford_cars"
        classes = [str(c) for c in loadmat(base / "devkit" / "cars_meta.mat", "class_names", cls.layout).tolist()]
        sources = {"train": (base / "devkit" / "cars_train_annos.mat", base / "cars_train"),
                   "test": (base / "cars_test_annos_withlabels.mat", base / "cars_test")}
        splits = {}
        for split, (file, images) in sources.items():
            annotations = loadmat(file, "annotations", cls.layout)
            if not {"class", "fname"} <= set(annotations.dtype.names or ()):
                raise DatasetError(file, "'annotations' lacks the fields 'class' and 'fname'", cls.layout)
            items = []
            for a in annotations:
                y = int(a["class"]) - 1
                if not 0 <= y < len(classes):
                    raise DatasetError(file, f"class {y + 1} of {a['fname']} is not in 1..{len(classes)}",
                                       cls.layout)
                items.append((images / str(a["fname"]), y))
            splits[split] = items
        return checked(classes, splits, cls.layout)

    @staticmethod
    def synthesise(plan):
        base = plan.root / "stanford_cars"
        names = np.array([f"Make{i // 4:02d} Model{i:03d} Sedan {2000 + i % 13}" for i in range(196)], dtype=object)
        plan.add(savemat_v5, base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
        annotations = {"train": base / "devkit" / "cars_train_annos.mat",
                       "test": base / "cars_test_annos_withlabels.mat"}
        for split, per_class in (("train", plan.train), ("test", plan.test)):
            rows, boxes = [], []
            for n, y in enumerate(plan.labels(196, per_class), 1):
                width, height = plan.size(300, 900, (0.55, 0.8))
                plan.image(f"stanford_cars/cars_{split}/{n:05d}.jpg", (width, height))
                rows.append((y + 1, f"{n:05d}.jpg"))
                x1, y1 = (int(plan.rng.integers(1, v // 4)) for v in (width, height))
                boxes.append((x1, y1, int(plan.rng.integers(3 * width // 4, width)),
                              int(plan.rng.integers(3 * height // 4, height))))
            plan.add(savemat_v5, annotations[split], {"annotations": cars_annotations(rows, boxes)})


@register
class Indoor67(PaperTask):
    """MIT Indoor-67: train 80 per class less val (8 per class, held out), test 20 per class."""

    name = "indoor67"
    description = "MIT Indoor-67 (67 indoor scenes), the papers' protocol"
    num_classes = 67
    layout = "<root>/{Images/<category>/*.jpg, TrainImages.txt, TestImages.txt of '<category>/<file>' lines}"

    @classmethod
    def read(cls, root):
        """The official lists: 67 categories (sorted names), 'train' (80 per class, the papers' training split)
        and 'test' (20 per class)."""
        root = Path(root)
        listed = {}
        for split, name in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
            file = root / name
            listed[split] = lines(file, cls.layout)
            for line in listed[split]:
                if "/" not in line:
                    raise DatasetError(file, f"malformed line {line!r}", cls.layout)
        classes = sorted({line.split("/", 1)[0] for found in listed.values() for line in found})
        index = {c: i for i, c in enumerate(classes)}
        splits = {split: [(root / "Images" / line, index[line.split("/", 1)[0]]) for line in found]
                  for split, found in listed.items()}
        return checked(classes, splits, cls.layout)

    @staticmethod
    def synthesise(plan):
        categories = [f"scene_{i:02d}" for i in range(67)]
        for split, listed, per_class in (("train", "TrainImages.txt", plan.train),
                                         ("test", "TestImages.txt", plan.test)):
            found = []
            for n, y in enumerate(plan.labels(67, per_class)):
                line = f"{categories[y]}/{split}_{n:05d}.jpg"
                plan.image(f"Images/{line}", plan.size(256, 640, (0.6, 1.0)))
                found.append(line)
            plan.add(write_lines, plan.root / listed, found)


@register
class DMLab(PaperTask):
    """DMLab (VTAB-1k): train800val200 less val (about 100, held out), test."""

    name = "dmlab"
    description = "DMLab (VTAB-1k: 6 classes of reward object and distance, 1 000 images), the papers' protocol"
    num_classes = 6
    layout = ("<root>/{train800val200.txt, test.txt, and optionally train800.txt, val200.txt} of "
              "'<path relative to root> <label 0..5>' lines")
    files: ClassVar[dict[str, str]] = {"trainval": "train800val200.txt", "train": "train800.txt",
                                       "val": "val200.txt", "test": "test.txt"}

    @classmethod
    def read(cls, root):
        """As in VTAB-1k: 6 classes (named '0'..'5', as in TFDS), 'trainval' (`train800val200`, the 1 000 images
        VTAB-1k trains final models on), 'test', and 'train'/'val' (800/200) when present."""
        root = Path(root)
        classes = [str(i) for i in range(6)]
        splits = {}
        for split, name in cls.files.items():
            file = root / name
            if split in ("trainval", "test") or file.is_file():
                splits[split] = path_labels(root, file, len(classes), cls.layout)
        return checked(classes, splits, cls.layout, train_split="trainval")

    @staticmethod
    def synthesise(plan):
        """VTAB-1k's lists: train800 and val200 and their union, and test; 9 training and 8 test images per
        class, so that (after the task holds out val) each split fills a batch of 48."""
        found = {}
        for split, per_class in (("train", 8), ("val", 1), ("test", 8)):
            found[split] = []
            for n, y in enumerate(plan.labels(6, per_class)):
                plan.image(f"images/{split}/{n:05d}.jpg", (480, 360))  # as DMLab's frames
                found[split].append(f"images/{split}/{n:05d}.jpg {y}")
        for split in ("train", "val", "test"):
            plan.add(write_lines, plan.root / DMLab.files[split], found[split])
        plan.add(write_lines, plan.root / DMLab.files["trainval"], found["train"] + found["val"])


@register
class EuroSAT(PaperTask):
    """EuroSAT RGB with the reader's seeded 60/20/20 split: train 16 200, val 5 400, test 5 400."""

    name = "eurosat"
    description = "EuroSAT RGB (10 land-cover classes, satellite), the papers' protocol"
    num_classes = 10
    layout = "<root>/2750/<class>/*.jpg (the RGB release)"
    fractions = (0.6, 0.2)  # train and val; the rest is test (VTAB's 60/20/20)
    classes = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
               "PermanentCrop", "Residential", "River", "SeaLake")

    @classmethod
    def read(cls, root):
        """10 classes (sorted folder names); no official split, so one is defined here.

        Per class, the files are ordered by `derive_seed("dataset-split", "eurosat", <class>, <file name>)`
        (a SHA-256 of the names, so a seeded shuffle that no library version can change) and cut
        60/20/20 into 'train' (the training split), 'val' and 'test': stratified, the same on every
        machine whatever order the filesystem lists the files in, and independent across classes.
        """
        images = Path(root) / "2750"
        if not images.is_dir():
            raise DatasetError(images, "missing folder", cls.layout)
        classes = sorted(p.name for p in images.iterdir() if p.is_dir())
        if not classes:
            raise DatasetError(images, "no class folders", cls.layout)
        splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
        for y, name in enumerate(classes):
            files = sorted(class_images(images / name, cls.layout),
                           key=lambda p: derive_seed("dataset-split", "eurosat", name, p.name))
            n_train, n_val = (round(f * len(files)) for f in cls.fractions)
            cuts = {"train": files[:n_train], "val": files[n_train : n_train + n_val],
                    "test": files[n_train + n_val :]}
            for split, part in cuts.items():
                splits[split] += [(p, y) for p in part]
        return checked(classes, splits, cls.layout)

    @staticmethod
    def synthesise(plan):
        """24 per class: the reader's seeded 60/20/20 split gives 14 train, 5 val and 5 test (a batch of 48 or
        more)."""
        for name in EuroSAT.classes:
            for n in range(1, 25):
                plan.image(f"2750/{name}/{name}_{n}.jpg", (64, 64))
