"""`hubbench cancel`: stop the jobs of a suite that are still queued or running on the cluster (those a
client left behind when it was interrupted), from the job ids its runs kept in `jobs.json`."""

from __future__ import annotations

from pathlib import Path

from hubbench.benchmark.jobs import ACTIVE, last_jobs


def cancel(folder: Path, cells: set[str] | None = None) -> list[str]:
    """Cancel the last job of each cell (of `cells`, or every cell) submitted from `folder` that has not ended;
    returns their ids. A job holding several cells is cancelled once."""
    jobs = {job.job_id: (job, state) for cell, (job, state) in last_jobs(folder).items()
            if cells is None or cell in cells}
    active = [job for job, state in jobs.values() if state.split()[0] in ACTIVE]
    for job in active:
        job.cancel(check=False)
    return [job.job_id for job in active]
