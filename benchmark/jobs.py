"""The submitit jobs of a suite's cells, as `jobs.json` keeps them beside submitit's own files: what `status`
and `cancel` read (and `--executor slurm` appends to), without importing the executors or torch."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubbench.io import read_json


def submitit_folder(results: Path, suite: str) -> Path:
    """Where submitit keeps a suite's job scripts, pickles and logs, and `jobs.json`."""
    return results / suite / ".submitit"


ACTIVE = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "RUNNING", "COMPLETING", "RESIZING", "SUSPENDED",
          "PREEMPTED"}  # scheduler states of a job that has not ended (submitit's local cluster: RUNNING)
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING", "PREEMPTED"}


def log_of(job) -> str:
    """The job's stdout log, where submitit says each start and the end of a job that completed."""
    try:
        return job.paths.stdout.read_text(errors="replace")
    except OSError:  # not started yet
        return ""


def starts(job) -> int:
    """How many times a job has started: submitit logs "Starting with" (INFO, to stdout) at each start, and every
    attempt of a requeued job appends to the same log."""
    return log_of(job).count(" - Starting with ")


def completed(job) -> bool:
    """Whether the job's last attempt returned its result (submitit's "Job completed successfully"), whatever state
    the scheduler gives it (a warning signal that came while it exited makes it FAILED)."""
    log = log_of(job)
    return log.rfind("Job completed successfully") > log.rfind(" - Starting with ")


def scheduler_states(ids: Sequence[str]) -> dict[str, str]:
    """SLURM's state of each job of `ids`, an array task's its own (not its array's, nor a sibling's): from sacct,
    else from squeue for a job that accounting does not list yet; none for a job neither knows."""
    states: dict[str, str] = {}
    for command in (["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j"], ["squeue", "-h", "-o", "%i|%T", "-j"]):
        missing = [i for i in ids if i not in states]
        if missing and shutil.which(command[0]):
            done = subprocess.run([*command, ",".join(missing)], capture_output=True, text=True)
            states.update({i: s for i, s in listed_states(done.stdout).items() if i in missing})
    return states


def listed_states(text: str) -> dict[str, str]:
    """'<job id>|<state>' lines as {job id: state}: a pending range of array tasks ('41_[2-4%1]') stands for each
    of its tasks, unless a line of the task itself says otherwise."""
    from submitit.slurm.slurm import read_job_id

    exact, ranged = {}, {}
    for line in text.splitlines():
        job, _, state = line.strip().partition("|")
        if "[" not in job:
            exact[job] = state
            continue
        for main, *bounds in read_job_id(job):
            first, last = (int(bounds[0]), int(bounds[-1])) if bounds else (0, -1)
            ranged.update({f"{main}_{i}": state for i in range(first, last + 1)})
    return {**ranged, **exact}


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
    import submitit  # here: `hubbench status` imports it only where a suite has been submitted

    job_class = {"slurm": submitit.SlurmJob, "local": submitit.LocalJob}[read_json(path)["cluster"]]
    return {cell: job_class(folder, ids[-1]) for cell, ids in job_ids(folder).items()}


def last_jobs(folder: Path, cluster: str | None = None) -> dict[str, tuple[Any, str]]:
    """Each cell's last job and its state (`latest_jobs`): a SLURM job's from the scheduler (`scheduler_states`, one
    call for all; UNKNOWN if it does not know it), a local one's from submitit; a job whose last attempt
    completed is COMPLETED, whatever signal came while it exited."""
    import submitit

    jobs = latest_jobs(folder, cluster)
    slurm = [job.job_id for job in jobs.values() if isinstance(job, submitit.SlurmJob)]
    known = scheduler_states(slurm) if slurm else {}
    out = {}
    for cell, job in jobs.items():
        state = known.get(job.job_id, "UNKNOWN") if job.job_id in slurm else job.state
        if state.split()[0] not in ACTIVE | {"COMPLETED", "FINISHED"} and completed(job):
            state = "COMPLETED"
        out[cell] = (job, state)
    return out


def job_states(folder: Path) -> dict[str, str]:
    """'<job id> <state>' of each cell's last job submitted through submitit from `folder` (none if never),
    with the number of its earlier jobs and of the job's starts (requeues) when there were more than one."""
    ids = job_ids(folder)
    states = {}
    for cell, (job, state) in last_jobs(folder).items():
        earlier, n = len(ids[cell]) - 1, starts(job)
        notes = [f"{earlier} earlier jobs"] * (earlier > 0) + [f"{n} starts"] * (n > 1)
        states[cell] = f"{job.job_id} {state}" + (f" ({', '.join(notes)})" if notes else "")
    return states
