"""Rehearsal data: every paper dataset written in its distributed layout, with content that means nothing.

`hubbench data synth DIR` writes the seven classification sets and 300W, WFLW, COFW and AFLW-19 as
`tasks.datasets` and `tasks.landmark_data` read them: the same files, formats and folder names, the
real class counts, images of the real sizes (CIFAR's 32 px in its Python 2 pickles, Aircraft and Cars
several hundred pixels a side, COFW's faces inside a MATLAB v7.3 file), a few per class. The pixels
are smooth colour noise and the labels and landmarks are random: the files look real to the loaders
and nothing can be learnt from them. They let a paper suite run end to end at full size (decoding,
squashing, ten-crop tests, face crops and their cache, every method) before the real data are
downloaded; no number measured on them means anything. Everything is a function of the seed.

The writers of the formats are public: the readers' tests write their fixtures with them.
"""

from __future__ import annotations

import io
import pickle
import shutil
import struct
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from hubbench.errors import InputError
from hubbench.registry import UnknownName
from hubbench.seeding import derive_seed
from hubbench.tasks.landmark_data import COFW_FILES, W300_PARTS, WFLW_LIST

MARKER = "HUBBENCH_SYNTHETIC.txt"  # in every folder written here: what a rerun may replace
TRAIN, TEST = 6, 2  # images per class (of the 6, the tasks hold out one for val)
FACES_TRAIN, FACES_TEST = 54, 48  # faces per landmark dataset; after val is held out, full batches of 48
Job = Callable[[], None]  # writes one file


# -- the formats ------------------------------------------------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Pickles as CIFAR's files were written by Python 2's cPickle: protocol 2, byte strings as
    BINSTRING (Python 2's `str`, read back with encoding='latin1'), arrays via numpy.core.multiarray."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(path: Path, obj) -> None:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def matlab_header(path: Path, text: str) -> None:
    """Overwrite the 116-byte text that opens a MATLAB file (scipy and h5py write the time there)."""
    with open(path, "r+b") as fh:
        fh.write(text.encode().ljust(116))


def savemat_v5(path: Path, variables: dict) -> None:
    """A MATLAB v5 file, as the Stanford Cars devkit ships, with a fixed header (so the bytes depend on
    the variables alone)."""
    from scipy.io import savemat  # slow to import; only these files need it

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, variables)
    matlab_header(path, "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018")


def cars_annotations(rows: Sequence[tuple[int, str]], boxes: Sequence[tuple[int, int, int, int]] | None = None):
    """The devkit's 1 x N struct array (bbox_x1, bbox_y1, bbox_x2, bbox_y2, class (1-based), fname)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    out = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (cls, fname) in enumerate(rows):
        box = boxes[i] if boxes else (39, 116, 569, 375)
        out[0, i] = (*(np.uint16(v) for v in box), np.uint8(cls), fname)
    return out


def write_pts(path: Path, one_based: np.ndarray) -> None:
    """An ibug .pts file of points in 1-based pixel coordinates."""
    lines = ["version: 1", f"n_points:  {len(one_based)}", "{", *(f"{x:.3f} {y:.3f}" for x, y in one_based), "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def wflw_line(points: np.ndarray, box: Sequence[int], flags: Sequence[int], path: str) -> str:
    """One line of WFLW's lists: 98 (x, y) 0-based pixel indices, the box, six attribute flags, the image."""
    return " ".join([*(f"{v:.6f}" for v in np.ravel(points)), *map(str, box), *map(str, flags), path])


def write_cofw(path: Path, images: Sequence[np.ndarray], phis, boxes, tag: str) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 behind a 512-byte header, arrays transposed,
    the image cell array as object references into #refs#."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        cells = f.create_dataset(f"Is{tag}", (1, len(images)), dtype=h5py.ref_dtype)
        for n, image in enumerate(images):
            cells[0, n] = refs.create_dataset(f"img{n}", data=image.T).ref
        f.create_dataset(f"phis{tag}", data=np.asarray(phis, float).T)
        f.create_dataset(f"bboxes{tag}", data=np.asarray(boxes, float).T)
    matlab_header(path, "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema "
                        "1.00 .")


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """A CSV with a header row, as HRNet's landmark lists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(map(str, row)) for row in [header, *rows]) + "\n")


def write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


# -- the content ------------------------------------------------------------------------------------
def picture(seed: int, width: int, height: int) -> np.ndarray:
    """H x W x 3 uint8: a few random colours stretched smoothly over the image (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (*rng.integers(3, 9, 2), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC))


def write_picture(path: Path, seed: int, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture(seed, width, height)).save(path, quality=90)


class Plan:
    """The files of one dataset as jobs, every random draw made while planning, in order: the bytes
    written depend on the seed alone, whatever order or process the jobs run in."""

    def __init__(self, root: Path, seed: int, name: str):
        self.root, self.rng, self.jobs = root, np.random.default_rng(derive_seed("synth", name, seed)), []

    def add(self, write: Callable, *args) -> None:
        self.jobs.append(partial(write, *args))

    def size(self, low: int, high: int, aspect: tuple[float, float] = (0.6, 0.9)) -> tuple[int, int]:
        """A random (width, height): width in [low, high], height the width times an aspect ratio."""
        width = int(self.rng.integers(low, high + 1))
        return width, max(1, round(width * self.rng.uniform(*aspect)))

    def image(self, relative: str, size: tuple[int, int]) -> None:
        """A picture of `size` (width, height) at `relative` (to the dataset's folder)."""
        self.add(write_picture, self.root / relative, int(self.rng.integers(2**63)), *size)

    def labels(self, classes: int, per_class: int) -> list[int]:
        """`per_class` of each class, in a random order."""
        return self.rng.permutation(np.repeat(np.arange(classes), per_class)).tolist()


# -- the classification sets ------------------------------------------------------------------------
def cifar100(plan: Plan) -> None:
    base = plan.root / "cifar-100-python"
    plan.add(py2_pickle, base / "meta", {"fine_label_names": [f"class_{i:03d}" for i in range(100)],
                                         "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)]})
    for split, per_class in (("train", TRAIN), ("test", TEST)):
        labels = plan.labels(100, per_class)
        data = np.stack([picture(int(s), 32, 32).transpose(2, 0, 1).ravel()
                         for s in plan.rng.integers(2**63, size=len(labels))])
        plan.add(py2_pickle, base / split, {
            "batch_label": f"{split} batch 1 of 1", "filenames": [f"synthetic_{i:05d}.png" for i in range(len(labels))],
            "fine_labels": labels, "coarse_labels": [y // 5 for y in labels], "data": data})


def coco70(plan: Plan) -> None:
    classes = [f"object {i:02d}" for i in range(70)]
    plan.add(write_lines, plan.root / "classes.txt", classes)
    for split, per_class in (("train", TRAIN), ("dev", TEST), ("test", TEST)):
        for n, label in enumerate(plan.labels(70, per_class)):
            plan.image(f"{split}/{classes[label]}/{n:06d}.jpg", plan.size(120, 480, (0.7, 1.3)))


def aircraft(plan: Plan) -> None:
    data = plan.root / "fgvc-aircraft-2013b" / "data"
    variants = [f"Model-{i:03d}/{chr(65 + i % 26)}" for i in range(100)]
    plan.add(write_lines, data / "variants.txt", variants)
    ids = iter(plan.rng.choice(10**7, 100 * (TRAIN + TEST), replace=False).tolist())
    lists = {}
    for split, per_class in (("train", TRAIN // 2), ("val", TRAIN - TRAIN // 2), ("test", TEST)):
        lists[split] = []
        for label in plan.labels(100, per_class):
            image_id = f"{next(ids):07d}"
            plan.image(f"fgvc-aircraft-2013b/data/images/{image_id}.jpg", plan.size(600, 1000, (0.6, 0.75)))
            lists[split].append(f"{image_id} {variants[label]}")
    lists["trainval"] = lists["train"] + lists["val"]
    for split, lines in lists.items():
        plan.add(write_lines, data / f"images_variant_{split}.txt", lines)


def cars(plan: Plan) -> None:
    base = plan.root / "stanford_cars"
    names = np.array([f"Make{i // 4:02d} Model{i:03d} Sedan {2000 + i % 13}" for i in range(196)], dtype=object)
    plan.add(savemat_v5, base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    annotations = {"train": base / "devkit" / "cars_train_annos.mat", "test": base / "cars_test_annos_withlabels.mat"}
    for split, per_class in (("train", TRAIN), ("test", TEST)):
        rows, boxes = [], []
        for n, label in enumerate(plan.labels(196, per_class), 1):
            width, height = plan.size(300, 900, (0.55, 0.8))
            plan.image(f"stanford_cars/cars_{split}/{n:05d}.jpg", (width, height))
            rows.append((label + 1, f"{n:05d}.jpg"))
            x1, y1 = (int(plan.rng.integers(1, v // 4)) for v in (width, height))
            boxes.append((x1, y1, int(plan.rng.integers(3 * width // 4, width)),
                          int(plan.rng.integers(3 * height // 4, height))))
        plan.add(savemat_v5, annotations[split], {"annotations": cars_annotations(rows, boxes)})


def indoor67(plan: Plan) -> None:
    categories = [f"scene_{i:02d}" for i in range(67)]
    for split, listed, per_class in (("train", "TrainImages.txt", TRAIN), ("test", "TestImages.txt", TEST)):
        lines = []
        for n, label in enumerate(plan.labels(67, per_class)):
            line = f"{categories[label]}/{split}_{n:05d}.jpg"
            plan.image(f"Images/{line}", plan.size(256, 640, (0.6, 1.0)))
            lines.append(line)
        plan.add(write_lines, plan.root / listed, lines)


def dmlab(plan: Plan) -> None:
    """VTAB-1k's lists: train800 and val200 and their union, and test; 9 training and 8 test images per
    class, so that (after the task holds out val) each split fills a batch of 48."""
    lines = {}
    for split, per_class in (("train", 8), ("val", 1), ("test", 8)):
        lines[split] = []
        for n, label in enumerate(plan.labels(6, per_class)):
            plan.image(f"images/{split}/{n:05d}.jpg", (480, 360))  # as DMLab's frames
            lines[split].append(f"images/{split}/{n:05d}.jpg {label}")
    for split, name in (("train", "train800.txt"), ("val", "val200.txt"), ("test", "test.txt")):
        plan.add(write_lines, plan.root / name, lines[split])
    plan.add(write_lines, plan.root / "train800val200.txt", lines["train"] + lines["val"])


EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")


def eurosat(plan: Plan) -> None:
    """24 per class: the reader's seeded 60/20/20 split gives 14 train, 5 val and 5 test (a batch of 48 or more)."""
    for name in EUROSAT_CLASSES:
        for n in range(1, 25):
            plan.image(f"2750/{name}/{name}_{n}.jpg", (64, 64))


# -- the landmark sets ------------------------------------------------------------------------------
def face(plan: Plan, points: int, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Random points (0-based pixel indices, [K, 2]) inside a random face box (x0, y0, x1, y1) of the image."""
    side = int(plan.rng.integers(min(width, height) // 4, min(width, height) // 2))
    x0, y0 = int(plan.rng.integers(0, width - side)), int(plan.rng.integers(0, height - side))
    xy = plan.rng.uniform((x0, y0), (x0 + side - 1, y0 + side - 1), (points, 2))
    return xy, (x0, y0, x0 + side - 1, y0 + side - 1)


def w300(plan: Plan) -> None:
    parts = {**dict.fromkeys(W300_PARTS["train"], FACES_TRAIN // 3),
             **dict.fromkeys(W300_PARTS["full"], FACES_TEST // 3)}
    for part, count in parts.items():
        for n in range(count):
            stem = f"{part.split('/')[0]}_{n:04d}"
            width, height = plan.size(480, 900, (0.65, 1.0))
            plan.image(f"{part}/{stem}.jpg", (width, height))
            plan.add(write_pts, plan.root / part / f"{stem}.pts", face(plan, 68, width, height)[0] + 1)


def wflw(plan: Plan) -> None:
    for split, count in (("train", FACES_TRAIN), ("test", FACES_TEST)):
        lines = []
        for n in range(count):
            image = f"{n % 3}--Event/{n % 3}_Event_{split}_{n}.jpg"
            width, height = plan.size(640, 1024, (0.65, 0.8))
            plan.image(f"WFLW_images/{image}", (width, height))
            points, box = face(plan, 98, width, height)
            lines.append(wflw_line(points, box, plan.rng.integers(0, 2, 6).tolist(), image))
        plan.add(write_lines, plan.root / WFLW_LIST.format(split=split), lines)


def cofw(plan: Plan) -> None:
    for split, count in (("train", FACES_TRAIN), ("test", FACES_TEST)):
        images, phis, boxes = [], [], []
        for n in range(count):
            width, height = plan.size(250, 450, (0.8, 1.2))
            image = picture(int(plan.rng.integers(2**63)), width, height)
            images.append(image[..., 0] if n % 5 == 4 else image)  # a few grey images, as in COFW
            points, (x0, y0, x1, y1) = face(plan, 29, width, height)
            phis.append(np.concatenate([points[:, 0] + 1, points[:, 1] + 1, plan.rng.integers(0, 2, 29)]))
            boxes.append([x0 + 1, y0 + 1, x1 - x0 + 1, y1 - y0 + 1])
        name, tag = COFW_FILES[split]
        plan.add(write_cofw, plan.root / name, images, phis, boxes, tag)


def aflw(plan: Plan) -> None:
    header = ["image_name", "scale", "box_size", "center_w", "center_h",
              *(f"original_{i}_{a}" for i in range(19) for a in "xy")]
    for split, count in (("train", FACES_TRAIN), ("test", FACES_TEST)):
        rows = []
        for n in range(count):
            image = f"{n % 3}/image{split}{n:05d}.jpg"
            width, height = plan.size(450, 800, (0.65, 1.0))
            plan.image(f"images/{image}", (width, height))
            points, (x0, y0, x1, y1) = face(plan, 19, width, height)
            side = x1 - x0 + 1
            rows.append([image, f"{side / 200:.6f}", side, (x0 + x1) / 2, (y0 + y1) / 2,
                         *(f"{v:.6f}" for v in points.ravel())])
        plan.add(write_csv, plan.root / f"face_landmarks_aflw_{split}.csv", header, rows)


DATASETS: dict[str, Callable[[Plan], None]] = {
    "cifar100": cifar100, "coco70": coco70, "aircraft": aircraft, "cars": cars, "indoor67": indoor67,
    "dmlab": dmlab, "eurosat": eurosat, "300w": w300, "wflw": wflw, "cofw": cofw, "aflw": aflw,
}  # the task names, which are the folders they read under the data dir


class NotSynthetic(InputError):
    """A folder that synth would write holds files it did not write."""


def synthesise(directory: str | Path, seed: int = 0, datasets: Sequence[str] = tuple(DATASETS)) -> list[Path]:
    """Write `datasets` under `directory` (one folder each, named as the task) for `seed`; returns the folders.

    Each folder is written beside its place and renamed into it when complete. A folder already there is
    replaced only if it holds the marker file synth writes; any other is refused before anything is written.
    """
    directory = Path(directory)
    for name in datasets:
        if name not in DATASETS:
            raise UnknownName("dataset", name, list(DATASETS))
    for name in datasets:
        folder = directory / name
        if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).is_file():
            raise NotSynthetic(f"{folder} exists and was not written by `hubbench data synth`; "
                               "choose another directory or move it away")
    plans = {}
    for name in datasets:
        plans[name] = Plan(directory / f".{name}.partial", seed, name)
        DATASETS[name](plans[name])
    with tqdm(total=sum(len(p.jobs) for p in plans.values()), desc="synth", unit="file", disable=None) as bar:
        for name, plan in plans.items():
            bar.set_postfix_str(name)
            shutil.rmtree(plan.root, ignore_errors=True)  # left by a killed run
            plan.root.mkdir(parents=True)
            (plan.root / MARKER).write_text(
                f"Synthetic {name} written by `hubbench data synth` (seed {seed}): the layout of the real dataset, "
                "random content. For rehearsing runs only; no result on it means anything.\n")
            for job in plan.jobs:
                job()
                bar.update()
            shutil.rmtree(directory / name, ignore_errors=True)
            plan.root.rename(directory / name)
    return [directory / name for name in datasets]
