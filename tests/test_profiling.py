"""The profiler: FLOPs follow what runs, active params follow routing, and the model is left as it was."""

import pytest
import torch
import torch.nn.functional as F
from helpers import make_task
from torch import nn

from hubbench.benchmark.profiling import MEMORY_MEASURE, LiveTensorBytes, Settings, active_params, flops, profile
from hubbench.methods import METHODS, task_model


def pathway(hub, task, k):
    """Hub-Pathway with the parameter-free aggregator: the FLOPs beyond the generator are the routed models'."""
    torch.manual_seed(0)
    model = METHODS.get("hub_pathway")(k=k, aggregator="mean").build(hub, task, pretrained=False)
    nn.init.normal_(model.generator.logits.weight, std=1.0)  # spread the routing over the models
    return model.eval()


def test_fvcore_counts_a_multiply_add_once_flop_counter_twice():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 16, 5, bias=False))
    counted = flops(model.eval(), torch.randn(4, 3, 4, 4))
    macs = 8 * 3 * 9 * 16 + 8 * 16 * 5  # per sample
    assert counted["fvcore_gflops"] * 1e9 == pytest.approx(macs)
    assert counted["flop_counter_gflops"] * 1e9 == pytest.approx(2 * macs)
    assert counted["fvcore_unsupported"] == {}


class Attention(nn.Module):
    def __init__(self, fused: bool):
        super().__init__()
        self.fused = fused

    def forward(self, x):  # x: [B, heads, tokens, dim], attending to itself
        if self.fused:
            return F.scaled_dot_product_attention(x, x, x)
        return torch.softmax(x @ x.transpose(-2, -1) / x.shape[-1] ** 0.5, -1) @ x


def test_fvcore_counts_fused_attention_as_its_two_matmuls():
    x = torch.randn(2, 3, 16, 8)
    fused, explicit = flops(Attention(True), x), flops(Attention(False), x)
    assert fused["fvcore_gflops"] == explicit["fvcore_gflops"] == 3 * 16 * 16 * (8 + 8) / 1e9
    assert "aten::scaled_dot_product_attention" not in fused["fvcore_unsupported"]


def test_hub_pathway_top1_counts_one_mth_of_the_dense_backbone_flops(tiny_hub):
    task = make_task("clutter")
    x = next(task.eval_batches("test"))[:16]
    m = len(tiny_hub.sources)
    sparse, dense = pathway(tiny_hub, task, 1), pathway(tiny_hub, task, m)
    dense.load_state_dict(sparse.state_dict())
    gate = flops(sparse.generator, x)["fvcore_gflops"]
    routed = flops(sparse, x)["fvcore_gflops"] - gate
    everything = flops(dense, x)["fvcore_gflops"] - gate
    assert sparse.gate(x).active.float().sum(0).min() < len(x)  # samples really are split between models
    assert routed / everything == pytest.approx(1 / m, rel=0.03)


def test_active_params_weigh_each_model_by_the_share_of_samples_routed_to_it(tiny_hub):
    task = make_task("clutter")
    x = next(task.eval_batches("test"))[:16]
    model = pathway(tiny_hub, task, 1)
    share = model.gate(x).active.float().mean(0)
    sizes = torch.tensor([sum(p.numel() for p in m.parameters()) for m in model.models], dtype=torch.float)
    expected = sum(p.numel() for p in model.generator.parameters()) + (share * sizes).sum().item()
    assert active_params(model, x) == pytest.approx(expected)
    dense = task_model(tiny_hub.sources[0].backbone(pretrained=False), task).eval()
    assert active_params(dense, x) == sum(p.numel() for p in dense.parameters())


def test_cpu_memory_trace_counts_live_storages_once_and_releases_freed_ones():
    mib = 2**20 // 4  # float32 elements in one MiB
    with LiveTensorBytes() as trace:
        x = torch.zeros(mib)
        y = x + 1
        del y
        half = x[: mib // 2]  # a view: no storage of its own
        z = torch.cat([x, half])  # y was freed: x and z live, 2.5 MiB
    assert trace.peak == 2.5 * 2**20 and z.shape == (1.5 * mib,)


@pytest.mark.parametrize("task_name", ["clutter", "faces"])
def test_profile_measures_everything_and_leaves_the_model_unchanged(tiny_hub, task_name):
    task = make_task(task_name)
    model = task_model(tiny_hub.sources[0].backbone(pretrained=False), task).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = profile(model, task, torch.device("cpu"), Settings(batch=4, warmup=1, repeats=2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert result.params.total == result.params.trainable == result.params.active
    assert result.flops.batch == 4 and result.flops.fvcore_gflops > 0
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    memory = result.memory
    assert memory.device == "cpu" and memory.measure == MEMORY_MEASURE["cpu"]
    assert memory.train_mb > memory.infer_mb > weights_mb  # + gradients, momentum, saved activations
    speed = result.speed
    assert speed.infer_samples_s > 0 and speed.train_samples_s > 0
    assert (speed.batch, speed.precision, speed.repeats) == (4, "fp32", 2)
