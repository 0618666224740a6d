"""How long one training step of every registered method's model takes (pytest-benchmark, `tox -e perf`).

The model is what the method's `fit` returns after a two-iteration protocol, i.e. the model its records profile,
with routing and folded kernels as deployed; the step is `benchmark.profiling.sgd_step` (the records'
`train_samples_s` of a method that trains nothing in its cell; the others' time their own loss) on the task's fixed
profiling batch, so a slowdown here is one the leaderboard would show.
The mini hubs run on the CPU, single-threaded as cells are; `resnet50-zoo` runs on CUDA (bf16 autocast, as
runs there do) with seeded random weights, since its speed does not depend on them.
"""

import dataclasses
import functools

import pytest
import torch
from helpers import make_task

from hubbench.benchmark.profiling import count_params, sgd_step, train_batch
from hubbench.context import Context
from hubbench.hubs import HUBS
from hubbench.methods import METHODS
from hubbench.seeding import derive_seed, seed_everything
from hubbench.tasks import TASKS
from hubbench.training import Runtime

pytest.importorskip("pytest_benchmark", reason="the benchmarks need the perf extra: pip install -e .[perf]")

DEVICES = {"mini": "cpu", "mini-hetero": "cpu", "resnet50-zoo": "cuda"}
TARGETS = ("digits", "faces")  # one task of each kind
TINY = {"iterations": 2, "eval_every": 0}  # enough to build every stage of every method
ROUNDS, WARMUP = 5, 1
NO_CUDA = pytest.mark.skip(reason="resnet50-zoo is benchmarked on CUDA only, and there is no CUDA device")


@functools.cache
def make_hub(name: str):
    """A hub whose published checkpoints (if any) are replaced by seeded random weights."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")
        return HUBS.get(name)()


def cases():
    """One benchmark per (hub, task, method), a method's first variant standing for all of them; grouped by hub
    and task kind, named by method id."""
    for hub_name, device in DEVICES.items():
        for task_name in TARGETS:
            marks = [pytest.mark.benchmark(group=f"{hub_name} {TASKS.get(task_name).kind} ({task_name}, {device})")]
            if device == "cuda" and not torch.cuda.is_available():
                marks.append(NO_CUDA)
            for cls in map(METHODS.get, METHODS.names()):
                method = cls(**cls.variants(make_hub(hub_name))[0])
                yield pytest.param(hub_name, task_name, method, marks=marks, id=f"{hub_name}/{task_name}/{method.id}")


@pytest.fixture(scope="session")
def fitted(cache, tmp_path_factory):
    """`fitted(hub, task, method)` -> (the model `method.fit` returns on the tiny protocol, task, runtime).

    Artifacts of the mini hubs stay in the cache for the next run; random-weight ones (five ResNet-50s a task)
    go to a temporary directory."""
    scratch = tmp_path_factory.mktemp("artifacts")
    tasks = functools.cache(lambda name: make_task(name, **TINY))

    def fit(hub_name, task_name, method):
        hub, task, device = make_hub(hub_name), tasks(task_name), torch.device(DEVICES[hub_name])
        ok, reason = method.applicable(hub, task)
        if not ok:
            pytest.skip(reason)
        scope = f"perf/{hub_name}/{task_name}/{method.id}"
        random = hub.config.get("weights") == "random"
        runtime = Runtime().resolve(device)  # what a cell runs with: bf16 autocast on CUDA
        runtime.apply(device)
        ctx = Context(hub, task, 0, scope=scope, cache=scratch if random else cache, device=device, runtime=runtime)
        seed_everything(derive_seed(0, scope, "init"))
        try:
            return method.fit(ctx).to(device), task, runtime
        finally:
            ctx.clear_checkpoints()

    return fit


@pytest.mark.parametrize(("hub_name", "task_name", "method"), list(cases()))
def test_sgd_step(benchmark, fitted, hub_name, task_name, method):
    model, task, runtime = fitted(hub_name, task_name, method)
    device = torch.device(DEVICES[hub_name])
    x, y = train_batch(task, task.protocol.batch_size)
    x, y = x.to(device), y.to(device)
    trainable = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    step = sgd_step(model.train(), task, x, y, runtime)
    benchmark.extra_info.update(method=method.id, batch=len(x), device=device.type, threads=torch.get_num_threads(),
                                runtime=dataclasses.asdict(runtime), trainable=count_params(model)["trainable"])

    def timed():  # pytest-benchmark times the call: on CUDA it has to wait for the kernels it launched
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    benchmark.pedantic(timed, rounds=ROUNDS, warmup_rounds=WARMUP)
    # what was timed is a real training step: the loss stays finite and the trainable weights moved
    params = dict(model.named_parameters())
    assert not trainable or any(not torch.equal(before, params[name]) for name, before in trainable.items())
    with torch.no_grad():
        assert torch.isfinite(task.loss(model(x), y))
