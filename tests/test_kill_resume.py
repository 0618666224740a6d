"""SIGKILL `hubbench run` mid-cell, rerun it, and get the record of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
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
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", *run_args(suite, killed_results)],
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
