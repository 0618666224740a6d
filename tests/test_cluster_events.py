"""The cluster's own events (a job timed out too often, pre-empted, cancelled) are never a method's failure:
the cell leaves no record and keeps its checkpoints, and a rerun resumes it. A record that failed on a bad input
file is redone by a plain rerun."""

import json
import os

import pytest
import torch
from conftest import write_suite
from submitit.core.utils import UncompletedJobError

from hubbench import record as records
from hubbench.benchmark.cells import expand
from hubbench.benchmark.cli import main
from hubbench.benchmark.executors import CellJob, SubmissionError, Submitit, submitit_folder
from hubbench.benchmark.jobs import job_states, listed_states
from hubbench.benchmark.runner import Redo, run_cell
from hubbench.benchmark.status import report
from hubbench.benchmark.suites import Suite
from hubbench.context import Context


def on_path(tmp_path, monkeypatch, **scripts: str) -> None:
    """The scheduler's commands, faked: an executable `name` running the shell `body` of each, first on PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, body in scripts.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")


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
    on_path(tmp_path, monkeypatch,
            sbatch="echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\nexit 1",
            srun="exit 0")  # submitit takes a machine without srun for no cluster, before it submits
    results = tmp_path / "results"
    executor = Submitit(submitit_folder(results, cell.suite.name), "t", {"time_min": 5, "cpus": 1})
    with pytest.raises(SubmissionError, match="^SLURM refuses the jobs of scratch: Batch job submission failed: "
                                              "Invalid partition name specified$"):
        executor.submit_arrays([cell], [CellJob.of(cell, results, "cpu")])
    assert not results.exists() and capsys.readouterr().err == ""  # sbatch's own lines are not repeated


NO_CONFIG = ("sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
             "sbatch: error: fetch_config: DNS SRV lookup failed\n"
             "sbatch: error: _establish_config_source: failed to fetch config\n"
             "sbatch: fatal: Could not establish a configuration source")


@pytest.mark.parametrize("complaint, message, refusal", [  # sbatch's own words (SLURM 22.05)
    ("sbatch: error: invalid partition specified: nope\nallocation failure: Invalid partition name specified",
     "SLURM refuses the jobs of scratch: invalid partition specified: nope", True),
    ("allocation failure: Requested node configuration is not available",  # a refusal that says 'configuration'
     "SLURM refuses the jobs of scratch: allocation failure: Requested node configuration is not available", True),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
     "the SLURM controller does not answer (is slurmctld running? `scontrol ping` asks it): Batch job submission "
     "failed: Unable to contact slurm controller (connect failure)", False),
    (NO_CONFIG, "SLURM has no configuration on this machine (set SLURM_CONF to the cluster's slurm.conf, or submit "
                "from a login node): resolve_ctls_from_dns_srv: res_nsearch error: Unknown host; fetch_config: DNS SRV "
                "lookup failed; _establish_config_source: failed to fetch config; Could not establish a "
                "configuration source", False),
])
def test_a_scheduler_that_cannot_take_the_jobs_is_one_line_naming_the_cause(complaint, message, refusal, tmp_path,
                                                                             monkeypatch, capsys):
    """Refused by its policy, a controller that does not answer, no configuration: each its own words and what to
    do; a dry run is refused only by the scheduler's own no, and otherwise says it could not ask."""
    on_path(tmp_path, monkeypatch, sbatch=f"cat >/dev/null\ncat >&2 <<'EOF'\n{complaint}\nEOF\nexit 1")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    suite = write_suite(tmp_path, methods=("scratch",))
    args = ["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--executor", "slurm"]
    assert main(args) == 2
    assert capsys.readouterr().err == f"hubbench: error: {message}\n"
    assert main([*args, "--dry-run"]) == (2 if refusal else 0)
    out, err = capsys.readouterr()
    assert (f"hubbench: error: {message}\n" == err) if refusal else (f"the jobs: not checked with the scheduler: "
                                                                      f"{message}\n" in out)
    assert not (tmp_path / "r").exists()


def test_a_slurm_conf_that_is_no_file_is_said_at_once(cell, tmp_path, monkeypatch):
    """sbatch would retry reading it for a minute before it says so."""
    on_path(tmp_path, monkeypatch, sbatch="exit 1")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nowhere.conf"))
    executor = Submitit(submitit_folder(tmp_path, cell.suite.name), "t", {"time_min": 5, "cpus": 1})
    with pytest.raises(SubmissionError, match=f"^SLURM has no configuration on this machine .*: SLURM_CONF="
                                              f"{tmp_path}/nowhere.conf is not a file$"):
        executor.check([cell])
    assert executor.check([cell], reachable_only=True).startswith("not checked with the scheduler: SLURM has no")


def test_a_jobs_state_is_its_own_not_its_arrays_nor_a_siblings():
    listed = "41_0|RUNNING\n41_[1-3%2]|PENDING\n41_2|RUNNING\n42|COMPLETED\n43_[5,7]|PENDING\n"
    assert listed_states(listed) == {"41_0": "RUNNING", "41_1": "PENDING", "41_2": "RUNNING", "41_3": "PENDING",
                                     "42": "COMPLETED", "43_5": "PENDING", "43_7": "PENDING"}


def test_status_takes_each_jobs_state_from_the_scheduler_and_a_completed_one_is_done(tmp_path, monkeypatch):
    """sacct for the jobs it lists, squeue for one it does not list yet; a job whose last attempt completed is
    COMPLETED, though a warning signal that came while it exited made SLURM say FAILED; one that failed after a
    restart is not."""
    on_path(tmp_path, monkeypatch, sacct="printf '41_2|RUNNING\n41_[1-3]|PENDING\n50|FAILED\n51|FAILED\n'",
            squeue="printf '60|PENDING\n'")
    folder = tmp_path / ".submitit"
    folder.mkdir()
    jobs = {"a": ["41_2"], "b": ["41_3"], "c": ["50"], "d": ["49", "51"], "e": ["60"]}
    (folder / "jobs.json").write_text(json.dumps({"cluster": "slurm", "jobs": jobs}))
    start, done = " - Starting with JobEnvironment(job_id=50)\n", "submitit INFO - Job completed successfully\n"
    (folder / "50_0_log.out").write_text(start + done)
    (folder / "51_0_log.out").write_text(start + done + start)  # completed, then started again and failed
    assert job_states(folder) == {"a": "41_2 RUNNING", "b": "41_3 PENDING", "c": "50 COMPLETED",
                                  "d": "51 FAILED (1 earlier jobs, 2 starts)", "e": "60 PENDING"}
