"""The input convention every backbone shares: ImageNet-normalised float images."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_input(images: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> normalised float, resized (bilinear) to `size` x `size` if given."""
    x = images.float().div_(255)
    if size is not None and x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean, std = _normalisation(x.device)
    return (x - mean) / std


@functools.cache
def _normalisation(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD on `device`, copied there once (a copy from pageable memory would wait for the device)."""
    return MEAN.to(device), STD.to(device)


def png_base64(image: torch.Tensor, max_side: int = 128) -> tuple[str, float]:
    """uint8 [3, H, W] -> (base64 PNG, scale applied): small enough to embed in a record, downscaled if
    larger than `max_side` so that a record stays a few kB."""
    import base64
    import io

    from PIL import Image

    scale = min(1.0, max_side / max(image.shape[-2:]))
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    if scale < 1:
        pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.BILINEAR)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), scale
