"""What a grid costs before it runs: device-hours per method, from per-step times measured on the device.

A cell's cost is that of its training stages (`Context.train` calls, the artifacts it trains included):
iterations x the stage's step time, plus its evaluations (every `eval_every` iterations, the val and
test splits with their test views) x its model's inference time per image, plus the record's final
predictions. Step and inference times are measured as `hubbench profile` builds a method (stand-in data,
one training step per stage): after each stage, a few more steps of that stage's own model, loss and
parameters at the protocol's batch (lr 0, so nothing moves), timed as the profiler times (warm-up,
synchronised median), with the device alone (`hubbench.exclusive`). Measurements are cached per device,
hub, task, method, protocol shape, runtime and torch version under the cache's `estimates/`:
`hubbench run --dry-run` reads them and `--estimate` measures the missing ones.

What the model leaves out: data loading (prefetched, so hidden when the step is the bottleneck),
checkpoints, the profiling of each record (a few steps), and artifacts found already trained in the cache
(an artifact is counted once per hub, task and seed, as if none were cached).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path

import torch

from hubbench.benchmark.profile_cmd import build, loaded, profile_scope, profile_task
from hubbench.benchmark.profiling import Settings, median_rate, peak_memory
from hubbench.environment import cpu_name
from hubbench.exclusive import exclusive
from hubbench.hubs.base import get_hub
from hubbench.io import cache_dir, read_json, write_json
from hubbench.seeding import digest, generator
from hubbench.tasks.base import Protocol
from hubbench.tasks.crops import first_view
from hubbench.training import Runtime, batch_indices

SCHEMA = "hubbench.estimate/1"


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def entry_path(cell, device: torch.device, runtime: Runtime) -> Path:
    """The cached measurement of a cell's (hub, task, method) on this device, runtime and protocol shape."""
    p = cell.protocol
    shape = {k: getattr(p, k) for k in ("image_size", "batch_size", "resize", "test_views")}
    name = device_name(device)
    key = digest({"hub": get_hub(cell.hub).describe(), "task": cell.task, "method": cell.plugin.id, "shape": shape,
                  "runtime": dataclasses.asdict(runtime.resolve(device)), "torch": torch.__version__, "device": name})
    method = cell.plugin.id.replace("[", "@").replace("]", "")
    return cache_dir() / "estimates" / re.sub(r"[^\w.-]+", "_", name) / f"{cell.hub}-{cell.task}-{method}-{key}.json"


def measure(cell, device: torch.device, runtime: Runtime, settings: Settings = Settings()) -> dict:
    """Build the cell's method as `hubbench profile` does, timing every training stage it runs."""
    runtime = runtime.resolve(device)
    batch = cell.protocol.batch_size
    task, _ = profile_task(cell.task, batch, cell.protocol)
    hub = loaded(get_hub(cell.hub))
    method = cell.plugin
    stages: list[dict] = []

    def time_stage(ctx, model, loss, params, key) -> None:
        x, y = ctx.task.train_batch(batch_indices(len(ctx.task.splits["train"]), batch, 0, 0),
                                    generator("estimate"), device)
        x, y = runtime.batch((x, y), device)
        groups = params if params is not None else [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(groups, lr=0.0, momentum=0.9) if groups else None  # lr 0: nothing moves
        model.train()

        def step():
            with runtime.autocast(device):
                value = loss(model, x, y)
            if optimizer:
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()

        def infer():
            with torch.no_grad(), runtime.autocast(device):
                model(first_view(x))

        memory: dict = {}
        with exclusive(device):
            with peak_memory(device, memory, "train_mb"):
                step()
            step_rate = median_rate(step, 1, device, settings)
            model.eval()
            infer_rate = median_rate(infer, len(x), device, settings)
        stages.append({"scope": ctx.scope, "key": key, "step_s": 1 / step_rate, "infer_s": 1 / infer_rate,
                       "train_mb": memory["train_mb"]})

    runtime.apply(device)
    model = build(method, hub, task, 0, device, runtime, on_stage=time_stage)
    x = runtime.batch(first_view(next(task.eval_batches("test", device))), device)
    with exclusive(device):
        deployed = median_rate(lambda: _forward(model, x, runtime, device), len(x), device, settings)
    return {"schema": SCHEMA, "hub": cell.hub, "task": cell.task, "method": cell.plugin.id,
            "scope": profile_scope(hub, task, method), "device": device_name(device), "batch": batch,
            "runtime": dataclasses.asdict(runtime), "stages": stages, "deployed_infer_s": 1 / deployed}


@torch.no_grad()
def _forward(model, x, runtime: Runtime, device: torch.device) -> None:
    with runtime.autocast(device):
        model(x)


def entry(cell, device: torch.device, runtime: Runtime, measure_missing: bool = False) -> dict | None:
    """The cached measurement of `cell` (measured now and cached when missing and `measure_missing`)."""
    path = entry_path(cell, device, runtime)
    if path.exists():
        return read_json(path)
    if not measure_missing:
        return None
    found = measure(cell, device, runtime)
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


def grid(cells: list, device: torch.device, runtime: Runtime, measure_missing: bool = False) -> dict:
    """Hours per method (cells, hours), of the shared artifacts (each once per hub, task and seed), the cells
    not measured, and the total."""
    methods: dict[str, list] = defaultdict(lambda: [0, 0.0])
    artifacts: dict[tuple, float] = {}
    unmeasured = []
    for cell in cells:
        if cell.ranking:  # no training: its cost is a forward pass of each source over the training split
            continue
        found = entry(cell, device, runtime, measure_missing)
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
    lines = [f"estimated device-hours on {estimate['device']} (per-step times of `hubbench profile`, one cell "
             "per device at a time):"]
    lines += [f"  {name:<{width}}  {cells:>5} {'cells' if i < len(rows) - 1 else 'trained'}  {hours:9.3f} h"
              for i, (name, cells, hours) in enumerate(rows)]
    lines.append(f"  {'total':<{width}}  {'':>11}  {estimate['total']:9.3f} h")
    if estimate["unmeasured"]:
        missing = sorted({f"{c.hub}/{c.task}/{c.plugin.id}" for c in estimate["unmeasured"]})
        lines.append(f"  not counted: {len(estimate['unmeasured'])} cells of {len(missing)} methods not measured on "
                     f"this device (add --estimate to measure them): {', '.join(missing[:5])}"
                     + (" ..." if len(missing) > 5 else ""))
    return lines
