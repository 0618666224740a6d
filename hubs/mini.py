"""The `mini` hub: five MiniResNets, each pre-trained by hubbench itself on one source paradigm.

Pre-training always runs on the CPU (it is small), so the hub is the same on every machine for
a given torch build; the weights are cached under a key of everything that determines them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import nn

from hubbench.images import to_input
from hubbench.io import cache_dir, load_torch, save_torch
from hubbench.seeding import derive_seed, digest
from hubbench.synthetic import Canvas
from hubbench.training import Checkpoint, Schedule, batch_indices, train
from hubs.archs import MiniResNet
from hubs.base import HUBS, Hub, Source
from hubs.sources import SOURCE_TASKS, SourceTask

HUB_VERSION = 2  # bump whenever the source tasks or the pre-training code change
IMAGE_SIZE = 32
WIDTHS = (16, 32, 64, 128)


@dataclass(frozen=True)
class Pretraining:
    images: int = 4000
    iterations: int = 500
    batch_size: int = 64
    lr: float = 0.05
    milestones: tuple[float, ...] = (0.6, 0.85)
    seed: int = 0

    def schedule(self) -> Schedule:
        return Schedule(self.iterations, self.lr, self.batch_size,
                        milestones=tuple(round(f * self.iterations) for f in self.milestones))


def source_data(task: SourceTask, cfg: Pretraining) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(derive_seed("source-data", task.name, cfg.seed))
    images, targets = zip(*(task.sample(Canvas(IMAGE_SIZE, rng)) for _ in range(cfg.images)), strict=True)
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))


def pretrained_weights(task: SourceTask, cfg: Pretraining, hub: str) -> dict[str, torch.Tensor]:
    """The backbone weights after pre-training on `task`: from the cache, else trained now."""
    key = digest({"version": HUB_VERSION, "widths": WIDTHS, "size": IMAGE_SIZE, "task": task.name,
                  "pretraining": dataclasses.asdict(cfg), "torch": torch.__version__})
    path = cache_dir() / "hubs" / hub / f"{task.name}-{key}.pt"
    if path.exists():
        return load_torch(path)
    images, targets = source_data(task, cfg)
    torch.manual_seed(derive_seed("source-init", task.name, cfg.seed))
    backbone = MiniResNet(WIDTHS)
    model = nn.Sequential(backbone, task.head(backbone.out_channels))
    seed = derive_seed("pretrain", task.name, cfg.seed)

    def batch_at(it: int):
        idx = batch_indices(len(images), cfg.batch_size, it, seed)
        return to_input(images[idx]), targets[idx]

    checkpoint = Checkpoint(path.with_suffix(".ckpt"), every=100)
    train(model, lambda m, x, y: task.loss(m(x), y), batch_at, cfg.schedule(), seed=seed,
          checkpoint=checkpoint, desc=f"pre-train {hub}/{task.name}")
    save_torch(path, backbone.state_dict())
    checkpoint.clear()
    return backbone.state_dict()


def mini_hub(name: str = "mini", cfg: Pretraining = Pretraining()) -> Hub:
    sources = tuple(
        Source(t.name, "mini-resnet", t.description, partial(MiniResNet, WIDTHS),
               partial(pretrained_weights, t, cfg, name))
        for t in SOURCE_TASKS
    )
    return Hub(name, "five MiniResNets pre-trained by hubbench on five synthetic source paradigms",
               sources, config={"version": HUB_VERSION, "widths": WIDTHS, "image_size": IMAGE_SIZE,
                                "pretraining": dataclasses.asdict(cfg)})


HUBS.register("mini")(mini_hub)
