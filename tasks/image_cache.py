"""Decode once: a split's images, decoded and squashed, in one memory-mapped file of the cache.

Decoding JPEGs is what starved the GPU (about 1 000 images/s on 16 cores against 2 000 a ResNet-50
trains on), and a run decodes every image of its training split hundreds of times. So each image is
decoded and squashed to `side` x `side` once, by PIL exactly as the per-batch decoder did, into a
uint8 [N, side, side, 3] array under the cache's `images/`; batches then index that array, which
the kernel pages in and keeps (memory-mapped: a cache larger than memory still works). The file is keyed
by what determines it: every image's path, size and modification time (or, for images held as arrays,
their bytes) and the squash size; a changed image makes a new key, so a stale cache is never read.
It is written whole (temp file, then rename) by `build_once`, so concurrent processes build it once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hubbench.io import atomic_write, cache_dir
from hubbench.locks import build_once
from hubbench.progress import progress
from hubbench.seeding import digest
from hubbench.tasks.datasets import DatasetError

VERSION = 1  # bump when the decoding or the file format changes
CHUNK = 256  # images decoded per write


@cache
def pool() -> ThreadPoolExecutor:
    """Decoding threads, shared by the process (PIL releases the GIL while decoding and resizing)."""
    return ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="decode")


IMAGE = "a complete image file that PIL decodes (JPEG, PNG, ...): replace it"  # what a bad image should be


def decode(item: Path | np.ndarray, side: int) -> np.ndarray:
    """One image (a file, or a uint8 HWC array) as uint8 [side, side, 3]: RGB, squashed bilinearly."""
    try:
        with Image.fromarray(item) if isinstance(item, np.ndarray) else Image.open(item) as image:
            return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR))
    except OSError as e:  # unreadable, truncated or not an image: the image is wrong, not the dataset's layout
        raise DatasetError(item, f"not a readable image ({e})", IMAGE) from None


def identity(items: Sequence[Path | np.ndarray]) -> list:
    """What the cache key holds of the images: path, size and modification time of a file; digest of an array."""
    out = []
    for item in items:
        if isinstance(item, np.ndarray):
            out.append([hashlib.sha256(np.ascontiguousarray(item).data).hexdigest()[:16], list(item.shape)])
        else:
            st = item.stat()
            out.append([str(item), st.st_size, st.st_mtime_ns])
    return out


def cache_path(items: Sequence[Path | np.ndarray], side: int, label: str) -> Path:
    key = digest({"version": VERSION, "side": side, "images": identity(items)})
    return cache_dir() / "images" / f"{label}-{side}px-{key}.u8"


def decoded(items: Sequence[Path | np.ndarray], side: int, layout: str, label: str) -> torch.Tensor:
    """uint8 [N, side, side, 3] of `items`, memory-mapped from the cache; decoded into it first if absent
    (with a progress bar named `label`; an unreadable image is a `DatasetError` naming it)."""
    path = cache_path(items, side, label)
    build_once((path,), lambda: build(items, side, label, path))
    shape = (len(items), side, side, 3)
    size = int(np.prod(shape))
    if path.stat().st_size != size:
        raise DatasetError(path, f"a cache file of {path.stat().st_size} bytes, not {size}; delete it", layout)
    return torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8).view(shape)


def build(items: Sequence[Path | np.ndarray], side: int, label: str, path: Path) -> None:
    """Decode every image in order, chunk by chunk in the decoding threads, and write them as one file."""

    def images() -> Iterator[np.ndarray]:
        for start in range(0, len(items), CHUNK):
            yield from pool().map(lambda item: decode(item, side), items[start : start + CHUNK])

    def write(f) -> None:  # a bar in a terminal, progress lines in a log
        for image in progress(images(), total=len(items), desc=f"decoding {label} ({side} px)"):
            f.write(image.tobytes())

    atomic_write(path, write)
