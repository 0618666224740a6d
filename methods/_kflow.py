"""K-Flow's mixed stages and trained model (`hubbench.methods.kflow`): imported by its `fit`, with torch."""

from __future__ import annotations

import copy
import math
import re

import torch
from torch import nn

from hubbench.methods._features import resize_to
from hubbench.models import TaskModel

STAGE_RE = re.compile(r"layer(\d+)")


def stage_names(backbone: nn.Module) -> list[str]:
    """The backbone's stages in order: its children named `layer<N>` (torchvision's and MiniResNet's naming)."""
    found = [(int(m.group(1)), name) for name, _ in backbone.named_children() if (m := STAGE_RE.fullmatch(name))]
    return [name for _, name in sorted(found)]


def taps(backbone: nn.Module, n: int) -> list[nn.Module]:
    """Where a teacher is read for the student's last `n` stages: its own last `n` named stages,
    or, for an architecture without them (other families), its output for every one of them."""
    names = stage_names(backbone)
    return [getattr(backbone, name) for name in names[-n:]] if len(names) >= n else [backbone] * n


def stage_outputs(model: nn.Module, stages: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Run `model` on `x` and return the outputs of `stages` (submodules of it), in execution order."""
    out: list[torch.Tensor] = []
    hooks = [s.register_forward_hook(lambda _m, _i, o: out.append(o)) for s in stages]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return out


class MixedStage(nn.Module):
    """A student stage whose output, while teacher features are fed in, is the normalised mix
    w_0 * student + sum_j w_j * Q_j(teacher_j), with w = softmax(logits) and Q_j a trainable 1x1
    conv (teacher maps resized to the student's spatial size). Without teacher features it is the
    plain stage."""

    def __init__(self, stage: nn.Module, channels: int, teacher_channels: list[int], student_weight: float):
        super().__init__()
        self.stage = stage
        self.transforms = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in teacher_channels)
        m = len(teacher_channels)
        self.logits = nn.Parameter(torch.tensor([math.log(student_weight * m / (1 - student_weight))] + [0.0] * m))
        self.teacher_features: list[torch.Tensor] | None = None

    def weights(self) -> torch.Tensor:
        """[student, teacher_1, ..., teacher_m], summing to 1."""
        return self.logits.softmax(0)

    def forward(self, x):
        s = self.stage(x)
        if self.teacher_features is None:
            return s
        w = self.weights()
        mixed = [w[j] * resize_to(q(t), s.shape[-2:])
                 for j, (q, t) in enumerate(zip(self.transforms, self.teacher_features, strict=True), start=1)]
        return w[0] * s + sum(mixed)


class KnowledgeFlow(nn.Module):
    """What is trained: the student with mixed stages, a frozen snapshot of it (the 'old
    student' of the KL term, run like the student, on batch statistics in training) and the step
    counter. The snapshot and the step are state, so a run resumed from a checkpoint continues
    the schedules exactly. The teachers are not: they are frozen and rebuilt identically."""

    def __init__(self, student: TaskModel, names: list[str], channels: list[int],
                 teacher_channels: list[list[int]], student_weight: float):
        super().__init__()
        for name, c, tc in zip(names, channels, teacher_channels, strict=True):
            setattr(student.backbone, name, MixedStage(getattr(student.backbone, name), c, tc, student_weight))
        self.names = names
        self.student = student
        self.old = copy.deepcopy(student).requires_grad_(False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, x):  # the student alone: what is deployed (the training curves measure it)
        return self.student(x)

    @staticmethod
    def mixed(model: nn.Module) -> list[MixedStage]:
        return [m for m in model.modules() if isinstance(m, MixedStage)]

    def flow(self, model: nn.Module, x: torch.Tensor, features: list[list[torch.Tensor]]) -> torch.Tensor:
        """`model` (the student or its snapshot) on `x` with `features[stage][teacher]` flowing in."""
        stages = self.mixed(model)
        for stage, f in zip(stages, features, strict=True):
            stage.teacher_features = f
        try:
            return model(x)
        finally:
            for stage in stages:
                stage.teacher_features = None

    def teacher_weights(self) -> dict[str, list[float]]:
        return {n: s.weights()[1:].tolist() for n, s in zip(self.names, self.mixed(self.student), strict=True)}

    def deploy(self) -> TaskModel:
        """The student with its plain stages back: teachers, transforms and weights dropped."""
        for name in self.names:
            setattr(self.student.backbone, name, getattr(self.student.backbone, name).stage)
        return self.student
