"""The models methods build from hub models: a backbone with a task head, and an ensemble of members whose
outputs the task combines (`Task.combine`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from hubbench.tasks.base import Task


class TaskModel(nn.Module):
    """A backbone followed by a task head: the model every fine-tuning method trains."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        return self.head(self.backbone(x))


def task_model(backbone: nn.Module, task: Task) -> TaskModel:
    """`backbone` with a new head of `task` (`Task.head`), fitted to the backbone's `out_channels`."""
    return TaskModel(backbone, task.head(backbone.out_channels))


class Ensemble(nn.Module):
    """Runs every member and lets the task combine their outputs (probabilities for
    classification, heatmaps for landmarks)."""

    def __init__(self, members: list[nn.Module], combine):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x):
        return self.combine([m(x) for m in self.members])
