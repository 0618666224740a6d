"""`hubbench status`: where each cell of a suite stands, read from what the runs leave behind (records,
locks, checkpoints, submitit's job ids), so it works for every executor and while they run."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from hubbench import record as records
from hubbench.artifacts import checkpoint_stem
from hubbench.benchmark.cells import Cell
from hubbench.benchmark.jobs import ACTIVE, QUEUED
from hubbench.locks import is_locked

STATES = ("done", "failed", "n/a", "stale", "queued", "running", "interrupted", "unreadable", "missing")
RECORD_STATES = {records.OK: "done", records.FAILED: "failed", records.INAPPLICABLE: "n/a"}
log = logging.getLogger(__name__)


def cell_state(cell: Cell, results: Path, cache: Path, job: str = "") -> tuple[str, str]:
    """(state, detail): 'running' while a process holds the cell's lock or the scheduler runs its last job
    (`job`: '<id> <state>'), 'queued' while the job waits (to start, or to restart after a requeue: a rerun
    would only duplicate it); else 'stale' when its record
    was made under another hub or protocol, else the record's status; 'unreadable' (with a warning)
    when its record file cannot be read; else 'interrupted' when
    checkpoints of the cell remain (a rerun resumes them); else 'missing'."""
    scheduled = job.split()[1] if job else ""
    if is_locked(cell.scope) or scheduled in ACTIVE - QUEUED:
        return "running", ""
    if scheduled in QUEUED:
        return "queued", "its job waits for the scheduler; it resumes by itself"
    try:
        record = records.read(cell.path(results), cell.record_type)
    except records.RecordError as e:
        log.warning(f"hubbench status: warning: {e}")
        return "unreadable", "the record file cannot be read: see the warning"
    if record is not None:
        if change := cell.change(record):
            return "stale", f"made under {change}; run --rerun-stale redoes it"
        return RECORD_STATES[record.status], record.summary()
    stem = checkpoint_stem(cell.scope, cell.seed, cell.protocol)
    if any((cache / "checkpoints").glob(f"{stem}-*.ckpt")):
        return "interrupted", "checkpoints left: a rerun resumes"
    return "missing", ""


class Row(NamedTuple):
    cell: Cell
    state: str
    detail: str
    job: str  # '<id> <state>' of its submitit job, if any


def states(cells: list[Cell], results: Path, cache: Path, jobs: dict[str, str]) -> list[Row]:
    """Each cell's state, with its detail and its submitit job (`jobs`: by cell id)."""
    return [Row(cell, *cell_state(cell, results, cache, jobs.get(cell.id, "")), jobs.get(cell.id, ""))
            for cell in cells]


def listing(rows: list[Row]) -> list[str]:
    """One table line per cell."""
    width = max([len("cell")] + [len(r.cell.id) for r in rows])
    header = f"{'cell':<{width}}  {'state':<11}  {'job':<22}  detail"
    return [header] + [f"{r.cell.id:<{width}}  {r.state:<11}  {r.job:<22}  {r.detail}".rstrip() for r in rows]


def summary(rows: list[Row]) -> list[str]:
    """A table of the count of each state (the columns that occur) per hub and method id."""
    shown = [s for s in STATES if any(r.state == s for r in rows)]
    counts: dict[str, Counter] = {}
    for r in rows:  # a search's trials on one row
        entry = f"trial:{r.cell.plugin.subject.id}" if r.cell.trial else r.cell.entry
        counts.setdefault(f"{r.cell.hub}  {entry}", Counter())[r.state] += 1
    width = max([len("hub  method")] + [len(k) for k in counts])
    header = f"{'hub  method':<{width}}" + "".join(f"  {s:>11}" for s in shown)
    return [header] + [f"{k:<{width}}" + "".join(f"  {c[s]:>11}" for s in shown) for k, c in counts.items()]


def report(cells: list[Cell], results: Path, cache: Path, jobs: dict[str, str]) -> tuple[Counter, list[str]]:
    """The count of each state and one table line per cell (with its submitit job, if any)."""
    rows = states(cells, results, cache, jobs)
    return Counter(r.state for r in rows), listing(rows)
