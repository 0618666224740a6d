"""What cells share and resume through the cache, named without torch (`hubbench status` and the methods'
declarations use these names): what a method may reuse (`Method.needs`: the fine-tuned source artifact, a
ranking of the hub's sources) and the stems of the cached artifacts and of the stage checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from hubbench.params import Role
from hubbench.registry import check_name
from hubbench.seeding import digest

if TYPE_CHECKING:
    from hubbench.context import Context
    from hubbench.models import TaskModel


@dataclass(frozen=True)
class FinetunedSource:
    """Source `source` fine-tuned on the task with the task's protocol: the artifact that
    Fine-tune, Ensemble-I and every "+Finetuned" method share, trained once per seed."""

    role: ClassVar[Role] = Role.SINGLE_SOURCE  # what a search trial of it states (`hubbench.search.Trial`)

    source: str

    @property
    def id(self) -> str:
        return f"finetuned-{check_name('source', self.source)}"

    def build(self, ctx: Context, pretrained: bool) -> TaskModel:
        from hubbench.models import task_model

        return task_model(ctx.hub.source(self.source).backbone(pretrained), ctx.task)

    def train(self, ctx: Context, model: TaskModel) -> None:
        ctx.train(model)

    def fit(self, ctx: Context) -> TaskModel:
        """The source with a new head, trained on the task (what `Context.fit` runs, its initialisation seeded)."""
        model = self.build(ctx, pretrained=True)
        self.train(ctx, model)
        return model


@dataclass(frozen=True)
class HubRanking:
    """The ranking of the hub's sources for the task by ranker `ranker` (its id): made once from the sources'
    cached features, by the ranking cells or the first method that reads it (`hubbench.rankers.ranking`), which
    counts its cost in the cell's with `ctx.use(HubRanking(...).id, ...)`."""

    ranker: str

    @property
    def id(self) -> str:
        return f"ranking-{self.ranker}"


def checkpoint_stem(scope: str, seed: int, protocol) -> str:
    """The stage checkpoints of a scope (a cell or an artifact) are `checkpoints/<stem>-<stage key>.ckpt`;
    a changed protocol starts afresh."""
    return digest([scope, seed, dataclasses.asdict(protocol)])


def artifact_stem(cache: Path, hub: str, task: str, artifact: FinetunedSource, seed: int) -> Path:
    """Every cached version of an artifact (one per key) is `<stem>-<key>.pt`, its metadata `<stem>-<key>.json`."""
    return cache / "artifacts" / hub / task / f"{artifact.id}-seed{seed}"
