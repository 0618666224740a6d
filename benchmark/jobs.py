"""The submitit jobs of a suite's cells, as `jobs.json` keeps them beside submitit's own files: what `status`
and `cancel` read (and `--executor slurm` appends to), without importing the executors or torch."""

from __future__ import annotations

from pathlib import Path

from hubbench.io import read_json


def submitit_folder(results: Path, suite: str) -> Path:
    """Where submitit keeps a suite's job scripts, pickles and logs, and `jobs.json`."""
    return results / suite / ".submitit"


ACTIVE = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "RUNNING", "COMPLETING", "RESIZING", "SUSPENDED",
          "PREEMPTED"}  # scheduler states of a job that has not ended (submitit's local cluster: RUNNING)
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "PREEMPTED"}


def starts(job) -> int:
    """How many times a job has started: submitit logs "Starting with" (INFO, to stdout) at each start, and every
    attempt of a requeued job appends to the same log."""
    try:
        return job.paths.stdout.read_text(errors="replace").count(" - Starting with ")
    except OSError:  # not started yet
        return 0


def job_ids(folder: Path) -> dict[str, list[str]]:
    """Every job id of each cell submitted from `folder`, oldest first (an older `jobs.json` held one)."""
    path = folder / "jobs.json"
    if not path.exists():
        return {}
    return {cell: [ids] if isinstance(ids, str) else list(ids) for cell, ids in read_json(path)["jobs"].items()}


def latest_jobs(folder: Path, cluster: str | None = None) -> dict:
    """Each cell's last job, as submitit's job object (its state is asked of the scheduler)."""
    path = folder / "jobs.json"
    if not path.exists() or (cluster is not None and read_json(path).get("cluster") != cluster):
        return {}
    import submitit  # here: `hubbench status` reads no job unless a suite has been submitted

    job_class = {"slurm": submitit.SlurmJob, "local": submitit.LocalJob}[read_json(path)["cluster"]]
    return {cell: job_class(folder, ids[-1]) for cell, ids in job_ids(folder).items()}


def job_states(folder: Path) -> dict[str, str]:
    """'<job id> <state>' of each cell's last job submitted through submitit from `folder` (none if never),
    with the number of its earlier jobs and of the job's starts (requeues) when there were more than one."""
    ids = job_ids(folder)
    states = {}
    for cell, job in latest_jobs(folder).items():  # one sacct call for all
        earlier, n = len(ids[cell]) - 1, starts(job)
        notes = [f"{earlier} earlier jobs"] * (earlier > 0) + [f"{n} starts"] * (n > 1)
        states[cell] = f"{job.job_id} {job.state}" + (f" ({', '.join(notes)})" if notes else "")
    return states
