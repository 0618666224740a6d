"""Reading records: the only input of the leaderboard, loaded from JSON and queried defensively.

Records come from runners of different versions, so every field beyond the identity may be
missing; `field` answers None then, and each output shows that as "—" (or an empty CSV cell).
"""

from __future__ import annotations

import json
from pathlib import Path

from hubbench import RECORD_SCHEMA


class LeaderboardError(Exception):
    """Records that cannot be rendered; the message says which and why."""


def load_records(suite_dir: Path) -> list[dict]:
    """Every record of the suite (files of another schema are ignored), in a stable order."""
    records = []
    for path in sorted(suite_dir.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise LeaderboardError(f"unreadable record {path}: {e}") from None
        if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA:
            records.append(record)
    return sorted(records, key=lambda r: (r["hub"], r["task"], r["method"]["id"], r["seed"]))


def field(record: dict, *path: str):
    """record[path[0]][path[1]]...; None where any step is missing or not a mapping."""
    value = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def params(record: dict, kind: str):
    """Parameter count `kind` (total, trainable, active): the profiler's, else an older record's own count."""
    value = field(record, "complexity", "params", kind)
    return field(record, "params", kind) if value is None else value


def metric(record: dict) -> tuple[str, bool]:
    """(primary metric name, higher is better), from the record or, for one without, its task config."""
    name = field(record, "metric", "name") or field(record, "config", "task", "metric") or "metric"
    higher = field(record, "metric", "higher_is_better")
    if higher is None:
        higher = field(record, "config", "task", "higher_is_better")
    return name, higher is not False


def value(record: dict) -> float | None:
    """The primary test metric of an ok record; None otherwise."""
    return field(record, "metric", "value") if record.get("status") == "ok" else None
