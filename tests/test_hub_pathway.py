"""Hub-Pathway: routing, the kept top-k weights, the learned aggregator, the three losses and their
split, the generator's size per hub, diagnostics."""

import math

import pytest
import torch
from helpers import make_ctx, make_task
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hubbench.hubs import get_hub
from hubbench.methods import METHODS
from hubbench.methods._hub_pathway import LinearAggregator, WeightedMean, negative_entropy, pathway_losses
from hubbench.tasks import TASKS

HubPathway = METHODS.get("hub_pathway")


def pathway(hub, task, k, seed=0, **params):
    """An untrained Hub-Pathway over `hub` whose generator gives non-uniform gates."""
    torch.manual_seed(seed)
    model = HubPathway(k=k, **params).build(hub, task)
    nn.init.normal_(model.generator.logits.weight, std=0.3)
    return model


def batch(task, n=12):
    return task.train_batch(torch.arange(n), torch.Generator().manual_seed(0))


def reaches(loss, params) -> bool:
    """Whether `loss` has a non-zero gradient for any of `params`."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_with_k_equal_to_m_it_is_the_dense_weighted_sum_at_the_start(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=len(tiny_hub.sources)).eval()
    x, _ = batch(task)
    with torch.no_grad():
        clean, _ = model.generator(x)
        dense = clean.softmax(-1)
        weighted_sum = sum(w[:, None] * m(x) for w, m in zip(dense.T, model.models, strict=True))
        assert model(x).shape == (len(x), task.num_classes) and torch.allclose(model(x), weighted_sum, atol=1e-5)
        assert model.gate(x).active.all()


@pytest.mark.parametrize("renormalise", [False, True])
def test_each_model_sees_only_its_routed_samples_and_kept_weights_are_g(tiny_hub, renormalise):
    task, k = make_task(), 2
    model = pathway(tiny_hub, task, k, renormalise=renormalise).train()
    x, _ = batch(task, 16)
    seen = {i: [] for i in range(len(model.models))}
    for i, m in enumerate(model.models):
        m.register_forward_hook(lambda mod, args, out, i=i: seen[i].append(args[0]))
    with torch.no_grad():
        p = model.pathways(x)
    assert (p.gate.active.sum(1) == k).all()
    assert ((p.gate.weights > 0) == p.gate.active).all()
    active, dense = p.gate.active, p.gate.dense
    assert (dense.masked_fill(~active, 1).min(1).values >= dense.masked_fill(active, 0).max(1).values).all()
    kept = dense * active  # the paper's top-k: the k largest G(x)_i as they are
    expected = kept / kept.sum(1, keepdim=True) if renormalise else kept
    assert torch.allclose(p.gate.weights, expected)
    assert sum(len(s[0]) for s in seen.values() if s) == k * len(x)
    for i, inputs in seen.items():
        routed = p.gate.active[:, i]
        if not routed.any():
            assert inputs == [] and i not in p.routed
            continue
        assert len(inputs) == 1 and torch.equal(inputs[0], x[routed])
        assert torch.equal(p.routed[i][0], routed.nonzero().squeeze(1))


@pytest.mark.parametrize("aggregator", ["linear", "mean"])
def test_sparse_prediction_is_the_aggregate_of_the_routed_weighted_outputs(tiny_hub, aggregator):
    task = make_task()
    model = pathway(tiny_hub, task, k=2, seed=1, aggregator=aggregator).eval()
    x, _ = batch(task)
    with torch.no_grad():
        gate = model.gate(x)
        outputs = [m(x) for m in model.models]
        if aggregator == "mean":
            assert isinstance(model.aggregator, WeightedMean) and not list(model.aggregator.parameters())
            expected = task.combine(outputs, gate.weights)
        else:  # A's weights moved away from the sum: A is a linear map of the concatenated weighted outputs
            nn.init.normal_(model.aggregator.weight, std=0.1)
            z = torch.cat([w[:, None] * o for w, o in zip(gate.weights.T, outputs, strict=True)], 1)
            expected = z @ model.aggregator.weight.T + model.aggregator.bias
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_linear_aggregator_maps_dense_outputs_per_position():
    agg = LinearAggregator(models=3, channels=4)
    nn.init.normal_(agg.weight)
    outputs, weights = [torch.randn(2, 4, 5, 6) for _ in range(3)], torch.rand(2, 3)
    out = agg(outputs, weights)
    z = torch.cat([w.view(-1, 1, 1, 1) * o for w, o in zip(weights.T, outputs, strict=True)], 1)
    conv = nn.functional.conv2d(z, agg.weight[:, :, None, None], agg.bias)
    assert out.shape == (2, 4, 5, 6) and torch.allclose(out, conv, atol=1e-5)


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


def test_generator_and_aggregator_learn_from_task_and_explore_models_from_task_and_exploit(tiny_hub):
    task = make_task()
    model = pathway(tiny_hub, task, k=2).train()
    x, y = batch(task, 16)
    p = model.pathways(x)
    gen, agg, members = (list(m.parameters()) for m in (model.generator, model.aggregator, model.models))

    task_loss, explore, exploit = pathway_losses(p, task, y)
    assert reaches(task_loss, gen) and reaches(task_loss, agg) and reaches(task_loss, members)
    assert reaches(explore, gen) and not reaches(explore, agg) and not reaches(explore, members)
    assert reaches(exploit, members) and not reaches(exploit, gen) and not reaches(exploit, agg)
    # exploitation trains each activated model on its own samples, and only those
    for i, m in enumerate(model.models):
        assert reaches(exploit, list(m.head.parameters())) == (i in p.routed)


def task_gradient_per_logit(model, task, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """d task loss / d clean logits [B, m], and which models each sample is routed through [B, m]."""
    clean = []
    model.generator.register_forward_hook(lambda mod, args, out: clean.append(out[0]))
    p = model.pathways(x)
    task_loss, _, _ = pathway_losses(p, task, y)
    (grad,) = torch.autograd.grad(task_loss, clean[0])
    return grad, p.gate.active


@pytest.mark.parametrize("k", [1, 2])
def test_the_task_loss_reaches_every_logit_of_the_generator(tiny_hub, k):
    """With the kept top-k weights G(x)_i, the task loss depends on all m logits through the
    softmax, even with k = 1. Renormalised weights (the wrong definition) cut it: with k = 1 the
    generator gets no task gradient at all, with k = 2 none to the logits of unselected models."""
    task = make_task()
    x, y = batch(task, 16)
    grads = {}
    for renormalise in (False, True):
        model = pathway(tiny_hub, task, k=k, renormalise=renormalise).train()
        torch.manual_seed(0)  # the same gate noise for both
        grads[renormalise] = task_gradient_per_logit(model, task, x, y)
    (grad, _), (wrong, active) = grads[False], grads[True]
    nonzero = grad.abs().max() * 1e-6  # v / v has rounding error in its gradient, not a signal
    assert (grad.abs() > nonzero).all()
    assert (wrong.abs() < nonzero).all() if k == 1 else (wrong[~active].abs() < nonzero).all()


def test_fit_trains_the_aggregator_and_records_routing_diagnostics(tiny_hub):
    ctx = make_ctx(tiny_hub, scope="pathway/diag", iterations=2)
    method = HubPathway(k=3)
    torch.manual_seed(0)
    initial = method.build(tiny_hub, ctx.task).aggregator.weight.detach().clone()
    torch.manual_seed(0)
    model = method.fit(ctx)
    assert not torch.equal(model.aggregator.weight, initial)
    diag = ctx.diagnostics["pathway"]
    assert diag["generator"] == {"arch": "mini", "size": 23}
    assert diag["split"] == "test" and diag["k"] == 3 and model.k == 3
    assert list(diag["activation"]) == tiny_hub.names
    assert math.isclose(sum(diag["activation"].values()), 3, rel_tol=1e-5)
    assert 0 < sum(diag["mean_weight"].values()) <= 1 + 1e-6  # the kept G(x)_i: at most their total, 1
    assert len(diag["per_class"]) == ctx.task.num_classes
    for stats in diag["per_class"].values():
        assert math.isclose(sum(stats["activation"].values()), 3, rel_tol=1e-5)


def test_k_must_fit_the_hub_and_k1_needs_a_task_gradient(tiny_hub):
    assert HubPathway().applicable(tiny_hub, None) == (True, "")
    assert HubPathway(k=1).applicable(tiny_hub, None) == (True, "")
    for k in (0, len(tiny_hub.sources) + 1):
        ok, reason = HubPathway(k=k).applicable(tiny_hub, None)
        assert not ok and "k=" in reason
    for params in ({"renormalise": True}, {"aggregator": "mean"}):
        ok, reason = HubPathway(k=1, **params).applicable(tiny_hub, None)
        assert not ok and "no task gradient" in reason
        assert HubPathway(k=2, **params).applicable(tiny_hub, None) == (True, "")
    for params in ({"aggregator": "max"}, {"generator": "vit"}, {"gate_scale": 0.0}):
        with pytest.raises(ValueError, match=next(iter(params))):
            HubPathway(**params)


def generator_to_source(model, task) -> tuple[float, float]:
    """(params, FLOPs) of the generator over those of one hub model, at the task's input size."""
    x = torch.zeros(1, 3, task.protocol.image_size, task.protocol.image_size)
    costs = []
    for m in (model.generator, model.models[0]):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            m.eval()(x)
        costs.append((sum(p.numel() for p in m.parameters()), counter.get_total_flops()))
    return costs[0][0] / costs[1][0], costs[0][1] / costs[1][1]


def test_generator_size_scales_with_the_hub(tiny_hub):
    """The paper's table implies a generator of ~0.42x a source's params and ~0.22x its FLOPs
    (ResNet-50 hub, k=2); ResNet-18 on 160 px gives 0.47x and 0.22x, the mini generator about the same."""
    task = TASKS.get("cifar100")()
    model = HubPathway().build(get_hub("resnet50-zoo"), task, pretrained=False)
    assert abs(sum(p.numel() for p in model.parameters()) / 128.43e6 - 1) < 0.015  # the paper's 128.43 M
    params, flops = generator_to_source(model, task)
    assert 0.4 < params < 0.5 and 0.2 < flops < 0.25
    task = make_task()
    params, flops = generator_to_source(HubPathway().build(tiny_hub, task), task)
    assert 0.4 < params < 0.55 and 0.2 < flops < 0.3


@pytest.mark.parametrize("k", [1, 2])
def test_trains_on_a_heterogeneous_hub(tiny_hub, k):
    hub = get_hub("tiny-hetero")
    assert not hub.homogeneous
    ctx = make_ctx(hub, scope=f"pathway/hetero{k}", iterations=2)
    model = HubPathway(k=k).fit(ctx)
    x = next(ctx.task.eval_batches("test"))[:4]
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, ctx.task.num_classes) and torch.isfinite(out).all()


def test_routing_is_read_from_the_device_once_for_all_models():
    """A per-model `nonzero` waits for the device once per model; the routes are read in one go."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from hubbench.methods._hub_pathway import route

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.nonzero = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.nonzero += func.overloadpacket is torch.ops.aten.nonzero
            return func(*args, **(kwargs or {}))

    active = torch.rand(12, 5, generator=torch.Generator().manual_seed(0)) < 0.4
    active[:, 3] = False  # a model no sample goes to
    with Count() as count:
        routes = route(active)
    assert count.nonzero == 1
    assert sorted(routes) == [i for i in range(5) if active[:, i].any()]
    for i, idx in routes.items():
        assert torch.equal(idx, active[:, i].nonzero().squeeze(1))


def test_routed_models_train_without_cudnn_autotuning_of_each_batch_size(monkeypatch):
    from torch import nn

    from hubbench.training import Schedule, shape_stable, train

    seen = []

    class Routed(nn.Linear):
        dynamic_shapes = True

    model = nn.Sequential(Routed(4, 2))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)

    def loss(m, x, y):
        seen.append(torch.backends.cudnn.benchmark)
        return m(x).pow(2).mean()

    train(model, loss, lambda it: (torch.randn(3, 4), None), Schedule(2, 0.1, 3), seed=0)
    assert seen == [False, False] and torch.backends.cudnn.benchmark
    with shape_stable(nn.Linear(2, 2)):
        assert torch.backends.cudnn.benchmark  # models of fixed shapes keep the autotuner


def test_a_lone_sample_at_a_one_by_one_map_is_normalised_by_the_running_statistics():
    """At 32 px a ResNet's last maps are 1 x 1: a model routed one sample in training gets no batch statistic (PyTorch
    refuses it); it is normalised as at test time, and the model stays in training mode. Several samples, or one
    at a larger map, run as before."""
    import torch
    from torch import nn

    from hubbench.methods._hub_pathway import routed_through

    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.BatchNorm2d(4)).train()
    lone = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        model(lone)
    out = routed_through(model, lone)
    assert model.training and torch.equal(out, model.eval()(lone))
    model.train()
    pair = torch.randn(2, 3, 8, 8)
    assert torch.equal(routed_through(model, pair), model(pair))
