"""The cluster's own events (a job timed out too often, pre-empted, cancelled) are never a method's failure:
the cell leaves no record and keeps its checkpoints, and a rerun resumes it. A record that failed on a bad input
file is redone by a plain rerun."""

import os

import pytest
import torch
from conftest import write_suite
from submitit.core.utils import UncompletedJobError

from hubbench import record as records
from hubbench.benchmark.cells import expand
from hubbench.benchmark.cli import main
from hubbench.benchmark.executors import CellJob, SubmissionError, Submitit, submitit_folder
from hubbench.benchmark.runner import Redo, run_cell
from hubbench.benchmark.status import report
from hubbench.benchmark.suites import Suite
from hubbench.context import Context


@pytest.fixture
def cell(tiny_hub, tmp_path):
    return expand(Suite.load(str(write_suite(tmp_path, methods=("scratch",)))))[0]


def test_a_job_stopped_for_good_by_the_cluster_leaves_no_record_and_keeps_the_checkpoints(cell, tmp_path,
                                                                                           monkeypatch):
    train = Context.train

    def timed_out(self, *args, **kw):  # what submitit raises inside the cell past its last requeue
        train(self, *args, **kw)
        raise UncompletedJobError("Job not requeued because: timed-out too many times.")

    cache = tmp_path / "cache"
    monkeypatch.setattr(Context, "train", timed_out)
    with pytest.raises(UncompletedJobError):
        run_cell(cell, tmp_path / "results", torch.device("cpu"), cache=cache)
    assert not cell.path(tmp_path / "results").exists()
    assert list((cache / "checkpoints").glob("*.ckpt")), "the checkpoints a rerun resumes from were deleted"
    monkeypatch.undo()
    status, record = run_cell(cell, tmp_path / "results", torch.device("cpu"), cache=cache)
    assert status == records.OK and not list((cache / "checkpoints").glob("*.ckpt"))


@pytest.mark.parametrize("reason, redone", [
    ("BadCheckpoint: resnet50-0676ba61.pth: sha256 ... does not start with 0676ba61", True),
    ("DatasetError: /data/cub/1.jpg: not a readable image (truncated)", True),
    ("RuntimeError: CUDA error: an illegal memory access", False),
])
def test_a_record_failed_on_a_bad_input_file_is_redone_by_a_plain_rerun(cell, reason, redone):
    method = records.PluginId.of(cell.plugin)
    failed = records.Record(cell.suite.name, cell.hub, cell.task, "classification", method, cell.seed,
                            records.FAILED, records.Metric("top1"), reason=reason)
    assert Redo()(cell, failed) is redone
    assert Redo(failed=True)(cell, failed)


@pytest.mark.parametrize("job, state", [("12 PENDING", "queued"), ("12_3 REQUEUED", "queued"),
                                        ("12 RUNNING", "running"), ("12 CANCELLED by 0", "missing"), ("", "missing")])
def test_status_shows_queued_and_running_from_the_scheduler(cell, tmp_path, job, state):
    rows = report([cell], tmp_path / "results", tmp_path / "cache", {cell.id: job} if job else {})[1]
    assert rows[1].split()[1] == state


@pytest.mark.parametrize("minutes, delay", [(2, 12), (10, 60), (60, 90)])
def test_the_warning_signal_leaves_a_short_job_most_of_its_time(minutes, delay, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no scheduler to ask
    suite = tmp_path / "s.toml"
    suite.write_text('hubs = ["mini"]\ntasks = ["scenes"]\nmethods = ["scratch"]\n')
    assert main(["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--executor", "slurm", "--dry-run",
                 "--slurm-time-min", str(minutes)]) == 0
    assert f"#SBATCH --signal=USR2@{delay}\n" in capsys.readouterr().out


def test_a_refused_submission_is_one_line_and_leaves_no_file(cell, tmp_path, monkeypatch, capsys):
    """sbatch refusing at submission (after `sbatch --test-only` accepted: a race) removes what submitit wrote."""
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2"
                    "\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    results = tmp_path / "results"
    executor = Submitit(submitit_folder(results, cell.suite.name), "t", {"time_min": 5, "cpus": 1})
    with pytest.raises(SubmissionError, match="^SLURM refused the jobs: Batch job submission failed: Invalid partition "
                                              "name specified$"):
        executor.submit_arrays([cell], [CellJob.of(cell, results, "cpu")])
    assert not results.exists() and capsys.readouterr().err == ""  # sbatch's own lines are not repeated
