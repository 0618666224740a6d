"""Parallel executors: the in-process loop, the local pool and submitit (its local cluster: real
subprocesses) write identical records; eight concurrent runs lose nothing and run each cell once;
a SIGKILLed worker or a pre-empted job resumes; status, ordering and the slurm dry run."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import PLUGIN, ROOT, hubbench, write_suite

from hubbench import record as records
from hubbench.artifacts import checkpoint_stem
from hubbench.benchmark.cells import expand
from hubbench.benchmark.cli import main
from hubbench.benchmark.executors import Submitit, pending, slurm_resources, submitit_folder
from hubbench.benchmark.plugins import load_plugins
from hubbench.benchmark.runner import Redo, StaleRecords, check_records, run_cells
from hubbench.benchmark.status import report
from hubbench.benchmark.suites import Suite
from hubbench.io import read_json, write_json
from hubbench.locks import locked

PAIR_PLUGIN = '''"""A hub of the mini hub's first two sources (seconds of pre-training): ensemble_i shares both."""
import dataclasses

from hubbench.hubs.base import HUBS, Hub
from hubbench.hubs.mini import MINI_RESNET, Pretrained, Pretraining
from hubbench.hubs.sources import SOURCE_TASKS

CFG = Pretraining(images=64, iterations=4, batch_size=16)
if "pair" not in HUBS:
    HUBS.register("pair")(lambda: Hub(
        "pair", "two tiny MiniResNets",
        tuple(Pretrained(t.name, t, MINI_RESNET, CFG, "pair").source() for t in SOURCE_TASKS[:2]),
        config={"pretraining": dataclasses.asdict(CFG)}))
'''
NOT_RESULTS = ("timings", "cost", "started", "finished")  # wall times and dates


def comparable(results: Path) -> dict:
    """Every record under `results`, without what legitimately differs between runs."""
    out = {}
    for path in sorted(results.rglob("seed*.json")):
        record = {k: v for k, v in json.loads(path.read_text()).items() if k not in NOT_RESULTS}
        record["environment"].pop("git")  # the checkout may change while tests run
        for measured in ("memory", "speed"):  # of this machine at this moment; params and FLOPs must agree
            record.get("complexity", {}).pop(measured, None)
        for artifact in record.get("artifacts", []):
            artifact.pop("train_s")
        out[str(path.relative_to(results))] = record
    return out


def cli(plugin: Path, suite: Path, root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    """`hubbench run` of `suite` into root/results, with its own cache root/cache."""
    env = {**os.environ, "HUBBENCH_CACHE": str(root / "cache")}
    return hubbench("--plugin", str(plugin), "run", "--suite", str(suite), "--results", str(root / "results"),
                    *args, env=env, **kw)


def run_submitit_local(plugin: Path, suite_path: Path, root: Path, cells=None, cells_per_job: int = 1):
    """Run a suite's cells as jobs of submitit's local cluster (what `--executor slurm` submits)."""
    plugins = [str(PLUGIN), str(plugin)]
    load_plugins(plugins)
    suite = Suite.load(str(suite_path))
    results = root / "results"
    executor = Submitit(submitit_folder(results, suite.name), "test", slurm_resources(suite, {}, 1),
                        cluster="local", plugins=plugins, cells_per_job=cells_per_job)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUBBENCH_CACHE", str(root / "cache"))  # the jobs get it with their settings
        return run_cells(cells or expand(suite), results, "cpu", executor=executor)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "pair_plugin.py"
    path.write_text(PAIR_PLUGIN)
    load_plugins([str(PLUGIN), str(path)])  # here too: some tests expand suites in this process
    return path


@pytest.fixture(scope="module")
def grid(pair, tmp_path_factory) -> tuple[Path, Path]:
    """The same small grid through the three executors; ensemble_i shares the finetune cells' artifacts."""
    root = tmp_path_factory.mktemp("grid")
    suite = write_suite(root, "grid", hubs=("pair",), tasks=("scenes",), methods=("finetune", "ensemble_i"))
    cli(pair, suite, root / "inline")
    out = cli(pair, suite, root / "local", "--executor", "local", "--workers", "2").stdout
    assert "3 ok" in out
    assert run_submitit_local(pair, suite, root / "submitit") == {"ok": 3}
    assert run_submitit_local(pair, suite, root / "packed", cells_per_job=3) == {"ok": 3}  # one job, three cells
    return root, suite


def test_inline_local_pool_and_submitit_write_identical_records(grid):
    root, _ = grid
    inline = comparable(root / "inline/results")
    assert len(inline) == 3 and all(r["status"] == "ok" for r in inline.values())
    ensemble = inline["grid/pair/scenes/ensemble_i/seed0.json"]
    assert [a["id"] for a in ensemble["artifacts"]] == ["finetuned-supervised", "finetuned-selfsup"]
    assert comparable(root / "local/results") == inline
    assert comparable(root / "submitit/results") == inline
    assert comparable(root / "packed/results") == inline
    assert len({ids[-1] for ids in read_json(root / "packed/results/grid/.submitit/jobs.json")["jobs"].values()}) == 1


def test_status_counts_and_lists_cells_with_their_jobs(grid, pair):
    root, suite = grid
    out = hubbench("--plugin", str(pair), "status", "--suite", str(suite), "--list", "--results",
                   str(root / "submitit/results")).stdout
    assert out.startswith("grid: 3 cells: 3 done\n")
    assert re.search(r"pair/scenes/ensemble_i/seed0 +done +\d+ FINISHED +top1=", out)


def states(rows: list[str]) -> list[str]:
    return [row.split()[1] for row in rows[1:]]  # below the header: cell, state, ...


def test_status_tells_running_interrupted_failed_and_missing(grid, tmp_path):
    root, suite_path = grid
    cells = expand(Suite.load(str(suite_path)))
    cache, done = tmp_path / "cache", root / "inline/results"
    assert states(report(cells, done, cache, {})[1]) == ["done", "done", "done"]
    finetune, other, ensemble = cells
    results = tmp_path / "results"
    record = json.loads(finetune.path(done).read_text())
    write_json(finetune.path(results), {**record, "status": "failed", "reason": "RuntimeError: boom"})
    stem = checkpoint_stem(other.scope, other.seed, other.protocol)
    (cache / "checkpoints").mkdir(parents=True)
    (cache / "checkpoints" / f"{stem}-model.ckpt").touch()
    with locked(ensemble.scope):
        counts, rows = report(cells, results, cache, {ensemble.id: "123 RUNNING"})
    assert states(rows) == ["failed", "interrupted", "running"]
    assert "RuntimeError: boom" in rows[1] and "123 RUNNING" in rows[3]
    assert counts == {"failed": 1, "interrupted": 1, "running": 1}
    assert states(report(cells, results, cache, {})[1])[2] == "missing"


def test_pending_puts_artifact_producers_first_and_retries_failed(grid, tmp_path):
    _, suite_path = grid
    suite = Suite.load(str(suite_path))
    cells = expand(suite)
    reordered = expand(Suite(suite.name, "", suite.hubs, suite.tasks, ("ensemble_i", "finetune"), suite.seeds))
    assert [c.plugin.name for c in pending(reordered, tmp_path)] == ["finetune", "finetune", "ensemble_i"]
    for cell, status in zip(cells[:2], (records.FAILED, records.OK), strict=True):
        method = records.PluginId.of(cell.plugin)
        records.write(cell.path(tmp_path), records.Record(suite.name, cell.hub, cell.task, "classification", method,
                                                          cell.seed, status, records.Metric("top1")))
    assert pending(cells, tmp_path) == [cells[2]]
    assert pending(cells, tmp_path, Redo(failed=True)) == [cells[0], cells[2]]


def test_a_record_of_another_hub_version_or_protocol_is_stale_not_done(grid, pair, tmp_path, capsys):
    root, suite_path = grid
    cells = expand(Suite.load(str(suite_path)))
    finetune, other, ensemble = cells
    done, results = root / "inline/results", tmp_path / "results"
    for cell in cells:
        write_json(cell.path(results), read_json(cell.path(done)))
    record = read_json(finetune.path(results))
    record["config"]["hub"]["config"]["pretraining"]["iterations"] = 2  # the hub's sources were trained otherwise
    write_json(finetune.path(results), record)
    record = read_json(ensemble.path(results))
    record["config"]["task"]["protocol"]["iterations"] = 3
    write_json(ensemble.path(results), record)
    rows = report(cells, results, tmp_path / "cache", {})[1]
    assert states(rows) == ["stale", "done", "stale"]
    assert "made under hub.config.pretraining.iterations: 2 -> 4" in rows[1]
    assert "made under protocol.iterations: 3 -> 6" in rows[3]
    assert pending(cells, results) == [] and pending(cells, results, Redo(stale=True)) == [finetune, ensemble]
    with pytest.raises(StaleRecords, match=re.escape(f"record of {finetune.id} (and 1 more) was made under another")):
        check_records(cells, results)
    check_records(cells, results, Redo(stale=True))
    check_records(cells, results, Redo(all=True))
    kept = [cell.path(results).read_bytes() for cell in cells]
    assert main(["--plugin", str(pair), "run", "--suite", str(suite_path), "--results", str(results)]) == 2
    assert "--rerun-stale redoes such records" in capsys.readouterr().err
    assert [cell.path(results).read_bytes() for cell in cells] == kept


def test_eight_concurrent_runs_run_each_cell_once_and_lose_no_record(pair, tmp_path):
    suite = write_suite(tmp_path, "crowd", hubs=("pair",), tasks=("scenes",), seeds=(0, 1),
                        methods=("scratch", "finetune", "ensemble_i"))
    env = {**os.environ, "HUBBENCH_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "benchmark", "--plugin", str(pair), "run", "--suite", str(suite),
           "--results", str(tmp_path / "results")]
    only_ensembles = ["--method", "ensemble_i"]  # these race the finetune cells for the artifacts
    procs = [subprocess.Popen(cmd + only_ensembles * (i % 2), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for i in range(8)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8
    ran = [line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("ok ")]
    assert len(ran) == 8 and len(set(ran)) == 8, "a cell ran twice, or not at all"
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").rglob("*.json"))]
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    for seed in (0, 1):  # each artifact trained once: the ensemble reports the training its finetune cell did
        by_method = {r["method"]["id"]: r for r in records if r["seed"] == seed}
        for artifact in by_method["ensemble_i"]["artifacts"]:
            source = artifact["id"].removeprefix("finetuned-")
            assert by_method[f"finetune[model={source}]"]["artifacts"] == [artifact]
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.fixture(scope="module")
def long_grid(pair, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A grid with cells long enough to be stopped mid-way, and its records from an uninterrupted run."""
    root = tmp_path_factory.mktemp("long")
    suite = write_suite(root, "long", hubs=("pair",), tasks=("scenes",), iterations=60, checkpoint_every=5,
                        eval_every=20, methods=("scratch", "finetune[model=supervised]"))
    cli(pair, suite, root / "reference")
    return root, suite, comparable(root / "reference/results")


def worker_pids(parent: int) -> list[int]:
    """The pool's worker processes among `parent`'s children (not its resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def wait_for_checkpoint(cache: Path, alive, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and alive() and not list(cache.glob("checkpoints/*.ckpt")):
        time.sleep(0.01)


def local_run_in_training(pair: Path, suite: Path, tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """`hubbench run --executor local --workers 2` into tmp_path, once a checkpoint is written, and its workers."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "benchmark", "--plugin", str(pair), "run", "--suite", str(suite), "--results",
           str(tmp_path / "results"), "--executor", "local", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "HUBBENCH_CACHE": str(cache)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    wait_for_checkpoint(cache, lambda: proc.poll() is None)
    workers = worker_pids(proc.pid) if proc.poll() is None else []
    assert workers, "the run ended before it could be stopped mid-cell"
    return proc, workers


def test_sigkill_of_a_local_worker_then_rerun_resumes(long_grid, pair, tmp_path):
    root, suite, reference = long_grid
    cache = tmp_path / "cache"
    proc, victims = local_run_in_training(pair, suite, tmp_path)
    os.kill(victims[0], signal.SIGKILL)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 1 and "incomplete" in out
    assert len(comparable(tmp_path / "results")) < 2 and list(cache.glob("checkpoints/*.ckpt"))

    rerun = cli(pair, suite, tmp_path, "--executor", "local", "--workers", "2").stdout
    assert "incomplete" not in rerun
    assert comparable(tmp_path / "results") == reference
    assert not list(cache.glob("checkpoints/*.ckpt")) and not list(tmp_path.rglob("*.tmp"))


def test_local_workers_end_with_a_killed_run(long_grid, pair, tmp_path):
    """SIGKILL of `hubbench run` (its pool cannot stop its workers): they end too, not training on unseen."""
    proc, workers = local_run_in_training(pair, long_grid[1], tmp_path)
    proc.kill()
    proc.wait()
    proc.stdout.close()  # not read: orphaned workers would hold it open
    deadline = time.time() + 30
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists() and b"spawn_main" in
                Path(f"/proc/{w}/cmdline").read_bytes()], "workers outlived the run"


def test_preempted_submitit_job_is_requeued_and_resumes(long_grid, pair, tmp_path):
    _, suite_path, reference = long_grid
    cache, folder = tmp_path / "cache", submitit_folder(tmp_path / "results", "long")
    cells = expand(Suite.load(str(suite_path)), methods=["scratch"])
    signalled = []

    def preempt():  # SLURM's warning signal, sent to the job's process while it trains
        wait_for_checkpoint(cache, lambda: True)
        controller = int(json.loads((folder / "jobs.json").read_text())["jobs"][cells[0].id][-1])
        task = int(Path(f"/proc/{controller}/task/{controller}/children").read_text().split()[0])
        os.kill(task, signal.SIGUSR2)
        signalled.append(task)

    thread = threading.Thread(target=preempt)
    thread.start()
    try:
        assert run_submitit_local(pair, suite_path, tmp_path, cells) == {"ok": 1}
    finally:
        thread.join()
    assert signalled
    log = "".join(p.read_text() for p in folder.glob("*_log.*"))
    assert "this job is preempted" in log and "Requeued job" in log
    expected = {k: v for k, v in reference.items() if "/scratch/" in k}
    assert comparable(tmp_path / "results") == expected


def test_slurm_dry_run_prints_the_sbatch_parameters_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scheduler to ask: the dry run alone (tests/test_slurm.py asks one)
    suite = tmp_path / "gpu.toml"
    suite.write_text('hubs = ["mini"]\ntasks = ["scenes", "digits"]\nmethods = ["scratch", "ensemble_i"]\n'
                     '[slurm]\npartition = "gpu"\ngpus = 1\nmem_gb = 16\ntime_min = 90\n')
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results), "--executor", "slurm", "--dry-run",
                 "--slurm-time-min", "30", "--slurm-max-parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 of 4 cells would run:\n  mini/scenes/scratch/seed0\n  mini/digits/scratch/seed0\n")
    for line in ("--array=0-3%2", "--partition=gpu", "--gpus-per-node=1", "--mem=16GB", "--time=30",
                 "--cpus-per-task=1", "--job-name=hubbench-gpu", "--signal=USR2@90"):
        assert f"#SBATCH {line}\n" in out
    assert not results.exists()


def test_per_method_slurm_resources_make_one_array_each(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scheduler to ask: the dry run alone (tests/test_slurm.py asks one)
    suite = tmp_path / "mixed.toml"
    suite.write_text('hubs = ["mini"]\ntasks = ["scenes", "digits"]\nmethods = ["scratch", "ensemble_i"]\n'
                     '[slurm]\npartition = "cpu"\ntime_min = 30\n'
                     '[slurm.methods.ensemble_i]\npartition = "gpu"\ngpus = 1\n')
    assert main(["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--executor", "slurm",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    scratch, ensemble = out.split("# 2 cells (scratch)\n")[1].split("# 2 cells (ensemble_i)\n")
    assert "#SBATCH --partition=cpu\n" in scratch and "--gpus-per-node" not in scratch
    assert "#SBATCH --partition=gpu\n" in ensemble and "#SBATCH --gpus-per-node=1\n" in ensemble
    assert "#SBATCH --time=30\n" in scratch and "#SBATCH --time=30\n" in ensemble  # the suite's, inherited
    bad = tmp_path / "bad.toml"
    bad.write_text(suite.read_text().replace("slurm.methods.ensemble_i", "slurm.methods.distill"))
    assert main(["run", "--suite", str(bad), "--executor", "slurm", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "slurm.methods.distill: not a method of this suite (choose from: ensemble_i, scratch)" in err


@pytest.mark.parametrize("args, table, message", [
    (["--executor", "slurm", "--dry-run"], "gpus = -1", "slurm.gpus must be an integer of at least 0, got -1"),
    (["--executor", "slurm", "--dry-run"], "nodes = 2", "unknown slurm key(s) nodes (choose from: partition,"),
    (["--executor", "slurm", "--dry-run", "--slurm-time-min", "0"], "", "slurm.time_min must be an integer of"),
    (["--slurm-gpus", "1"], "", "--slurm-gpus applies to --executor slurm"),
    (["--workers", "2"], "", "--workers takes a positive number, with --executor local"),
    (["--cells-per-gpu", "2"], "", "--cells-per-gpu takes a positive number, with --executor local or slurm on"),
    (["--executor", "local", "--cells-per-gpu", "0"], "", "--cells-per-gpu takes a positive number"),
])
def test_bad_executor_options_are_usage_errors(args, table, message, tmp_path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(f'hubs = ["mini"]\ntasks = ["scenes"]\nmethods = ["scratch"]\n[slurm]\n{table}\n')
    assert main(["run", "--suite", str(suite), "--results", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hubbench: error: ") and message in err and not (tmp_path / "r").exists()
