"""One hub × task kind (and primary metric): records as methods × tasks, with the means every
table and figure ranks by, so that all of them agree on what "best" is."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from hubbench.leaderboard.records import metric, value


@dataclass
class Board:
    hub: str
    kind: str
    metric: str
    higher: bool
    records: list[dict]
    tasks: list[str] = field(init=False)
    methods: list[str] = field(init=False)
    cells: dict[tuple[str, str], list[dict]] = field(init=False)
    means: dict[tuple[str, str], float] = field(init=False)
    avg: dict[str, float] = field(init=False)

    def __post_init__(self):
        self.tasks = sorted({r["task"] for r in self.records})
        self.methods = sorted({r["method"]["id"] for r in self.records})
        self.cells = defaultdict(list)
        for r in self.records:
            self.cells[r["method"]["id"], r["task"]].append(r)
        self.means = {key: statistics.fmean(v.values()) for key in self.cells if (v := self.seeds(*key))}
        self.avg = {m: statistics.fmean(self.means[m, t] for t in self.tasks)
                    for m in self.methods if all((m, t) in self.means for t in self.tasks)}

    def seeds(self, method: str, task: str) -> dict[int, float]:
        """seed -> primary test metric of the ok records of one cell."""
        return {r["seed"]: v for r in self.cells.get((method, task), []) if (v := value(r)) is not None}

    def ok(self, method: str, task: str | None = None) -> list[dict]:
        """The ok records of a method (on one task, or on all)."""
        tasks = self.tasks if task is None else [task]
        return [r for t in tasks for r in self.cells.get((method, t), []) if r["status"] == "ok"]

    def best(self, scores: dict) -> object | None:
        """The key of the best score in the board's direction (None for no scores); ties: the first key."""
        if not scores:
            return None
        return (max if self.higher else min)(scores, key=scores.__getitem__)

    def best_method(self, task: str) -> str | None:
        return self.best({m: v for (m, t), v in self.means.items() if t == task})

    def best_finetune(self, task: str) -> str | None:
        """The single-source fine-tune with the best mean on `task`: the baseline methods must beat."""
        finetunes = {m for m in self.methods if self.method_name(m) == "finetune"}
        return self.best({m: v for (m, t), v in self.means.items() if t == task and m in finetunes})

    def method_name(self, method: str) -> str:
        return next(r["method"]["name"] for r in self.records if r["method"]["id"] == method)

    def task_mean(self, method: str, get: Callable[[dict], float | None]) -> float | None:
        """Mean over tasks of the per-task mean over seeds of `get(record)` (ok records, known values)."""
        per_task = []
        for task in self.tasks:
            values = [v for r in self.ok(method, task) if (v := get(r)) is not None]
            if values:
                per_task.append(statistics.fmean(values))
        return statistics.fmean(per_task) if per_task else None


def boards(records: list[dict]) -> list[Board]:
    """One board per (hub, kind, primary metric), in that order."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[r["hub"], r.get("kind") or "", metric(r)[0]].append(r)
    return [Board(hub, kind, name, metric(rs[0])[1], rs) for (hub, kind, name), rs in sorted(groups.items())]
