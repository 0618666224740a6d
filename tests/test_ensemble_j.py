"""Ensemble-J: every pre-trained hub model learns from the one loss of the combined prediction."""

import torch
from helpers import make_ctx
from hubbench.methods import METHODS
from hubbench.methods.ensemble_i import Ensemble


def test_gradients_reach_every_member_from_the_joint_loss(tiny_hub):
    ctx = make_ctx(tiny_hub, scope="ensemble_j/grad", iterations=0)
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
