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
from torch import nn

from hubbench.hubs import shipped
from hubbench.hubs.archs import MiniResNet
from hubbench.hubs.base import HUBS, Hub, Source
from hubbench.hubs.sources import SOURCE_TASKS, ClassifySource, SourceTask
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
        return Schedule(self.iterations, self.lr, self.batch_size, milestones=self.milestones)


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


def lineage(task: SourceTask, cfg: Pretraining, arch: Arch) -> str:
    """Everything that determines the pre-trained weights, the initial weights' lineage included: the key of
    the shipped files (`hubs.shipped`), which are the same weights whatever torch loads them."""
    parent = task.starts_from and lineage(task.starts_from, cfg, arch)
    return digest({"version": HUB_VERSION, **arch.key, "size": IMAGE_SIZE, "task": task.name, "starts_from": parent,
                   "pretraining": dataclasses.asdict(cfg.of(task))})


def weights_key(task: SourceTask, cfg: Pretraining, arch: Arch) -> str:
    """The key of weights pre-trained here: their lineage and the torch that trained them (another torch
    rounds differently, so trains other weights)."""
    return digest({"lineage": lineage(task, cfg, arch), "torch": torch.__version__})


def pretrained_weights(task: SourceTask, cfg: Pretraining, hub: str, arch: Arch = MINI_RESNET,
                       name: str = "", part: str = "backbone", from_scratch: bool = False) -> dict[str, torch.Tensor]:
    """The weights of `arch` after pre-training on `task` (`part="head"`: those of the task's head): the
    shipped file of their lineage (`hubs.shipped`; `from_scratch`: never), else from the cache, else trained
    now, starting from the weights pre-trained on `task.starts_from` if it has one (shipped or not alike).

    Cached as `hubs/<name>-<key>.pt` and `<name>-<key>.head.pt` (`name` defaults to the task's name), shared
    by every hub with that source (`mini-hetero`'s `detection` is `mini`'s).
    """
    name = name or task.name
    if not from_scratch and (file := shipped.find(name, lineage(task, cfg, arch), part)):
        return shipped.load(file)
    path = cache_dir() / "hubs" / f"{name}-{weights_key(task, cfg, arch)}.pt"
    wanted = path if part == "backbone" else path.with_suffix(".head.pt")
    if wanted.exists():
        return load_torch(wanted)
    # built alike everywhere (one thread) and without disturbing the caller's random streams; processes
    # that need it at the same time wait on its lock while one of them trains it
    with locked(str(path), f"pre-training {hub}/{name}"), preserved_rng(), threads(1):
        if wanted.exists():  # trained by another process meanwhile
            return load_torch(wanted)
        own = cfg.of(task)
        images, targets = source_data(task, own)
        torch.manual_seed(derive_seed("source-init", task.name, cfg.seed))
        backbone = arch.build()
        if task.starts_from:
            backbone.load_state_dict(pretrained_weights(task.starts_from, cfg, hub, arch, from_scratch=from_scratch))
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


@dataclass(frozen=True)
class Pretrained:
    """How hubbench makes a self-built source's weights: `arch` pre-trained on `task` under `cfg`, as source
    `name` of hub `hub` (shipped where its lineage is, else trained here and cached)."""

    name: str
    task: SourceTask
    arch: Arch
    cfg: Pretraining
    hub: str

    @property
    def parts(self) -> tuple[str, ...]:
        """What a hub uses of it: the backbone and, for a source that classifies whole images, its classifier."""
        return ("backbone", "head") if isinstance(self.task, ClassifySource) else ("backbone",)

    def weights(self, part: str = "backbone", from_scratch: bool = False) -> dict[str, torch.Tensor]:
        return pretrained_weights(self.task, self.cfg, self.hub, self.arch, self.name, part, from_scratch)

    def shipped_name(self, part: str) -> str:
        return shipped.file_name(self.name, lineage(self.task, self.cfg, self.arch), part)

    def shipped(self, part: str = "backbone"):
        """The shipped file of this part, or None."""
        return shipped.find(self.name, lineage(self.task, self.cfg, self.arch), part)

    def classifier(self) -> nn.Module:
        """The head the task pre-trained the backbone with (feature map -> source logits), weights loaded."""
        head = self.task.head(self.arch.build().out_channels)
        head.load_state_dict(self.weights("head"))
        return head.eval()

    def source(self, description: str = "") -> Source:
        """The hub's Source. One that classifies whole images (supervised, rotation) keeps that classifier; the
        others' heads classify pixels or regions (as DeepLab's, Keypoint R-CNN's and Mask R-CNN's do)."""
        return Source(self.name, self.arch.family, description or self.task.description, self.arch.build,
                      self.weights, self.classifier if "head" in self.parts else None, pretrained=self)


def self_built_hub(name: str, description: str, sources: tuple[tuple[Pretrained, str], ...], config: dict) -> Hub:
    """A hub of sources pre-trained by hubbench (each with its description, "" for its task's). Its config names
    each source's weights (the shipped file's sha256, or "pre-trained here" where none is shipped); its check
    verifies the shipped files' hashes, before any cell starts."""
    pretrained = [p for p, _ in sources]
    files = [f for p in pretrained for part in p.parts if (f := p.shipped(part))]

    def check() -> None:
        for path in files:
            shipped.verified(path)

    weights = {p.name: shipped.manifest()["files"][f.name] if (f := p.shipped()) else "pre-trained here"
               for p in pretrained}
    return Hub(name, description, tuple(p.source(text) for p, text in sources), config={**config, "weights": weights},
               check=check)


def mini_hub(name: str = "mini", cfg: Pretraining = Pretraining()) -> Hub:
    sources = tuple((Pretrained(t.name, t, MINI_RESNET, cfg, name), "") for t in SOURCE_TASKS)
    return self_built_hub(name, "five MiniResNets pre-trained by hubbench on five synthetic source paradigms", sources,
                          {"version": HUB_VERSION, "widths": WIDTHS, "image_size": IMAGE_SIZE,
                           "pretraining": dataclasses.asdict(cfg)})


HUBS.register("mini")(mini_hub)
