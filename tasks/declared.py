"""Tasks declared in TOML, without Python: classification from an image folder or CSV files, landmarks from CSV.

```toml
[task.flowers]                 # <folder>/<class>/*.jpg, or <folder>/{train,val,test}/<class>/*.jpg
folder = "data/flowers"
[task.birds]                   # CSV files of `path,label` lines (paths relative to the CSV file)
train = "birds/train.csv"
test = "birds/test.csv"        # val (and test) may be left out: they are then cut from train
classes = ["crow", "jay"]      # optional; default: the training labels, sorted
[task.my-faces]                # CSV rows: path, x0, y0, ..., x(K-1), y(K-1) [, box x0, y0, x1, y1]
kind = "landmarks"
train = "faces/train.csv"
test = "faces/test.csv"
points = 5
mirror = [[0, 1], [3, 4]]      # left/right pairs swapped by a flip (required when the protocol flips)
normaliser = [0, 1]            # NME over the distance of these two points, or "box"
```

Paths are relative to the declaring file. A classification task is a `tasks.files.FileTask` (decode-once
cache, crops on the device, `hubbench data prepare`), under the papers' protocol unless the suite's
`[protocol]` says otherwise; a landmark task is a `tasks.paper_landmarks.PaperLandmarkTask` (faces cropped
once to `frame` px, cached). Reading a task checks every image (it exists and PIL reads it as an image),
every label and every row, so `hubbench run` refuses bad data before any cell starts.

Choices where no paper speaks, each a key: a split that is not given is cut from the training images,
per class, by `split` = [train, val, test] fractions (default [0.7, 0.15, 0.15]; only val missing: val
takes split[1] / (split[0] + split[1]) of them), the images ranked by a SHA-256 of (task, class, path), and
the record's task config says which splits were cut so. Landmark coordinates are 0-based pixel indices
(`first_pixel = 1` for 1-based files); the face crop is the box (else the points' bounding box) widened by
1.25 as in HRNet; "box" normalises by sqrt(w h) of the box (AFLW's box size for a square box); `val` is a
seeded `val_fraction` (0.1) of the training faces.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from hubbench.errors import InputError
from hubbench.seeding import derive_seed
from hubbench.tasks.datasets import IMAGE_SUFFIXES, DatasetError, Item, checked
from hubbench.tasks.files import FileTask, split_of
from hubbench.tasks.landmark_data import Crop, Face, LandmarkDataError, distance
from hubbench.tasks.paper_cls import PAPER_PROTOCOL
from hubbench.tasks.paper_landmarks import PAPER_LANDMARK_PROTOCOL, PaperLandmarkTask, mirror

SPLITS = ("train", "val", "test")
CLS_KEYS = {"kind", "description", "folder", "train", "val", "test", "classes", "split"}
LMK_KEYS = {"kind", "description", "train", "test", "points", "mirror", "normaliser", "frame", "first_pixel",
            "val_fraction"}
FOLDER_LAYOUT = "<folder>/<class>/*.jpg|png, or <folder>/{train,val,test}/<class>/*.jpg|png (val, test optional)"
CSV_LAYOUT = "CSV lines 'path,label' (path relative to the CSV file; a first line 'path,label' is a header)"
LANDMARK_LAYOUT = ("CSV lines 'path, x0, y0, ..., x(K-1), y(K-1)' and optionally four box values 'x0, y0, x1, y1' "
                   "(0-based pixels; a first line that is not numbers is a header)")


def check_image(path: Path, layout: str) -> None:
    """`path` is a file PIL reads as an image (its header and structure; pixels are decoded into the cache later)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except FileNotFoundError:
        raise DatasetError(path, "missing image", layout) from None
    except Exception as e:  # PIL raises many types for a file that is not an image
        raise DatasetError(path, f"not a readable image ({type(e).__name__}: {e})", layout) from None


def cut(items: list[Item], fractions: list[float], task: str, root: Path) -> list[list[Item]]:
    """`items` cut per class by `fractions` (summing to 1), each class's images ranked by a SHA-256 of
    (task, class, path under `root`): stratified, and the same whatever order the files were listed in."""
    parts: list[list[Item]] = [[] for _ in fractions]
    for label in sorted({y for _, y in items}):
        members = sorted((p for p, y in items if y == label),
                         key=lambda p: derive_seed("declared-split", task, label, relative(p, root)))
        bounds = np.round(np.cumsum([0, *fractions]) * len(members)).astype(int)
        for part, lo, hi in zip(parts, bounds, bounds[1:], strict=False):
            part += [(p, label) for p in members[lo:hi]]
    return parts


def relative(path: Path, root: Path) -> str:
    return (path.relative_to(root) if path.is_relative_to(root) else path).as_posix()


class DeclaredClassification(FileTask):
    """A classification task read from a folder or CSV files (see the module's docstring)."""

    protocol = PAPER_PROTOCOL
    spec: ClassVar[dict]
    base: ClassVar[Path]

    @property
    def num_classes(self) -> int:
        return len(self.listing()[0])

    def listing(self) -> tuple[list[str], dict[str, list[Item]], str]:
        """(classes, the splits given, layout), read and checked once per process."""
        cls = type(self)
        if "_read" not in cls.__dict__:
            cls._read = self.read()
        return cls._read

    def read(self) -> tuple[list[str], dict[str, list[Item]], str]:
        spec = self.spec
        if "folder" in spec:
            root = self.base / spec["folder"]
            if not root.is_dir():
                raise DatasetError(root, "missing folder", FOLDER_LAYOUT)
            tops = {p.name for p in root.iterdir() if p.is_dir()}
            given = [s for s in SPLITS if s in tops] if "train" in tops else []
            folders = {s: root / s for s in given} or {"train": root}
            classes = spec.get("classes") or sorted(p.name for p in folders["train"].iterdir() if p.is_dir())
            if not classes:
                raise DatasetError(root, "no class folders", FOLDER_LAYOUT)
            splits = {}
            for split, folder in folders.items():
                extra = sorted({p.name for p in folder.iterdir() if p.is_dir()} - set(classes))
                if extra:
                    raise DatasetError(folder / extra[0], "a class folder not in the class list", FOLDER_LAYOUT)
                splits[split] = [(p, y) for y, c in enumerate(classes) for p in class_images(folder / c, split)]
            layout = FOLDER_LAYOUT
        else:
            rows = {s: read_rows(self.base / spec[s]) for s in SPLITS if s in spec}
            classes = spec.get("classes") or sorted({label for _, label, _ in rows["train"]})
            index = {c: i for i, c in enumerate(classes)}
            splits = {}
            for split, lines in rows.items():
                for _, label, where in lines:
                    if label not in index:
                        raise DatasetError(where, f"label {label!r} is not in the class list ({', '.join(classes)})",
                                           CSV_LAYOUT)
                splits[split] = [(path, index[label]) for path, label, _ in lines]
            layout = CSV_LAYOUT
        listing = checked(list(classes), splits, layout)
        for items in listing.splits.values():
            for path, _ in items:
                check_image(path, layout)
        return listing.classes, listing.splits, layout

    def make_splits(self):
        classes, given, layout = self.listing()
        root = self.base / self.spec.get("folder", ".")
        fractions = self.spec.get("split", [0.7, 0.15, 0.15])
        parts = dict(given)
        if "val" not in parts and "test" not in parts:
            parts["train"], parts["val"], parts["test"] = cut(given["train"], fractions, self.name, root)
        elif "val" not in parts:
            held = fractions[1] / (fractions[0] + fractions[1])
            parts["train"], parts["val"] = cut(given["train"], [1 - held, held], self.name, root)
        elif "test" not in parts:
            raise DatasetError(root, "a val split but no test split", layout)
        return {s: split_of(parts[s], layout, f"{self.name}-{s}") for s in SPLITS}

    def config(self):
        made = [s for s in SPLITS if s not in self.listing()[1]]
        return {**super().config(), "classes": self.listing()[0],
                "declared": {**{k: str(v) for k, v in self.spec.items()},
                             "split_made": made, "split_fractions": self.spec.get("split", [0.7, 0.15, 0.15]),
                             "split_rule": "per class, ranked by sha256(task, class, path)"} if made else
                {k: str(v) for k, v in self.spec.items()}}


def class_images(folder: Path, split: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise DatasetError(folder, f"a class folder of split {split!r} with no images ({len(files)} other files)",
                           FOLDER_LAYOUT)
    return images


def read_rows(file: Path) -> list[tuple[Path, str, str]]:
    """(image path, label, 'file:line') of a `path,label` CSV."""
    try:
        with file.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise DatasetError(file, f"unreadable ({e.strerror})", CSV_LAYOUT) from None
    out = []
    for n, row in enumerate(rows, 1):
        if not row or (n == 1 and [c.strip() for c in row] == ["path", "label"]):
            continue
        if len(row) != 2:
            raise DatasetError(f"{file}:{n}", f"{len(row)} values, not 2 (path,label)", CSV_LAYOUT)
        out.append((file.parent / row[0].strip(), row[1].strip(), f"{file}:{n}"))
    if not out:
        raise DatasetError(file, "no rows", CSV_LAYOUT)
    return out


class DeclaredLandmarks(PaperLandmarkTask):
    """A landmark task read from CSV files of points (see the module's docstring)."""

    spec: ClassVar[dict]
    base: ClassVar[Path]
    folder, layout = ".", LANDMARK_LAYOUT

    def root(self) -> Path:
        return self.base

    def annotation_files(self, root):
        return [root / self.spec[s] for s in ("train", "test")]

    def read(self, root):
        return tuple(self.faces(root / self.spec[s]) for s in ("train", "test"))

    def faces(self, file: Path) -> list[Face]:
        k, norm = self.num_points, self.spec.get("normaliser")
        shift = 0.5 - self.spec.get("first_pixel", 0)  # indices -> continuous pixels
        try:
            with file.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except OSError as e:
            raise LandmarkDataError(f"{file}: unreadable ({e.strerror}); expected {LANDMARK_LAYOUT}") from None
        faces = []
        for n, row in enumerate(rows, 1):
            if not row:
                continue
            try:
                values = np.array([float(v) for v in row[1:]])
            except ValueError:
                if n == 1:
                    continue  # a header
                raise LandmarkDataError(f"{file}:{n}: a value is not a number; expected {LANDMARK_LAYOUT}") from None
            if len(values) not in (2 * k, 2 * k + 4) or (norm == "box" and len(values) != 2 * k + 4):
                expected = f"{2 * k + 4} ({k} points and the box)" if norm == "box" else \
                    f"{2 * k} ({k} points) or {2 * k + 4} (and the box)"
                raise LandmarkDataError(f"{file}:{n}: {len(values)} values after the path, expected {expected}")
            points = values[: 2 * k].reshape(k, 2) + shift
            if len(values) > 2 * k:
                x0, y0, x1, y1 = values[2 * k :] + shift
            else:
                (x0, y0), (x1, y1) = points.min(0), points.max(0)
            image = file.parent / row[0].strip()
            if not image.is_file():
                raise LandmarkDataError(f"{file}:{n}: image {image} does not exist")
            check_image(image, LANDMARK_LAYOUT)
            normaliser = float(np.sqrt((x1 - x0) * (y1 - y0))) if norm == "box" else distance(points, tuple(norm))
            faces.append(Face(image, points, Crop.from_box(x0, y0, x1, y1), normaliser))
        if not faces:
            raise LandmarkDataError(f"{file}: no rows; expected {LANDMARK_LAYOUT}")
        return faces


def parse_task(name: str, spec: Any, base: Path) -> type:
    """The task class a `[task.<name>]` table declares (paths relative to `base`), its keys checked."""
    if not isinstance(spec, dict):
        raise InputError(f"task {name!r}: a table of keys")
    kind = spec.get("kind", "classification")
    keys = {"classification": CLS_KEYS, "landmarks": LMK_KEYS}.get(kind)
    if keys is None:
        raise InputError(f"task {name!r}: kind must be 'classification' or 'landmarks', got {kind!r}")
    unknown = set(spec) - keys
    if unknown:
        raise InputError(f"task {name!r}: unknown key(s) {', '.join(sorted(unknown))} (choose from: "
                         f"{', '.join(sorted(keys))})")
    attrs = {"name": name, "description": spec.get("description", f"declared {kind} task"), "spec": spec,
             "base": base, "__module__": __name__}
    if kind == "classification":
        if ("folder" in spec) == ("train" in spec):
            raise InputError(f"task {name!r}: give either folder = ... or train = ... (CSV files)")
        split = spec.get("split", [0.7, 0.15, 0.15])
        if not (isinstance(split, list) and len(split) == 3 and all(type(f) in (int, float) and f > 0 for f in split)
                and abs(sum(split) - 1) < 1e-6):
            raise InputError(f"task {name!r}: split must be three positive fractions summing to 1, got {split!r}")
        return type(f"Declared[{name}]", (DeclaredClassification,), attrs)
    points = spec.get("points")
    if type(points) is not int or points < 1 or "train" not in spec or "test" not in spec:
        raise InputError(f"task {name!r}: landmarks need points = K (K >= 1) and train, test CSV files")
    pairs, norm = spec.get("mirror"), spec.get("normaliser")
    valid = range(points)
    if pairs is not None and not (isinstance(pairs, list) and all(
            isinstance(p, list) and len(p) == 2 and all(i in valid for i in p) for p in pairs)):
        raise InputError(f"task {name!r}: mirror must be a list of [left, right] point indices in 0..{points - 1}")
    if not (norm == "box" or isinstance(norm, list) and len(norm) == 2 and all(i in valid for i in norm)):
        raise InputError(f"task {name!r}: normaliser must be two point indices in 0..{points - 1}, or \"box\"")
    val_fraction = spec.get("val_fraction", 0.1)
    if type(val_fraction) is not float or not 0 < val_fraction < 1:
        raise InputError(f"task {name!r}: val_fraction must be a number in (0, 1), got {val_fraction!r}")
    frame = spec.get("frame", 256)
    if type(frame) is not int or frame < 16:
        raise InputError(f"task {name!r}: frame must be an integer of at least 16 px, got {frame!r}")
    attrs.update(num_points=points, frame=frame, flip_permutation=mirror(points, pairs) if pairs else None,
                 val_fraction=val_fraction,
                 protocol=PAPER_LANDMARK_PROTOCOL.replace(image_size=frame, flip=pairs is not None))
    return type(f"Declared[{name}]", (DeclaredLandmarks,), attrs)
