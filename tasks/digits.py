"""A real target: scikit-learn's bundled handwritten digits, upsampled and set on clutter.

The 8x8 strokes are real handwriting; upsampled to 32 px they are composited, in a colour that
contrasts with it, onto a seeded synthetic background (the MNIST-M construction). Plain grey
digits are solved from scratch with 30 images per class, so transfer could not show there.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hubbench.seeding import derive_seed
from hubbench.synthetic import Canvas
from hubbench.tasks.base import ClassificationTask, Split, register
from hubbench.tasks.synthetic import MINI_PROTOCOL, RENDER_SIZE, contrasting_colors


@register
class Digits(ClassificationTask):
    """sklearn `load_digits` (1 797 images, 10 classes): 30 train and 20 val per class, rest test."""

    name = "digits"
    description = "sklearn's real handwritten digits, upsampled onto clutter (MNIST-M style)"
    num_classes = 10
    per_class = (30, 20)
    protocol = MINI_PROTOCOL.replace(flip=False)  # a mirrored digit is another symbol

    def make_splits(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.from_numpy(data.images).float().div(16).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
        x = F.interpolate(x, size=(RENDER_SIZE, RENDER_SIZE), mode="bilinear", align_corners=False)
        strokes = x.clamp(0, 1)[:, 0].numpy()
        rng = np.random.default_rng(derive_seed("task-data", self.name))
        images = []
        for alpha in strokes:
            canvas = Canvas(RENDER_SIZE, rng).background(clutter=1)
            canvas.paint(alpha, contrasting_colors(canvas)[0])
            images.append(canvas.finish())
        images = torch.from_numpy(np.stack(images))
        labels = torch.from_numpy(data.target).long()
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for c in range(self.num_classes):
            idx = rng.permutation(np.flatnonzero(data.target == c)).tolist()
            n_train, n_val = self.per_class
            parts["train"] += idx[:n_train]
            parts["val"] += idx[n_train : n_train + n_val]
            parts["test"] += idx[n_train + n_val :]
        return {k: Split(images[v], labels[v]) for k, v in parts.items()}
