"""`hubbench status`: where each cell of a suite stands, read from what the runs leave behind (records,
locks, checkpoints, submitit's job ids), so it works for every executor and while they run."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from hubbench.benchmark.runner import Cell

from hubbench import record as records
from hubbench.context import checkpoint_stem
from hubbench.locks import is_locked

STATES = ("done", "failed", "n/a", "running", "interrupted", "unreadable", "missing")
RECORD_STATES = {records.OK: "done", records.FAILED: "failed", records.INAPPLICABLE: "n/a"}


def cell_state(cell: Cell, results: Path, cache: Path) -> tuple[str, str]:
    """(state, detail): 'running' while a process holds the cell's lock; else the record's status;
    'unreadable' (with a warning) when its record file cannot be read; else 'interrupted' when
    checkpoints of the cell remain (a rerun resumes them); else 'missing'."""
    if is_locked(cell.scope):
        return "running", ""
    try:
        record = records.read(cell.path(results), cell.record_type)
    except records.RecordError as e:
        print(f"hubbench status: warning: {e}", file=sys.stderr)
        return "unreadable", "the record file cannot be read: see the warning"
    if record is not None:
        return RECORD_STATES[record.status], record.summary()
    stem = checkpoint_stem(cell.scope, cell.seed, cell.make_task().protocol)
    if any((cache / "checkpoints").glob(f"{stem}-*.ckpt")):
        return "interrupted", "checkpoints left: a rerun resumes"
    return "missing", ""


def report(cells: list[Cell], results: Path, cache: Path, jobs: dict[str, str]) -> tuple[Counter, list[str]]:
    """The count of each state and one table line per cell (with its submitit job, if any)."""
    rows = [(cell.id, *cell_state(cell, results, cache), jobs.get(cell.id, "")) for cell in cells]
    counts = Counter(row[1] for row in rows)
    width = max([len("cell")] + [len(r[0]) for r in rows])
    header = f"{'cell':<{width}}  {'state':<11}  {'job':<22}  detail"
    lines = [header] + [f"{c:<{width}}  {s:<11}  {j:<22}  {d}".rstrip() for c, s, d, j in rows]
    return counts, lines
