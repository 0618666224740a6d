"""Facial landmark tasks: Gaussian heatmap regression, decoded to points and scored by NME.

A split's targets are float [N, 2K + 1]: the K points as (x0, y0, x1, y1, ...) in pixels of the
stored image (`frame` x `frame`), then the image's NME normaliser (e.g. the inter-ocular
distance) in the same pixels. One tensor keeps `split.targets[idx]` working in the shared loop.
Coordinates are continuous: pixel (row i, column j) covers [j, j+1) x [i, i+1), so its centre
is (j + 0.5, i + 0.5), the convention of `hubbench.synthetic.Canvas` and of
`grid_sample(align_corners=False)`. Heatmap cells tile the image the same way.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.errors import InputError
from hubbench.images import png_base64
from hubbench.record import Examples
from hubbench.tasks.base import Protocol, Task

FAILURE_THRESHOLDS = (0.08, 0.10)
AUC_LIMIT = 0.10


def pack(points: torch.Tensor, normaliser: torch.Tensor) -> torch.Tensor:
    """Points [N, K, 2] and normalisers [N] -> split targets [N, 2K + 1] (float32)."""
    return torch.cat([points.flatten(1), normaliser.view(-1, 1)], 1).float()


def unpack(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split targets [N, 2K + 1] -> points [N, K, 2] and normalisers [N]."""
    return targets[:, :-1].reshape(len(targets), -1, 2), targets[:, -1]


def encode(points: torch.Tensor, size: tuple[int, int], frame: int, sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians (peak 1 at the exact sub-pixel point) on an h x w heatmap.

    Points [N, K, 2] are in pixels of a `frame`-sized image; `sigma` is in heatmap cells.
    """
    h, w = size
    cx = points[..., 0] * (w / frame)  # continuous heatmap coordinates
    cy = points[..., 1] * (h / frame)
    xs = torch.arange(w, dtype=points.dtype, device=points.device) + 0.5
    ys = torch.arange(h, dtype=points.dtype, device=points.device) + 0.5
    gx = torch.exp(-((xs - cx[..., None]) ** 2) / (2 * sigma**2))  # [N, K, w]
    gy = torch.exp(-((ys - cy[..., None]) ** 2) / (2 * sigma**2))  # [N, K, h]
    return gy[..., :, None] * gx[..., None, :]


def decode(heatmaps: torch.Tensor, frame: int) -> torch.Tensor:
    """Heatmaps [N, K, h, w] -> points [N, K, 2] in pixels of a `frame`-sized image.

    Per-channel argmax, then a quarter-cell shift towards the higher neighbour in x and y
    (interior cells only), which halves the worst-case quantisation error of the argmax.
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.float().reshape(n, k, h * w)
    best = flat.argmax(-1)
    iy, ix = best // w, best % w

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y.clamp(0, h - 1) * w + x.clamp(0, w - 1)).unsqueeze(-1)).squeeze(-1)

    dx = torch.sign(at(iy, ix + 1) - at(iy, ix - 1)) * ((ix > 0) & (ix < w - 1))
    dy = torch.sign(at(iy + 1, ix) - at(iy - 1, ix)) * ((iy > 0) & (iy < h - 1))
    x = (ix + 0.5 + 0.25 * dx) * (frame / w)
    y = (iy + 0.5 + 0.25 * dy) * (frame / h)
    return torch.stack([x, y], -1)


def normalised_errors(pred: torch.Tensor, points: torch.Tensor, normaliser: torch.Tensor) -> torch.Tensor:
    """Per-image NME [N]: mean point-to-point distance over the K points, over the normaliser."""
    return (pred - points).norm(dim=-1).mean(-1) / normaliser


def summarise(errors: torch.Tensor) -> dict[str, float]:
    """NME, failure rates and AUC of per-image NMEs, all in percent.

    AUC is the area under the cumulative error distribution on [0, 0.10] over 0.10, computed
    exactly: the integral of P(e <= t) for t up to L equals the mean of max(0, L - e).
    """
    e = errors.double()
    out = {"nme": e.mean().item() * 100}
    for t in FAILURE_THRESHOLDS:
        out[f"fr{round(t * 100)}"] = (e > t).double().mean().item() * 100
    out[f"auc{round(AUC_LIMIT * 100)}"] = (AUC_LIMIT - e).clamp_min(0).mean().item() / AUC_LIMIT * 100
    return out


def heatmap_mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean squared error over images, landmarks and heatmap cells."""
    return (outputs.float() - targets.float()).pow(2).mean()


class LandmarkHead(nn.Sequential):
    """Three 4x4 stride-2 transposed convolutions (BN, ReLU), then a 1x1 conv to one heatmap
    per landmark: the SimpleBaseline head the Zoo-Tuning supplementary uses (x8 upsampling, so
    the mini hub's 4x4 feature map gives 32x32 heatmaps). Initialised N(0, 0.001) as there."""

    def __init__(self, in_channels: int, num_points: int, channels: int):
        layers: list[nn.Module] = []
        for cin in (in_channels, channels, channels):
            layers += [nn.ConvTranspose2d(cin, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()]
        layers.append(nn.Conv2d(channels, num_points, 1))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, 0, 0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class LandmarkTask(Task):
    """A landmark task: subclasses set `num_points`, `frame`, `sigma` and implement `make_splits`.

    Augmentation is a random similarity (scale, rotation, shift of up to `crop_padding`
    pixels at the protocol's image size) and, if `protocol.flip`, a mirror that also swaps
    left and right points by `flip_permutation`; image and points move together.
    """

    kind = "landmarks"
    metric = "nme"
    higher_is_better = False
    needs_map = True
    num_points: ClassVar[int]
    frame: ClassVar[int]  # side of the stored images, in pixels: the unit of the targets
    sigma: ClassVar[float]  # of the target Gaussians, in heatmap cells
    head_channels: ClassVar[int] = 64
    # The shared protocol is plain SGD (lr 0.03, momentum 0.9). Targets are mostly zero, so the
    # mean MSE barely moves the head; summing over cells (x h*w) diverges, because the last 1x1
    # conv is shared by every cell and their gradients add up. x10 was the best of {5, 10, 25}
    # on `faces` (test NME, scratch and the `keypoints` source alike).
    loss_scale: ClassVar[float] = 10.0
    scale_jitter: ClassVar[float] = 0.0  # scale factor drawn from [1 - j, 1 + j]
    max_rotation: ClassVar[float] = 0.0  # degrees
    flip_permutation: ClassVar[tuple[int, ...] | None] = None  # point i of a mirrored face is point p[i]

    def __init__(self, protocol: Protocol | None = None):
        super().__init__(protocol)
        if self.protocol.flip and self.flip_permutation is None:
            raise InputError(f"task {self.name!r} cannot flip: it defines no flip_permutation of its points")

    def head(self, in_channels: int) -> nn.Module:
        return LandmarkHead(in_channels, self.num_points, self.head_channels)

    @property
    def output_channels(self):
        return self.num_points

    def loss(self, outputs, targets):
        points, _ = unpack(targets)
        target = encode(points.float(), outputs.shape[-2:], self.frame, self.sigma)
        return self.loss_scale * heatmap_mse(outputs, target)

    def ranking_targets(self, targets):
        """The points' coordinates (x0, y0, x1, ...) as fractions of the frame: a regression of 2K outputs."""
        return unpack(targets)[0].flatten(1).double() / self.frame

    def stand_in_targets(self, n, g):
        """Points uniform in the frame; normaliser a third of it, about the inter-ocular distance of a framed face."""
        points = torch.rand(n, self.num_points, 2, generator=g) * self.frame
        return pack(points, torch.full((n,), self.frame / 3))

    def evaluate(self, outputs, targets):
        points, normaliser = unpack(targets)
        errors = normalised_errors(decode(outputs, self.frame), points, normaliser)
        return {**summarise(errors), "loss": self.loss(outputs, targets).item()}

    def combine(self, outputs, weights=None):
        """Weighted mean of the members' heatmaps."""
        maps = torch.stack([o.float() for o in outputs], 1)  # [B, m, K, h, w]
        if weights is None:
            return maps.mean(1)
        w = weights.float() / weights.float().sum(1, keepdim=True)
        return (w[:, :, None, None, None] * maps).sum(1)

    def distillation(self, student, teacher, temperature):
        """The task loss with the teacher's heatmaps as targets. `temperature` is unused:
        heatmaps are regression targets, not distributions to soften."""
        return self.loss_scale * heatmap_mse(student, teacher.detach())

    def examples(self, outputs, split="test", n=8):
        """The first `n` images of `split` with their true and predicted points, in the pixels of the
        (possibly downscaled) embedded images: what the leaderboard draws its prediction grids from."""
        data = self.splits[split]
        encoded = [png_base64(image) for image in data.images[:n]]
        scales = torch.tensor([s for _, s in encoded]).view(-1, 1, 1)
        target = unpack(data.targets[:n])[0].float() * scales
        predicted = decode(outputs[:n].float(), self.frame) * scales
        return Examples(split, [b64 for b64, _ in encoded], target.round(decimals=2).tolist(),
                        predicted.round(decimals=2).tolist())

    def augmentation(self, n, g):
        """A random similarity per image (scale, rotation, shift) and a mirror, as matrices: `a` maps
        normalised coordinates [-1, 1] forward (v = a u + shift), `theta` maps output to input for
        `grid_sample`. Drawn and computed on the host (no device kernel decides a point's place)."""
        p = self.protocol
        scale = 1 + (2 * torch.rand(n, generator=g) - 1) * self.scale_jitter
        angle = (2 * torch.rand(n, generator=g) - 1) * math.radians(self.max_rotation)
        shift = (2 * torch.rand(n, 2, generator=g) - 1) * (2 * p.crop_padding / p.image_size)  # normalised units
        mirror = (torch.rand(n, generator=g) < 0.5) & p.flip
        cos, sin = torch.cos(angle), torch.sin(angle)
        sign = 1 - 2 * mirror.float()
        a = scale.view(n, 1, 1) * torch.stack([torch.stack([cos * sign, -sin], -1),
                                               torch.stack([sin * sign, cos], -1)], 1)
        inv = torch.linalg.inv(a)
        theta = torch.cat([inv, -(inv @ shift.unsqueeze(-1))], -1)
        return {"scale": scale, "shift": shift, "mirror": mirror, "a": a, "theta": theta}

    def augment_targets(self, y, params):
        points, normaliser = unpack(y)
        u = points / (self.frame / 2) - 1
        v = u @ params["a"].transpose(1, 2) + params["shift"].unsqueeze(1)
        points = (v + 1) * (self.frame / 2)
        mirrored = points[:, list(self.flip_permutation)] if self.flip_permutation else points
        points = torch.where(params["mirror"].view(-1, 1, 1), mirrored, points)
        return pack(points, normaliser * params["scale"])

    def augment_images(self, x, params):
        grid = F.affine_grid(params["theta"].to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
