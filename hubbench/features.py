"""What a pre-trained source outputs on a task's training split, as transferability scores read it:
computed once per (hub, task, source), cached beside the artifacts, and shared by every ranker and
by B-Tuning.

As in the LogME code, the features are the input of a classifier (the global average pool of the
backbone's last feature map), taken in eval mode over the training images without augmentation
(one centre view where the task tests on several); a source with an image classifier also gives
its softmax over its own classes (what LEEP and NCE read).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hubbench.hubs.base import Hub
from hubbench.io import load_torch, read_json, save_torch, write_json
from hubbench.locks import build_once
from hubbench.progress import progress, working
from hubbench.seeding import digest
from hubbench.tasks.base import Task

VERSION = 1  # bump when what is computed changes


@dataclass(frozen=True)
class SourceFeatures:
    source: str
    features: torch.Tensor  # [N, D] float32
    probs: torch.Tensor | None  # [N, C_s] float32, or None: the source has no image classifier
    seconds: float  # what computing them cost (when they were computed, not loaded)
    key: str


def features_key(hub: Hub, task: Task, source: str, device: torch.device) -> str:
    """Everything the features depend on: the source, the training images and their preprocessing,
    the torch build, the device and the CPU threads (not the training protocol nor the seed)."""
    p = task.protocol
    return digest({"version": VERSION, "hub": hub.describe(), "source": source, "task": task.name,
                   "sizes": {k: len(v) for k, v in task.splits.items()}, "image_size": p.image_size,
                   "resize": p.resize, "batch": p.eval_batch_size, "torch": torch.__version__,
                   "device": device.type, "threads": torch.get_num_threads()})


def source_features(hub: Hub, task: Task, source: str, *, cache: Path, device: torch.device) -> SourceFeatures:
    """The features of `source` on the training split of `task`: from the cache, else computed now
    (processes that need them at once wait on one lock while one computes them)."""
    key = features_key(hub, task, source, device)
    path = cache / "features" / hub.name / task.name / f"{source}-{key}.pt"
    meta = path.with_suffix(".json")

    def build() -> None:
        tensors, seconds = compute(hub, task, source, device)
        save_torch(path, tensors)
        write_json(meta, {"key": key, "seconds": seconds, "dim": tensors["features"].shape[1]})

    build_once((path, meta), build)
    tensors, info = load_torch(path), read_json(meta)
    return SourceFeatures(source, tensors["features"], tensors.get("probs"), info["seconds"], key)


def compute(hub: Hub, task: Task, source: str, device: torch.device) -> tuple[dict[str, torch.Tensor], float]:
    """One forward pass of the source over the training split, with progress lines (a big split takes minutes)."""
    spec = hub.source(source)
    backbone = spec.backbone(pretrained=True).to(device).eval()  # may pre-train it: not under no_grad
    classifier = spec.classifier().to(device).eval() if spec.classifier else None
    start = time.perf_counter()  # the cost of ranking, not of building the hub
    single = type(task)(task.protocol.replace(test_views=1))
    batches = math.ceil(len(single.splits["train"]) / single.protocol.eval_batch_size)
    what = f"features of {hub.name}/{source} on {task.name}"
    features, probs = [], []
    with torch.no_grad(), working(f"computing the {what}"):
        for x in progress(single.eval_batches("train"), total=batches, desc=what):
            fmap = backbone(x.to(device)).float()
            features.append(fmap.mean((2, 3)).cpu())
            if classifier is not None:
                probs.append(classifier(fmap).float().softmax(-1).cpu())
    tensors = {"features": torch.cat(features)}
    if classifier is not None:
        tensors["probs"] = torch.cat(probs)
    return tensors, time.perf_counter() - start
