"""Readers for the papers' seven real classification datasets, in their distributed layouts.

Pure parsing: each reader takes the dataset's root folder and returns a `Listing` of image paths
(or, for CIFAR, arrays) and 0-based labels per official split, without decoding any image. A
missing or malformed file is a one-line `DatasetError` naming the path and the layout expected,
raised when the listing is made rather than hours into training: every listed image is checked
to exist. Importing this module reads nothing.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubbench.errors import InputError
from hubbench.seeding import derive_seed

Item = tuple[Path | np.ndarray, int]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetError(InputError):
    """A dataset file is missing or malformed; the message is one line with the path and the layout expected."""

    def __init__(self, path: Path, problem: str, layout: str):
        self.path, self.problem, self.layout = Path(path), problem, layout
        super().__init__(" ".join(f"{path}: {problem}; expected {layout}".split()))

    def __reduce__(self):  # so that it crosses process boundaries (the default would pass only the message)
        return type(self), (self.path, self.problem, self.layout)


@dataclass
class Listing:
    """A dataset's classes and official splits; each item is (image path or uint8 HWC array, label).

    `train_split` names the split the papers train on (the others are for validation and testing).
    """

    classes: list[str]
    splits: dict[str, list[Item]]
    train_split: str = "train"


# -- shared parsing -------------------------------------------------------------------------------
def _lines(file: Path, layout: str) -> list[str]:
    """The non-blank, stripped lines of a text file (any newline convention)."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(file, "missing", layout) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(file, f"unreadable ({e})", layout) from None
    lines = [s for line in text.splitlines() if (s := line.strip())]
    if not lines:
        raise DatasetError(file, "empty", layout)
    return lines


def _pairs(file: Path, layout: str, *, space_in_first: bool = False) -> list[tuple[str, str]]:
    """Lines of two whitespace-separated fields. Only one field may contain spaces: the second
    (an Aircraft variant name) or, with `space_in_first`, the first (a path before its label)."""
    pairs = []
    for line in _lines(file, layout):
        fields = line.rsplit(None, 1) if space_in_first else line.split(None, 1)
        if len(fields) != 2:
            raise DatasetError(file, f"malformed line {line!r}", layout)
        pairs.append((fields[0], fields[1]))
    return pairs


def _label(value: str, index: dict[str, int], file: Path, layout: str) -> int:
    if value not in index:
        raise DatasetError(file, f"unknown label {value!r}", layout)
    return index[value]


def _path_labels(root: Path, file: Path, num_classes: int, layout: str) -> list[Item]:
    """`<path> <label>` lines: paths relative to `root`, labels 0-based class indices."""
    index = {str(i): i for i in range(num_classes)}
    return [(root / path, _label(label, index, file, layout))
            for path, label in _pairs(file, layout, space_in_first=True)]


def _class_images(folder: Path, layout: str) -> list[Path]:
    """The images of one class folder, sorted so that the filesystem's order does not matter."""
    if not folder.is_dir():
        raise DatasetError(folder, "missing class folder", layout)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(folder, "no images", layout)
    return files


def _folder(directory: Path, classes: list[str], layout: str) -> list[Item]:
    """Images of `directory/<class>/`, labelled by the class's position in `classes`."""
    return [(p, label) for label, name in enumerate(classes) for p in _class_images(directory / name, layout)]


def _listing(classes: list[str], splits: dict[str, list[Item]], layout: str, train_split: str = "train") -> Listing:
    """Check that every listed image exists, then bundle."""
    for name, items in splits.items():
        missing = [p for p, _ in items if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise DatasetError(missing[0], f"missing image ({len(missing)} of the {len(items)} "
                                           f"images of split {name!r} are missing)", layout)
    return Listing(classes, splits, train_split)


# -- CIFAR-100 ------------------------------------------------------------------------------------
CIFAR100_LAYOUT = ("<root>/cifar-100-python/{train,test,meta}: Python pickles of dicts, 'data' uint8 N x 3072 "
                   "(R, G, B planes of 32x32, row-major) and 'fine_labels'; 'meta' with 'fine_label_names'")


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that can build builtin containers, strings, numbers and numpy arrays, nothing else.

    A pickle is a program: its GLOBAL opcodes import any callable (os.system, eval, ...) and its
    REDUCE opcodes call it, so plain `pickle.load` of a downloaded file runs whatever the file says.
    Builtin containers and scalars have opcodes of their own; every callable goes through
    `find_class`, which here returns only the three numpy callables an array's pickle needs (they
    allocate memory and copy bytes, they run no code) and refuses every other name.
    """

    _reconstruct = np.empty(0).__reduce__()[0]  # numpy's array-rebuilding function, wherever it lives
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # as the files name it
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # as numpy >= 2 names it
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None


def _unpickle(file: Path) -> dict:
    try:
        with open(file, "rb") as f:
            obj = _ArraysOnly(f, encoding="latin1").load()  # written by Python 2: its str are latin1 bytes
    except FileNotFoundError:
        raise DatasetError(file, "missing", CIFAR100_LAYOUT) from None
    except Exception as e:  # a corrupt pickle can fail in many ways (EOFError, ValueError, ...)
        raise DatasetError(file, f"not a valid pickle ({type(e).__name__}: {e})", CIFAR100_LAYOUT) from None
    if not isinstance(obj, dict):
        raise DatasetError(file, f"holds a {type(obj).__name__}, not a dict", CIFAR100_LAYOUT)
    return obj


def _key(obj: dict, key: str, file: Path):
    if key not in obj:
        raise DatasetError(file, f"no key {key!r}", CIFAR100_LAYOUT)
    return obj[key]


def read_cifar100(root: str | Path) -> Listing:
    """CIFAR-100 (torchvision's `cifar-100-python`): 100 fine classes, 'train' (50 000, the papers'
    training split) and 'test' (10 000). Items are 32x32x3 uint8 arrays (HWC, RGB)."""
    base = Path(root) / "cifar-100-python"
    meta = base / "meta"
    classes = _key(_unpickle(meta), "fine_label_names", meta)
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise DatasetError(meta, "'fine_label_names' is not a list of strings", CIFAR100_LAYOUT)
    splits = {}
    for split in ("train", "test"):
        file = base / split
        obj = _unpickle(file)
        data, labels = _key(obj, "data", file), _key(obj, "fine_labels", file)
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                and data.shape[1] == 3 * 32 * 32):
            raise DatasetError(file, "'data' is not a uint8 array of N x 3072", CIFAR100_LAYOUT)
        if not (isinstance(labels, list) and len(labels) == len(data)
                and all(type(y) is int and 0 <= y < len(classes) for y in labels)):
            raise DatasetError(file, f"'fine_labels' is not {len(data)} labels in [0, {len(classes)})",
                               CIFAR100_LAYOUT)
        images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        splits[split] = list(zip(images, labels, strict=True))
    return _listing(classes, splits, CIFAR100_LAYOUT)


# -- COCO-70 --------------------------------------------------------------------------------------
COCO70_LAYOUT = ("<root>/classes.txt (one class per line), and for each of train, dev (optional), test: "
                 "<split>.txt of '<path relative to root> <0-based class index>' lines, "
                 "or else <split>/<class name>/*.jpg")


def read_coco70(root: str | Path) -> Listing:
    """COCO-70 (thuml/CoTuning): 70 classes, 'train' (800 per class, the papers' training split),
    'val' (the `dev` split, 100 per class, when present) and 'test' (100 per class).

    A split's list file, when present, is the official labelling; without it the split's class
    folders are read, named as in `classes.txt`.
    """
    root = Path(root)
    classes = _lines(root / "classes.txt", COCO70_LAYOUT)
    splits = {}
    for name, split in (("train", "train"), ("val", "dev"), ("test", "test")):
        listed, folder = root / f"{split}.txt", root / split
        if listed.is_file():
            splits[name] = _path_labels(root, listed, len(classes), COCO70_LAYOUT)
        elif folder.is_dir():
            splits[name] = _folder(folder, classes, COCO70_LAYOUT)
        elif name != "val":
            raise DatasetError(listed, f"missing, and so is {folder}", COCO70_LAYOUT)
    return _listing(classes, splits, COCO70_LAYOUT)


# -- FGVC-Aircraft --------------------------------------------------------------------------------
AIRCRAFT_LAYOUT = ("<root>/fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt (one variant per line), "
                   "images_variant_{train,val,trainval,test}.txt of '<id> <variant name>' lines}")


def read_aircraft(root: str | Path) -> Listing:
    """FGVC-Aircraft 2013b at the variant level (100 classes, in the order of `variants.txt`):
    'train', 'val', 'trainval' and 'test' (3 333 images). The papers train on 'trainval' (6 667),
    the usual protocol of fine-grained transfer."""
    data = Path(root) / "fgvc-aircraft-2013b" / "data"
    classes = _lines(data / "variants.txt", AIRCRAFT_LAYOUT)
    index = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "trainval", "test"):
        file = data / f"images_variant_{split}.txt"
        splits[split] = [(data / "images" / f"{image_id}.jpg", _label(variant, index, file, AIRCRAFT_LAYOUT))
                         for image_id, variant in _pairs(file, AIRCRAFT_LAYOUT)]
    return _listing(classes, splits, AIRCRAFT_LAYOUT, train_split="trainval")


# -- Stanford Cars --------------------------------------------------------------------------------
CARS_LAYOUT = ("<root>/stanford_cars/{cars_train/, cars_test/, devkit/cars_meta.mat ('class_names'), "
               "devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat (struct array 'annotations' "
               "with fields bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-based), fname)}: MATLAB v5 files")


def _loadmat(file: Path, key: str) -> np.ndarray:
    """One variable of a MATLAB v5 file, as a 1-d array (squeezed, so a single entry is not 0-d)."""
    from scipy.io import loadmat  # imported here: scipy is slow to import and only Cars needs it

    if not file.is_file():
        raise DatasetError(file, "missing", CARS_LAYOUT)
    try:
        mat = loadmat(file, squeeze_me=True)
    except Exception as e:  # scipy raises several types for a corrupt or non-MATLAB file
        raise DatasetError(file, f"not a MATLAB v5 file ({type(e).__name__}: {e})", CARS_LAYOUT) from None
    if key not in mat:
        raise DatasetError(file, f"no variable {key!r}", CARS_LAYOUT)
    return np.atleast_1d(mat[key])


def read_cars(root: str | Path) -> Listing:
    """Stanford Cars (torchvision's layout): 196 classes, 'train' (8 144, the papers' training
    split) and 'test' (8 041). The annotations number classes from 1; labels here are class - 1."""
    base = Path(root) / "stanford_cars"
    classes = [str(c) for c in _loadmat(base / "devkit" / "cars_meta.mat", "class_names").tolist()]
    sources = {"train": (base / "devkit" / "cars_train_annos.mat", base / "cars_train"),
               "test": (base / "cars_test_annos_withlabels.mat", base / "cars_test")}
    splits = {}
    for split, (file, images) in sources.items():
        annotations = _loadmat(file, "annotations")
        if not {"class", "fname"} <= set(annotations.dtype.names or ()):
            raise DatasetError(file, "'annotations' lacks the fields 'class' and 'fname'", CARS_LAYOUT)
        items = []
        for a in annotations:
            label = int(a["class"]) - 1
            if not 0 <= label < len(classes):
                raise DatasetError(file, f"class {label + 1} of {a['fname']} is not in 1..{len(classes)}",
                                   CARS_LAYOUT)
            items.append((images / str(a["fname"]), label))
        splits[split] = items
    return _listing(classes, splits, CARS_LAYOUT)


# -- MIT Indoor-67 --------------------------------------------------------------------------------
INDOOR_LAYOUT = "<root>/{Images/<category>/*.jpg, TrainImages.txt, TestImages.txt of '<category>/<file>' lines}"


def read_indoor67(root: str | Path) -> Listing:
    """MIT Indoor-67 with its official lists: 67 categories (sorted names), 'train' (80 per class,
    the papers' training split) and 'test' (20 per class)."""
    root = Path(root)
    listed = {}
    for split, name in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
        file = root / name
        listed[split] = _lines(file, INDOOR_LAYOUT)
        for line in listed[split]:
            if "/" not in line:
                raise DatasetError(file, f"malformed line {line!r}", INDOOR_LAYOUT)
    classes = sorted({line.split("/", 1)[0] for lines in listed.values() for line in lines})
    index = {c: i for i, c in enumerate(classes)}
    splits = {split: [(root / "Images" / line, index[line.split("/", 1)[0]]) for line in lines]
              for split, lines in listed.items()}
    return _listing(classes, splits, INDOOR_LAYOUT)


# -- DMLab ----------------------------------------------------------------------------------------
DMLAB_LAYOUT = ("<root>/{train800val200.txt, test.txt, and optionally train800.txt, val200.txt} of "
                "'<path relative to root> <label 0..5>' lines")
DMLAB_FILES = {"trainval": "train800val200.txt", "train": "train800.txt", "val": "val200.txt", "test": "test.txt"}


def read_dmlab(root: str | Path) -> Listing:
    """DMLab as in VTAB-1k: 6 classes (named '0'..'5', as in TFDS), 'trainval' (`train800val200`, the
    1 000 images VTAB-1k trains final models on), 'test', and 'train'/'val' (800/200) when present."""
    root = Path(root)
    classes = [str(i) for i in range(6)]
    splits = {}
    for split, name in DMLAB_FILES.items():
        file = root / name
        if split in ("trainval", "test") or file.is_file():
            splits[split] = _path_labels(root, file, len(classes), DMLAB_LAYOUT)
    return _listing(classes, splits, DMLAB_LAYOUT, train_split="trainval")


# -- EuroSAT --------------------------------------------------------------------------------------
EUROSAT_LAYOUT = "<root>/2750/<class>/*.jpg (the RGB release)"
EUROSAT_FRACTIONS = (0.6, 0.2)  # train and val; the rest is test (VTAB's 60/20/20)


def read_eurosat(root: str | Path) -> Listing:
    """EuroSAT RGB: 10 classes (sorted folder names); no official split, so one is defined here.

    Per class, the files are ordered by `derive_seed("dataset-split", "eurosat", <class>, <file name>)`
    (a SHA-256 of the names, so a seeded shuffle that no library version can change) and cut
    60/20/20 into 'train' (the training split), 'val' and 'test': stratified, the same on every
    machine whatever order the filesystem lists the files in, and independent across classes.
    """
    images = Path(root) / "2750"
    if not images.is_dir():
        raise DatasetError(images, "missing folder", EUROSAT_LAYOUT)
    classes = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(images, "no class folders", EUROSAT_LAYOUT)
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    for label, name in enumerate(classes):
        files = sorted(_class_images(images / name, EUROSAT_LAYOUT),
                       key=lambda p: derive_seed("dataset-split", "eurosat", name, p.name))
        n_train, n_val = (round(f * len(files)) for f in EUROSAT_FRACTIONS)
        cuts = {"train": files[:n_train], "val": files[n_train : n_train + n_val], "test": files[n_train + n_val :]}
        for split, part in cuts.items():
            splits[split] += [(p, label) for p in part]
    return _listing(classes, splits, EUROSAT_LAYOUT)
