"""Knowledge Flow (K-Flow; Liu, Peng & Schwing, ICLR 2019): a student that reads the teachers'
intermediate features while training and is weaned off them, so that it finally runs alone."""

from __future__ import annotations

import copy
import math
import re

import torch
from torch import nn

from hubbench.context import TaskModel, task_model
from hubbench.errors import InputError
from hubbench.methods._features import Frozen, resize_to
from hubbench.methods.base import Method, register

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


@register
class KFlow(Method):
    """Knowledge Flow. Student: the first hub model's architecture and pre-trained weights, with
    a new head. Teachers: every hub model (the first included), pre-trained and frozen. Each of
    the student's last `stages` stages mixes in the matching stage of every teacher (the
    teacher's own last `stages` stages, in order) as in `MixedStage`, the student's weight
    starting at `student_weight`.

    Loss = task loss of the mixed student + lambda(t) * sum over stages and teachers of w_j^2
    (the dependency loss; lambda rises linearly from 0 to `dependency_weight` over training)
    + `kl_weight` * task.distillation(mixed student, snapshot, `temperature`), the snapshot being
    a copy of the student refreshed every `refresh` fraction of training. The weight logits get
    no weight decay (it would pull them back to uniform). The predictor is the student alone.

    Not given by the sources (our choices): every constant here, and the initial 1/2 student
    weight (the pre-trained student is not drowned by randomly projected teacher features).
    Architectures may differ (1x1 transforms and resizing align the features): a teacher without
    stages named `layer<N>` (another family) gives its last feature map to every mixed stage.
    The student must name its stages so; otherwise the method is not applicable.
    """

    name = "kflow"
    description = "K-Flow: student mixing in frozen teachers' stage features, weaned off them by a dependency loss"
    stages: int = 2
    student_weight: float = 0.5
    dependency_weight: float = 100.0
    kl_weight: float = 1.0
    temperature: float = 1.0
    refresh: float = 0.1

    def __post_init__(self):
        if not 0 < self.student_weight < 1 or self.stages < 1:
            raise InputError(f"kflow needs 0 < student_weight < 1 and stages >= 1, got {self.student_weight}, "
                             f"{self.stages}")

    def applicable(self, hub, task):
        student = hub.sources[0]
        if len(stage_names(student.arch())) < self.stages:
            return False, (f"K-Flow mixes teachers into {self.stages} student stages named layer<N>; "
                           f"the student {student.name!r} has fewer")
        return True, ""

    def fit(self, ctx):
        task = ctx.task
        student = task_model(ctx.hub.sources[0].backbone(pretrained=True), task)
        teachers = [Frozen(s.backbone(pretrained=True)) for s in ctx.hub.sources]
        names = stage_names(student.backbone)[-self.stages:]
        teacher_taps = [taps(t.module, self.stages) for t in teachers]

        def teacher_features(x):  # [stage][teacher]
            per_teacher = [stage_outputs(t.to(x.device), tap, x) for t, tap in zip(teachers, teacher_taps, strict=True)]
            return [list(f) for f in zip(*per_teacher, strict=True)]

        size = task.protocol.image_size
        x0 = torch.zeros(2, 3, size, size)  # a dry run at the input size gives the channel counts
        student_taps = taps(student.backbone, self.stages)
        with torch.no_grad():
            channels = [f.shape[1] for f in stage_outputs(student.backbone.eval(), student_taps, x0)]
            teacher_channels = [[f.shape[1] for f in fs] for fs in teacher_features(x0)]
        model = KnowledgeFlow(student, names, channels, teacher_channels, self.student_weight)
        total = task.protocol.iterations
        every = max(1, round(self.refresh * total))

        def loss(m, x, y):
            step = int(m.step)
            if step % every == 0:
                m.old.load_state_dict(m.student.state_dict())
            features = teacher_features(x)
            out = m.flow(m.student, x, features)
            with torch.no_grad():
                old = m.flow(m.old, x, features)
            dependency = sum((s.weights()[1:] ** 2).sum() for s in m.mixed(m.student))
            m.step += 1
            return (task.loss(out, y) + self.dependency_weight * (step + 1) / total * dependency
                    + self.kl_weight * task.distillation(out, old, self.temperature))

        logits = [s.logits for s in model.mixed(model.student)]
        rest = [p for p in model.student.parameters() if all(p is not q for q in logits)]
        ctx.train(model, loss=loss, params=[{"params": rest}, {"params": logits, "weight_decay": 0.0}])
        ctx.diagnostics["kflow_teacher_weights"] = model.teacher_weights()
        return model.deploy().eval()
