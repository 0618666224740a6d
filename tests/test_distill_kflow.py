"""Distill learns from the ensemble of every fine-tuned hub model and reduces to fine-tuning
without its distillation term; K-Flow ends independent of its teachers."""

import pytest
import torch
from torch import nn
from transfer_helpers import forward_calls, same_state, small_ctx, state

from hubbench.methods import METHODS, FinetunedSource, TaskModel, _features, task_model
from hubbench.methods._kflow import MixedStage
from hubbench.staging import Staged


def distils_from_the_finetuned_ensemble(hub, scope) -> bool:
    """Whether the teacher outputs Distill trains on are the task's combination of every hub model
    fine-tuned on the task (Ensemble-I), on the very batches the student sees."""
    ctx = small_ctx(hub, scope)
    ensemble = [ctx.artifact(FinetunedSource(n)).eval() for n in hub.names]  # trained before the spies go in
    task, batches, teachers = ctx.task, [], []
    stage_train, distillation = task.stage_train, task.distillation

    def spied(*args):  # each batch as its finishing makes it
        stage = stage_train(*args)
        return Staged(stage.host, lambda host: batches.append(stage.finish(host)) or batches[-1])

    task.stage_train = spied
    task.distillation = lambda s, t, temperature: teachers.append(t.detach()) or distillation(s, t, temperature)
    try:
        METHODS.get("distill")().fit(ctx)
    finally:
        del task.stage_train, task.distillation
    with torch.no_grad():
        expected = [task.combine([m(x) for m in ensemble]) for x, _ in batches]
    return len(teachers) == len(expected) == task.protocol.iterations and all(
        torch.allclose(t, e, atol=1e-5) for t, e in zip(teachers, expected, strict=True))


def test_distill_teacher_is_the_ensemble_of_every_finetuned_model(tiny_hub, monkeypatch):
    assert distils_from_the_finetuned_ensemble(tiny_hub, "distill-teacher")
    finetuned = _features.finetuned_models
    wrong = {"pre-trained": lambda ctx: [task_model(s.backbone(), ctx.task) for s in ctx.hub.sources],
             "single": lambda ctx: finetuned(ctx)[:1]}
    for name, teachers in wrong.items():
        monkeypatch.setattr(_features, "finetuned_models", teachers)
        assert not distils_from_the_finetuned_ensemble(tiny_hub, f"distill-teacher/{name}"), name


def test_distill_with_zero_weight_is_finetuning_the_student(tiny_hub):
    results = {}
    for weight in (0.0, 1.0):
        ctx = small_ctx(tiny_hub, "distill-zero")
        torch.manual_seed(0)
        results[weight] = state(METHODS.get("distill")(weight=weight).fit(ctx))
        ctx.clear_checkpoints()
    ctx = small_ctx(tiny_hub, "distill-zero")
    torch.manual_seed(0)
    finetuned = state(ctx.train(task_model(tiny_hub.sources[0].backbone(pretrained=True), ctx.task)))
    ctx.clear_checkpoints()
    assert same_state(results[0.0], finetuned)
    assert not same_state(results[1.0], finetuned)


def test_mixed_stage_mixes_with_normalised_weights_and_runs_alone_without_teachers():
    stage = MixedStage(nn.Conv2d(2, 4, 1), 4, [3, 5], student_weight=0.5)
    x, t1, t2 = torch.randn(2, 2, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)
    w = stage.weights()
    assert torch.allclose(w, torch.tensor([0.5, 0.25, 0.25]))
    assert torch.equal(stage(x), stage.stage(x))
    stage.teacher_features = [t1, t2]
    q2 = nn.functional.interpolate(stage.transforms[1](t2), size=(4, 4), mode="bilinear")
    assert torch.allclose(stage(x), w[0] * stage.stage(x) + w[1] * stage.transforms[0](t1) + w[2] * q2, atol=1e-6)


def final_teacher_weight(method, hub, scope) -> tuple[float, nn.Module, object]:
    """The largest total weight of the teachers in a mixed stage after 100 steps of the task's
    protocol (the mini suite trains 300), the deployed model, and the task."""
    ctx = small_ctx(hub, scope, iterations=100)
    model = method.fit(ctx)
    ctx.clear_checkpoints()
    weights = ctx.diagnostics["kflow_teacher_weights"]
    assert len(weights) == method.stages
    return max(sum(w) for w in weights.values()), model, ctx.task


def test_kflow_at_its_default_weights_ends_independent_and_deploys_the_student_alone(tiny_hub):
    KFlow = METHODS.get("kflow")
    weight, model, task = final_teacher_weight(KFlow(), tiny_hub, "kflow-alone")
    assert weight < 0.1  # from 0.5 at the start; 0.06 measured
    # a student that keeps its teachers (no dependency loss) is rejected
    assert final_teacher_weight(KFlow(dependency_weight=0.0), tiny_hub, "kflow-keeps")[0] > 0.1
    assert isinstance(model, TaskModel) and not any(isinstance(m, MixedStage) for m in model.modules())
    plain = task_model(tiny_hub.sources[0].backbone(pretrained=False), task)
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = next(task.eval_batches("test"))[:4]
    with forward_calls(type(tiny_hub.sources[0].arch())) as calls, torch.no_grad():
        model(x)
    assert calls == [model.backbone]


def test_kflow_resumes_its_schedules_exactly(tiny_hub, monkeypatch):
    """The step counter and the old-student snapshot are checkpointed with the weights."""
    method = METHODS.get("kflow")(refresh=0.5)  # snapshots at steps 0 and 3; the crash is at step 4
    protocol = {"iterations": 6, "checkpoint_every": 2}
    ctx = small_ctx(tiny_hub, "kflow-resume", **protocol)
    torch.manual_seed(0)
    uninterrupted = state(method.fit(ctx))
    ctx.clear_checkpoints()

    ctx = small_ctx(tiny_hub, "kflow-resume", **protocol)
    calls, stage_train = [], ctx.task.stage_train

    def crash_at_five(idx, g, *splits):
        calls.append(idx)
        if len(calls) == 5:
            raise RuntimeError("killed")
        return stage_train(idx, g, *splits)

    monkeypatch.setattr(ctx.task, "stage_train", crash_at_five)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="killed"):
        method.fit(ctx)
    torch.manual_seed(1)  # another fresh initialisation: the checkpoint must override it
    resumed = state(method.fit(ctx))
    ctx.clear_checkpoints()
    assert len(calls) == 7 and same_state(uninterrupted, resumed)  # 5 batches before the crash, 2 after
