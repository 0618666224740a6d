"""Zoo-Tuning and Zoo-Tuning-L: the aggregation layer, the merge, the fold, applicability."""

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import make_ctx, make_task
from torch import nn

from hubbench.benchmark.profiling import flops
from hubbench.hubs.archs import MiniResNet
from hubbench.hubs.base import Hub, Source
from hubbench.methods import METHODS, parse_spec
from hubbench.methods._zoo_tuning import AdaAggConv, Gate, fold
from hubbench.methods.zoo_tuning import ZooTuning
from hubbench.methods.zoo_tuning_lite import ZooTuningL
from hubbench.models import task_model
from hubbench.training import Runtime

M = 3


def force_gates(model: nn.Module, gates: torch.Tensor) -> list:
    """Make every Gate of `model` return `gates` [m] for each sample; returns the hook handles."""
    return [m.register_forward_hook(lambda mod, inputs, out: gates.expand(len(inputs[0]), -1))
            for m in model.modules() if isinstance(m, Gate)]


def convs_of(model: nn.Module) -> list[str]:
    """Names of the backbone's convolutions, plain or aggregating (not the gates' own convs)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, AdaAggConv)) and ".gate." not in n]


def layer(align: bool, cin=6, cout=8, k=3, groups=1, bias=False, lite=False):
    torch.manual_seed(0)
    convs = [nn.Conv2d(cin, cout, k, 2, k // 2, groups=groups, bias=bias) for _ in range(M)]
    return convs, AdaAggConv(convs, Gate(cin, M, lite=lite), align=align)


@pytest.mark.parametrize("align", [False, True])
def test_one_hot_gates_give_the_chosen_source_conv(align):
    convs, agg = layer(align, bias=True)
    if align:  # a non-trivial alignment: A_e W_e mixes the source's output channels by A_e
        with torch.no_grad():
            agg.align.copy_(torch.randn_like(agg.align))
    x = torch.randn(4, 6, 9, 9)
    for e, conv in enumerate(convs):
        hooks = force_gates(agg, F.one_hot(torch.tensor(e), M).float())
        with torch.no_grad():
            expected = conv(x)
            if align:
                expected = torch.einsum("op,bphw->bohw", agg.align[e], expected - conv.bias[:, None, None])
                expected = expected + conv.bias[:, None, None]
            assert torch.allclose(agg(x), expected, atol=1e-5)
        for h in hooks:
            h.remove()


def test_per_sample_aggregation_matches_a_loop_over_samples():
    convs, agg = layer(True, groups=2)
    x = torch.randn(5, 6, 7, 7)
    with torch.no_grad():
        agg.align.add_(0.1 * torch.randn_like(agg.align))
        g = agg.gate(x)
        assert g.shape == (5, M) and ((g > 0) & (g < 1)).all()
        w = torch.einsum("eop,epijk->eoijk", agg.align, agg.weight)
        loop = torch.cat([F.conv2d(x[b : b + 1], torch.einsum("e,eoijk->oijk", g[b], w), None, 2, 1, 1, 2)
                          for b in range(len(x))])
        assert torch.allclose(agg(x), loop, atol=1e-5)


def test_alignment_at_identity_is_a_no_op():
    _, aligned = layer(True)
    _, plain = layer(False)
    assert aligned.align is not None and plain.align is None
    plain.gate.load_state_dict(aligned.gate.state_dict())
    x = torch.randn(3, 6, 8, 8)
    with torch.no_grad():
        assert torch.allclose(aligned(x), plain(x), atol=1e-6)


def test_inference_reuses_the_aligned_kernels_until_they_change():
    _, agg = layer(True)
    x = torch.randn(3, 6, 8, 8)
    with torch.no_grad():
        first = agg.aligned()
        assert agg.aligned() is first  # computed once for every inference batch
        agg.align.mul_(2.0)  # an in-place update (optimiser step, load_state_dict) invalidates it
        assert torch.allclose(agg.aligned(), 2 * first) and torch.allclose(agg(x), agg.cpu()(x))
    assert agg.aligned().requires_grad  # training differentiates through A_e W_e every step


def test_cached_aligned_kernels_serve_inference_with_and_without_autocast():
    """The runner's order: the last evaluation under bf16 autocast, then the profiler without it."""
    _, agg = layer(True)
    agg.eval()
    x = torch.randn(3, 6, 8, 8)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = agg(x)
        full = agg(x)  # a kernel cached in bf16 under autocast fails here (fp32 x bf16 einsum)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(agg(x), low)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    torch.testing.assert_close(full, layer(True)[1].eval()(x).detach())  # the cache is that of fp32 weights
    torch.testing.assert_close(low.float(), full, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("lite", [False, True])
def test_channels_last_gives_the_contiguous_outputs(tiny_hub, lite):
    model = task_model((ZooTuningL() if lite else ZooTuning()).merge(tiny_hub), make_task("clutter"))
    with torch.no_grad():
        for gate in (m for m in model.modules() if isinstance(m, Gate) and m.lite):
            gate.ema.uniform_()  # the EMA of trained gates, not its zeros at start
    x, cpu, nhwc = torch.randn(4, 3, 32, 32), torch.device("cpu"), Runtime(channels_last=True)
    for training in (True, False):
        model.train(training)
        converted = nhwc.model(copy.deepcopy(model), cpu)  # Module.to(memory_format=...) refuses rank-5 kernels
        agg = converted.backbone.conv1
        assert agg.weight.dim() == 5 and agg.gate.net[1].weight.is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            expected = copy.deepcopy(model)(x)
            torch.testing.assert_close(converted(nhwc.batch(x, cpu)), expected, rtol=1e-4, atol=1e-5)


def test_zoo_tuning_inference_flops_per_sample_do_not_depend_on_the_batch(tiny_hub):
    model = task_model(ZooTuning().merge(tiny_hub), make_task("clutter")).eval()
    small, large = (flops(model, torch.randn(n, 3, 32, 32))["fvcore_gflops"] for n in (2, 16))
    assert small == pytest.approx(large, rel=1e-4)  # recomputed per batch: 4x at batch 2


def test_alignment_only_where_asked_and_k_above_one(tiny_hub):
    merged = ZooTuning().merge(tiny_hub)
    aligned = {n for n, m in merged.named_modules() if isinstance(m, AdaAggConv) and m.align is not None}
    assert aligned == {"conv1", "layer2.conv1", "layer2.conv2", "layer3.conv1", "layer3.conv2"}
    assert not any(m.align is not None for m in ZooTuning(align="none").merge(tiny_hub).modules()
                   if isinstance(m, AdaAggConv))
    with pytest.raises(ValueError, match="match no convolution"):
        ZooTuning(align="layer9").merge(tiny_hub)


def test_auto_alignment_is_the_papers_choice_on_resnet50():
    from hubbench.hubs.zoo import RESNET50

    assert ZooTuning().align_prefixes(RESNET50()) == ("conv1", "layer3", "layer4")


def source_with_bn_of(merged: nn.Module, source: nn.Module) -> None:
    for name, m in merged.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.load_state_dict(source.get_submodule(name).state_dict())


@pytest.mark.parametrize("e", range(5))
def test_merged_backbone_with_one_hot_gates_is_that_source(tiny_hub, e):
    merged = ZooTuning().merge(tiny_hub)
    source = tiny_hub.sources[e].backbone().eval()
    source_with_bn_of(merged, source)  # BN starts at the sources' mean, reset: give it source e's state
    force_gates(merged, F.one_hot(torch.tensor(e), len(tiny_hub.sources)).float())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(merged.eval()(x), source(x), atol=1e-5)


def test_merge_initialises_bn_to_the_source_mean_with_reset_statistics(tiny_hub):
    merged = ZooTuning().merge(tiny_hub)
    states = [s.backbone().state_dict() for s in tiny_hub.sources]
    bn = merged.layer2.bn1
    assert torch.allclose(bn.weight, torch.stack([s["layer2.bn1.weight"] for s in states]).mean(0))
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert torch.equal(merged.layer1.conv2.weight[3], states[3]["layer1.conv2.weight"])


def test_lite_gates_train_on_the_batch_mean_and_keep_an_ema(tiny_hub):
    merged = ZooTuningL().merge(tiny_hub).train()
    gate = merged.layer2.conv1.gate
    seen = []
    gate.net.register_forward_hook(lambda mod, inputs, out: seen.append(out.detach()))
    merged(torch.randn(6, 3, 32, 32))
    assert torch.allclose(gate.ema, 0.1 * seen[0].mean(0)) and not gate.ema.requires_grad


@pytest.mark.parametrize("lite_downsample", [True, False])
def test_folded_lite_model_matches_the_unfolded_one(tiny_hub, lite_downsample):
    merged = ZooTuningL(lite_downsample=lite_downsample).merge(tiny_hub).train()
    with torch.no_grad():
        for _ in range(3):  # updates the gate EMAs and the BN statistics
            merged(torch.randn(8, 3, 32, 32))
    folded = fold(merged)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(folded(x), merged.eval()(x), atol=1e-5)
    unfolded = {n for n, m in folded.named_modules() if isinstance(m, AdaAggConv)}
    shortcuts = {n for n in convs_of(merged) if ".downsample." in n}
    assert len(shortcuts) == 3 and unfolded == (set() if lite_downsample else shortcuts)


def test_folded_model_is_exactly_one_backbone(tiny_hub):
    folded = fold(ZooTuningL().merge(tiny_hub))
    single = tiny_hub.sources[0].backbone()
    assert [type(m) for m in folded.modules()] == [type(m) for m in single.modules()]
    assert convs_of(folded) == convs_of(single) and all(isinstance(folded.get_submodule(n), nn.Conv2d)
                                                        for n in convs_of(folded))
    assert [(n, p.shape) for n, p in folded.named_parameters()] == [(n, p.shape) for n, p in single.named_parameters()]
    assert [(n, b.shape) for n, b in folded.named_buffers()] == [(n, b.shape) for n, b in single.named_buffers()]
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in single.parameters())


def test_fit_records_val_gates_and_lite_returns_the_folded_model(tiny_hub):
    for cls in (ZooTuning, ZooTuningL):
        ctx = make_ctx(tiny_hub, scope=f"zoo/{cls.name}", iterations=1, eval_every=0)
        model = cls().fit(ctx)
        gates = ctx.diagnostics["gates"]
        assert list(gates) == convs_of(tiny_hub.sources[0].backbone())
        assert ctx.diagnostics["gate_sources"] == tiny_hub.names
        assert all(len(v) == len(tiny_hub.names) and all(0 <= g <= 1 for g in v) for v in gates.values())
        assert any(isinstance(m, AdaAggConv) for m in model.modules()) == (cls is ZooTuning)


def test_not_applicable_to_a_heterogeneous_hub():
    weights = dict
    hub = Hub("mixed", "", (Source("a", "mini-resnet", "", MiniResNet, weights),
                            Source("b", "vit", "", MiniResNet, weights)))
    for name in ("zoo_tuning", "zoo_tuning_l"):
        ok, reason = METHODS.get(name)().applicable(hub, make_task())
        assert not ok and "mixed" in reason


def test_hyper_parameters_parse_from_a_spec():
    cls, params = parse_spec("zoo_tuning_l[align=conv1+layer3,momentum=0.2,lite_downsample=false]")
    method = cls(**params)
    assert method == ZooTuningL(align="conv1+layer3", momentum=0.2, lite_downsample=False)
    assert method.id == "zoo_tuning_l[align=conv1+layer3,momentum=0.2,lite_downsample=False]"


@pytest.mark.parametrize("bias", [False, True])
def test_dense_formulation_equals_the_grouped_one_with_its_gradients(bias):
    """The dense all-sources conv with gated output mixing computes the official grouped layer's function."""
    outputs, grads = [], []
    for formulation in ("grouped", "dense"):
        _, agg = layer(True, k=3, bias=bias)
        with torch.no_grad():
            agg.align.add_(0.1 * torch.randn(agg.align.shape, generator=torch.Generator().manual_seed(1)))
        agg.formulation = formulation
        x = torch.randn(5, 6, 9, 9, generator=torch.Generator().manual_seed(2), requires_grad=True)
        y = agg(x)
        y.pow(2).sum().backward()
        assert agg.chosen == formulation
        outputs.append(y.detach())
        grads.append([x.grad, agg.weight.grad, agg.align.grad, *[p.grad for p in agg.gate.parameters()]])
    assert torch.allclose(*outputs, atol=1e-5)
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_auto_formulation_keeps_the_official_layer_on_the_cpu_and_records_the_choice(tiny_hub):
    assert layer(False)[1].formulation == "auto"
    _, grouped = layer(False, groups=2)
    grouped.formulation = "dense"
    grouped(torch.randn(2, 6, 5, 5))
    assert grouped.chosen == "grouped"  # dense needs one group
    ctx = make_ctx(tiny_hub, scope="zoo-formulation", iterations=2, eval_every=0)
    ZooTuning().fit(ctx)
    assert set(ctx.diagnostics["formulation"].values()) == {"grouped"}
    with pytest.raises(ValueError, match="unknown zoo_tuning formulation 'fast'"):
        ZooTuning(formulation="fast")
