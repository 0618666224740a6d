"""Classification tasks whose images are files: decoded once into the cache, cropped on the device.

A split lists paths (or, for CIFAR, small uint8 arrays) and targets; its images are decoded and
squashed to `resize` x `resize` once (`tasks.image_cache`), on first use or by `hubbench data
prepare`. A training batch is staged: the host reads its squashed images from the memory-mapped cache
and draws the crop boxes and flips from the batch's generator; the device crops and resizes them as
PIL's `resize(box=...)` does, bit for bit (`tasks.crops.resample`), then flips and normalises. Test
batches are the squashed images, whose views are cut on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hubbench.errors import InputError
from hubbench.images import to_input
from hubbench.tasks.base import ClassificationTask
from hubbench.tasks.crops import centre_box, crop_taps, random_boxes, resample, views
from hubbench.tasks.image_cache import decoded, pool

MIN_CROP = 0.25  # of the squashed image's area, the least a test crop may keep


@dataclass
class FileSplit:
    """Images as paths or uint8 HWC arrays, with their targets, the layout to name when one is unreadable,
    and a label naming its cache file."""

    items: list[Path | np.ndarray]
    targets: torch.Tensor
    layout: str
    label: str = "images"
    _decoded: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def decoded(self, side: int) -> torch.Tensor:
        """uint8 [N, side, side, 3]: every image squashed, memory-mapped from the cache (built if absent)."""
        if side not in self._decoded:
            self._decoded[side] = decoded(self.items, side, self.layout, self.label)
        return self._decoded[side]


def crop_on_host(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """`resample` by PIL itself, in the decoding threads: the same bytes, faster on a CPU than the
    batched integer kernels, which are for accelerators."""

    def crop(k: int) -> np.ndarray:
        image = Image.fromarray(images[k].permute(1, 2, 0).numpy())
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=tuple(boxes[k].tolist())))

    return torch.from_numpy(np.stack(list(pool().map(crop, range(len(images)))))).permute(0, 3, 1, 2)


class FileTask(ClassificationTask):
    """A classification task over `FileSplit`s (`make_splits` returns them): the protocol's
    squash, random-area crops and flips in training, `test_views` views summed in testing."""

    external_data = True

    @classmethod
    def review(cls, protocol):
        """A test crop that keeps less than `MIN_CROP` of the squashed image is refused: `--set image_size=32` alone
        under the papers' 256-px squash would train and test on its centre 1.6 %."""
        kept = (protocol.image_size / protocol.resize) ** 2 if protocol.resize else 1.0
        if kept < MIN_CROP:
            raise InputError(f"task {cls.name!r}: image_size {protocol.image_size} keeps {kept:.1%} of the images, "
                             f"a centre crop of their {protocol.resize}-px squash: set resize with it, e.g. --set "
                             f"resize={round(protocol.image_size * 256 / 224)} (the papers' ratio) or 0 (no squash)")
        return super().review(protocol)

    @property
    def side(self) -> int:
        """The side images are squashed to before cropping."""
        return self.protocol.resize or self.protocol.image_size

    def pixels(self, split: str) -> torch.Tensor:
        """uint8 [N, 3, side, side] (a view of the cache's HWC array; stand-in splits are in memory)."""
        data = self.splits[split]
        return data.decoded(self.side).permute(0, 3, 1, 2) if isinstance(data, FileSplit) else data.images

    def augmentation(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """Crop boxes (random area and aspect, else the centre) before the flips of `Task`."""
        p = self.protocol
        boxes = (random_boxes(n, self.side, g) if p.random_resized_crop
                 else [centre_box(self.side, p.image_size)] * n)
        boxes = torch.tensor(boxes, dtype=torch.long).view(n, 4)
        return {"boxes": boxes, "taps": crop_taps(boxes, self.side, p.image_size), **super().augmentation(n, g)}

    def finish_train(self, host: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets, params = host
        size = self.protocol.image_size
        if images.device.type == "cpu":
            crops = crop_on_host(images, params["boxes"], size)
        else:
            crops = resample(images, params["taps"])
        return self.augment_images(to_input(crops.contiguous()), params), targets

    def finish_eval(self, images: torch.Tensor) -> torch.Tensor:
        """[B, V, 3, H, W] of the protocol's V test views ([B, 3, H, W] when V is 1)."""
        p = self.protocol
        x = views(to_input(images.contiguous()), p.image_size, p.test_views)
        return x[:, 0] if p.test_views == 1 else x


def split_of(items: Sequence[tuple[Path | np.ndarray, int]], layout: str, label: str) -> FileSplit:
    return FileSplit([image for image, _ in items], torch.tensor([y for _, y in items]), layout, label)
