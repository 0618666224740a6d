"""Hub-Pathway: routing, aggregation, the three losses and their split, diagnostics."""

import math

import pytest
import torch
from helpers import make_ctx, make_task
from hubbench.hubs import get_hub
from hubbench.methods import METHODS, task_model
from hubbench.methods.hub_pathway import HubPathway, PathwayGenerator, negative_entropy, pathway_losses
from torch import nn


def pathway(hub, task, k, seed=0):
    """An untrained Hub-Pathway over `hub` whose generator gives non-uniform gates."""
    torch.manual_seed(seed)
    models = [task_model(s.backbone(), task) for s in hub.sources]
    generator = PathwayGenerator(len(models), size=16, width=8)
    nn.init.normal_(generator.logits.weight)
    return HubPathway(models, generator, task.combine, k)


def batch(task, n=12):
    return task.train_batch(torch.arange(n), torch.Generator().manual_seed(0))


def test_with_k_equal_to_m_it_is_the_dense_weighted_aggregate(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=len(tiny_hub.sources)).eval()
    x, _ = batch(task)
    with torch.no_grad():
        clean, _ = model.generator(x)
        dense = task.combine([m(x) for m in model.models], clean.softmax(-1))
        assert model(x).shape == (len(x), task.num_classes) and torch.allclose(model(x), dense, atol=1e-5)
        assert model.gate(x).active.all()


def test_each_model_sees_only_its_routed_samples(tiny_hub):
    task, k = make_task(), 2
    model = pathway(tiny_hub, task, k).train()
    x, _ = batch(task, 16)
    seen = {i: [] for i in range(len(model.models))}
    for i, m in enumerate(model.models):
        m.register_forward_hook(lambda mod, args, out, i=i: seen[i].append(args[0]))
    with torch.no_grad():
        p = model.pathways(x)
    assert (p.gate.active.sum(1) == k).all()
    assert torch.allclose(p.gate.weights.sum(1), torch.ones(len(x)))
    assert ((p.gate.weights > 0) == p.gate.active).all()
    assert sum(len(s[0]) for s in seen.values() if s) == k * len(x)
    for i, inputs in seen.items():
        routed = p.gate.active[:, i]
        if not routed.any():
            assert inputs == [] and i not in p.routed
            continue
        assert len(inputs) == 1 and torch.equal(inputs[0], x[routed])
        assert torch.equal(p.routed[i][0], routed.nonzero().squeeze(1))


def test_sparse_prediction_is_the_weighted_aggregate_of_the_routed_models(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=2, seed=1).eval()
    x, _ = batch(task)
    with torch.no_grad():
        gate = model.gate(x)
        assert torch.allclose(model(x), task.combine([m(x) for m in model.models], gate.weights), atol=1e-5)


def test_gate_is_noisy_in_training_only(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=2)
    x, _ = batch(task)
    with torch.no_grad():
        assert not torch.equal(model.train().gate(x).dense, model.gate(x).dense)
        assert torch.equal(model.eval().gate(x).dense, model.gate(x).dense)


def test_exploration_term_is_minimal_for_a_uniform_mean_gate():
    m = 5
    uniform = torch.full((m,), 1 / m)
    assert math.isclose(negative_entropy(uniform).item(), -math.log(m), rel_tol=1e-6)
    # the batch mean matters, not each sample: one-hot gates that cover the models evenly are optimal
    assert math.isclose(negative_entropy(torch.eye(m).mean(0)).item(), -math.log(m), rel_tol=1e-6)
    for seed in range(5):
        other = torch.rand(m, generator=torch.Generator().manual_seed(seed)).softmax(0)
        assert negative_entropy(other) > negative_entropy(uniform)
    assert negative_entropy(torch.eye(m)[0]).item() == 0


def test_generator_learns_from_task_and_explore_models_from_task_and_exploit(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=2).train()
    x, y = batch(task, 16)
    p = model.pathways(x)
    gen, members = list(model.generator.parameters()), list(model.models.parameters())

    def reaches(loss, params):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return any(g is not None and g.abs().sum() > 0 for g in grads)

    task_loss, explore, exploit = pathway_losses(p, task, y)
    assert reaches(task_loss, gen) and reaches(task_loss, members)
    assert reaches(explore, gen) and not reaches(explore, members)
    assert reaches(exploit, members) and not reaches(exploit, gen)
    # exploitation trains each activated model on its own samples, and only those
    for i, m in enumerate(model.models):
        assert reaches(exploit, list(m.head.parameters())) == (i in p.routed)


def test_fit_records_routing_diagnostics(tiny_hub):
    ctx = make_ctx(tiny_hub, scope="pathway/diag", iterations=2)
    model = METHODS.get("hub_pathway")(k=3).fit(ctx)
    diag = ctx.diagnostics["pathway"]
    assert diag["split"] == "test" and diag["k"] == 3 and model.k == 3
    assert list(diag["activation"]) == tiny_hub.names
    assert math.isclose(sum(diag["activation"].values()), 3, rel_tol=1e-5)
    assert math.isclose(sum(diag["mean_weight"].values()), 1, rel_tol=1e-5)
    assert len(diag["per_class"]) == ctx.task.num_classes
    for stats in diag["per_class"].values():
        assert math.isclose(sum(stats["activation"].values()), 3, rel_tol=1e-5)


def test_k_must_fit_the_hub(tiny_hub):
    cls = METHODS.get("hub_pathway")
    assert cls().applicable(tiny_hub, None) == (True, "")
    for k in (0, len(tiny_hub.sources) + 1):
        ok, reason = cls(k=k).applicable(tiny_hub, None)
        assert not ok and "k=" in reason


@pytest.mark.parametrize("k", [1, 2])
def test_trains_on_a_heterogeneous_hub(tiny_hub, k):
    hub = get_hub("tiny-hetero")
    assert not hub.homogeneous
    ctx = make_ctx(hub, scope=f"pathway/hetero{k}", iterations=2)
    model = METHODS.get("hub_pathway")(k=k).fit(ctx)
    x = next(ctx.task.eval_batches("test"))[:4]
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, ctx.task.num_classes) and torch.isfinite(out).all()
