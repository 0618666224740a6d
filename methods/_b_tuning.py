"""B-Tuning's loss (`hubbench.methods.b_tuning`): imported by its `fit`, with torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hubbench.methods._features import Teachers
from hubbench.tasks.base import Task


def pooled(feature_map: torch.Tensor) -> torch.Tensor:
    """The features LogME was fitted on: the global average pool of a backbone's last map."""
    return feature_map.mean((2, 3))


def teacher_weights(scores: list[float], temperature: float) -> torch.Tensor:
    """pi = softmax(LogME scores / temperature): the better a teacher's evidence, the more it counts."""
    return torch.softmax(torch.tensor(scores, dtype=torch.float64) / temperature, 0).float()


class BTuningLoss:
    """task loss + tradeoff x MSE(f_target M_target^T, sum_k pi_k f_k M_k^T): the target's pooled
    features projected by its own LogME posterior means against the pi-weighted projections of the
    frozen teachers' (no gradient through them). Each M maps features to the C target columns of
    LogME (classes, or landmark coordinates), so teachers of any width and family compare."""

    def __init__(self, task: Task, target: torch.Tensor, teachers: list[nn.Module], projections: list[torch.Tensor],
                 pi: torch.Tensor, tradeoff: float):
        self.task, self.target, self.teachers = task, target, Teachers(teachers)
        self.projections, self.pi, self.tradeoff = projections, pi, tradeoff

    def __call__(self, model: nn.Module, x: torch.Tensor, y) -> torch.Tensor:
        feature_map = model.backbone(x)
        own = pooled(feature_map) @ self.target.to(x.device).T
        with torch.no_grad():
            mixed = sum(p * (pooled(f) @ m.to(x.device).T)
                        for p, f, m in zip(self.pi.tolist(), self.teachers(x), self.projections, strict=True))
        return self.task.loss(model.head(feature_map), y) + self.tradeoff * F.mse_loss(own.float(), mixed.float())
