"""The crops of the papers' ImageNet-style pipeline: random-area training crops and fixed test views.

Both work on square images (every image is first squashed to `resize` x `resize`), so a crop
box does not depend on the image and training boxes can be drawn for a whole batch from one
generator before any file is decoded.
"""

from __future__ import annotations

import math

import torch

from hubbench.protocol import VIEWS


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


# -- Pillow's bilinear resampling, batched on any device ------------------------------------------
PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit images (libImaging/Resample.c: 32 - 8 - 2)


def bilinear_taps(lo: torch.Tensor, hi: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pillow's coefficients for resampling pixels [lo, hi) of an axis of `in_size` to `out_size`, per image.

    Returns source indices [B, out_size, K] and Pillow's fixed-point weights (int32, summing to about
    2^PRECISION_BITS) of its bilinear filter, widened by the scale when shrinking (antialiasing), computed
    in float64 with Pillow's expressions in its order (`precompute_coeffs`, `normalize_coeffs_8bpc`), so
    the integers are Pillow's. Taps past the image edge get weight 0 (their index is clamped).
    """
    lo, hi = lo.double(), hi.double()
    scale = (hi - lo) / out_size
    filterscale = scale.clamp(min=1.0)
    support = filterscale[:, None]  # the bilinear filter's support is 1
    center = lo[:, None] + (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale[:, None]
    first = torch.trunc(center - support + 0.5).clamp(min=0)
    last = torch.trunc(center + support + 0.5).clamp(max=in_size)
    k = int(math.ceil(filterscale.max().item())) * 2 + 1
    taps = first[..., None] + torch.arange(k, dtype=torch.float64)
    w = (1 - ((taps - center[..., None] + 0.5) * (1.0 / filterscale)[:, None, None]).abs()).clamp(min=0)
    w = torch.where(taps < last[..., None], w, 0.0)
    total = w[..., 0]
    for j in range(1, k):  # Pillow sums the weights in order
        total = total + w[..., j]
    fixed = torch.trunc(0.5 + w / total[..., None] * (1 << PRECISION_BITS)).int()
    return taps.clamp(max=in_size - 1).long(), fixed


def _resample_last(x: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One pass of Pillow's separable resampling along the last axis: int32 [B, C, H, W] -> [B, C, H, out]."""
    b, c, h, _ = x.shape
    acc = torch.full((b, c, h, index.shape[1]), 1 << (PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    for j in range(index.shape[-1]):
        acc += x.gather(-1, index[:, None, None, :, j].expand(b, c, h, -1)) * weight[:, None, None, :, j]
    return (acc >> PRECISION_BITS).clamp_(0, 255)


def resample(images: torch.Tensor, taps: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """uint8 [B, C, S, S] -> uint8 [B, C, size, size]: each image's box resized as Pillow's
    `resize((size, size), BILINEAR, box=box)` does it, bit for bit (horizontal pass, rounding to 8 bits,
    vertical pass), given `taps` = (x index, x weight, y index, y weight) of `crop_taps`."""
    xi, xw, yi, yw = taps
    x = _resample_last(images.int(), xi, xw)
    return _resample_last(x.transpose(-1, -2), yi, yw).transpose(-1, -2).to(torch.uint8)


def crop_taps(boxes: torch.Tensor, side: int, size: int) -> tuple[torch.Tensor, ...]:
    """The taps of `resample` for boxes [B, 4] (left, top, right, bottom) in `side` px images, to `size` px:
    small integer tensors, computed on the host and sent to the device with the batch."""
    b = boxes.double()
    return (*bilinear_taps(b[:, 0], b[:, 2], side, size), *bilinear_taps(b[:, 1], b[:, 3], side, size))
