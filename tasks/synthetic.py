"""Synthetic classification targets of different character, drawn from hubbench's image world.

Each has a small training set, so that what a source model already knows matters. The data
are a pure function of the task's name: the run seed changes training, never the data.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch

from hubbench.seeding import derive_seed
from hubbench.synthetic import POLYGONS, STARS, TEXTURES, Canvas, random_color, texture_field
from hubbench.tasks.base import ClassificationTask, Protocol, Split, register

RENDER_SIZE = 32

def contrasting_colors(canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Two object colours that stand out from the mean background colour."""
    background = canvas.img.mean((0, 1))
    colors = []
    for _ in range(2):
        c = random_color(canvas.rng)
        while np.abs(c - background).max() < 0.3:
            c = random_color(canvas.rng)
        colors.append(c)
    return colors[0], colors[1]


MINI_PROTOCOL = Protocol(
    image_size=32, batch_size=32, iterations=300, lr=0.03, crop_padding=2, flip=True,
    eval_every=100, checkpoint_every=50,
)


class SyntheticTask(ClassificationTask):
    classes: ClassVar[tuple[str, ...]]
    per_class: ClassVar[tuple[int, int, int]]  # train, val, test images per class
    protocol = MINI_PROTOCOL

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @abstractmethod
    def draw(self, canvas: Canvas, label: int) -> None:
        """Draw one image of class `label`."""

    def make_splits(self) -> dict[str, Split]:
        rng = np.random.default_rng(derive_seed("task-data", self.name))
        splits = {}
        for split, count in zip(("train", "val", "test"), self.per_class, strict=True):
            labels = np.tile(np.arange(self.num_classes), count)
            images = []
            for label in labels:
                canvas = Canvas(RENDER_SIZE, rng)
                self.draw(canvas, int(label))
                images.append(canvas.finish())
            splits[split] = Split(torch.from_numpy(np.stack(images)), torch.from_numpy(labels))
        return splits


@register
class Shapes(SyntheticTask):
    """Fine-grained: polygons by number of sides and stars by number of points, in clutter."""

    name = "shapes"
    description = "fine-grained shape variants (11 polygons/stars) on cluttered backgrounds"
    classes = (*POLYGONS, *STARS)
    per_class = (40, 20, 60)

    def draw(self, canvas, label):
        rng, s = canvas.rng, canvas.size
        canvas.background(clutter=int(rng.integers(2, 5)))
        canvas.shape(
            self.classes[label],
            center=s / 2 + rng.uniform(-0.12, 0.12, 2) * s,
            radius=rng.uniform(0.28, 0.42) * s,
            angle=rng.uniform(0, 2 * np.pi),
            colors=contrasting_colors(canvas),
            texture=str(rng.choice(TEXTURES)),
            freq=rng.uniform(2, 5),
        )


# land cover: texture, two colours, texture frequency range
LAND_COVER = {
    "cropland": ("stripes", (0.55, 0.70, 0.25), (0.40, 0.55, 0.20), (3, 5)),
    "forest": ("dots", (0.10, 0.35, 0.10), (0.25, 0.45, 0.15), (5, 8)),
    "urban": ("checker", (0.60, 0.60, 0.60), (0.35, 0.35, 0.40), (4, 7)),
    "water": ("solid", (0.10, 0.25, 0.55), (0.10, 0.25, 0.55), (1, 2)),
    "desert": ("gradient", (0.85, 0.75, 0.50), (0.70, 0.55, 0.35), (1, 2)),
    "plowed": ("stripes", (0.45, 0.30, 0.20), (0.30, 0.20, 0.12), (6, 9)),
    "industrial": ("dots", (0.55, 0.55, 0.50), (0.30, 0.30, 0.30), (3, 5)),
    "pasture": ("solid", (0.35, 0.60, 0.25), (0.35, 0.60, 0.25), (1, 2)),
}


@register
class Scenes(SyntheticTask):
    """Remote-sensing-like scenes: the land cover that dominates a patchwork of textured regions."""

    name = "scenes"
    description = "texture/colour 'remote-sensing' scenes (8 land covers in a patchwork)"
    classes = tuple(LAND_COVER)
    per_class = (20, 20, 50)

    def draw(self, canvas, label):
        rng, s = canvas.rng, canvas.size
        regions = int(rng.integers(3, 6))
        seeds = rng.uniform(0, s, (regions, 2))
        dist = np.hypot(canvas.xx[None] - seeds[:, 0, None, None], canvas.yy[None] - seeds[:, 1, None, None])
        dist[0] *= 0.7  # the labelled cover is the largest region
        owner = dist.argmin(0)
        covers = [label, *rng.integers(0, len(self.classes), regions - 1)]
        for region, cover in enumerate(covers):
            texture, c1, c2, freq = LAND_COVER[self.classes[cover]]
            x, y = canvas.local_coords((s / 2, s / 2), s / 2, rng.uniform(0, np.pi))
            t = texture_field(texture, x, y, rng.uniform(*freq))[..., None]
            jitter = rng.normal(0, 0.1, 3)
            fill = (np.asarray(c1) + jitter) * t + (np.asarray(c2) + jitter) * (1 - t)
            canvas.paint((owner == region).astype(np.float32), fill.astype(np.float32))
        for _ in range(int(rng.integers(0, 4))):  # buildings, vehicles
            canvas.shape("square", center=rng.uniform(0, s, 2), radius=rng.uniform(1.5, 3.5),
                         angle=rng.uniform(0, np.pi), aspect=rng.uniform(0.5, 2))


@register
class Clutter(SyntheticTask):
    """Cluttered multi-object scenes: name the shape of the largest of several objects."""

    name = "clutter"
    description = "cluttered multi-object scenes: the shape of the largest object (6 classes)"
    classes = ("circle", "triangle", "square", "cross", "ring", "star5")
    per_class = (100, 30, 80)

    def draw(self, canvas, label):
        rng, s = canvas.rng, canvas.size
        canvas.background(clutter=3)
        others = int(rng.integers(2, 4))
        objects = [(self.classes[label], rng.uniform(0.22, 0.27) * s)]
        objects += [(str(rng.choice(self.classes)), rng.uniform(0.11, 0.16) * s) for _ in range(others)]
        for i in rng.permutation(len(objects)):
            kind, radius = objects[i]
            canvas.shape(
                kind,
                center=rng.uniform(radius, s - radius, 2),
                radius=radius,
                angle=rng.uniform(0, 2 * np.pi),
                colors=contrasting_colors(canvas),
                texture=str(rng.choice(TEXTURES)),
                freq=rng.uniform(2, 4),
            )
