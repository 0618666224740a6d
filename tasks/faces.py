"""Synthetic faces: 12 landmarks on procedurally drawn faces in clutter, at the mini hub's 32 px.

A face is a few 3-D feature points (eyes, nose, mouth) on a head turned by yaw and pitch,
projected, rolled in the image plane and scaled; expression (smile, open mouth, blink, gaze),
hair, illumination (a light gradient, brightness and contrast) and occluders vary per image.
The style follows the mini hub's `keypoints` source (dark eyes, triangle nose, mouth line), so
that source should transfer, but the landmarks are finer and the faces harder. The data are a
pure function of the task's name: the run seed changes training, never the data.
"""

from __future__ import annotations

import numpy as np
import torch

from hubbench.seeding import derive_seed
from hubbench.synthetic import SHAPES, TEXTURES, Canvas, random_color
from hubbench.tasks.base import Split, register
from hubbench.tasks.landmarks import LandmarkTask, pack
from hubbench.tasks.synthetic import MINI_PROTOCOL, RENDER_SIZE

# "left"/"right" as seen in the image (before any augmentation)
LANDMARKS = ("left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer", "left_pupil",
             "right_pupil", "nose_tip", "mouth_left", "mouth_right", "upper_lip", "lower_lip", "chin")
MIRROR = (3, 2, 1, 0, 5, 4, 6, 8, 7, 9, 10, 11)
OUTER_EYES = (0, 3)
EYE_HALF_WIDTH, EYE_Y, EYE_X, EYE_DEPTH = 0.16, -0.2, 0.35, 0.55
FACE_CENTER_Y, FACE_HALF_WIDTH, FACE_HALF_HEIGHT = 0.05, 0.78, 0.98  # the face ellipse, in face radii


def ellipse(canvas: Canvas, center, half_width: float, half_height: float, angle: float, color) -> None:
    """A solid ellipse with the given semi-axes (`Canvas.shape`'s circle has radius 0.9)."""
    canvas.shape("circle", center=center, radius=half_height / 0.9, angle=angle,
                 aspect=half_width / half_height, colors=(color, color))


class Face:
    """One face's random pose and expression, and its 3-D points projected to the image."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.radius = rng.uniform(0.3, 0.42) * size
        self.center = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
        self.roll = float(np.clip(rng.normal(0, 0.3), -0.8, 0.8))
        self.yaw, self.pitch = rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.3)
        self.smile, self.mouth_open = rng.uniform(-0.3, 1), rng.uniform(0, 1) ** 2 * 0.15
        self.eye_open, self.gaze = rng.uniform(0.35, 1), rng.uniform(-1, 1, 2)

    def to_image(self, xy) -> np.ndarray:
        """Face-plane coordinates (in face radii) -> image pixels, after roll, scale and shift."""
        c, s = np.cos(self.roll), np.sin(self.roll)
        return self.center + np.asarray(xy, float) @ np.array([[c, s], [-s, c]]) * self.radius

    def project(self, x: float, y: float, z: float) -> np.ndarray:
        """A point on the head (z towards the camera) -> image pixels, turned by yaw and pitch."""
        x1 = x * np.cos(self.yaw) + z * np.sin(self.yaw)
        z1 = -x * np.sin(self.yaw) + z * np.cos(self.yaw)
        return self.to_image((x1, y * np.cos(self.pitch) + z1 * np.sin(self.pitch)))

    def landmarks(self) -> np.ndarray:
        eyes = []
        for side in (-1, 1):
            corners = [self.project(side * (EYE_X + sign * EYE_HALF_WIDTH), EYE_Y, EYE_DEPTH) for sign in (1, -1)]
            eyes.append(corners if side < 0 else corners[::-1])  # outer first on the left eye
        pupils = [self.project(side * EYE_X + 0.06 * self.gaze[0], EYE_Y + 0.03 * self.gaze[1], EYE_DEPTH + 0.05)
                  for side in (-1, 1)]
        corner_y = 0.5 - 0.08 * self.smile
        mouth = [self.project(side * 0.28, corner_y, 0.5) for side in (-1, 1)]
        lips = [self.project(0, 0.45, 0.62), self.project(0, 0.53 + self.mouth_open, 0.6)]
        chin = self.to_image((0, FACE_CENTER_Y + FACE_HALF_HEIGHT))
        return np.stack([*eyes[0], *eyes[1], *pupils, self.project(0, 0.18, 0.95), *mouth, *lips, chin])


def draw_face(canvas: Canvas) -> np.ndarray:
    """Draw one face in clutter; return its landmarks [12, 2] in pixels."""
    rng, s = canvas.rng, canvas.size
    canvas.background(clutter=int(rng.integers(2, 5)))
    face = Face(rng, s)
    pts = face.landmarks()
    r, roll = face.radius, face.roll
    skin = np.clip(rng.uniform(0.35, 0.95) * np.array([1.0, 0.82, 0.68]) + rng.normal(0, 0.05, 3), 0, 1)
    canvas.shape("square", center=face.to_image((0, 1.3)), radius=0.45 * r, angle=roll, aspect=0.8,
                 colors=(skin * 0.75,) * 2)  # neck
    if rng.random() < 0.7:  # hair
        ellipse(canvas, face.to_image((0, -0.12)), 0.92 * r, 1.0 * r, roll, random_color(rng, 0, 0.6))
    ellipse(canvas, face.to_image((0, FACE_CENTER_Y)), FACE_HALF_WIDTH * r, FACE_HALF_HEIGHT * r, roll, skin)
    dark = rng.uniform(0, 0.3, 3)
    brow_y = EYE_Y - rng.uniform(0.14, 0.22)
    for side, (outer, inner, pupil) in zip((-1, 1), ((pts[0], pts[1], pts[4]), (pts[3], pts[2], pts[5])), strict=True):
        half = np.linalg.norm(outer - inner) / 2
        angle = np.arctan2(*(inner - outer)[::-1])
        ellipse(canvas, (outer + inner) / 2, half, max(0.09 * r * face.eye_open, 0.4), angle, np.full(3, 0.92))
        canvas.disc(pupil, 0.08 * r, dark)
        brow = face.project(side * EYE_X, brow_y, EYE_DEPTH)
        canvas.line(brow - (inner - outer) * 0.6, brow + (inner - outer) * 0.6, 0.06 * r, dark)
    canvas.shape("triangle", center=pts[6], radius=0.13 * r, angle=roll, colors=(skin * 0.55,) * 2)
    lip = np.clip(np.array([0.7, 0.25, 0.3]) + rng.normal(0, 0.1, 3), 0, 1)
    if face.mouth_open > 0.03:
        ellipse(canvas, (pts[9] + pts[10]) / 2, np.linalg.norm(pts[8] - pts[7]) * 0.4,
                np.linalg.norm(pts[10] - pts[9]) / 2, roll, dark * 0.5)
    for middle in (pts[9], pts[10]):
        canvas.line(pts[7], middle, 0.07 * r, lip)
        canvas.line(middle, pts[8], 0.07 * r, lip)
    if rng.random() < 0.35:  # an occluder over a random landmark (a hand, a cup, sunglasses)
        radius = rng.uniform(0.25, 0.45) * r
        canvas.shape(str(rng.choice(SHAPES)), center=pts[rng.integers(len(pts))] + rng.normal(0, 0.1 * r, 2),
                     radius=radius, angle=rng.uniform(0, 2 * np.pi), texture=str(rng.choice(TEXTURES)))
    direction = rng.uniform(0, 2 * np.pi)
    light = ((canvas.xx - face.center[0]) * np.cos(direction) + (canvas.yy - face.center[1]) * np.sin(direction)) / r
    canvas.img *= (1 + rng.uniform(0, 0.4) * light)[..., None]
    canvas.img = (canvas.img - 0.5) * rng.uniform(0.6, 1.2) + 0.5 + rng.uniform(-0.15, 0.15)
    return pts


@register
class Faces(LandmarkTask):
    """12 landmarks; NME normalised by the inter-ocular (outer eye corner) distance."""

    name = "faces"
    description = "synthetic faces: 12 landmarks under pose, expression, light, clutter, occlusion"
    num_points = len(LANDMARKS)
    frame = RENDER_SIZE
    sigma = 1.5
    # SimpleBaseline's 256 deconvolution channels on ResNet-50's 2048, scaled to the MiniResNet's 128
    # (at 64 the head cost twice the backbone's multiply-adds, and `faces` a third of the mini suite)
    head_channels = 16
    scale_jitter = 0.1
    max_rotation = 10.0
    flip_permutation = MIRROR
    sizes = (320, 120, 400)  # train, val, test
    protocol = MINI_PROTOCOL

    def make_splits(self) -> dict[str, Split]:
        rng = np.random.default_rng(derive_seed("task-data", self.name))
        splits = {}
        for split, count in zip(("train", "val", "test"), self.sizes, strict=True):
            images, points = [], []
            for _ in range(count):
                canvas = Canvas(RENDER_SIZE, rng)
                points.append(draw_face(canvas))
                images.append(canvas.finish())
            pts = torch.from_numpy(np.stack(points)).float()
            iod = (pts[:, OUTER_EYES[0]] - pts[:, OUTER_EYES[1]]).norm(dim=-1)
            splits[split] = Split(torch.from_numpy(np.stack(images)), pack(pts, iod))
        return splits
