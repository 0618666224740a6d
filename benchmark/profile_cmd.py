"""`hubbench profile`: params, FLOPs, memory and speed of any method on any hub and task, in a minute or two on a
CPU, without the task's data and, with `--random-weights`, without the hub's checkpoint files.

The model profiled is the one the method's `fit` deploys, built under a protocol of a single training step of two
samples: the architecture of a full run, so its params and FLOPs; memory and speed too, up to data-dependent
routing, whose gates have then been trained for one step. Its predictions mean nothing, and nothing of it is kept.
- Data: a task whose data are made in memory uses them, so routed methods route real samples. A task that reads
  files (`external_data`) gets stand-in data of its shapes instead: a few random images at the protocol's input
  size (one test view) and random valid targets (`Task.stand_in_targets`), batched in memory; head, loss, metric
  and combination stay the task's own, and no file is read.
- Caches: the hub's weights are loaded first (a mini hub not yet built is pre-trained into the user's cache, as by
  `hubbench hub build`); all the build writes after that (artifacts, checkpoints, locks) goes to a temporary
  cache, removed at the end, so the user's cache and results are left as they were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import torch
from torch import nn

from hubbench import record
from hubbench.benchmark.profiling import Settings, StageTimer, profile
from hubbench.context import Context
from hubbench.environment import environment
from hubbench.errors import InputError
from hubbench.hubs.base import Hub, get_hub
from hubbench.io import RESULTS
from hubbench.methods.base import Method, applicable, parse_spec
from hubbench.seeding import generator
from hubbench.settings import current, using
from hubbench.tasks.base import TASKS, Protocol, Split, Task
from hubbench.training import Runtime

ONE_STEP = {"iterations": 1, "batch_size": 2, "eval_every": 0, "test_views": 1}  # 2: BatchNorm trains on no fewer
STAND_IN_IMAGES = {"resize": 0, "random_resized_crop": False}  # stand-in images come at the input size


def run(hub_name: str, task_name: str, spec: str, device: torch.device, runtime: Runtime, *, batch: int | None = None,
        seed: int = 0, out: Path | None = None) -> int:
    """Profile the method of `spec` on the hub and task at `batch` samples (default: the task's training batch on
    CUDA, 2 on the CPU), built with `seed`; print the figures and write them to `out` (default: under
    results/profile/)."""
    if batch is not None and batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    batch = batch or (TASKS.get(task_name).protocol.batch_size if device.type == "cuda" else 2)
    hub = get_hub(hub_name)
    task, stand_in = profile_task(task_name, batch)
    method = first_variant(spec, hub)
    ok, reason = applicable(method, hub, task)
    if not ok:
        raise InputError(f"{method.id} does not apply to hub {hub.name!r} and task {task.name!r}: {reason}")
    out = out or RESULTS / "profile" / hub.name / task.name / (method.id.replace("[", "@").replace("]", "") + ".json")
    start = time.perf_counter()
    print(f"loading the weights of hub {hub.name} ...", flush=True)
    hub = loaded(hub)
    data = "stand-in" if stand_in else "task"
    print(f"building {method.id} on {hub.name}/{task.name}: one training step on {data} data, {device} ...",
          flush=True)
    runtime.apply(device)
    settings = Settings(runtime, batch=batch)
    stages = StageTimer(profile_scope(hub, task, method), settings)
    model = build(method, hub, task, seed, device, runtime, on_stage=stages)
    build_s = time.perf_counter() - start
    print(f"built in {build_s:.0f} s; profiling at batch {batch} ...", flush=True)
    start = time.perf_counter()
    complexity = profile(model, task, device, settings, stages.last)
    result = record.Profile(hub.name, task.name, task.kind, record.PluginId.of(method),
                            seed, stand_in, dataclasses.asdict(task.protocol), hub.describe(), complexity,
                            environment(device),
                            {"build_s": build_s, "profile_s": time.perf_counter() - start})
    record.write(out, result)
    print(table(result))
    print(f"written to {out}")
    return 0


def profile_task(name: str, batch: int, protocol: Protocol | None = None,
                 train_batch: int = ONE_STEP["batch_size"]) -> tuple[Task, bool]:
    """Task `name` under the one-step version of `protocol` (default: the task's own; a cell's, `Cell.protocol`),
    training at `train_batch`, and whether its data are stand-ins (enough for `batch`)."""
    cls = TASKS.get(name)
    protocol = (protocol or cls.protocol).replace(**{**ONE_STEP, "batch_size": train_batch})
    if not cls.external_data:
        return cls(protocol), False
    return stand_in(cls, protocol.replace(**STAND_IN_IMAGES), max(batch, protocol.batch_size)), True


def stand_in(cls: type[Task], protocol: Protocol, n: int) -> Task:
    """`cls` whose splits are `n` random images at the protocol's size with random valid targets, in memory (a
    file task batches a split held in memory as it batches its cache)."""
    task = cls(protocol)
    g = generator("stand-in", cls.name)
    size = protocol.image_size
    splits = {split: Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                                 task.stand_in_targets(n, g)) for split in ("train", "val", "test")}
    members = {"__doc__": f"{cls.__name__} on stand-in data.", "make_splits": lambda self: splits}
    return type(f"StandIn{cls.__name__}", (cls,), members)(protocol)


def first_variant(spec: str, hub: Hub) -> Method:
    """The method of `spec` (`name` or `name[k=v,...]`), its unnamed parameters those of its first variant on `hub`."""
    cls, params = parse_spec(spec)
    return cls(**{**cls.variants(hub)[0], **params})


def loaded(hub: Hub) -> Hub:
    """`hub` with every source's weights already in memory, so that building from it reads no cache."""
    return dataclasses.replace(hub, sources=tuple(dataclasses.replace(s, weights=partial(dict, s.weights()))
                                                  for s in hub.sources))


@contextlib.contextmanager
def temporary_cache() -> Iterator[Path]:
    """A throw-away cache for the block, the settings' `cache` in it (the locks of `hubbench.locks` are kept there
    too)."""
    with tempfile.TemporaryDirectory(prefix="hubbench-profile-") as tmp, using(current().replace(cache=Path(tmp))):
        yield Path(tmp)


def build(method: Method, hub: Hub, task: Task, seed: int, device: torch.device, runtime: Runtime,
          on_stage=None) -> nn.Module:
    """What `method.fit` deploys under the task's (one-step) protocol, built in a temporary cache; `on_stage`
    is told of each training stage (`Context`)."""
    with temporary_cache() as cache:
        return Context(hub, task, seed, scope=profile_scope(hub, task, method), cache=cache, device=device,
                       runtime=runtime, stream=f"{hub.name}/{task.name}/{method.id}", on_stage=on_stage).fit(method)


def profile_scope(hub: Hub, task: Task, method: Method) -> str:
    return f"profile/{hub.name}/{task.name}/{method.id}"


def table(result: record.Profile) -> str:
    """The profile as a few aligned lines, each figure with its unit and convention."""
    c = result.complexity
    p, f, m, s = c.params, c.flops, c.memory, c.speed
    fvcore = f"{f.fvcore_gflops:.2f}" if f.fvcore_gflops is not None else f"n/a ({f.fvcore_error})"
    unsupported = ", ".join(f"{op} x{n}" for op, n in f.fvcore_unsupported.items())

    def mb(value):
        return "n/a" if value is None else f"{value:.0f}"

    compiled = f", compiled ({s.compile})" if s.compile else ""
    rows = [
        ("Params (M)", f"{p.total / 1e6:.2f} total, {p.trainable / 1e6:.2f} trainable, "
                       f"{p.active / 1e6:.2f} active per sample"),
        ("GFLOPs", f"{fvcore} fvcore (1 per multiply-add), {f.flop_counter_gflops:.2f} FlopCounterMode "
                   f"(2 per multiply-add), per sample at {result.protocol['image_size']} px"),
        ("fvcore unsupported", f"{unsupported} (counted as 0)" if unsupported else "none"),
        ("Memory (MB)", f"training step {mb(m.train_mb)}, inference {mb(m.infer_mb)}: {m.measure}"),
        ("Speed (samples/s)", f"inference {s.infer_samples_s:.1f}, training {s.train_samples_s:.1f} at batch "
                              f"{s.batch}, {s.precision}, {s.memory_format}{compiled}, {m.device} "
                              f"({s.device_name})"),
        ("Training step", f"{s.train_step} (its memory and speed above)"),
    ]
    weights = ", random weights" if result.hub_config["config"].get("weights") == "random" else ""
    header = (f"{result.hub} / {result.task} / {result.method.id} "
              f"({'stand-in' if result.stand_in else 'task'} data{weights})")
    width = max(len(name) for name, _ in rows)
    return "\n".join([header, *(f"  {name:<{width}}  {value}" for name, value in rows)])
