"""How close `hubbench run --estimate` comes to real cells: for each method, the per-step time `--estimate`
measures against a real `mini` cell's training seconds per iteration (its record's `cost.total_s`, the artifacts
it trains included, over `--iterations`, with no evaluation while training), on this machine and one CPU thread
as cells run. The two alternate in rounds, each round in a fresh cache, since a shared machine's load changes as
it goes; the ratios of each round and their median are printed. A benchmark, not a test: its figures are this
machine's (docs/gpu-and-clusters.md quotes them).

    python scripts/estimate_accuracy.py                      # scratch, zoo_tuning, hub_pathway on scenes, 2 rounds
    python scripts/estimate_accuracy.py --methods finetune --iterations 200 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hubbench.benchmark import estimate
from hubbench.benchmark.cells import expand
from hubbench.benchmark.runner import Redo, run_cell
from hubbench.benchmark.suites import Suite
from hubbench.settings import current, using
from hubbench.training import Runtime


def one_round(cells: list, iterations: int) -> dict[str, tuple[float, float]]:
    """{method: (estimated, real seconds per step)} in a fresh cache and results folder."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="hubbench-estimate-") as tmp, using(current().replace(cache=Path(tmp))):
        for cell in cells:
            found = estimate.measure(cell, torch.device("cpu"), Runtime(), threads=1)
            _, record = run_cell(cell, Path(tmp, "results"), torch.device("cpu"), redo=Redo(all=True))
            out[cell.plugin.id] = sum(s["step_s"] for s in found["stages"]), record.cost.total_s / iterations
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["scratch", "zoo_tuning", "hub_pathway"])
    parser.add_argument("--task", default="scenes", help="a task of the mini suite (default scenes)")
    parser.add_argument("--iterations", type=int, default=100, help="of each real cell (default 100)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    suite = Suite.load("mini").overridden({"iterations": args.iterations, "eval_every": 0})
    cells = expand(suite, tasks=[args.task], methods=args.methods, seeds=[0])
    ratios: dict[str, list[float]] = {}
    start = time.perf_counter()
    for r in range(1, args.rounds + 1):
        for method, (estimated, real) in one_round(cells, args.iterations).items():
            ratios.setdefault(method, []).append(estimated / real)
            print(f"round {r}: {method:<24} estimated {estimated:.3f} s/step, real {real:.3f} s/step, "
                  f"ratio {estimated / real:.2f}", flush=True)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
          f"{time.perf_counter() - start:.0f} s in all; estimated / real per-step time:")
    for method, values in ratios.items():
        print(f"  {method:<24} median {statistics.median(values):.2f}  ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    main()
