"""The profiler: FLOPs follow what runs, active params follow routing, and the model is left as it was."""

import pytest
import torch
import torch.nn.functional as F
from conftest import write_suite
from helpers import make_ctx, make_task, untrained
from torch import nn

from hubbench import record as records
from hubbench.artifacts import FinetunedSource
from hubbench.benchmark.cli import main
from hubbench.benchmark.profiling import (
    DEPLOYED_STEP,
    MEMORY_MEASURE,
    OWN_STEP,
    LiveTensorBytes,
    Settings,
    StageTimer,
    active_params,
    flops,
    profile,
    time_training,
)
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


def test_training_is_timed_as_the_method_trains_its_teacher_and_parameters_included(tiny_hub):
    """The method's step (what `ctx.train` was given) is its loss, which here also runs a teacher, over its
    parameters; the model comes back as it was, BatchNorm statistics included, and the record takes its figures."""
    task = make_task("clutter")
    model = task_model(tiny_hub.sources[0].backbone(pretrained=False), task).eval()
    teacher = nn.Conv2d(3, 1024, 3, padding=1).eval()  # its output: 4 x 1024 x 32 x 32 floats, 16 MiB
    calls = []

    def loss(m, x, y):
        calls.append(m.training)
        out = m(x)
        with torch.no_grad():
            target = teacher(x).mean()
        return task.loss(out, y) + 0 * target

    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings, cpu = Settings(batch=4, warmup=1, repeats=2), torch.device("cpu")
    own = time_training(model, loss, list(model.head.parameters()), task, cpu, settings, OWN_STEP)
    assert calls == [True] * (1 + 1 + 2)  # the memory step, the warm-up, the repeats: in training mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert all(p.grad is None for p in model.parameters())
    result, deployed = profile(model, task, cpu, settings, own), profile(model, task, cpu, settings)
    assert (result.memory.train_mb, result.speed.train_samples_s, result.speed.train_step) == (
        own.train_mb, own.samples_s, OWN_STEP)
    assert deployed.speed.train_step == DEPLOYED_STEP and result.memory.infer_mb == deployed.memory.infer_mb
    assert own.train_mb > 16 > deployed.memory.train_mb  # the teacher's output is the method's memory too


def test_the_stage_timer_times_a_cells_own_stages_not_the_artifacts_it_trains(tiny_hub):
    calls = []
    with untrained() as cache:  # `ctx.train` trains nothing here: every call of the loss is the timer's
        ctx = make_ctx(tiny_hub, "clutter", scope="cell", cache=cache)
        timer = ctx.on_stage = StageTimer("cell", Settings(batch=4, warmup=1, repeats=1))
        ctx.artifact(FinetunedSource(tiny_hub.names[0]))  # trained in its own scope, for every cell to reuse
        assert timer.last is None
        model = task_model(tiny_hub.sources[0].backbone(pretrained=False), ctx.task)
        ctx.train(model, lambda m, x, y: calls.append(len(x)) or ctx.task.loss(m(x), y), key="student")
    assert timer.last.step == OWN_STEP and calls == [4, 4, 4]


def test_records_say_what_their_training_speed_timed(tiny_hub, tmp_path):
    """K-Flow folds its mixed stages once trained: its step is timed before, as it trained."""
    suite = write_suite(tmp_path, methods=("scratch", "kflow", "finetune[model=supervised]"), iterations=2)
    assert main(["run", "--suite", str(suite), "--results", str(tmp_path)]) == 0
    steps = {m: records.read(tmp_path / f"tiny/tiny/digits/{m}/seed0.json").complexity.speed.train_step
             for m in ("scratch", "kflow", "finetune@model=supervised")}
    assert steps == {"scratch": OWN_STEP, "kflow": OWN_STEP, "finetune@model=supervised": DEPLOYED_STEP}
