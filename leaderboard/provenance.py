"""What the numbers of a board's tables were made with, stated under its heading: the protocol its records'
config holds (the task's training protocol, the runtime options, split sizes, the hub's sources and
version), and the code they ran, flagged when it is not one clean commit: records of several commits side
by side, or records made from a checkout with uncommitted changes (no commit holds their exact code)."""

from __future__ import annotations

import json
from collections import Counter

from hubbench.leaderboard.board import Board
from hubbench.leaderboard.document import Block, Flag, Text
from hubbench.record import Record

SPLITS = ("train", "val", "test")  # the order split sizes are stated in


def value_text(v) -> str:
    return v if isinstance(v, str) else "none" if v is None else json.dumps(v)


def settings(r: Record) -> dict[str, str]:
    """The record's protocol as setting -> value text, in a stable order."""
    task = r.config.task
    out = {f"`{k}`": value_text(v) for k, v in sorted(task.get("protocol", {}).items())}
    out |= {f"`runtime.{k}`": value_text(v) for k, v in sorted((r.config.runtime or {}).items())}
    if sizes := task.get("sizes"):
        splits = sorted(sizes, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))
        out["images " + "/".join(splits)] = "/".join(str(sizes[s]) for s in splits)
    if sources := r.config.hub.get("sources"):
        out["hub sources"] = ", ".join(s["name"] for s in sources)
    if (version := r.config.hub.get("config", {}).get("version")) is not None:
        out["hub version"] = value_text(version)  # a self-built hub's: its sources change with it
    return out


def protocol(board: Board, records: dict[str, Record]) -> list[Block]:
    """One line stating every setting (a setting that differs between tasks: each value with its tasks), and a
    flag naming the settings that differ between records of one task, with their counts."""
    mine = [records[i] for i in board.rows.id]
    known = [r for r in mine if r.config is not None]
    if not known:
        return [Text(f"**Protocol**: not recorded ({len(mine)} records without a config).")]
    seen: dict[str, Counter] = {}  # setting -> (value, task) -> records
    for r in known:
        for key, value in settings(r).items():
            seen.setdefault(key, Counter())[value, r.task] += 1
    parts, mixed = [], []
    for key, counts in seen.items():
        tasks: dict[str, list[str]] = {}
        for value, task in counts:
            tasks.setdefault(value, []).append(task)
        if len(tasks) == 1:
            parts.append(f"{key} {next(iter(tasks))}")
        else:
            parts.append(f"{key} " + ", ".join(f"{v} ({', '.join(sorted(ts))})" for v, ts in tasks.items()))
        if any(len([v for v, t in counts if t == task]) > 1 for task in board.tasks):
            per_value = Counter()
            for (value, _), n in counts.items():
                per_value[value] += n
            mixed.append(f"{key} " + ", ".join(f"{v} ({n} records)" for v, n in per_value.items()))
    missing = f" ({len(mine) - len(known)} records without a config)" if len(known) < len(mine) else ""
    blocks: list[Block] = [Text(f"**Protocol** (from the records' config{missing}): " + "; ".join(parts) + ".")]
    if mixed:
        blocks.append(Flag("**Mixed protocol**: records of one task ran with different settings: "
                           + "; ".join(mixed) + "."))
    return blocks


def listed(rows) -> str:
    return ", ".join(f"`{m}`" for m in sorted(rows.method.unique()))


def code(board: Board) -> list[Block]:
    """The commit(s) the board's records ran, and flags for several commits or a dirty checkout (naming the
    methods of the fewer records, dirty or clean)."""
    rows = board.rows
    commits = rows.git_commit.fillna("unknown").value_counts().sort_index().sort_values(ascending=False, kind="stable")
    named = ", ".join(f"`{c[:12]}` ({n} records)" for c, n in commits.items())
    if len(commits) == 1:
        blocks: list[Block] = [Text(f"**Code**: commit {named}.")]
    else:
        blocks = [Flag(f"**Mixed commits**: {named}: this table sets results of different code side by side.")]
    dirty = rows.git_dirty.fillna(False).astype(bool)
    if dirty.any():
        which = "" if dirty.all() else f" (of {listed(rows[dirty])})" if 2 * dirty.sum() <= len(rows) else \
            f"; the other {(~dirty).sum()} are of {listed(rows[~dirty])}"
        blocks.append(Flag(f"**Dirty tree**: {dirty.sum()} of {len(rows)} records were made from a checkout with "
                           f"uncommitted changes: no commit holds the exact code they ran{which}."))
    return blocks
