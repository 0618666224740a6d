"""Batches in two stages, read on the host and finished on the training device, and their prefetching.

A task's batch is first what the host reads and draws: uint8 images, targets, and the augmentation's
random parameters drawn from the batch's own generator (`Staged.host`); then `Staged.finish` turns those,
moved to the device, into the batch (crops, flips, normalisation, test views). Nothing random happens
after the host stage, so a batch stays a pure function of (seed, iteration) wherever it is finished,
while only uint8 pixels cross the bus and the pixel work runs where the model runs.

`prefetched` overlaps both stages of batch i+1 with the step on batch i: a worker thread reads batch
i+1, copies it into pinned host buffers that are reused from batch to batch and, on CUDA, moves it
with non-blocking copies and finishes it on a side stream; the training stream waits for that stream's
event, never the host for the device.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten


def _unchanged(batch: Any) -> Any:
    return batch


@dataclass(frozen=True)
class Staged:
    """A batch as read on the host (`host`: tensors, nested in tuples, lists or dicts) and the function
    that finishes it once its tensors are on the device."""

    host: Any
    finish: Callable[[Any], Any] = _unchanged

    def on(self, device: torch.device | str) -> Any:
        """The batch finished on `device` now (one-off batches; loops use `prefetched`)."""
        return self.finish(tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, self.host))


def staged(item: Any) -> Staged:
    """`item` as a `Staged` batch (a batch that is already whole needs no finishing)."""
    return item if isinstance(item, Staged) else Staged(item)


class PinnedSlot:
    """Pinned host buffers, reused for every other batch, and the event after which they may be refilled."""

    def __init__(self):
        self.buffers: dict[tuple, torch.Tensor] = {}
        self.done: torch.cuda.Event | None = None

    def pinned(self, i: int, t: torch.Tensor) -> torch.Tensor:
        key = (i, t.shape, t.dtype)
        if key not in self.buffers:
            self.buffers[key] = torch.empty_like(t, pin_memory=True)  # its strides: the copy is a memcpy
        return self.buffers[key].copy_(t)


def prefetched(items: Iterable, device: torch.device | str, runtime=None) -> Iterator[Any]:
    """The batches of `items` (`Staged`, or whole batches) finished on `device`, each prepared in a worker
    thread while the caller works on the one before; `runtime` (a `hubbench.training.Runtime`) sets the
    image layout. Close the iterator (or exhaust it) to stop the worker."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    stream = torch.cuda.Stream(device) if cuda else None
    source = iter(items)
    end = object()

    def prepare(slot: PinnedSlot):
        item = next(source, end)
        if item is end:
            return end
        stage = staged(item)
        if not cuda:
            return layout(stage.on(device))
        leaves, spec = tree_flatten(stage.host)
        if slot.done is not None:
            slot.done.synchronize()  # its previous copy has left the pinned buffers
        with torch.cuda.device(device), torch.cuda.stream(stream):
            moved = [slot.pinned(i, t).to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t
                     for i, t in enumerate(leaves)]
            batch = layout(stage.finish(tree_unflatten(moved, spec)))
            slot.done = torch.cuda.Event()
            slot.done.record(stream)
        return batch, slot.done

    def layout(batch):
        return runtime.batch(batch, device) if runtime is not None else batch

    slots = (PinnedSlot(), PinnedSlot())
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as worker:
        future = worker.submit(prepare, slots[0])
        for n in itertools.count(1):
            result = future.result()
            if result is end:
                return
            future = worker.submit(prepare, slots[n % 2])
            if cuda:
                result, ready = result
                current = torch.cuda.current_stream(device)
                current.wait_event(ready)
                for t in tree_flatten(result)[0]:
                    if isinstance(t, torch.Tensor) and t.is_cuda:
                        t.record_stream(current)  # made on the side stream, used on this one
            yield result


@contextlib.contextmanager
def prefetching(items: Iterable, device: torch.device | str, runtime=None) -> Iterator[Iterator[Any]]:
    """`prefetched` as a context: its worker stops when the block ends, however it ends."""
    batches = prefetched(items, device, runtime)
    try:
        yield batches
    finally:
        batches.close()
