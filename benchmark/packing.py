"""Several cells per GPU: how many fit, and how many pay.

One cell of the papers' protocol keeps an H200 about a quarter busy (batch 48, eager kernels), so
cells are packed: each in a process of its own, N sharing one GPU (`hubbench run --cells-per-gpu N`).
The default N is what memory allows (the GPU's free memory over the largest measured training peak of
the cells, with a tenth kept free) and what measurably pays: `throughput` runs k copies of a cell's
training step at once for k = 1, 2, 4, ... and the cap is the last k that still added at least `GAIN` to
the total samples/s. Both measurements are cached with the step times of `benchmark.estimate`
(`hubbench run --dry-run --estimate`); without them the default is 1.
"""

from __future__ import annotations

import math
import multiprocessing
import time

import torch

from hubbench.benchmark.estimate import entry, entry_path
from hubbench.benchmark.plugins import load_plugins, started_as
from hubbench.benchmark.profile_cmd import build, loaded, profile_task
from hubbench.benchmark.profiling import sgd_step, train_batch
from hubbench.hubs.base import get_hub
from hubbench.io import read_json, write_json
from hubbench.settings import Settings, current
from hubbench.training import Runtime

GAIN = 0.10  # a k that adds less than this share of throughput over k/2 is not worth its memory
HEADROOM = 0.9  # of the free memory, what cells may use


def _copy(cell, device: str, runtime: Runtime, seconds: float, plugins, settings: Settings, start, out) -> None:
    """One packed copy: build the cell's deployed model (under the `settings` of the command), wait for the
    others, step for `seconds`."""
    load_plugins(plugins)
    device = torch.device(device)
    runtime = runtime.resolve(device)
    batch = cell.protocol.batch_size
    task, _ = profile_task(cell.task, batch, cell.protocol)
    runtime.apply(device)
    with started_as(settings):
        model = build(cell.plugin, loaded(get_hub(cell.hub)), task, 0, device, runtime).train()
    x, y = runtime.batch(train_batch(task, batch), device)
    step = sgd_step(model, task, x, y, runtime)
    step()
    start.wait()
    steps, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        step()
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out.put(steps * batch / (time.perf_counter() - begin))


def throughput(cell, device: torch.device, runtime: Runtime, copies: int, seconds: float = 10.0,
               plugins: tuple[str, ...] = ()) -> float:
    """Total training samples/s of `copies` processes each stepping the cell's deployed model at once (each
    process loads the `plugins` files first, which may define the cell's hub, task or method)."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(copies), context.Queue()
    procs = [context.Process(target=_copy, args=(cell, str(device), runtime, seconds, plugins, current(), start, out))
             for _ in range(copies)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def packing_path(cell, device: torch.device, runtime: Runtime):
    path = entry_path(cell, device, runtime)
    return path.with_name(path.stem + "-packing.json")


def measured_cap(cell, device: torch.device, runtime: Runtime, limit: int, measure_missing: bool) -> int | None:
    """The last k of 1, 2, 4, ... (up to `limit`) that added at least GAIN to k/2's throughput (cached)."""
    path = packing_path(cell, device, runtime)
    if path.exists():
        rates = {int(k): v for k, v in read_json(path)["samples_s"].items()}
    elif measure_missing:
        rates, k = {}, 1
        while k <= limit:
            rates[k] = throughput(cell, device, runtime, k)
            if k > 1 and rates[k] < (1 + GAIN) * rates[k // 2]:
                break
            k *= 2
        write_json(path, {"cell": cell.id, "samples_s": rates})
    else:
        return None
    cap = 1
    for k in sorted(rates)[1:]:
        if rates[k] >= (1 + GAIN) * rates[k // 2]:
            cap = k
        else:
            break
    return cap


def default_cells_per_gpu(cells: list, device: torch.device, runtime: Runtime,
                          measure_missing: bool = False) -> tuple[int, str]:
    """(N, why): as many cells per GPU as memory allows and measurably pays, 1 when unmeasured."""
    cells = [c for c in cells if not c.ranking]  # what a ranking cell runs is not a training step
    if device.type != "cuda" or not cells:
        return 1, "one cell per device off CUDA"
    found = [entry(c, device, runtime, measure_missing) for c in cells]
    if any(f is None for f in found):
        return 1, "peak memory not measured for every cell (hubbench run --dry-run --estimate)"
    peak = max((s["train_mb"] for f in found for s in f["stages"]), default=1.0) * 2**20
    free = torch.cuda.mem_get_info(device)[0]
    by_memory = max(1, math.floor(HEADROOM * free / peak))
    slowest = {c: max((s["step_s"] for s in f["stages"]), default=0.0) for c, f in zip(cells, found, strict=True)}
    heaviest = max(slowest, key=slowest.get)
    cap = measured_cap(heaviest, device, runtime, by_memory, measure_missing)
    if cap is None:
        return 1, "packing benefit not measured (hubbench run --dry-run --estimate)"
    n = min(by_memory, cap)
    return n, (f"{by_memory} fit in {free / 2**30:.0f} GiB free at {peak / 2**30:.1f} GiB each; "
               f"{cap} measurably pay (+{GAIN:.0%} per doubling)")
