"""SIGKILL `hubbench run` mid-cell, rerun it, and get the record of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import PLUGIN, ROOT, hubbench, write_suite

SAME = ("status", "metric", "metrics", "curves", "method", "config", "artifacts", "examples")


def run_args(suite, results):
    return ["--plugin", str(PLUGIN), "run", "--suite", str(suite), "--results", str(results)]


def records(results):
    out = {}
    for path in sorted(results.rglob("*.json")):
        record = json.loads(path.read_text())
        out[str(path.relative_to(results))] = {k: record.get(k) for k in SAME}
        out[str(path.relative_to(results))]["size"] = {k: record["complexity"][k] for k in ("params", "flops")}
        for artifact in out[str(path.relative_to(results))]["artifacts"] or []:
            artifact.pop("train_s")  # wall time, not a result
    return out


@pytest.mark.parametrize("victim", ["artifact", "cell"])
def test_sigkill_mid_cell_then_rerun_equals_uninterrupted(victim, tmp_path):
    suite = write_suite(tmp_path, methods=("finetune[model=supervised]", "scratch"),
                        iterations=60, checkpoint_every=5, eval_every=20)
    killed_cache, killed_results = tmp_path / "cache-a", tmp_path / "results-a"
    env = {**os.environ, "HUBBENCH_CACHE": str(killed_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "hubbench.benchmark", *run_args(suite, killed_results)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_record = killed_results / "tiny/tiny/digits/finetune@model=supervised/seed0.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            checkpoints = list(killed_cache.glob("checkpoints/*.ckpt"))
            if checkpoints and (victim == "artifact" or first_record.exists()):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert checkpoints and not (killed_results / "tiny/tiny/digits/scratch/seed0.json").exists()
    assert not list(killed_results.rglob("*.tmp")) and not list(killed_cache.rglob("*.tmp"))

    hubbench(*run_args(suite, killed_results)[2:], env=env)
    assert not list(killed_cache.glob("checkpoints/*.ckpt")), "checkpoints of finished cells remain"
    reference = tmp_path / "results-b"
    hubbench(*run_args(suite, reference)[2:], env={**os.environ, "HUBBENCH_CACHE": str(tmp_path / "cache-b")})
    assert records(killed_results) == records(reference) and len(records(reference)) == 2


PAUSING_PLUGIN = '''
import os
import time
from pathlib import Path

from hubbench.artifacts import FinetunedSource
from hubbench.methods import Method, register


def pause(stage):
    """Where $PAUSE_AT names this stage: touch $PAUSE_MARKER, then wait to be killed."""
    if os.environ.get("PAUSE_AT") == stage:
        Path(os.environ["PAUSE_MARKER"]).touch()
        time.sleep(600)


class PausingSource(FinetunedSource):
    def train(self, ctx, model):
        super().train(ctx, model)
        pause("artifact")


@register
class TrainTwice(Method):
    name = "train_twice"
    description = "a fine-tuned source, trained further; pauses after either stage's last checkpoint"

    def needs(self, hub, task):
        return [PausingSource("supervised")]

    def fit(self, ctx):
        model = ctx.train(ctx.artifact(PausingSource("supervised")), key="more")
        pause("cell")
        return model
'''


def test_costs_survive_kills_after_the_last_checkpoint(tmp_path):
    """Killed after the artifact's last checkpoint, then after the cell's own, the record reports the training
    seconds saved in those checkpoints plus no more than the later processes ran (not the ~0 s of stages that
    only reloaded their final checkpoint, nor a stage counted twice)."""
    plugin = tmp_path / "pausing.py"
    plugin.write_text(PAUSING_PLUGIN)
    suite = write_suite(tmp_path, methods=("train_twice",), iterations=30, checkpoint_every=15, eval_every=0)
    marker, cache = tmp_path / "paused", tmp_path / "cache"
    args = [sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), "--plugin", str(plugin), "run",
            "--suite", str(suite), "--results", str(tmp_path / "results")]
    env = {**os.environ, "HUBBENCH_CACHE": str(cache), "PAUSE_MARKER": str(marker)}
    saved, wall = {}, []
    for stage in ("artifact", "cell", None):
        started = time.time()
        proc = subprocess.Popen(args, cwd=ROOT, env={**env, "PAUSE_AT": stage or ""},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = started + 300
        while stage and not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        if stage:
            proc.send_signal(signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL, f"the run ended before it paused at the {stage}"
            marker.unlink()
            [checkpoint] = cache.glob("checkpoints/*.ckpt")  # the stage's own; the artifact's went once it was cached
            saved[stage] = torch.load(checkpoint, weights_only=True)["seconds"]
        else:
            assert proc.wait() == 0
        wall.append(time.time() - started)
    cost = json.loads((tmp_path / "results/tiny/tiny/digits/train_twice/seed0.json").read_text())["cost"]
    assert saved["artifact"] <= cost["artifacts_s"] <= saved["artifact"] + wall[1], (cost, saved, wall)
    assert saved["cell"] <= cost["train_s"] <= saved["cell"] + wall[2], (cost, saved, wall)
