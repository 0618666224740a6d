"""The input convention every backbone shares: ImageNet-normalised float images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_input(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> normalised float, resized (bilinear) to `size` x `size` if given."""
    x = images.float().div_(255)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - MEAN) / STD
