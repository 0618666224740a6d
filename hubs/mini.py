"""The `mini` hub: five MiniResNets, each pre-trained by hubbench itself on one source paradigm,
and the pre-training machinery every self-built hub shares (a source = an `Arch` pre-trained
on a `SourceTask`).

Pre-training always runs on the CPU (it is small), so the hub is the same on every machine for
a given torch build; the weights are cached under a key of everything that determines them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from hubbench.hubs.archs import MiniResNet
from hubbench.hubs.base import HUBS, Hub, Source
from hubbench.hubs.sources import SOURCE_TASKS, ClassifySource, SourceTask
from torch import nn

from hubbench.images import to_input
from hubbench.io import cache_dir, load_torch, save_torch
from hubbench.locks import locked
from hubbench.seeding import derive_seed, digest, preserved_rng, threads
from hubbench.synthetic import Canvas
from hubbench.training import Checkpoint, Schedule, batch_indices, train

HUB_VERSION = 6  # bump whenever the source tasks or the pre-training code change
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

    def of(self, task: SourceTask) -> Pretraining:
        """This pre-training scaled by the source task's budget."""
        return dataclasses.replace(self, images=self.images * task.budget, iterations=self.iterations * task.budget)

    def schedule(self) -> Schedule:
        return Schedule(self.iterations, self.lr, self.batch_size,
                        milestones=tuple(round(f * self.iterations) for f in self.milestones))


@dataclass(frozen=True)
class Arch:
    """A self-built source's architecture: its family, its constructor, and the fields that
    identify it in the weights' cache key (they must change whenever the architecture does)."""

    family: str
    build: Callable[[], nn.Module] = field(repr=False)
    key: dict

    @classmethod
    def of(cls, family: str, model: Callable[..., nn.Module], version: int, **config) -> Arch:
        """`model(**config)`, keyed by its name, its `version` (bump when its code changes) and `config`."""
        return cls(family, partial(model, **config), {"arch": model.__name__, "arch_version": version, **config})


MINI_RESNET = Arch("mini-resnet", partial(MiniResNet, WIDTHS), {"widths": WIDTHS})  # the key `mini` always had


def source_data(task: SourceTask, cfg: Pretraining) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(derive_seed("source-data", task.name, cfg.seed))
    images, targets = zip(*(task.sample(Canvas(IMAGE_SIZE, rng)) for _ in range(cfg.images)), strict=True)
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(targets))


def weights_key(task: SourceTask, cfg: Pretraining, arch: Arch) -> str:
    """Everything that determines the pre-trained weights, the initial weights' lineage included."""
    parent = task.starts_from and weights_key(task.starts_from, cfg, arch)
    return digest({"version": HUB_VERSION, **arch.key, "size": IMAGE_SIZE, "task": task.name, "starts_from": parent,
                   "pretraining": dataclasses.asdict(cfg.of(task)), "torch": torch.__version__})


def pretrained_weights(task: SourceTask, cfg: Pretraining, hub: str, arch: Arch = MINI_RESNET,
                       name: str = "", part: str = "backbone") -> dict[str, torch.Tensor]:
    """The weights of `arch` after pre-training on `task` (`part="head"`: those of the task's head):
    from the cache, else trained now, starting from the weights pre-trained on `task.starts_from`
    if it has one.

    Cached as `hubs/<hub>/<name>-<key>.pt` and `<name>-<key>.head.pt` (`name` defaults to the task's name).
    """
    name = name or task.name
    path = cache_dir() / "hubs" / hub / f"{name}-{weights_key(task, cfg, arch)}.pt"
    wanted = path if part == "backbone" else path.with_suffix(".head.pt")
    if wanted.exists():
        return load_torch(wanted)
    # built alike everywhere (one thread) and without disturbing the caller's random streams; processes
    # that need it at the same time wait on its lock while one of them trains it
    with locked(str(path)), preserved_rng(), threads(1):
        if wanted.exists():  # trained by another process meanwhile
            return load_torch(wanted)
        own = cfg.of(task)
        images, targets = source_data(task, own)
        torch.manual_seed(derive_seed("source-init", task.name, cfg.seed))
        backbone = arch.build()
        if task.starts_from:
            backbone.load_state_dict(pretrained_weights(task.starts_from, cfg, hub, arch))
        model = nn.Sequential(backbone, task.head(backbone.out_channels))
        seed = derive_seed("pretrain", task.name, cfg.seed)

        def batch_at(it: int):
            idx = batch_indices(len(images), own.batch_size, it, seed)
            return to_input(images[idx]), targets[idx]

        checkpoint = Checkpoint(path.with_suffix(".ckpt"), every=100)
        train(model, lambda m, x, y: task.loss(m(x), y), batch_at, own.schedule(), seed=seed,
              checkpoint=checkpoint, desc=f"pre-train {hub}/{name}")
        save_torch(path.with_suffix(".head.pt"), model[1].state_dict())  # before the backbone, which marks it done
        save_torch(path, backbone.state_dict())
    checkpoint.clear()
    return model[0 if part == "backbone" else 1].state_dict()


def pretrained_classifier(task: SourceTask, cfg: Pretraining, hub: str, arch: Arch, name: str) -> nn.Module:
    """The head `task` pre-trained `arch` with (feature map -> source logits), weights loaded."""
    head = task.head(arch.build().out_channels)
    head.load_state_dict(pretrained_weights(task, cfg, hub, arch, name, part="head"))
    return head.eval()


def pretrained_source(name: str, task: SourceTask, arch: Arch, cfg: Pretraining, hub: str,
                      description: str = "") -> Source:
    """Source `name` of hub `hub`: `arch` pre-trained on `task` (on first use, then cached). A source
    pre-trained to classify whole images (supervised, rotation) keeps that classifier; the others'
    heads classify pixels or regions (as DeepLab's, Keypoint R-CNN's and Mask R-CNN's do)."""
    image_classifier = isinstance(task, ClassifySource)
    classifier = partial(pretrained_classifier, task, cfg, hub, arch, name) if image_classifier else None
    return Source(name, arch.family, description or task.description, arch.build,
                  partial(pretrained_weights, task, cfg, hub, arch, name), classifier)


def mini_hub(name: str = "mini", cfg: Pretraining = Pretraining()) -> Hub:
    sources = tuple(pretrained_source(t.name, t, MINI_RESNET, cfg, name) for t in SOURCE_TASKS)
    return Hub(name, "five MiniResNets pre-trained by hubbench on five synthetic source paradigms",
               sources, config={"version": HUB_VERSION, "widths": WIDTHS, "image_size": IMAGE_SIZE,
                                "pretraining": dataclasses.asdict(cfg)})


HUBS.register("mini")(mini_hub)
