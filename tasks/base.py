"""The Task interface: data splits, head, loss, metric and training protocol of a target task."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.errors import InputError
from hubbench.images import to_input
from hubbench.protocol import Protocol
from hubbench.record import Examples
from hubbench.registry import Registry
from hubbench.staging import Staged

TASKS: Registry[type[Task]] = Registry("task")
_SPLITS: dict[type, dict[str, Split]] = {}


@dataclass
class Split:
    """Images as uint8 [N, 3, H, W] and their targets, held in memory."""

    images: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)


class Task(ABC):
    """A target task. Subclasses set the class attributes and implement `make_splits`.

    Outputs of every predictor are task outputs (logits, heatmaps); the task alone knows how
    to turn them into a loss, metrics, and an ensemble (`combine`).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]
    protocol: ClassVar[Protocol]
    external_data: ClassVar[bool] = False  # read from the data directory (hubbench.io.data_dir), not made here
    needs_map: ClassVar[bool] = False  # its head decodes the backbone's spatial map (pooled features are none)

    def __init__(self, protocol: Protocol | None = None):
        self.protocol = protocol or type(self).protocol

    @classmethod
    def review(cls, protocol: Protocol) -> list[str]:
        """What a run says of the task's `protocol` before any cell (how it was chosen, what looks wrong); raises
        ValueError, with the fix, for a protocol the task refuses."""
        return []

    @abstractmethod
    def make_splits(self) -> dict[str, Split]:
        """Return the 'train', 'val' and 'test' splits (deterministic)."""

    @abstractmethod
    def head(self, in_channels: int) -> nn.Module:
        """A fresh head mapping the backbone's last feature map to task outputs."""

    @property
    def output_channels(self) -> int:
        """Channels of the task outputs (their axis 1): what a learned aggregator of outputs maps."""
        raise NotImplementedError(f"task {self.name!r} of kind {self.kind!r} does not say its output channels")

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def evaluate(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Metrics of outputs on a split; the primary metric is under `self.metric`."""

    @abstractmethod
    def combine(self, outputs: list[torch.Tensor], weights: torch.Tensor | None = None) -> torch.Tensor:
        """Aggregate several models' outputs (weights [B, m], default uniform) into one output."""

    @abstractmethod
    def distillation(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """Loss pulling a student's outputs towards a (detached) teacher's outputs."""

    def examples(self, outputs: torch.Tensor, split: str = "test", n: int = 8) -> Examples | None:
        """A few samples of `split` with their predictions for the leaderboard's pictures (None: none drawn)."""
        return None

    def ranking_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """What transferability scores fit features to: class indices [N] (int64), or real targets
        [N, k] (float) of a regression."""
        raise NotImplementedError(f"task {self.name!r} of kind {self.kind!r} defines no ranking targets")

    def stand_in_targets(self, n: int, g: torch.Generator) -> torch.Tensor:
        """`n` random valid targets, for stand-in data of the task's shapes (`hubbench profile` without the data)."""
        raise NotImplementedError(f"task {self.name!r} of kind {self.kind!r} has no stand-in targets")

    @property
    def splits(self) -> dict[str, Split]:
        """The splits, made once per process: the data depend on the task, not on the protocol. An empty
        split is an error here, on reading, and not a failure after training (`hubbench run` reads the
        datasets of the cells it runs before any starts)."""
        cls = type(self)
        if cls not in _SPLITS:
            splits = self.make_splits()
            empty = [name for name in ("train", "val", "test") if len(splits[name]) == 0]
            if empty:
                sizes = ", ".join(f"{name} {len(split)}" for name, split in splits.items())
                raise InputError(f"task {self.name!r}: empty split ({', '.join(empty)}): {sizes} images; "
                                 "every method needs train, val and test")
            _SPLITS[cls] = splits
        return _SPLITS[cls]

    def config(self) -> dict:
        sizes = {k: len(v) for k, v in self.splits.items()}
        return {"name": self.name, "kind": self.kind, "metric": self.metric,
                "higher_is_better": self.higher_is_better, "sizes": sizes,
                "protocol": dataclasses.asdict(self.protocol)}

    # -- data ---------------------------------------------------------------------------------
    # A batch is staged (`hubbench.staging`): read and drawn on the host, finished on the training device.
    def pixels(self, split: str) -> torch.Tensor:
        """The uint8 images of a split, [N, 3, H, W] (in memory here; a file task's come from its cache)."""
        return self.splits[split].images

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalised float at the protocol's size."""
        return to_input(images, self.protocol.image_size)

    def augmentation(self, n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """The random parameters of a training batch of `n`, drawn on the host from its generator: crop
        offsets after reflect padding, and horizontal flips."""
        p, params = self.protocol, {}
        if p.crop_padding:
            params["offsets"] = torch.randint(0, 2 * p.crop_padding + 1, (n, 2), generator=g)
        if p.flip:
            params["flip"] = torch.rand(n, generator=g) < 0.5
        return params

    def augment_targets(self, y: Any, params: dict[str, torch.Tensor]) -> Any:
        """The targets of augmented images (host side; unchanged by crops and flips of classification)."""
        return y

    def augment_images(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training augmentation of normalised images, on their device, with host-drawn `params`."""
        if "offsets" in params:
            n, _, h, w = x.shape
            pad = self.protocol.crop_padding
            padded = F.pad(x, [pad] * 4, mode="reflect")
            rows = (params["offsets"][:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (params["offsets"][:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = padded[torch.arange(n, device=x.device)[:, None, None, None],
                       torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
        if "flip" in params:
            x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        return x

    def stage_train(self, idx: torch.Tensor, g: torch.Generator, splits: tuple[str, ...] = ("train",)) -> Staged:
        """Training batch `idx` of `splits` (the train split, or train then val for a final run on both) with
        augmentation drawn from `g`, staged (see `finish_train`)."""
        params = self.augmentation(len(idx), g)
        images, targets = self.joined(splits, idx)
        return Staged((images, self.augment_targets(targets, params), params), self.finish_train)

    def joined(self, splits: tuple[str, ...], idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 images and targets of rows `idx` of `splits` taken one after the other."""
        if len(splits) == 1:
            return self.pixels(splits[0])[idx], self.splits[splits[0]].targets[idx]
        ends = torch.tensor([len(self.splits[s]) for s in splits]).cumsum(0)
        part = torch.bucketize(idx, ends, right=True)  # which split each row is in
        first = self.pixels(splits[0])
        images = torch.empty((len(idx), *first.shape[1:]), dtype=first.dtype)
        for i, split in enumerate(splits):
            mine = part == i
            images[mine] = self.pixels(split)[idx[mine] - (ends[i - 1] if i else 0)]
        return images, torch.cat([self.splits[s].targets for s in splits])[idx]

    def finish_train(self, host: tuple) -> tuple[torch.Tensor, Any]:
        images, targets, params = host
        return self.augment_images(self.prepare(images), params), targets

    def train_batch(self, idx: torch.Tensor, g: torch.Generator, device: torch.device | str = "cpu"):
        """Training batch `idx` finished on `device` now (x, y)."""
        return self.stage_train(idx, g).on(device)

    def stage_eval(self, split: str) -> Iterator[Staged]:
        """The split's test batches in order, staged (see `finish_eval`)."""
        images, bs = self.pixels(split), self.protocol.eval_batch_size
        for i in range(0, len(images), bs):
            yield Staged(images[i : i + bs], self.finish_eval)

    def finish_eval(self, images: torch.Tensor) -> torch.Tensor:
        return self.prepare(images)

    def eval_batches(self, split: str, device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
        """The split's test batches finished on `device`."""
        return (stage.on(device) for stage in self.stage_eval(split))


class ClassifierHead(nn.Sequential):
    """Global average pool and a linear layer, initialised N(0, 0.01) as the Zoo-Tuning code."""

    def __init__(self, in_channels: int, num_classes: int):
        fc = nn.Linear(in_channels, num_classes)
        nn.init.normal_(fc.weight, 0, 0.01)
        nn.init.zeros_(fc.bias)
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc)


class ClassificationTask(Task):
    kind = "classification"
    metric = "top1"
    higher_is_better = True
    num_classes: ClassVar[int]

    def head(self, in_channels: int) -> nn.Module:
        return ClassifierHead(in_channels, self.num_classes)

    @property
    def output_channels(self):
        return self.num_classes

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets)

    def ranking_targets(self, targets):
        return targets

    def stand_in_targets(self, n, g):
        return torch.randint(0, self.num_classes, (n,), generator=g)

    def evaluate(self, outputs, targets):
        top1 = (outputs.argmax(1) == targets).float().mean().item() * 100
        return {"top1": top1, "loss": F.cross_entropy(outputs, targets).item()}

    def distillation(self, student, teacher, temperature):
        """KL between temperature-softened distributions, times T^2 (Hinton et al.)."""
        t = temperature
        return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher.detach() / t, -1),
                        reduction="batchmean", log_target=True) * t * t

    def combine(self, outputs, weights=None):
        """Weighted mean of the members' probabilities, returned as log-probabilities."""
        probs = torch.stack([o.float().softmax(-1) for o in outputs], 1)  # [B, m, C]
        if weights is None:
            mixed = probs.mean(1)
        else:
            mixed = (weights.unsqueeze(-1) * probs).sum(1) / weights.sum(1, keepdim=True)
        return mixed.clamp_min(1e-12).log()


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: register a task under its `name`."""
    return TASKS.register(cls.name)(cls)
