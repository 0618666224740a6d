"""The GPU runner options, checked on the CPU, where each acts: precision, memory format, compile, determinism."""

import json

import torch
from conftest import hubbench, write_suite
from torch import nn

from hubbench.training import Runtime, Schedule, predict, train

SCHED = Schedule(iterations=4, lr=0.1, batch_size=8)


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def batch_at(it):
    g = torch.Generator().manual_seed(it)
    return torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)


def loss(m, x, y):
    return nn.functional.cross_entropy(m(x), y)


def trained(runtime: Runtime) -> nn.Module:
    model = net()
    train(model, loss, batch_at, SCHED, seed=0, runtime=runtime)
    return model


def test_channels_last_trains_nhwc_to_the_same_weights():
    reference, nhwc = trained(Runtime()), trained(Runtime(channels_last=True))
    assert nhwc[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(reference.state_dict().values(), nhwc.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    x = batch_at(99)[0]
    torch.testing.assert_close(predict(nhwc, [x], runtime=Runtime(channels_last=True)), predict(reference, [x]),
                               rtol=1e-4, atol=1e-5)


def test_compiled_training_step_matches_eager_and_checkpoints_plain_state():
    eager, compiled = trained(Runtime()), trained(Runtime(compile="default"))
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())
    for a, b in zip(eager.state_dict().values(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_deterministic_switch_is_set_and_unset_per_cell():
    cpu = torch.device("cpu")
    try:
        Runtime(deterministic=True).apply(cpu)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        Runtime().apply(cpu)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_bf16_defaults_to_cuda_only_and_autocasts_on_the_cpu_too():
    assert Runtime().resolve(torch.device("cpu")).bf16 is False
    assert Runtime().resolve(torch.device("cuda")).bf16 is True
    assert Runtime(bf16=False).resolve(torch.device("cuda")).bf16 is False
    with Runtime(bf16=True).autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with Runtime(bf16=False).autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    x = batch_at(99)[0]
    low, full = predict(trained(Runtime(bf16=True)), [x], runtime=Runtime(bf16=True)), predict(trained(Runtime()), [x])
    assert low.dtype == torch.float32 and not torch.equal(low, full)  # it ran in bf16, and returns fp32
    torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)


def test_run_records_the_runtime_options(tmp_path, tiny_hub):
    suite = write_suite(tmp_path, methods=("scratch",))
    hubbench("run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--precision", "bf16",
             "--channels-last", "--deterministic")
    record = json.loads(next((tmp_path / "r").rglob("seed0.json")).read_text())
    assert record["status"] == "ok"
    assert record["config"]["runtime"] == {"bf16": True, "channels_last": True, "compile": None,
                                           "deterministic": True}
    assert record["environment"]["device"] == "cpu"  # what ran: bf16 autocast and NHWC, on the CPU
    assert record["complexity"]["speed"]["precision"] == "bf16"
    assert record["complexity"]["speed"]["memory_format"] == "channels_last"

