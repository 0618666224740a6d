"""The Ranker interface, the ranker registry, and the ranking of a hub for a task (cached).

A ranker scores each hub model for a task *without training it*, from what the pre-trained model
outputs on the task's training split (`hubbench.features`); a higher score predicts a better
fine-tune. Like a method, it is a frozen dataclass whose fields are its hyper-parameters, and its module
(its declaration) imports no torch: `score` does, when a ranking is made.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hubbench.io import load_torch, read_json, save_torch, write_json
from hubbench.locks import build_once
from hubbench.params import Plugin
from hubbench.record import RankingRecord
from hubbench.registry import Registry
from hubbench.seeding import digest, preserved_rng

if TYPE_CHECKING:
    import torch

    from hubbench.features import SourceFeatures
    from hubbench.hubs.base import Hub
    from hubbench.tasks.base import Task

RANKERS: Registry[type[Ranker]] = Registry("ranker")


class NotScored(Exception):
    """A source the ranker cannot score (e.g. it has no classifier); the message says why."""


@dataclass(frozen=True)
class Score:
    value: float
    weights: torch.Tensor | None = None  # a model fitted on the features that others reuse (LogME's [C, D] means)


class Ranker(Plugin):
    """A transferability score: a plugin (`hubbench.params.Plugin`) registered with `hubbench.rankers.register`,
    whose `score` rates one source for a task from its pre-trained features without training it (higher: expected
    to transfer better)."""

    REGISTRY: ClassVar[Registry] = RANKERS
    RECORD: ClassVar[type[RankingRecord]] = RankingRecord

    def applicable(self, hub: Hub, task: Task) -> tuple[bool, str]:
        """Whether the ranker is defined for this task, and why not."""
        return meaningful(task)

    @abstractmethod
    def score(self, features: SourceFeatures, targets: torch.Tensor) -> Score:
        """The source's score from its features and the task's `ranking_targets`; raises NotScored."""


register = Ranker.register  # @register: a frozen dataclass, registered under its `name`
parse_spec = Ranker.parse  # `name[k=v,...]` -> (ranker class, typed explicit parameters)


def classification_only(task: Task, per_class: bool = False) -> tuple[bool, str]:
    if task.kind != "classification":
        return False, f"defined for classification tasks, not {task.kind}"
    return meaningful(task, per_class)


def meaningful(task: Task, per_class: bool = False) -> tuple[bool, str]:
    """Whether a score of the task's training split can mean anything. With one class every source
    explains the labels alike (LogME and H-score still return finite numbers, and an order). A score
    that estimates a distribution of the target classes per source class (`per_class`: LEEP's and
    NCE's P(y | z)) also needs at least as many samples as classes."""
    if task.kind != "classification":
        return True, ""
    y = task.ranking_targets(task.splits["train"].targets)
    present, classes = len(y.unique()), int(y.max()) + 1
    if present < 2:
        return False, f"one class in the training split of {task.name!r}: a score that compares classes means nothing"
    if per_class and len(y) < classes:
        return False, (f"{len(y)} training samples for {classes} classes in {task.name!r}: too few to "
                       "estimate P(target class | source class)")
    return True, ""


@dataclass(frozen=True)
class Ranking:
    """A ranker's scores of every source of a hub for a task, and what they cost."""

    ranker: str
    key: str
    scores: dict[str, float]  # the sources it scored
    reasons: dict[str, str]  # why it scored none of the others
    weights: dict[str, torch.Tensor] = field(repr=False)
    features: dict[str, dict]  # per source: its features' key, seconds and dimension
    score_s: float

    @property
    def features_s(self) -> float:
        return sum(f["seconds"] for f in self.features.values())

    def top(self, k: int) -> list[str]:
        """The `k` best-scored sources, best first (ties in hub order; a score that is not a finite number ranks
        none)."""
        return sorted((s for s, v in self.scores.items() if math.isfinite(v)), key=lambda s: -self.scores[s])[:k]


@preserved_rng()
def ranking(ranker: Ranker, hub: Hub, task: Task, *, cache: Path, device: torch.device) -> Ranking:
    """`ranker`'s ranking of `hub` for `task`: from the cache, else scored now from the sources'
    cached features. Shared by the ranking cells (every seed) and by the methods that reuse it.
    Built or loaded, it leaves the caller's random streams as they were (building a source's model
    draws from them), so a method that ranks trains alike whatever the cache holds."""
    from hubbench.features import source_features

    feats = {s: source_features(hub, task, s, cache=cache, device=device) for s in hub.names}
    key = digest({"ranker": ranker.id, "params": ranker.params, "features": {s: f.key for s, f in feats.items()}})
    path = cache / "rankings" / hub.name / task.name / f"{ranker.id}-{key}.pt"
    meta = path.with_suffix(".json")

    def build() -> None:
        scores, reasons, weights, seconds = score_all(ranker, task, feats)
        save_torch(path, weights)
        write_json(meta, {"ranker": ranker.id, "key": key, "scores": scores, "reasons": reasons, "score_s": seconds})

    build_once((path, meta), build)
    info = read_json(meta)
    return Ranking(ranker.id, key, info["scores"], info["reasons"], load_torch(path),
                   {s: {"key": f.key, "seconds": f.seconds, "dim": f.features.shape[1]} for s, f in feats.items()},
                   info["score_s"])


def score_all(ranker: Ranker, task: Task, feats: dict[str, SourceFeatures]):
    targets = task.ranking_targets(task.splits["train"].targets)
    scores, reasons, weights = {}, {}, {}
    start = time.perf_counter()
    for source, f in feats.items():
        try:
            result = ranker.score(f, targets)
        except NotScored as e:
            reasons[source] = str(e)
            continue
        scores[source] = result.value
        if result.weights is not None:
            weights[source] = result.weights
    return scores, reasons, weights, time.perf_counter() - start
