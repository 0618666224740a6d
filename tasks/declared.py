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

Paths are relative to the declaring file; an image a CSV file lists must lie under that file's folder. A
classification task is a `tasks.files.FileTask` (decode-once cache, crops on the device, `hubbench data
prepare`); a landmark task is a `tasks.paper_landmarks.PaperLandmarkTask` (faces cropped once to `frame` px,
cached). Either gets the papers' recipe sized to its data (`SizedToData`: image size from the images' or faces'
sizes, the schedule from the training-set size; see each `derive`), stated in the run's first lines and in every
record, which a suite's `[protocol]` or `--set` overrides field by field. Reading a task checks every image (it
exists and PIL reads it as an image), every label and every row (numbers finite, none listed twice, at least two
classes each with a training image), so `hubbench run` refuses bad data before any cell starts.

Choices where no paper speaks, each a key: a split that is not given is cut from the training images,
per class, by `split` = [train, val, test] fractions (default [0.7, 0.15, 0.15]; only val missing: val
takes split[1] / (split[0] + split[1]) of them), the images ranked by a SHA-256 of (task, class, path), and
the record's task config says which splits were cut so. Landmark coordinates are 0-based pixel indices
(`first_pixel = 1` for 1-based files); the face crop is the box (else the points' bounding box) widened by
1.25 as in HRNet; "box" normalises by sqrt(w h) of the box (AFLW's box size for a square box); `val` is a
seeded `val_fraction` (0.1) of the training faces; `frame` (default: sized to the faces) is the side of the
cached crops.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import math
import os
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from hubbench.errors import InputError
from hubbench.seeding import derive_seed
from hubbench.tasks.base import Protocol
from hubbench.tasks.datasets import IMAGE_SUFFIXES, DatasetError, Item, checked
from hubbench.tasks.files import FileTask, split_of
from hubbench.tasks.landmark_data import Crop, Face, LandmarkDataError, distance
from hubbench.tasks.paper_cls import PAPER_PROTOCOL
from hubbench.tasks.paper_landmarks import PAPER_LANDMARK_PROTOCOL, PaperLandmarkTask, mirror

SPLITS = ("train", "val", "test")
CLS_KEYS = {"kind", "description", "folder", "train", "val", "test", "classes", "split"}
# a protocol sized to the data (`DeclaredClassification.derive`)
EPOCHS = 5  # passes over the training images
MIN_ITERATIONS = 50
SAMPLED = 256  # training images whose size is read
FAR = 2  # an image size more than this many times the images' is warned about
LMK_KEYS = {"kind", "description", "train", "test", "points", "mirror", "normaliser", "frame", "first_pixel",
            "val_fraction"}
FOLDER_LAYOUT = "<folder>/<class>/*.jpg|png, or <folder>/{train,val,test}/<class>/*.jpg|png (val, test optional)"
CSV_LAYOUT = "CSV lines 'path,label' (path relative to the CSV file; a first line 'path,label' is a header)"
LANDMARK_LAYOUT = ("CSV lines 'path, x0, y0, ..., x(K-1), y(K-1)' and optionally four box values 'x0, y0, x1, y1' "
                   "(0-based pixels; a first line that is not numbers is a header)")


def with_image(path: Path, layout: str, look: Callable[[Image.Image], Any]) -> Any:
    """`look` at the image file `path` opened by PIL (lazily: its header); a missing or unreadable file is a
    DatasetError naming it."""
    try:
        with Image.open(path) as image:
            return look(image)
    except FileNotFoundError:
        raise DatasetError(path, "missing image", layout) from None
    except Exception as e:  # PIL raises many types for a file that is not an image
        raise DatasetError(path, f"not a readable image ({type(e).__name__}: {e})", layout) from None


def check_image(path: Path, layout: str) -> None:
    """`path` is a file PIL reads as an image (its header and structure; pixels are decoded into the cache later)."""
    with_image(path, layout, Image.Image.verify)


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


def under(folder: Path, listed: str) -> Path | None:
    """The image a CSV row lists, relative to the CSV's `folder`, normalised; None where it leaves the folder (an
    absolute path elsewhere, or '..' above it): a data file names images of its own folder, nothing else."""
    path = Path(os.path.normpath(folder / listed))
    return path if path.is_relative_to(os.path.normpath(folder)) else None


def outside(listed: str, folder: Path) -> str:
    return f"image path {listed!r} leaves the CSV file's folder: list images under {folder}, relative to it"


class FromData:
    """The protocol of a declared task whose declaration gives none: `derive`d from its data when first asked for
    (a suite's check of its [protocol] asks on loading), once per process."""

    def __init__(self):
        self.made: tuple[Protocol, dict[str, Any]] | None = None

    def __get__(self, obj: Any, owner: type) -> Protocol:
        return self.derived(owner)[0]

    def derived(self, owner: type) -> tuple[Protocol, dict[str, Any]]:
        """(the protocol, what it was derived from)."""
        if self.made is None:
            self.made = owner.derive()
        return self.made


class SizedToData:
    """What the declared tasks share: a protocol sized to their data (`FromData`, `derive`), which a run states
    in its first lines and each record in its task's config, with what it was sized from."""

    spec: ClassVar[dict]
    base: ClassVar[Path]

    @classmethod
    def derivation(cls) -> dict[str, Any]:
        """What the task's protocol was sized from (`derive`'s basis)."""
        return inspect.getattr_static(cls, "protocol").derived(cls)[1]

    @classmethod
    def review(cls, protocol: Protocol) -> list[str]:
        """How the protocol was chosen, and a warning where its image size is far above the images'."""
        lines = super().review(protocol)
        derived, basis = inspect.getattr_static(cls, "protocol").derived(cls)
        changed = {k: v for k, v in dataclasses.asdict(protocol).items() if getattr(derived, k) != v}
        sizes = f"image_size {derived.image_size}" + (f", resize {derived.resize}" if derived.resize else "")
        lines.append(f"protocol sized to its data ({basis['from']}): {sizes}, batch {derived.batch_size}, "
                     f"{derived.iterations} iterations ({basis['epochs']} epochs), evaluated every "
                     f"{derived.eval_every}, {derived.test_views} test view; the papers' recipe otherwise"
                     + (f"; overridden: {', '.join(f'{k}={v}' for k, v in changed.items())}" if changed else
                        " (a suite's [protocol] or --set overrides any field)"))
        if protocol.image_size > FAR * basis["side"]:
            ratio = protocol.image_size / basis["side"]
            fix = " ".join(f"--set {k}={getattr(derived, k)}" for k in ("image_size", "resize") if getattr(derived, k))
            lines.append(f"warning: image_size {protocol.image_size} is {ratio:.1f}x the images' median side "
                         f"({basis['side']:g} px): each step costs {ratio ** 2:.0f}x the pixels of their size for "
                         f"no more detail; {fix} trains at their size")
        return lines

    def config(self):
        return {**super().config(), "protocol_sized_to": self.derivation()}


def sized(protocol: Protocol, samples: int, **fields: Any) -> tuple[Protocol, float]:
    """`protocol` with `fields` and a schedule sized to `samples` training samples: `EPOCHS` passes (at least
    `MIN_ITERATIONS` steps, the papers' 15 000 at most) of batches of the papers' size (at most a quarter of the
    samples, at least 8), evaluated and checkpointed five times; one test view (ten cost ten times as much at
    every evaluation). Returns it and its epochs."""
    batch = max(8, min(protocol.batch_size, samples // 4))
    iterations = min(max(math.ceil(EPOCHS * samples / batch), MIN_ITERATIONS), protocol.iterations)
    every = math.ceil(iterations / 5)
    return (protocol.replace(**fields, batch_size=batch, iterations=iterations, eval_every=every,
                             checkpoint_every=every, eval_batch_size=4 * batch, test_views=1),
            round(iterations * batch / max(samples, 1), 1))


class DeclaredClassification(SizedToData, FileTask):
    """A classification task read from a folder or CSV files (see the module's docstring)."""

    @property
    def num_classes(self) -> int:
        return len(self.listing()[0])

    @classmethod
    def listing(cls) -> tuple[list[str], dict[str, list[Item]], str]:
        """(classes, the splits given, layout), read and checked once per process (the images are checked when
        the splits are made)."""
        if "_read" not in cls.__dict__:
            cls._read = cls.read()
        return cls._read

    @classmethod
    def read(cls) -> tuple[list[str], dict[str, list[Item]], str]:
        spec = cls.spec
        if "folder" in spec:
            root = cls.base / spec["folder"]
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
            rows = {s: read_rows(cls.base / spec[s]) for s in SPLITS if s in spec}
            classes = spec.get("classes") or sorted({label for _, label, _ in rows["train"]})
            index = {c: i for i, c in enumerate(classes)}
            splits = {}
            for split, lines in rows.items():
                for _, label, where in lines:
                    if label not in index:
                        raise DatasetError(where, f"label {label!r} is not in the class list ({', '.join(classes)})",
                                           CSV_LAYOUT)
                splits[split] = [(path, index[label]) for path, label, _ in lines]
            if twice := duplicate((path, where) for lines in rows.values() for path, _, where in lines):
                raise DatasetError(*twice, CSV_LAYOUT)
            layout = CSV_LAYOUT
        listing = checked(list(classes), splits, layout)
        return listing.classes, listing.splits, layout

    @classmethod
    def parts(cls) -> dict[str, list[Item]]:
        """The three splits as (image, label) lists, those not given cut from the training images."""
        classes, given, layout = cls.listing()
        root = cls.base / cls.spec.get("folder", ".")
        fractions = cls.spec.get("split", [0.7, 0.15, 0.15])
        parts = dict(given)
        if "val" not in parts and "test" not in parts:
            parts["train"], parts["val"], parts["test"] = cut(given["train"], fractions, cls.name, root)
        elif "val" not in parts:
            held = fractions[1] / (fractions[0] + fractions[1])
            parts["train"], parts["val"] = cut(given["train"], [1 - held, held], cls.name, root)
        elif "test" not in parts:
            raise DatasetError(root, "a val split but no test split", layout)
        return parts

    def make_splits(self):
        classes, _, layout = self.listing()
        parts = self.parts()
        trained = Counter(y for _, y in parts["train"])
        if len(trained) < 2 or len(trained) < len(classes):
            absent = [c for i, c in enumerate(classes) if not trained[i]]
            raise DatasetError(self.base / self.spec.get("folder", self.spec.get("train", ".")),
                               f"{len(classes)} class{'es' if len(classes) > 1 else ''}, {len(trained)} with training "
                               "images: a classifier needs at least two classes, each with a training image"
                               + (f" (none of {', '.join(map(repr, absent))})" if absent else ""), layout)
        for items in parts.values():
            for path, _ in items:
                check_image(path, layout)
        return {s: split_of(parts[s], layout, f"{self.name}-{s}") for s in SPLITS}

    @classmethod
    def derive(cls) -> tuple[Protocol, dict[str, Any]]:
        """The papers' recipe sized to the data (`sized`), with what it was sized from: the median shorter side of
        (up to `SAMPLED`, evenly spread) training images gives the image size (at least 32 px, the papers' 224
        at most) and the squash before cropping (the papers' ratio, 256 : 224)."""
        train, layout = cls.parts()["train"], cls.listing()[2]
        sample = train[:: max(1, len(train) // SAMPLED)]
        side = int(np.median([min(with_image(path, layout, lambda image: image.size)) for path, _ in sample]))
        size = min(max(side, 32), PAPER_PROTOCOL.image_size)
        protocol, epochs = sized(PAPER_PROTOCOL, len(train), image_size=size, resize=round(size * 256 / 224))
        return protocol, {"from": f"{len(train)} training images, median side {side} px", "train_images": len(train),
                          "side": side, "sampled": len(sample), "epochs": epochs}

    def config(self):
        made = [s for s in SPLITS if s not in self.listing()[1]]
        return {**super().config(), "classes": self.listing()[0],
                "declared": {**{k: str(v) for k, v in self.spec.items()},
                             "split_made": made, "split_fractions": self.spec.get("split", [0.7, 0.15, 0.15]),
                             "split_rule": "per class, ranked by sha256(task, class, path)"} if made else
                {k: str(v) for k, v in self.spec.items()}}


def duplicate(rows: Iterable[tuple[Hashable, str]]) -> tuple[str, str] | None:
    """(where, what) of the first row whose key an earlier row has; None where each is once (an image listed
    twice would weigh twice in training, or be trained on and tested)."""
    seen: dict = {}
    for key, where in rows:
        if key in seen:
            return where, f"a duplicate of the row at {seen[key]} (list each once)"
        seen[key] = where
    return None


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
        if (path := under(file.parent, row[0].strip())) is None:
            raise DatasetError(f"{file}:{n}", outside(row[0].strip(), file.parent), CSV_LAYOUT)
        out.append((path, row[1].strip(), f"{file}:{n}"))
    if not out:
        raise DatasetError(file, "no rows", CSV_LAYOUT)
    return out


class DeclaredLandmarks(SizedToData, PaperLandmarkTask):
    """A landmark task read from CSV files of points (see the module's docstring)."""

    folder, layout = ".", LANDMARK_LAYOUT

    @property
    def frame(self) -> int:
        """The side faces are cropped to: the declared `frame`, else sized to the faces (`derive`)."""
        return self.derivation()["frame"]

    @classmethod
    def derive(cls) -> tuple[Protocol, dict[str, Any]]:
        """The papers' landmark recipe sized to the data (`sized`), with what it was sized from: the median side of
        the training faces' crops (in the images' pixels) gives the frame they are cropped to, unless declared
        (a multiple of 8, at least 32 px, the papers' 256 at most), the image size and, with it, the heatmaps'."""
        rows = cls.rows(cls.base / cls.spec["train"])
        faces = max(1, len(rows) - max(1, round(cls.val_fraction * len(rows))))  # val is cut from them
        side = float(np.median([Crop.from_box(*box).side for _, _, box, _ in rows]))
        frame = cls.spec.get("frame") or min(max(round(side / 8) * 8, 32), PAPER_LANDMARK_PROTOCOL.image_size)
        protocol, epochs = sized(PAPER_LANDMARK_PROTOCOL, faces, image_size=frame,
                                 flip=cls.flip_permutation is not None)
        return protocol, {"from": f"{faces} training faces, median crop side {side:.0f} px", "train_faces": faces,
                          "side": side, "frame": frame, "epochs": epochs}

    def root(self) -> Path:
        return self.base

    def annotation_files(self, root):
        return [root / self.spec[s] for s in ("train", "test")]

    def config(self):
        return {**super().config(), "declared": {k: str(v) for k, v in self.spec.items()}}

    @classmethod
    def rows(cls, file: Path) -> list[tuple[Path, np.ndarray, tuple[float, ...], str]]:
        """(image, points [K, 2], box, where) of each row of a landmark CSV in continuous pixels, checked: numbers,
        finite, as many as the points (and the box) need, the image under the CSV's folder; not yet opened."""
        k, norm = cls.num_points, cls.spec.get("normaliser")
        shift = 0.5 - cls.spec.get("first_pixel", 0)  # indices -> continuous pixels
        try:
            with file.open(newline="", encoding="utf-8") as fh:
                lines = list(csv.reader(fh))
        except OSError as e:
            raise LandmarkDataError(f"{file}: unreadable ({e.strerror}); expected {LANDMARK_LAYOUT}") from None
        rows = []
        for n, row in enumerate(lines, 1):
            if not row:
                continue
            try:
                values = np.array([float(v) for v in row[1:]])
            except ValueError:
                if n == 1:
                    continue  # a header
                raise LandmarkDataError(f"{file}:{n}: a value is not a number; expected {LANDMARK_LAYOUT}") from None
            if not np.isfinite(values).all():
                raise LandmarkDataError(f"{file}:{n}: a coordinate is {values[~np.isfinite(values)][0]}: every "
                                        f"value must be a finite number; expected {LANDMARK_LAYOUT}")
            if len(values) not in (2 * k, 2 * k + 4) or (norm == "box" and len(values) != 2 * k + 4):
                expected = f"{2 * k + 4} ({k} points and the box)" if norm == "box" else \
                    f"{2 * k} ({k} points) or {2 * k + 4} (and the box)"
                raise LandmarkDataError(f"{file}:{n}: {len(values)} values after the path, expected {expected}")
            points = values[: 2 * k].reshape(k, 2) + shift
            box = tuple(values[2 * k :] + shift) if len(values) > 2 * k else (*points.min(0), *points.max(0))
            image = under(file.parent, row[0].strip())
            if image is None:
                raise LandmarkDataError(f"{file}:{n}: {outside(row[0].strip(), file.parent)}")
            rows.append((image, points, box, f"{file}:{n}"))
        if not rows:
            raise LandmarkDataError(f"{file}: no rows; expected {LANDMARK_LAYOUT}")
        return rows

    def read(self, root):
        listed: list[tuple[Hashable, str]] = []  # (image and values, where) of every row, to find one listed twice
        train, test = (self.faces(root / self.spec[s], listed) for s in ("train", "test"))
        if twice := duplicate(listed):
            raise LandmarkDataError(f"{twice[0]}: {twice[1]}; expected {LANDMARK_LAYOUT}")
        return train, test

    def faces(self, file: Path, listed: list[tuple[Hashable, str]]) -> list[Face]:
        """The faces of one CSV file, each row and image checked; (image and values, where) of each row added to
        `listed`."""
        norm, faces = self.spec.get("normaliser"), []
        for image, points, box, where in self.rows(file):
            listed.append(((image, tuple(points.ravel()), box), where))
            if not image.is_file():
                raise LandmarkDataError(f"{where}: image {image} does not exist")
            check_image(image, LANDMARK_LAYOUT)
            x0, y0, x1, y1 = box
            normaliser = float(np.sqrt((x1 - x0) * (y1 - y0))) if norm == "box" else distance(points, tuple(norm))
            faces.append(Face(image, points, Crop.from_box(*box), normaliser))
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
        return type(f"Declared[{name}]", (DeclaredClassification,), {**attrs, "protocol": FromData()})
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
    frame = spec.get("frame", 16)
    if type(frame) is not int or frame < 16:
        raise InputError(f"task {name!r}: frame must be an integer of at least 16 px, got {frame!r}")
    attrs.update(num_points=points, flip_permutation=mirror(points, pairs) if pairs else None,
                 val_fraction=val_fraction, protocol=FromData())
    return type(f"Declared[{name}]", (DeclaredLandmarks,), attrs)
