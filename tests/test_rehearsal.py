"""The paper suites' rehearsal: its suite, and a reduced run of it on the CPU on `hubbench data synth` data."""

import json

from conftest import hubbench, write_suite
from hubbench.benchmark.runner import expand
from hubbench.benchmark.suites import SUITES_DIR, Suite, tomllib
from hubbench.tasks import TASKS

PAPER_SUITES = ("paper-cls", "paper-hetero", "paper-landmarks")
# What CI can afford on one core: one classification and one landmark task, 32 px, batches of 2 (still ten
# test views), and methods whose models differ in kind: one source, aggregated kernels, folded kernels, routing.
CPU_TASKS = ("dmlab", "cofw")
CPU_METHODS = ("finetune[model=supervised]", "zoo_tuning", "zoo_tuning_l", "hub_pathway")
CPU_PROTOCOL = {"image_size": 32, "resize": 36, "batch_size": 2, "eval_batch_size": 16}


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
    spec = tomllib.loads((SUITES_DIR / "paper-rehearsal.toml").read_text())
    suite = write_suite(tmp_path, "paper-rehearsal", hubs=("resnet50-zoo",), tasks=CPU_TASKS, methods=CPU_METHODS,
                        **{**spec["protocol"], **CPU_PROTOCOL})
    hubbench("run", "--suite", str(suite), "--random-weights", "--data-dir", str(data), "--results", str(results),
             "--device", "cpu")
    records = [json.loads(p.read_text()) for p in sorted(results.rglob("seed*.json"))]
    assert len(records) == len(expand(Suite.load(str(suite)))) == len(CPU_TASKS) * len(CPU_METHODS)
    assert [(r["task"], r["method"]["id"], r["status"]) for r in records if r["status"] != "ok"] == []
    for r in records:
        assert r["config"]["hub"]["config"]["weights"] == "random" and r["complexity"]["flops"]["fvcore_gflops"] > 0
