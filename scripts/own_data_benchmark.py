"""How long a user's own small data take, from a fresh clone: a 10-class folder task of 2 000 32-px images with no
protocol given, on a declared hub of three checkpoint files.

It writes the data (shapes of ten kinds on cluttered backgrounds, drawn by `hubbench.synthetic`) and the three
checkpoints (seeded random-weight torchvision models saved as files, as a training script saves them: the timing
does not depend on what the weights learnt), then times, each in a fresh process and with an empty cache, as a new
user meets them:

1. `hubbench rank` (every ranker) on the task;
2. `hubbench run` of a suite over it (the three fine-tunes and three hub methods, one seed, `--executor local` on
   every core) followed by `hubbench leaderboard`.

The targets (issue 35): rank in at most 60 s and the suite with its board in at most 10 min on a 2-core machine.
It prints both figures, the host's load and CPU count; docs/own-data.md states the figures measured. A benchmark,
not a test: the figures depend on the machine and on what else runs on it. Python's bytecode caches are on, as in
an installed package (the script turns PYTHONDONTWRITEBYTECODE off for its commands and imports hubbench once,
untimed, to write them).

    python scripts/own_data_benchmark.py [--dir DIR] [--arch resnet18] [--methods finetune,ensemble_i,...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from hubbench.synthetic import SHAPES, TEXTURES, Canvas

CLASSES = SHAPES[:10]
METHODS = ("finetune", "ensemble_i", "zoo_tuning_l", "hub_pathway")


def write_images(folder: Path, per_class: int, side: int) -> None:
    """`per_class` images of each of ten shapes, textured, on a cluttered background; one folder per class."""
    rng = np.random.default_rng(0)
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True)
        for i in range(per_class):
            canvas = Canvas(side, rng).background(clutter=int(rng.integers(0, 3)))
            canvas.shape(kind, center=rng.uniform(0.35, 0.65, 2) * side, radius=rng.uniform(0.25, 0.4) * side,
                         angle=rng.uniform(0, 2 * np.pi), texture=str(rng.choice(TEXTURES)))
            Image.fromarray(canvas.finish().transpose(1, 2, 0)).save(folder / kind / f"{i:04d}.png")


def write_checkpoints(folder: Path, arch: str) -> list[str]:
    """Three seeded random-weight `arch` models saved as files, their keys under "module." (a DataParallel script's)."""
    names = []
    for seed in range(3):
        torch.manual_seed(seed)
        state = torchvision.models.get_model(arch, weights=None).state_dict()
        torch.save({f"module.{k}": v for k, v in state.items()}, folder / f"{arch}-{seed}.pth")
        names.append(f"{arch}-{seed}")
    return names


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds of a `hubbench` command in a fresh process; its output goes to `cwd`/log.txt."""
    start = time.perf_counter()
    with open(cwd / "log.txt", "a") as log:
        log.write(f"$ hubbench {' '.join(args)}\n")
        log.flush()
        subprocess.run([sys.executable, "-m", "hubbench.benchmark", *args], env=env, cwd=cwd, stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="where to write the data, cache and records (default: a new "
                                                 "temporary folder)")
    parser.add_argument("--arch", default="resnet18", help="torchvision model of the three checkpoints")
    parser.add_argument("--per-class", type=int, default=200, help="images per class (default 200: 2 000 in all)")
    parser.add_argument("--side", type=int, default=32, help="image side in px (default 32)")
    parser.add_argument("--methods", default=",".join(METHODS), help="the suite's methods")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="cells at once (default: the CPUs)")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="own-data-benchmark-"))
    write_images(root / "shapes", args.per_class, args.side)
    sources = write_checkpoints(root, args.arch)
    (root / "data.toml").write_text(
        '[task.shapes10]\nfolder = "shapes"\n\n[hub.three]\nsources = [\n' + "".join(
            f'  {{ name = "{s}", model = "torchvision:{args.arch}", checkpoint = "{s}.pth", prefix = "module." }},\n'
            for s in sources) + "]\n")
    methods = ", ".join(f'"{m}"' for m in args.methods.split(","))
    (root / "suite.toml").write_text(f'include = ["data.toml"]\nhubs = ["three"]\ntasks = ["shapes10"]\n'
                                     f'methods = [{methods}]\nrankers = ["logme"]\nseeds = [0]\n')
    # as an installed hubbench runs: its modules' bytecode cached (pip compiles it on install), not compiled again
    # by every process, which this variable forces (a few hundred CPU seconds for torch in all)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["HUBBENCH_CACHE"] = str(root / "cache")
    subprocess.run([sys.executable, "-c", "import torchvision.models, hubbench.benchmark.runner, "
                    "hubbench.benchmark.profiling, hubbench.leaderboard.page, hubbench.leaderboard.html"], env=env,
                   check=True)  # untimed: writes the bytecode caches a fresh install has
    load = os.getloadavg()[0]
    rank_s = timed(["rank", "--declare", "data.toml", "--hub", "three", "--task", "shapes10", "--device", "cpu"],
                   {**env, "HUBBENCH_CACHE": str(root / "cache-rank")}, root)
    suite_s = timed(["run", "--suite", "suite.toml", "--results", "results", "--device", "cpu", "--executor", "local",
                     "--workers", str(args.workers)], env, root)
    suite_s += timed(["leaderboard", "--suite", "suite.toml", "--results", "results", "--out", "board"], env, root)
    print(f"{args.per_class * len(CLASSES)} images of {args.side} px, 10 classes, hub of three {args.arch} "
          f"checkpoints, {os.cpu_count()} CPUs, load {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"hubbench rank: {rank_s:.0f} s (target 60 s)")
    print(f"hubbench run + leaderboard ({args.methods}, logme, one seed): {suite_s:.0f} s (target 600 s)")
    print(f"outputs in {root} (log.txt, results/, board/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
