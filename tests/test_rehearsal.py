"""The paper suites' rehearsal: its suite, and a reduced run of it on the CPU on `hubbench data synth` data."""

import json

from conftest import hubbench

from hubbench.benchmark.suites import Suite
from hubbench.tasks import TASKS

PAPER_SUITES = ("paper-cls", "paper-hetero", "paper-landmarks")
# What CI can afford on one core: the ResNet-50 hub, one classification and one landmark task at 48 px (at
# 32 px the last feature map is 1x1, and a sample routed alone leaves BatchNorm one value per channel),
# batches of 2, one test view, and methods whose models differ in kind: one source, per-sample aggregated
# kernels, folded kernels, routing. In fp32: every method's bf16 path is checked on the tiny hub
# (`hubbench.testing`), and on a CPU without bfloat16 units, where each bf16 convolution is emulated,
# these cells took 40 minutes in bf16.
CPU_TASKS = ("dmlab", "cofw")
CPU_METHODS = ("finetune[model=supervised]", "zoo_tuning", "zoo_tuning_l", "hub_pathway")
CPU_PROTOCOL = {"image_size": 48, "resize": 54, "batch_size": 2, "eval_batch_size": 4, "test_views": 1}


def test_the_rehearsal_covers_the_paper_suites_at_full_size():
    rehearsal, papers = Suite.load("paper-rehearsal"), [Suite.load(name) for name in PAPER_SUITES]
    assert set(rehearsal.hubs) == {h for s in papers for h in s.hubs}
    assert set(rehearsal.tasks) >= {t for s in papers for t in s.tasks} | {"aflw"}
    assert all(rehearsal.methods == s.methods for s in papers) and rehearsal.seeds == (0,)
    assert set(rehearsal.protocol) == {"iterations", "eval_every", "checkpoint_every"}  # the papers' sizes
    iterations = rehearsal.protocol["iterations"]
    assert iterations <= 10 and rehearsal.protocol["checkpoint_every"] < iterations  # a handful, one resumable
    assert all(TASKS.get(t).external_data for t in rehearsal.tasks)


def test_a_reduced_rehearsal_runs_every_cell_ok_on_synthetic_data(tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    hubbench("data", "synth", str(data), "--datasets", *CPU_TASKS)
    reduced = [f"--set={k}={v}" for k, v in CPU_PROTOCOL.items()]
    chosen = ["--hub", "resnet50-zoo", *(a for t in CPU_TASKS for a in ("--task", t)),
              *(a for m in CPU_METHODS for a in ("--method", m))]
    out = hubbench("run", "--suite", "paper-rehearsal", "--random-weights", "--data-dir", str(data), "--results",
                   str(results), "--device", "cpu", "--precision", "fp32", *chosen, *reduced).stdout
    records = [json.loads(p.read_text()) for p in sorted(results.rglob("seed*.json"))]
    assert len(records) == len(CPU_TASKS) * len(CPU_METHODS), out
    assert [(r["task"], r["method"]["id"], r["status"]) for r in records if r["status"] != "ok"] == []
    for r in records:
        assert r["config"]["hub"]["config"]["weights"] == "random" and r["config"]["runtime"]["bf16"] is False
        assert r["config"]["task"]["protocol"]["iterations"] == Suite.load("paper-rehearsal").protocol["iterations"]
