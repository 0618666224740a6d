"""Knowledge Flow (K-Flow; Liu, Peng & Schwing, ICLR 2019): a student that reads the teachers'
intermediate features while training and is weaned off them, so that it finally runs alone."""

from __future__ import annotations

from hubbench.errors import InputError
from hubbench.methods.base import Method, register


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
        from hubbench.methods._kflow import stage_names

        student = hub.sources[0]
        if len(stage_names(student.arch())) < self.stages:
            return False, (f"K-Flow mixes teachers into {self.stages} student stages named layer<N>; "
                           f"the student {student.name!r} has fewer")
        return True, ""

    def fit(self, ctx):
        import torch

        from hubbench.methods._features import Frozen
        from hubbench.methods._kflow import KnowledgeFlow, stage_names, stage_outputs, taps
        from hubbench.models import task_model

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
