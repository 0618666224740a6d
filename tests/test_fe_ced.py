"""FE and CED: frozen sources stay frozen; CED deploys a single backbone."""

import pytest
import torch
import torch.nn.functional as F
from helpers import untrained
from torch import nn
from transfer_helpers import fit_recording_training, forward_calls, same_state, small_ctx, state

from hubbench.methods import METHODS, FinetunedSource, _features
from hubbench.methods._features import ConcatFeatures, Frozen, resize_to, source_backbones


def test_concat_features_resizes_to_the_first_map_and_frozen_ignores_train_mode():
    small, big = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 6, 3, stride=2, padding=1)
    features = ConcatFeatures([Frozen(small), Frozen(big)])
    x = torch.randn(2, 3, 8, 8)
    out = features(x)
    assert features.out_channels == 10 and out.shape == (2, 10, 8, 8)
    assert torch.equal(out[:, :4], small(x))
    features.train()
    assert not any(m.training for b in features.backbones for m in b.modules())
    assert not any(p.requires_grad for p in features.parameters())


@pytest.mark.parametrize("name", ["fe", "fe_ft"])
def test_fe_trains_the_head_and_leaves_every_source_bit_identical(name, tiny_hub):
    ctx = small_ctx(tiny_hub, f"fe-frozen/{name}")
    method = METHODS.get(name)()
    if method.needs(tiny_hub, ctx.task):
        expected = [state(ctx.artifact(FinetunedSource(n)).backbone) for n in tiny_hub.names]
    else:
        expected = [s.weights() for s in tiny_hub.sources]
    initial_heads, train = [], ctx.train

    def spy(model, **kw):  # record the head before training, to check that it trains
        initial_heads.append(state(model.head))
        return train(model, **kw)

    ctx.train = spy
    model = method.fit(ctx)
    assert not same_state(initial_heads[0], state(model.head))
    for frozen, weights in zip(model.backbone.backbones, expected, strict=True):
        assert same_state(state(frozen.module), weights)
    x = next(ctx.task.eval_batches("test"))[:4]
    with forward_calls(type(tiny_hub.sources[0].arch())) as calls, torch.no_grad():
        model(x)
    assert len(calls) == len(tiny_hub.sources)


@pytest.mark.parametrize("name", ["ced", "ced_ft"])
def test_ced_deploys_one_backbone_with_one_adapter_per_source(name, tiny_hub):
    ctx = small_ctx(tiny_hub, f"ced-one/{name}")
    model = METHODS.get(name)().fit(ctx)
    assert len(model.adapters) == len(tiny_hub.sources)
    x = next(ctx.task.eval_batches("test"))[:4]
    with forward_calls(type(tiny_hub.sources[0].arch())) as calls, torch.no_grad():
        out = model(x)
    assert calls == [model.backbone] and torch.isfinite(out).all()


def test_ced_feature_loss_moves_the_adapters(tiny_hub):
    """The task loss alone also trains the adapters (through the head): the feature term must change them."""
    adapters = []
    for weight in (0.0, 1.0):
        ctx = small_ctx(tiny_hub, "ced-weight")
        torch.manual_seed(0)
        adapters.append(state(METHODS.get("ced")(feature_weight=weight).fit(ctx).adapters))
        ctx.clear_checkpoints()
    assert not same_state(*adapters)


class ShuffledTeachers(_features.Teachers):
    """Wrong: the teachers' features come back in another order than the hub's."""

    def __call__(self, x):
        out = super().__call__(x)
        return out[1:] + out[:1]


def adapter_i_regresses_model_i(name, hub, scope) -> bool:
    """Whether CED's training loss is the task loss of the head on the concatenated adapters plus
    `feature_weight` x the mean over i of the MSE between adapter i's output and hub model i's map."""
    with untrained() as cache:
        ctx = small_ctx(hub, scope, cache=cache)
        method = METHODS.get(name)(feature_weight=2.0)
        teachers = [Frozen(b) for b in source_backbones(ctx, method.finetuned)]  # before the spy: no artifact training
        model, [(trained, loss)] = fit_recording_training(method, ctx)
    x, y = ctx.task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = model.train().features(x)
        mse = [F.mse_loss(f, resize_to(t(x), f.shape[-2:])) for f, t in zip(feats, teachers, strict=True)]
        expected = ctx.task.loss(model.head(torch.cat(feats, 1)), y) + 2.0 * sum(mse) / len(mse)
        return trained is model and torch.allclose(loss(model, x, y), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["ced", "ced_ft"])
def test_ced_adapter_i_regresses_hub_model_i(name, tiny_hub, monkeypatch):
    assert adapter_i_regresses_model_i(name, tiny_hub, f"ced-pairs/{name}")
    monkeypatch.setattr(_features, "Teachers", ShuffledTeachers)
    assert not adapter_i_regresses_model_i(name, tiny_hub, f"ced-pairs/{name}-shuffled")
