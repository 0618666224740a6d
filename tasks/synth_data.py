"""Rehearsal data: every paper dataset written in its distributed layout, with content that means nothing.

`hubbench data synth DIR` writes the synthetic stand-in of every task that has one (`synthesise`: the paper
datasets, `tasks.paper_cls` and `tasks.paper_landmarks`) as the task's reader reads it: the same files, formats
and folder names, the real class counts, images of the real sizes (CIFAR's 32 px in its Python 2 pickles,
Aircraft and Cars several hundred pixels a side, COFW's faces inside a MATLAB v7.3 file), a few per class. The
pixels are smooth colour noise and the labels and landmarks are random: the files look real to the loaders and
nothing can be learnt from them. They let a paper suite run end to end at full size (decoding, squashing,
ten-crop tests, face crops and their cache, every method) before the real data are downloaded; no number
measured on them means anything. Everything is a function of the seed.

Here are what the stand-ins are made of: the writers of the formats (public: the readers' tests write their
fixtures with them), the pictures, and the `Plan` a dataset's `synthesise` fills.
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
    written depend on the seed alone, whatever order or process the jobs run in. How many images to
    write: `train` and `test` per class, `faces_train` and `faces_test` faces."""

    def __init__(self, root: Path, seed: int, name: str):
        self.root, self.rng, self.jobs = root, np.random.default_rng(derive_seed("synth", name, seed)), []
        self.train, self.test, self.faces_train, self.faces_test = TRAIN, TEST, FACES_TRAIN, FACES_TEST

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

    def face(self, points: int, width: int, height: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Random points (0-based pixel indices, [K, 2]) inside a random face box (x0, y0, x1, y1) of the image."""
        side = int(self.rng.integers(min(width, height) // 4, min(width, height) // 2))
        x0, y0 = int(self.rng.integers(0, width - side)), int(self.rng.integers(0, height - side))
        xy = self.rng.uniform((x0, y0), (x0 + side - 1, y0 + side - 1), (points, 2))
        return xy, (x0, y0, x0 + side - 1, y0 + side - 1)


class NotSynthetic(InputError):
    """A folder that synth would write holds files it did not write."""


def stand_ins() -> dict[str, Callable[[Plan], None]]:
    """The synthetic stand-in of every registered task that has one, by the task's name, which is the folder it
    reads under the data dir."""
    from hubbench.tasks import TASKS  # every task module imported, every task registered

    return {name: write for name in TASKS.names() if (write := getattr(TASKS.get(name), "synthesise", None))}


def synthesise(directory: str | Path, seed: int = 0, datasets: Sequence[str] | None = None) -> list[Path]:
    """Write `datasets` (default: every stand-in) under `directory` (one folder each, named as the task) for
    `seed`; returns the folders.

    Each folder is written beside its place and renamed into it when complete. A folder already there is
    replaced only if it holds the marker file synth writes; any other is refused before anything is written.
    """
    directory, writers = Path(directory), stand_ins()
    datasets = list(writers) if datasets is None else datasets
    for name in datasets:
        if name not in writers:
            raise UnknownName("dataset", name, list(writers))
    for name in datasets:
        folder = directory / name
        if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).is_file():
            raise NotSynthetic(f"{folder} exists and was not written by `hubbench data synth`; "
                               "choose another directory or move it away")
    plans = {}
    for name in datasets:
        plans[name] = Plan(directory / f".{name}.partial", seed, name)
        writers[name](plans[name])
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
