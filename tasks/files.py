"""Classification tasks whose images are files, decoded per batch: real datasets do not fit in
memory at the papers' 256 px (CIFAR-100's training split alone would be about 10 GB).

A split holds paths (or, for CIFAR, small uint8 arrays) and targets. Each batch is decoded with
PIL in a few threads, squashed to `resize` x `resize` and cropped as the protocol says; the crop
boxes and flips are drawn from the batch's generator before any decoding, so a training batch
is a pure function of (seed, iteration) however the threads interleave.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from hubbench.tasks.base import ClassificationTask
from hubbench.tasks.crops import centre_box, random_boxes, views
from hubbench.tasks.datasets import DatasetError
from PIL import Image

from hubbench.images import to_input

Box = tuple[int, int, int, int]


@cache
def _pool() -> ThreadPoolExecutor:
    """Decoding threads, shared by every batch of the process (PIL releases the GIL while decoding)."""
    return ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="decode")


@dataclass
class FileSplit:
    """Images as paths or uint8 HWC arrays, with their targets and the layout to name when one is unreadable."""

    items: list[Path | np.ndarray]
    targets: torch.Tensor
    layout: str

    def __len__(self) -> int:
        return len(self.items)

    def load(self, idx: Sequence[int], side: int, boxes: Sequence[Box] | None = None,
             size: int | None = None) -> torch.Tensor:
        """uint8 [B, 3, side, side] of the images `idx`, squashed; with `boxes`, each image's box of
        that, resized to `size` x `size` (as torchvision's Resize then RandomResizedCrop)."""
        jobs = [(self.items[i], side, boxes[k] if boxes else None, size) for k, i in enumerate(idx)]
        images = list(_pool().map(lambda job: self._decode(*job), jobs))
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()

    def _decode(self, item: Path | np.ndarray, side: int, box: Box | None, size: int | None) -> np.ndarray:
        try:
            with Image.fromarray(item) if isinstance(item, np.ndarray) else Image.open(item) as image:
                image = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
        except OSError as e:  # unreadable, truncated or not an image
            raise DatasetError(item, f"not a readable image ({e})", self.layout) from None
        if box is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
        return np.asarray(image)


class FileTask(ClassificationTask):
    """A classification task over `FileSplit`s (`make_splits` returns them): the protocol's
    squash, random-area crops and flips in training, `test_views` views summed in testing."""

    external_data = True

    @property
    def side(self) -> int:
        """The side images are squashed to before cropping."""
        return self.protocol.resize or self.protocol.image_size

    def train_batch(self, idx: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        p, split = self.protocol, self.splits["train"]
        boxes = (random_boxes(len(idx), self.side, g) if p.random_resized_crop
                 else [centre_box(self.side, p.image_size)] * len(idx))
        x = to_input(split.load(idx.tolist(), self.side, boxes, p.image_size))
        return self.augment(x, split.targets[idx], g)

    def eval_batches(self, split: str) -> Iterator[torch.Tensor]:
        """[B, V, 3, H, W] batches of the protocol's V test views ([B, 3, H, W] when V is 1)."""
        p, data = self.protocol, self.splits[split]
        for i in range(0, len(data), p.eval_batch_size):
            x = views(to_input(data.load(range(i, min(i + p.eval_batch_size, len(data))), self.side)),
                      p.image_size, p.test_views)
            yield x[:, 0] if p.test_views == 1 else x
