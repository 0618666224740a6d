"""The crops of the papers' ImageNet-style pipeline: random-area training crops and fixed test views.

Both work on square images (every image is first squashed to `resize` x `resize`), so a crop
box does not depend on the image and training boxes can be drawn for a whole batch from one
generator before any file is decoded.
"""

from __future__ import annotations

import math

import torch

VIEWS = (1, 2, 5, 10)  # the test views a protocol may ask for (see `views`)


def random_boxes(n: int, side: int, g: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 tries: int = 10) -> list[tuple[int, int, int, int]]:
    """`n` crop boxes (left, top, right, bottom) in a `side` x `side` image, Inception-style: of
    a uniform share `scale` of the area and a log-uniform aspect `ratio`, at a uniform position.

    Each box takes the first of `tries` draws that fits, else the whole image. The generator is
    consumed the same way whatever is drawn, so batch i's boxes depend on (seed, i) only.
    """
    area = side * side * torch.empty(n, tries).uniform_(*scale, generator=g)
    aspect = torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g).exp()
    w, h = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (w >= 1) & (w <= side) & (h >= 1) & (h <= side)
    first = fits.int().argmax(1, keepdim=True)  # the first fitting draw (0 when none fits)
    fitted = fits.any(1)
    w = torch.where(fitted, w.gather(1, first)[:, 0], side).long()
    h = torch.where(fitted, h.gather(1, first)[:, 0], side).long()
    position = torch.rand(n, 2, generator=g)
    left = (position[:, 0] * (side - w + 1)).long()
    top = (position[:, 1] * (side - h + 1)).long()
    return list(zip(left.tolist(), top.tolist(), (left + w).tolist(), (top + h).tolist(), strict=True))


def centre_box(side: int, size: int) -> tuple[int, int, int, int]:
    """The `size` x `size` box at the centre of a `side` x `side` image."""
    o = (side - size) // 2
    return o, o, o + size, o + size


def views(x: torch.Tensor, size: int, n: int) -> torch.Tensor:
    """Test views [B, n, C, size, size] of square images [B, C, S, S]: 1, the centre crop; 2, and
    its mirror; 5, the centre and the four corners; 10, those five and their mirrors. View 0 is
    always the centre crop, the single view."""
    side = x.shape[-1]
    if n not in VIEWS or side < size:
        raise ValueError(f"cannot take {n} views of {size} px from {side} px images (views: {VIEWS})")
    far = side - size
    corners = [(0, 0), (0, far), (far, 0), (far, far)] if n in (5, 10) else []
    boxes = [centre_box(side, size)[:2], *corners]
    crops = [x[..., top : top + size, left : left + size] for left, top in boxes]
    if n in (2, 10):
        crops += [c.flip(-1) for c in crops]
    return torch.stack(crops, 1)


def first_view(x: torch.Tensor) -> torch.Tensor:
    """An eval batch of several views [B, V, 3, H, W] -> its first view, the centre crop [B, 3, H, W]."""
    return x[:, 0] if x.dim() == 5 else x
