"""B-Tuning's defining property: the loss pulls the target's LogME-projected features towards the
teachers' projected features averaged with softmax(LogME / temperature) weights."""

import pytest
import torch
import torch.nn.functional as F
from helpers import make_ctx
from hubbench.methods import METHODS, task_model
from hubbench.rankers import ranking
from hubbench.rankers.logme import LogME


@pytest.mark.parametrize("task_name", ["digits", "faces"])
def test_the_loss_is_the_task_loss_plus_the_score_weighted_projection_mse(task_name, tiny_hub):
    ctx = make_ctx(tiny_hub, task_name, scope=f"btuning/{task_name}")
    method = METHODS.get("b_tuning")(temperature=1e-3)  # the tiny hub's scores are close: sharpen them
    target, loss = method.loss(ctx)
    ranked = ranking(LogME(), tiny_hub, ctx.task, cache=ctx.cache, device=ctx.device)
    order = sorted(ranked.scores, key=ranked.scores.get, reverse=True)
    assert target == order[0] and ctx.diagnostics["b_tuning"]["teachers"] == order[:3]
    pi = torch.softmax(torch.tensor([ranked.scores[s] for s in order[:3]]) / 1e-3, 0)
    assert pi.max() - pi.min() > 0.05  # far from uniform: a uniform average fails below

    torch.manual_seed(0)
    model = task_model(tiny_hub.source(target).backbone(), ctx.task).train()
    x, y = ctx.task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        own = model.backbone(x).mean((2, 3)) @ ranked.weights[target].T
        teachers = [tiny_hub.source(s).backbone().eval()(x).mean((2, 3)) @ ranked.weights[s].T for s in order[:3]]
        mixed = sum(p * t for p, t in zip(pi.float(), teachers, strict=True))
        tradeoff = 100 * (0.03 if ctx.task.kind == "landmarks" else 1)  # against a heatmap MSE ~30x below CE
        expected = ctx.task.loss(model(x), y) + tradeoff * F.mse_loss(own, mixed)
        assert loss(model, x, y).item() == pytest.approx(expected.item(), rel=1e-5)


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
