"""Ensemble-J: every pre-trained hub model learns from the one loss of the combined prediction."""

import torch
from helpers import make_ctx, untrained
from transfer_helpers import fit_recording_training, small_ctx

from hubbench.methods import METHODS, task_model
from hubbench.models import Ensemble

EnsembleJ = METHODS.get("ensemble_j")


class OneByOne(EnsembleJ):
    """Wrong: each member fine-tuned on its own, then combined (Ensemble-I without the artifacts)."""

    def fit(self, ctx):
        members = [ctx.train(task_model(s.backbone(), ctx.task), key=s.name) for s in ctx.hub.sources]
        return Ensemble(members, ctx.task.combine)


class OwnLosses(EnsembleJ):
    """Wrong: one training stage, but each member on the loss of its own prediction."""

    def fit(self, ctx):
        ensemble = Ensemble([task_model(s.backbone(), ctx.task) for s in ctx.hub.sources], ctx.task.combine)
        return ctx.train(ensemble, loss=lambda m, x, y: sum(ctx.task.loss(member(x), y) for member in m.members))


def trains_jointly(method, hub, scope) -> bool:
    """Whether `method.fit` trains the returned ensemble in one stage, on a loss through which each
    member's gradient depends on the other members' outputs (what makes them complement each other)."""
    with untrained() as cache:
        ctx = small_ctx(hub, scope, cache=cache)
        ensemble, stages = fit_recording_training(method, ctx)
    if len(stages) != 1 or stages[0][0] is not ensemble:
        return False
    task, loss = ctx.task, stages[0][1] or (lambda m, x, y: ctx.task.loss(m(x), y))
    x, y = task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    first, second = ensemble.train().members[:2]

    def first_member_grad():
        return torch.autograd.grad(loss(ensemble, x, y), list(first.head.parameters()))

    before = first_member_grad()
    with torch.no_grad():
        for p in second.head.parameters():
            p.add_(torch.randn_like(p))
    return not all(torch.allclose(a, b) for a, b in zip(before, first_member_grad(), strict=True))


def test_members_train_jointly_and_wrong_variants_are_rejected(tiny_hub):
    assert trains_jointly(EnsembleJ(), tiny_hub, "ensemble_j/joint")
    assert not trains_jointly(OneByOne(), tiny_hub, "ensemble_j/one-by-one")
    assert not trains_jointly(OwnLosses(), tiny_hub, "ensemble_j/own-losses")


def test_gradients_reach_every_member_from_the_joint_loss(tiny_hub):
    with untrained() as cache:
        ctx = make_ctx(tiny_hub, scope="ensemble_j/grad", cache=cache)
        ensemble = METHODS.get("ensemble_j")().fit(ctx)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == len(tiny_hub.sources)
    for member, source in zip(ensemble.members, tiny_hub.sources, strict=True):
        weights = source.weights()
        assert all(torch.equal(weights[k], v) for k, v in member.backbone.state_dict().items())
    x, y = ctx.task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    ctx.task.loss(ensemble.train()(x), y).backward()
    for member in ensemble.members:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in member.parameters())


def test_trains_jointly_without_artifacts_and_combines_the_members(tiny_hub):
    ctx = make_ctx(tiny_hub, scope="ensemble_j/train", iterations=2)
    ensemble = METHODS.get("ensemble_j")().fit(ctx)
    assert ctx.used == {} and ctx.train_seconds > 0 and list(ctx.curves) == ["train_loss", "val_top1", "test_top1"]
    for member, source in zip(ensemble.members, tiny_hub.sources, strict=True):
        weights = source.weights()
        assert not all(torch.equal(weights[k], v) for k, v in member.backbone.state_dict().items())
    x = next(ctx.task.eval_batches("test"))[:6]
    with torch.no_grad():
        probs = torch.stack([m(x).softmax(-1) for m in ensemble.members]).mean(0)
        assert torch.allclose(ensemble(x).exp(), probs, atol=1e-5)
