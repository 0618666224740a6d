"""What a grid costs before it runs: device-hours per method, from per-step times measured on the device.

A cell's cost is that of its training stages (`Context.train` calls, the artifacts it trains included):
iterations x the stage's step time, plus its evaluations (every `eval_every` iterations, the val and
test splits with their test views) x its model's inference time per image, plus the record's final
predictions. Step and inference times are measured as `hubbench profile` builds a method (one training step
per stage, here at the cell's batch, on stand-in data where the task reads files), on the cells' CPU threads:
after each stage, that stage's own training loop runs again (`hubbench.training.train`, with the stage's
model, loss, parameters, batches, augmentations and prefetching, at a vanishing lr so that only BatchNorm's
statistics move), warmed up (`WARMUP` steps), then timed over at least `TIMED_STEPS` steps and `TIMED_S`
seconds, with the device alone among this cache's processes (`hubbench.exclusive`). The figure is the mean time
per step, as a cell's training time is a sum of steps. Measurements are cached per device, hub, task, method,
protocol shape, runtime, threads and torch version under the cache's `estimates/`: `hubbench run --dry-run`
reads them and `--estimate` measures the missing ones first, saying how long that takes.

What the model leaves out: reading files (stand-in data are in memory; a mini task's are its own), checkpoints,
the profiling of each record (a few steps), and artifacts found already trained in the cache (an artifact is
counted once per hub, task and seed, as if none were cached).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import defaultdict
from pathlib import Path

import torch

from hubbench.benchmark.profile_cmd import build, loaded, profile_scope, profile_task
from hubbench.benchmark.profiling import Settings, median_rate, peak_memory
from hubbench.environment import cpu_name
from hubbench.exclusive import exclusive
from hubbench.hubs.base import get_hub
from hubbench.io import cache_dir, read_json, write_json
from hubbench.progress import clock, say, working
from hubbench.seeding import digest
from hubbench.tasks.base import Protocol
from hubbench.tasks.crops import first_view
from hubbench.training import Runtime, train

SCHEMA = "hubbench.estimate/2"  # 2: the stage's own loop timed, on the cells' threads
WARMUP = 3  # untimed steps of each stage before its timed ones
TIMED_STEPS, TIMED_S = 10, 5.0  # each stage is timed over at least this many steps and seconds
FORECAST_S = {"build": 5.0, "stage": 10.0}  # what measuring takes on a fast step: a build, and a stage of it


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def entry_path(cell, device: torch.device, runtime: Runtime, threads: int = 1) -> Path:
    """The cached measurement of a cell's (hub, task, method) on this device, runtime, CPU threads and protocol
    shape."""
    p = cell.protocol
    shape = {k: getattr(p, k) for k in ("image_size", "batch_size", "resize", "test_views")}
    name = device_name(device)
    key = digest({"hub": get_hub(cell.hub).describe(), "task": cell.task, "method": cell.plugin.id, "shape": shape,
                  "runtime": dataclasses.asdict(runtime.resolve(device)), "torch": torch.__version__, "device": name,
                  "threads": threads, "schema": SCHEMA})
    method = cell.plugin.id.replace("[", "@").replace("]", "")
    return cache_dir() / "estimates" / re.sub(r"[^\w.-]+", "_", name) / f"{cell.hub}-{cell.task}-{method}-{key}.json"


NO_LR = 1e-30  # the timed steps' learning rate: a protocol's must be positive, and at this one nothing moves


def stage_loop(ctx, model, loss, params, key: str, device: torch.device, runtime: Runtime, cache: Path):
    """A function that runs n steps of the stage's own training loop at a vanishing learning rate (`NO_LR`: nothing
    moves but BatchNorm's statistics) and returns when each step started (a call of its loss)."""
    starts: list[float] = []

    def timed(m, x, y):
        starts.append(time.perf_counter())
        return loss(m, x, y)

    def steps(n: int) -> list[float]:
        starts.clear()
        schedule = ctx.task.protocol.replace(iterations=n, lr=NO_LR)
        train(model, timed, ctx.batch, schedule, seed=0, params=params, device=device, runtime=runtime,
              desc=f"timing {ctx.scope} {key}", cache=cache)
        return list(starts)

    return steps


def step_time(steps, warm: list[float]) -> tuple[float, int]:
    """(mean seconds per step, steps timed) over at least `TIMED_STEPS` steps and `TIMED_S` seconds, after the
    warm-up steps that started at `warm`. The first step of a loop sets its optimiser up: it is not timed."""
    rough = max((warm[-1] - warm[1]) / max(1, len(warm) - 2), 1e-6)
    n = max(TIMED_STEPS, math.ceil(TIMED_S / rough))
    starts = steps(n + 2)
    return (starts[-1] - starts[1]) / n, n


def measure(cell, device: torch.device, runtime: Runtime, threads: int = 1, settings: Settings = Settings()) -> dict:
    """Build the cell's method as `hubbench profile` does, timing every training stage it runs (`step_time`) on
    `threads` CPU threads, as the cells run."""
    runtime = runtime.resolve(device)
    torch.set_num_threads(threads)
    batch = cell.protocol.batch_size
    task, _ = profile_task(cell.task, batch, cell.protocol, train_batch=batch)
    hub = loaded(get_hub(cell.hub))
    method = cell.plugin
    cache = cache_dir()  # the build's own is a temporary one: the device is this cache's cells'
    what = f"measuring the step times of {cell.id}"
    stages: list[dict] = []

    def time_stage(ctx, model, loss, params, key) -> None:
        steps, memory = stage_loop(ctx, model, loss, params, key, device, runtime, cache), {}
        with exclusive(device, cache, what):
            with peak_memory(device, memory, "train_mb"):
                warm = steps(WARMUP + 1)
            step_s, timed = step_time(steps, warm)
            x, _ = ctx.batch(0).on(device)
            x = runtime.batch(first_view(x), device)
            model.eval()
            infer_rate = median_rate(lambda: _forward(model, x, runtime, device), len(x), device, settings)
        stages.append({"scope": ctx.scope, "key": key, "step_s": step_s, "steps": timed, "infer_s": 1 / infer_rate,
                       "train_mb": memory["train_mb"]})

    runtime.apply(device)
    start = time.perf_counter()
    model = build(method, hub, task, 0, device, runtime, on_stage=time_stage)
    x = runtime.batch(first_view(next(task.eval_batches("test", device)))[:batch], device)  # per image as at 256
    with exclusive(device, cache, what):
        deployed = median_rate(lambda: _forward(model, x, runtime, device), len(x), device, settings)
    return {"schema": SCHEMA, "hub": cell.hub, "task": cell.task, "method": cell.plugin.id,
            "scope": profile_scope(hub, task, method), "device": device_name(device), "batch": batch,
            "threads": threads, "runtime": dataclasses.asdict(runtime), "stages": stages,
            "deployed_infer_s": 1 / deployed, "measured_s": time.perf_counter() - start}


@torch.no_grad()
def _forward(model, x, runtime: Runtime, device: torch.device) -> None:
    with runtime.autocast(device):
        model(x)


def entry(cell, device: torch.device, runtime: Runtime, measure_missing: bool = False, threads: int = 1) -> dict | None:
    """The cached measurement of `cell` (measured now and cached when missing and `measure_missing`)."""
    path = entry_path(cell, device, runtime, threads)
    if path.exists():
        return read_json(path)
    if not measure_missing:
        return None
    with working(f"measuring the step times of {cell.id}"):
        found = measure(cell, device, runtime, threads)
    write_json(path, found)
    return found


def evaluations(p: Protocol) -> int:
    """How many times a stage evaluates val and test while training (`hubbench.training.train`)."""
    if not p.eval_every:
        return 0
    return p.iterations // p.eval_every + (1 if p.iterations % p.eval_every else 0)


def cell_seconds(cell, found: dict) -> tuple[float, dict[str, float]]:
    """(seconds of the cell's own stages and final predictions, {artifact id: seconds}) on the measured device."""
    task = cell.make_task()
    p = task.protocol
    sizes = {s: len(task.splits[s]) for s in ("val", "test")}
    views = (sizes["val"] + sizes["test"]) * p.test_views
    own, artifacts = views * found["deployed_infer_s"], {}
    for stage in found["stages"]:
        seconds = p.iterations * stage["step_s"] + evaluations(p) * views * stage["infer_s"]
        if stage["scope"] == found["scope"]:
            own += seconds
        else:  # an artifact's stage; it also scores its val split once
            artifact = stage["scope"].rsplit("/", 1)[-1]
            seconds += sizes["val"] * p.test_views * stage["infer_s"]
            artifacts[artifact] = artifacts.get(artifact, 0.0) + seconds
    return own, artifacts


def forecast_s(cell) -> float:
    """About how long measuring `cell` takes when its steps are fast: a build, and a stage per artifact it needs
    and one of its own."""
    return FORECAST_S["build"] + FORECAST_S["stage"] * (1 + len(cell.plugin.needs(get_hub(cell.hub), cell.make_task())))


def measure_missing(cells: list, device: torch.device, runtime: Runtime, threads: int = 1) -> None:
    """Measure the step times of `cells` missing from the cache (one per hub, task and method: seeds share it),
    saying first about how long that takes, then after each one how far it is."""
    todo = {}
    for cell in cells:
        if not cell.ranking and not (path := entry_path(cell, device, runtime, threads)).exists():
            todo.setdefault(path, cell)
    if not todo:
        return
    forecasts = [forecast_s(cell) for cell in todo.values()]
    say(f"measuring the step times of {len(todo)} methods on {device_name(device)} ({threads} threads): about "
        f"{clock(sum(forecasts))} (a one-step build of each, then each training stage {WARMUP} steps to warm up "
        f"and at least {TIMED_STEPS} steps and {TIMED_S:g} s timed: longer where a step takes over "
        f"{TIMED_S / TIMED_STEPS:g} s)")
    start = time.perf_counter()
    for i, cell in enumerate(todo.values(), 1):
        found = entry(cell, device, runtime, True, threads)
        spent = time.perf_counter() - start
        left = spent / sum(forecasts[:i]) * sum(forecasts[i:])  # the forecast, scaled as it has come true so far
        say(f"measured {i} of {len(todo)}: {cell.hub}/{cell.task}/{cell.plugin.id}, {len(found['stages'])} "
            f"training stages in {found['measured_s']:.0f} s" + (f"; about {clock(left)} left" * (i < len(todo))))


def grid(cells: list, device: torch.device, runtime: Runtime, measure: bool = False, threads: int = 1) -> dict:
    """Hours per method (cells, hours), of the shared artifacts (each once per hub, task and seed), the cells
    not measured, and the total; `measure`: the missing step times first (`measure_missing`)."""
    if measure:
        measure_missing(cells, device, runtime, threads)
    methods: dict[str, list] = defaultdict(lambda: [0, 0.0])
    artifacts: dict[tuple, float] = {}
    unmeasured = []
    for cell in cells:
        if cell.ranking:  # no training: its cost is a forward pass of each source over the training split
            continue
        found = entry(cell, device, runtime, threads=threads)
        if found is None:
            unmeasured.append(cell)
            continue
        own, needed = cell_seconds(cell, found)
        methods[cell.plugin.name][0] += 1
        methods[cell.plugin.name][1] += own / 3600
        for artifact, seconds in needed.items():
            artifacts[(cell.hub, cell.task, cell.seed, artifact)] = seconds / 3600
    total = sum(h for _, h in methods.values()) + sum(artifacts.values())
    return {"device": device_name(device), "methods": dict(methods), "artifacts": (len(artifacts),
            sum(artifacts.values())), "unmeasured": unmeasured, "total": total}


def report(estimate: dict) -> list[str]:
    """The estimate as aligned lines."""
    rows = [(name, cells, hours) for name, (cells, hours) in sorted(estimate["methods"].items())]
    rows.append(("fine-tuned sources (shared artifacts)", *estimate["artifacts"]))
    width = max(len(r[0]) for r in rows)
    lines = [f"estimated device-hours on {estimate['device']} (per-step times measured by --estimate, one cell "
             "per device at a time):"]
    lines += [f"  {name:<{width}}  {cells:>5} {'cells' if i < len(rows) - 1 else 'trained'}  {hours:9.3f} h"
              for i, (name, cells, hours) in enumerate(rows)]
    lines.append(f"  {'total':<{width}}  {'':>11}  {estimate['total']:9.3f} h")
    if estimate["unmeasured"]:
        missing = sorted({f"{c.hub}/{c.task}/{c.plugin.id}" for c in estimate["unmeasured"]})
        lines.append(f"  not counted: {len(estimate['unmeasured'])} cells of {len(missing)} hub/task/method "
                     "combinations not measured on this device (add --estimate to measure them): "
                     f"{', '.join(missing[:5])}"
                     + (" ..." if len(missing) > 5 else ""))
    return lines
