"""What the readers of the real classification datasets are made of (each paper dataset's own reader is its
task's `read`, `tasks.paper_cls`): the `Listing` a reader returns, and the parsing of list files, class folders,
Python pickles and MATLAB files that they share.

Pure parsing: a reader takes the dataset's root folder and returns a `Listing` of image paths (or, for CIFAR,
arrays) and 0-based labels per official split, without decoding any image. A missing or malformed file is a
one-line `DatasetError` naming the path and the layout expected, raised when the listing is made rather than hours
into training: every listed image is checked to exist. Importing this module reads nothing.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubbench.errors import InputError

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


# -- list files and class folders -------------------------------------------------------------------------------
def lines(file: Path, layout: str) -> list[str]:
    """The non-blank, stripped lines of a text file (any newline convention)."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(file, "missing", layout) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(file, f"unreadable ({e})", layout) from None
    found = [s for line in text.splitlines() if (s := line.strip())]
    if not found:
        raise DatasetError(file, "empty", layout)
    return found


def pairs(file: Path, layout: str, *, space_in_first: bool = False) -> list[tuple[str, str]]:
    """Lines of two whitespace-separated fields. Only one field may contain spaces: the second
    (an Aircraft variant name) or, with `space_in_first`, the first (a path before its label)."""
    out = []
    for line in lines(file, layout):
        fields = line.rsplit(None, 1) if space_in_first else line.split(None, 1)
        if len(fields) != 2:
            raise DatasetError(file, f"malformed line {line!r}", layout)
        out.append((fields[0], fields[1]))
    return out


def label(value: str, index: dict[str, int], file: Path, layout: str) -> int:
    if value not in index:
        raise DatasetError(file, f"unknown label {value!r}", layout)
    return index[value]


def path_labels(root: Path, file: Path, num_classes: int, layout: str) -> list[Item]:
    """`<path> <label>` lines: paths relative to `root`, labels 0-based class indices."""
    index = {str(i): i for i in range(num_classes)}
    return [(root / path, label(value, index, file, layout))
            for path, value in pairs(file, layout, space_in_first=True)]


def class_images(folder: Path, layout: str) -> list[Path]:
    """The images of one class folder, sorted so that the filesystem's order does not matter."""
    if not folder.is_dir():
        raise DatasetError(folder, "missing class folder", layout)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(folder, "no images", layout)
    return files


def class_folders(directory: Path, classes: list[str], layout: str) -> list[Item]:
    """Images of `directory/<class>/`, labelled by the class's position in `classes`."""
    return [(p, label) for label, name in enumerate(classes) for p in class_images(directory / name, layout)]


def checked(classes: list[str], splits: dict[str, list[Item]], layout: str, train_split: str = "train") -> Listing:
    """Check that every listed image exists, then bundle."""
    for name, items in splits.items():
        missing = [p for p, _ in items if isinstance(p, Path) and not p.is_file()]
        if missing:
            raise DatasetError(missing[0], f"missing image ({len(missing)} of the {len(items)} "
                                           f"images of split {name!r} are missing)", layout)
    return Listing(classes, splits, train_split)


# -- Python pickles (CIFAR) ------------------------------------------------------------------------
class ArraysOnly(pickle.Unpickler):
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


def unpickle(file: Path, layout: str) -> dict:
    """A Python 2 pickle of builtin containers and numpy arrays (`ArraysOnly`)."""
    try:
        with open(file, "rb") as f:
            obj = ArraysOnly(f, encoding="latin1").load()  # written by Python 2: its str are latin1 bytes
    except FileNotFoundError:
        raise DatasetError(file, "missing", layout) from None
    except Exception as e:  # a corrupt pickle can fail in many ways (EOFError, ValueError, ...)
        raise DatasetError(file, f"not a valid pickle ({type(e).__name__}: {e})", layout) from None
    if not isinstance(obj, dict):
        raise DatasetError(file, f"holds a {type(obj).__name__}, not a dict", layout)
    return obj


def entry(obj: dict, key: str, file: Path, layout: str):
    if key not in obj:
        raise DatasetError(file, f"no key {key!r}", layout)
    return obj[key]


# -- MATLAB v5 files (Stanford Cars) -----------------------------------------------------------------
def loadmat(file: Path, key: str, layout: str) -> np.ndarray:
    """One variable of a MATLAB v5 file, as a 1-d array (squeezed, so a single entry is not 0-d)."""
    from scipy.io import loadmat as read  # imported here: scipy is slow to import and only Cars needs it

    if not file.is_file():
        raise DatasetError(file, "missing", layout)
    try:
        mat = read(file, squeeze_me=True)
    except Exception as e:  # scipy raises several types for a corrupt or non-MATLAB file
        raise DatasetError(file, f"not a MATLAB v5 file ({type(e).__name__}: {e})", layout) from None
    if key not in mat:
        raise DatasetError(file, f"no variable {key!r}", layout)
    return np.atleast_1d(mat[key])
