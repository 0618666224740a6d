"""What cells share and resume through the cache, named without torch (`hubbench status` and the methods'
declarations use these names): the fine-tuned source artifact, and the stems of the cached artifacts and of
the stage checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubbench.registry import check_name
from hubbench.seeding import digest

if TYPE_CHECKING:
    from hubbench.context import Context
    from hubbench.models import TaskModel


@dataclass(frozen=True)
class FinetunedSource:
    """Source `source` fine-tuned on the task with the task's protocol: the artifact that
    Fine-tune, Ensemble-I and every "+Finetuned" method share, trained once per seed."""

    source: str

    @property
    def id(self) -> str:
        return f"finetuned-{check_name('source', self.source)}"

    def build(self, ctx: Context, pretrained: bool) -> TaskModel:
        from hubbench.models import task_model

        return task_model(ctx.hub.source(self.source).backbone(pretrained), ctx.task)

    def train(self, ctx: Context, model: TaskModel) -> None:
        ctx.train(model)


def checkpoint_stem(scope: str, seed: int, protocol) -> str:
    """The stage checkpoints of a scope (a cell or an artifact) are `checkpoints/<stem>-<stage key>.ckpt`;
    a changed protocol starts afresh."""
    return digest([scope, seed, dataclasses.asdict(protocol)])


def artifact_stem(cache: Path, hub: str, task: str, artifact: FinetunedSource, seed: int) -> Path:
    """Every cached version of an artifact (one per key) is `<stem>-<key>.pt`, its metadata `<stem>-<key>.json`."""
    return cache / "artifacts" / hub / task / f"{artifact.id}-seed{seed}"


def clear_artifact(cache: Path, hub: str, task: str, artifact: FinetunedSource, seed: int) -> int:
    """Delete every cached version of an artifact, metadata first (what marks one complete); returns how
    many files went. The next cell that needs it trains it again."""
    stem = artifact_stem(cache, hub, task, artifact, seed)
    files = [p for suffix in (".json", ".pt") for p in sorted(stem.parent.glob(f"{stem.name}-*{suffix}"))
             if "-" not in p.stem.removeprefix(f"{stem.name}-")]  # a key, not another source's name
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)
