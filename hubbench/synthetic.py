"""A procedural image world: anti-aliased textured shapes on cluttered backgrounds.

The mini hub's source tasks and the synthetic target tasks draw from the same primitives, as
ImageNet and the papers' target datasets share natural-image statistics: transfer is possible
but has to be learned. Everything is numpy and driven by an explicit `np.random.Generator`.
"""

from __future__ import annotations

import numpy as np

POLYGONS = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "heptagon": 7, "octagon": 8}
STARS = {f"star{n}": n for n in range(4, 9)}
SHAPES = ("circle", "ring", "cross", *POLYGONS, *STARS)
TEXTURES = ("solid", "stripes", "checker", "dots", "gradient")


def shape_field(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed field of a unit-radius shape in local coordinates: negative inside, ~distance."""
    r = np.hypot(x, y)
    phi = np.arctan2(y, x)
    if kind == "circle":
        return r - 0.9
    if kind == "ring":
        return np.abs(r - 0.68) - 0.24
    if kind == "cross":
        return np.minimum(np.maximum(np.abs(x) - 0.3, np.abs(y) - 0.95),
                          np.maximum(np.abs(y) - 0.3, np.abs(x) - 0.95))
    if kind in POLYGONS:
        n = POLYGONS[kind]
        sector = np.mod(phi + np.pi / 2, 2 * np.pi / n) - np.pi / n
        return r * np.cos(sector) - 0.95 * np.cos(np.pi / n)
    if kind in STARS:
        return r - (0.58 + 0.37 * np.cos(STARS[kind] * phi))
    raise ValueError(f"unknown shape {kind!r}")


def texture_field(kind: str, x: np.ndarray, y: np.ndarray, freq: float) -> np.ndarray:
    """Mixing weight in [0, 1] between an object's two colours."""
    if kind == "solid":
        return np.ones_like(x)
    if kind == "stripes":
        return (np.sin(freq * np.pi * x) > 0).astype(np.float32)
    if kind == "checker":
        return (np.sin(freq * np.pi * x) * np.sin(freq * np.pi * y) > 0).astype(np.float32)
    if kind == "dots":
        return (np.cos(freq * np.pi * x) * np.cos(freq * np.pi * y) > 0.4).astype(np.float32)
    if kind == "gradient":
        return np.clip((x + 1) / 2, 0, 1)
    raise ValueError(f"unknown texture {kind!r}")


def random_color(rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=3).astype(np.float32)


class Canvas:
    """One RGB image in [0, 1], drawn on in painter's order; coordinates are in pixels."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng = size, rng
        self.img = np.zeros((size, size, 3), np.float32)
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5

    def background(self, clutter: int = 0, contrast: float = 0.5) -> Canvas:
        """A colour gradient with low-frequency noise and `clutter` faint small distractor shapes."""
        rng, s = self.rng, self.size
        c0, c1 = random_color(rng), random_color(rng)
        a = rng.uniform(-1, 1, 2)
        t = np.clip(0.5 + (a[0] * (self.xx - s / 2) + a[1] * (self.yy - s / 2)) / s, 0, 1)
        self.img[:] = c0 * (1 - t[..., None]) + c1 * t[..., None]
        for _ in range(3):  # smooth low-frequency colour variation
            f, theta, phase = rng.uniform(0.5, 2) * np.pi / s, rng.uniform(0, np.pi), rng.uniform(0, 6.3)
            wave = np.sin(f * (np.cos(theta) * self.xx + np.sin(theta) * self.yy) + phase)
            self.img += wave[..., None] * rng.normal(0, 0.06, 3).astype(np.float32)
        for _ in range(clutter):
            self.shape(
                str(rng.choice(SHAPES)),
                center=rng.uniform(0, s, 2),
                radius=rng.uniform(0.06, 0.16) * s,
                angle=rng.uniform(0, 2 * np.pi),
                colors=(self.img.mean((0, 1)) + rng.normal(0, contrast * 0.5, 3),) * 2,
            )
        return self

    def local_coords(self, center, radius: float, angle: float, aspect: float = 1.0):
        """Pixel grid in a shape's frame: centred, rotated by `angle`, in units of `radius`."""
        dx, dy = self.xx - center[0], self.yy - center[1]
        c, s = np.cos(angle), np.sin(angle)
        x = (c * dx + s * dy) / (radius * aspect)
        y = (-s * dx + c * dy) / radius
        return x, y

    def paint(self, alpha: np.ndarray, color: np.ndarray) -> np.ndarray:
        """Alpha-composite `color` (RGB or an HxWx3 fill) over the image; returns `alpha`."""
        alpha = alpha[..., None]
        self.img = self.img * (1 - alpha) + color * alpha
        return alpha[..., 0]

    def shape(
        self,
        kind: str,
        center,
        radius: float,
        angle: float = 0.0,
        colors=None,
        texture: str = "solid",
        freq: float = 3.0,
        aspect: float = 1.0,
    ) -> np.ndarray:
        """Draw a textured shape; returns its coverage (alpha) mask."""
        x, y = self.local_coords(center, radius, angle, aspect)
        alpha = np.clip(0.5 - shape_field(kind, x, y) * radius, 0, 1)
        if colors is None:
            colors = (random_color(self.rng), random_color(self.rng))
        t = texture_field(texture, x, y, freq)[..., None]
        fill = np.asarray(colors[0], np.float32) * t + np.asarray(colors[1], np.float32) * (1 - t)
        return self.paint(alpha, fill)

    def disc(self, center, radius: float, color) -> np.ndarray:
        r = np.hypot(self.xx - center[0], self.yy - center[1])
        return self.paint(np.clip(radius + 0.5 - r, 0, 1), np.asarray(color, np.float32))

    def line(self, p0, p1, width: float, color) -> np.ndarray:
        p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
        d = p1 - p0
        t = np.clip(((self.xx - p0[0]) * d[0] + (self.yy - p0[1]) * d[1]) / max(d @ d, 1e-6), 0, 1)
        dist = np.hypot(self.xx - p0[0] - t * d[0], self.yy - p0[1] - t * d[1])
        return self.paint(np.clip(width / 2 + 0.5 - dist, 0, 1), np.asarray(color, np.float32))

    def finish(self, noise: float = 0.03) -> np.ndarray:
        """Add pixel noise and return a uint8 CHW array."""
        img = self.img + self.rng.normal(0, noise, self.img.shape).astype(np.float32)
        return (np.clip(img, 0, 1) * 255).round().astype(np.uint8).transpose(2, 0, 1)
