"""B-Tuning's defining property: the loss pulls the target's LogME-projected features towards the
teachers' projected features averaged with softmax(LogME / temperature) weights."""

import pytest
import torch
import torch.nn.functional as F
from helpers import make_ctx

from hubbench.methods import METHODS, task_model
from hubbench.rankers import ranking
from hubbench.rankers.logme import LogME
from hubbench.seeding import seed_everything


def feature_term(hub, ranked, model, x, teachers, pi):
    """MSE(the model's pooled features x its LogME means, the pi-weighted teachers' projections), written
    out; the graph reaches the model's backbone."""
    own = model.backbone(x).mean((2, 3)) @ ranked.weights[model.source].T
    with torch.no_grad():
        projected = [hub.source(s).backbone().eval()(x).mean((2, 3)) @ ranked.weights[s].T for s in teachers]
        mixed = sum(p * t for p, t in zip(pi.float(), projected, strict=True))
    return F.mse_loss(own, mixed)


def setup(hub, task_name, **params):
    ctx = make_ctx(hub, task_name, scope=f"btuning/{task_name}")
    method = METHODS.get("b_tuning")(temperature=1e-3, **params)  # the tiny hub's scores are close: sharpen them
    target, loss = method.loss(ctx)
    ranked = ranking(LogME(), hub, ctx.task, cache=ctx.cache, device=ctx.device)
    torch.manual_seed(0)
    model = task_model(hub.source(target).backbone(), ctx.task).train()
    model.source = target
    x, y = ctx.task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    return ctx, ranked, loss, model, x, y


@pytest.mark.parametrize("task_name", ["digits", "faces"])
def test_the_loss_is_the_task_loss_plus_the_score_weighted_projection_mse(task_name, tiny_hub):
    ctx, ranked, loss, model, x, y = setup(tiny_hub, task_name)
    order = sorted(ranked.scores, key=ranked.scores.get, reverse=True)
    assert model.source == order[0] and ctx.diagnostics["b_tuning"]["teachers"] == order[:3]
    pi = torch.softmax(torch.tensor([ranked.scores[s] for s in order[:3]]) / 1e-3, 0)
    assert pi.max() - pi.min() > 0.05  # far from uniform: a uniform average fails below
    weight = 100 * 1e-3 / ctx.task.protocol.lr  # the script's lr x tradeoff, 0.1, at the protocol's lr
    with torch.no_grad():
        expected = ctx.task.loss(model(x), y) + weight * feature_term(tiny_hub, ranked, model, x, order[:3], pi)
        assert loss(model, x, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_feature_term_trains_the_tuned_model(tiny_hub):
    """Without its gradient (the target's features detached) B-Tuning is plain fine-tuning."""
    ctx, ranked, loss, model, x, y = setup(tiny_hub, "digits")
    info = ctx.diagnostics["b_tuning"]
    params = list(model.backbone.parameters())
    total = torch.autograd.grad(loss(model, x, y), params)
    task = torch.autograd.grad(ctx.task.loss(model(x), y), params)
    term = info["weight"] * feature_term(tiny_hub, ranked, model, x, info["teachers"], torch.tensor(info["pi"]))
    expected = torch.autograd.grad(term, params)
    norm = sum(e.norm() ** 2 for e in expected).sqrt()
    assert norm > 1e-3 * sum(t.norm() ** 2 for t in task).sqrt()
    assert sum(((a - b) - e).norm() ** 2 for a, b, e in zip(total, task, expected, strict=True)).sqrt() < 1e-3 * norm


def test_the_tuned_model_can_be_left_out_of_its_teachers(tiny_hub):
    ctx, ranked, *_ = setup(tiny_hub, "digits", self_teacher=False)
    order = sorted(ranked.scores, key=ranked.scores.get, reverse=True)
    info = ctx.diagnostics["b_tuning"]
    assert info["target"] == order[0] and info["teachers"] == order[1:4]
    ctx, _, *_ = setup(tiny_hub, "digits", model=order[2], self_teacher=False)
    assert ctx.diagnostics["b_tuning"]["teachers"] == [s for s in order if s != order[2]][:3]


def test_runs_on_a_heterogeneous_hub_with_teachers_of_different_families(cache):
    from conftest import PLUGIN

    from hubbench.benchmark.plugins import load_plugins
    from hubbench.hubs import get_hub

    load_plugins([str(PLUGIN)])
    hub = get_hub("tiny-hetero")
    ctx = make_ctx(hub, "digits", scope="btuning/hetero", iterations=2)
    model = METHODS.get("b_tuning")().fit(ctx)
    teachers = ctx.diagnostics["b_tuning"]["teachers"]
    assert len(teachers) == 3 and len({hub.source(t).family for t in teachers}) == 3
    assert torch.isfinite(model(next(ctx.task.eval_batches("test"))[:2])).all()
    assert any(k.startswith("ranking-logme") for k in ctx.used)


def test_trains_alike_whether_its_ranking_was_cached_or_not(tiny_hub, tmp_path):
    """Building the ranking (a model per source) draws from the random streams; loading it does not. The
    tuned model must not depend on which happened: a ranking cell that ran first changed B-Tuning's records."""
    trained = []
    for cache, ranked_first in ((tmp_path / "built", False), (tmp_path / "loaded", True)):
        ctx = make_ctx(tiny_hub, "digits", scope="btuning/cache", cache=cache, iterations=2)
        if ranked_first:
            ranking(LogME(), tiny_hub, ctx.task, cache=cache, device=ctx.device)
        seed_everything(0)
        trained.append(METHODS.get("b_tuning")().fit(ctx).state_dict())
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])
