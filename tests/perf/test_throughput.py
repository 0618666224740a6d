"""Throughput ratios (pytest-benchmark, `tox -e perf`): each figure is a ratio of two things timed in the same run,
rounds interleaved (A B A B ...), so that it holds on a machine whose speed drifts. The ratio is in the
benchmark's `extra_info` and printed; pytest-benchmark's own table times the second of the pair.

CPU versions run here with small models; on CUDA (when present) the same pairs run at the papers' sizes.
"""

import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hubbench.benchmark.profiling import sgd_step
from hubbench.hubs import HUBS
from hubbench.methods._zoo_tuning import AdaAggConv, Gate
from hubbench.methods.hub_pathway import HubPathwayMethod
from hubbench.models import task_model
from hubbench.tasks import TASKS
from hubbench.training import Runtime, Schedule, train

pytest.importorskip("pytest_benchmark", reason="the benchmarks need the perf extra: pip install -e .[perf]")

CUDA = torch.cuda.is_available()
TINY_PLUGIN = Path(__file__).resolve().parent.parent / "tiny_plugin.py"
DEVICE = torch.device("cuda" if CUDA else "cpu")
ROUNDS = 5


def paired(benchmark, baseline, candidate, rounds: int = ROUNDS, name: str = "ratio") -> float:
    """Time `baseline` and `candidate` in turn for `rounds` rounds after one warm-up of each; return (and record)
    median(baseline time) / median(candidate time): above 1, the candidate is faster."""
    times = []

    def setup():
        start = time.perf_counter()
        baseline()
        times.append(time.perf_counter() - start)

    baseline(), candidate()
    benchmark.pedantic(candidate, setup=setup, rounds=rounds, iterations=1)
    ratio = statistics.median(times) / benchmark.stats.stats.median
    benchmark.extra_info.update({name: ratio, "baseline_median_s": statistics.median(times), "device": DEVICE.type,
                                 "threads": torch.get_num_threads()})
    print(f"\n{benchmark.name}: {name} = {ratio:.3f}")
    return ratio


def synced(fn):
    def run():
        fn()
        if CUDA:
            torch.cuda.synchronize()
    return run


def small_net(classes: int) -> nn.Module:
    """A net whose step costs a few milliseconds on a CPU core, as a ResNet-50's does on a GPU: what the input
    pipeline and the loop around the step must keep up with."""
    torch.manual_seed(0)
    return nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(3, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, classes))


def model_and_batch():
    """The papers' step on CUDA (ResNet-50 at 224 px, batch 48); a mini-hub MiniResNet at 32 px, batch 32, on a CPU."""
    if CUDA:
        from torchvision.models import resnet50

        model = resnet50(num_classes=100)
        x, y = torch.randn(48, 3, 224, 224), torch.randint(0, 100, (48,))
    else:
        task = TASKS.get("digits")()
        model = task_model(HUBS.get("mini")().sources[0].backbone(pretrained=False), task)
        x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    return model.to(DEVICE), x, y


STEPS = 20
BATCH = 48 if CUDA else 16  # of the file-fed benchmark


def test_runner_step_vs_bare_step(benchmark):
    """`hubbench.training.train` fed the batch as a cell feeds it (from host memory) against a bare loop over the
    same batch already on the device: the loop's own cost (prefetching, lr schedule, loss bookkeeping)."""
    model, x, y = model_and_batch()
    runtime = Runtime().resolve(DEVICE)
    xd, yd = x.to(DEVICE), y.to(DEVICE)
    bare = sgd_step(model, TASKS.get("digits")(), xd, yd, runtime)
    schedule = Schedule(iterations=STEPS, lr=1e-4, batch_size=len(x))

    def loss(m, xb, yb):
        return nn.functional.cross_entropy(m(xb), yb)

    def bare_loop():
        for _ in range(STEPS):
            bare()

    def runner():
        train(model, loss, lambda it: (x, y), schedule, seed=0, device=DEVICE, runtime=runtime)

    assert paired(benchmark, synced(bare_loop), synced(runner), name="runner_over_bare") > 0


@pytest.fixture(scope="module")
def jpeg_task(tmp_path_factory):
    """A DMLab-layout task of 500x375 JPEGs (the issue's file sizes), squashed to 256 and cropped to 224, its
    cache built."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train800val200", 96), ("test", 12)):
        lines = []
        for i in range(n):
            path = root / "dmlab" / split / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            noise = rng.normal(128, 50, (75, 100, 3)).repeat(5, 0).repeat(5, 1)
            Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(path, quality=90)
            lines.append(f"{split}/{i}.jpg {i % 6}")
        (root / "dmlab" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUBBENCH_DATA_DIR", str(root))
        cls = TASKS.get("dmlab")
        task = cls(cls.protocol.replace(batch_size=BATCH))
        task.pixels("train")  # decoded once, here
        yield task


def test_file_fed_vs_in_memory_training(benchmark, jpeg_task):
    """Training on a file task (cache read, crops, flips and normalisation staged and prefetched) against the same
    loop fed one ready batch from memory: what the input pipeline costs when the step is fast."""
    task = jpeg_task
    if CUDA:  # the papers' model; a net of a few ms per step on a CPU core
        from torchvision.models import resnet50

        model = resnet50(num_classes=6).to(DEVICE)
    else:
        model = small_net(6).to(DEVICE)
    schedule = Schedule(iterations=STEPS, lr=1e-4, batch_size=BATCH)
    n = len(task.splits["train"])
    ready = task.train_batch(torch.arange(BATCH), torch.Generator().manual_seed(0))

    def loss(m, xb, yb):
        return task.loss(m(xb), yb)

    def stage(it):
        from hubbench.seeding import generator
        from hubbench.training import batch_indices

        return task.stage_train(batch_indices(n, BATCH, it, 0), generator(0, "aug", it))

    runtime = Runtime().resolve(DEVICE)

    def in_memory():
        train(model, loss, lambda it: ready, schedule, seed=0, device=DEVICE, runtime=runtime)

    def file_fed():
        train(model, loss, stage, schedule, seed=0, device=DEVICE, runtime=runtime)

    assert paired(benchmark, synced(in_memory), synced(file_fed), name="file_fed_over_in_memory") > 0


@pytest.mark.parametrize("cells", [2, 4])
def test_cells_per_device(benchmark, cells):
    """Total training throughput of `cells` processes stepping a cell's model at once, over one process's."""
    from hubbench.benchmark.cells import Cell
    from hubbench.benchmark.packing import throughput
    from hubbench.benchmark.plugins import load_plugins
    from hubbench.benchmark.suites import Suite
    from hubbench.methods import METHODS

    hub = "resnet50-zoo" if CUDA else "tiny"  # random weights on CUDA, seconds to build here
    task = "cifar100" if CUDA else "digits"
    plugins = () if CUDA else (str(TINY_PLUGIN),)
    load_plugins(plugins)
    suite = Suite("perf", "", (hub,), (task,), ("scratch",), (0,), {})
    cell = Cell(suite, hub, task, METHODS.get("scratch")(), 0)
    runtime = Runtime()
    rates = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")  # the copies get it with the settings
        benchmark.pedantic(
            lambda: rates.update({cells: throughput(cell, DEVICE, runtime, cells, seconds=5, plugins=plugins)}),
            setup=lambda: rates.update({1: throughput(cell, DEVICE, runtime, 1, seconds=5, plugins=plugins)}),
            rounds=1, iterations=1)
    benchmark.extra_info.update({"cells": cells, "samples_s": rates, f"x{cells}_over_x1": rates[cells] / rates[1]})
    print(f"\n{cells} cells / 1 cell: {rates[cells] / rates[1]:.2f}x ({rates})")


def test_hub_pathway_vs_ensemble_i_training_step(benchmark):
    """Hub-Pathway's training step (k=2 of the hub's five models, routed) against training all five models on
    the batch (Ensemble-I's members): routing should cost what it saves."""
    hub = HUBS.get("mini")()
    task = TASKS.get("digits")()
    torch.manual_seed(0)
    method = HubPathwayMethod()
    routed = method.build(hub, task, pretrained=False).to(DEVICE).train()
    members = [task_model(s.backbone(pretrained=False), task) for s in hub.sources]
    x, y = torch.randn(32, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (32,), device=DEVICE)
    objective = method.objective(task)
    opt_routed = torch.optim.SGD(routed.parameters(), lr=1e-4, momentum=0.9)
    ensemble = nn.ModuleList(members)
    opt_ensemble = torch.optim.SGD(ensemble.parameters(), lr=1e-4, momentum=0.9)

    def ensemble_step():
        loss = sum(task.loss(m(x), y) for m in ensemble)
        opt_ensemble.zero_grad(set_to_none=True)
        loss.backward()
        opt_ensemble.step()

    def pathway_step():
        loss = objective(routed, x, y)
        opt_routed.zero_grad(set_to_none=True)
        loss.backward()
        opt_routed.step()

    assert paired(benchmark, synced(ensemble_step), synced(pathway_step), name="ensemble_over_pathway") > 0


# ResNet-50's convolution shapes: (in, out, kernel, stride, input side)
RESNET50_CONVS = {"stem 7x7": (3, 64, 7, 2, 224), "layer1 3x3": (64, 64, 3, 1, 56), "layer2 3x3": (128, 128, 3, 1, 28),
                  "layer3 3x3": (256, 256, 3, 1, 14), "layer4 3x3": (512, 512, 3, 1, 7),
                  "layer3 1x1": (1024, 256, 1, 1, 14), "layer4 1x1": (2048, 512, 1, 1, 7)}


@pytest.mark.parametrize("shape", list(RESNET50_CONVS))
def test_adaagg_formulations_per_resnet50_layer(benchmark, shape):
    """Zoo-Tuning's layer (five sources, aligned) forward and backward: the official per-sample grouped
    convolution against one dense convolution over all sources with gated output mixing."""
    cin, cout, k, stride, side = RESNET50_CONVS[shape]
    batch = 48 if CUDA else 2
    torch.manual_seed(0)
    convs = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False) for _ in range(5)]
    layer = AdaAggConv(convs, Gate(cin, 5), align=k > 1).to(DEVICE)
    x = torch.randn(batch, cin, side, side, device=DEVICE)
    runtime = Runtime().resolve(DEVICE)

    def run(formulation):
        def step():
            layer.formulation = formulation
            with runtime.autocast(DEVICE):
                y = layer(x)
            y.float().square().mean().backward()
        return synced(step)

    assert paired(benchmark, run("grouped"), run("dense"), name="grouped_over_dense") > 0
