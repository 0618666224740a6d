"""A suite's cells: (hub, task, method or ranker, seed), what a run of each must write and when its record is
stale. Made without torch (`hubbench status` expands a suite in a fraction of a second): the methods' and rankers'
declarations, and the built-in hubs and tasks as `benchmark.catalogue` copies them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubbench import record as records
from hubbench.benchmark import catalogue
from hubbench.benchmark.suites import Suite
from hubbench.discovery import code_of, identity
from hubbench.methods.base import Method
from hubbench.rankers.base import Ranker
from hubbench.registry import UnknownName
from hubbench.search import Trial

if TYPE_CHECKING:
    from hubbench.hubs.base import Hub
    from hubbench.protocol import Protocol
    from hubbench.tasks.base import Task
    from hubbench.training import Runtime


@dataclass(frozen=True)
class Cell:
    """A cell of a suite: a method's, a ranking cell when `plugin` is a ranker, a search trial's when it is a
    `Trial` (`record_type`: what it writes)."""

    suite: Suite
    hub: str
    task: str
    plugin: Method | Ranker | Trial
    seed: int

    @property
    def ranking(self) -> bool:
        return self.record_type is records.RankingRecord

    @property
    def trial(self) -> bool:
        """Whether it is a trial of a search (`hubbench.benchmark.tuning`)."""
        return self.record_type is records.TrialRecord

    @property
    def record_type(self) -> type[records.CellRecord]:
        return self.plugin.RECORD

    @property
    def entry(self) -> str:
        """The method's id, or the ranking's `rank:<ranker id>` (`records.CellRecord.entry`)."""
        return self.record_type.entry(self.plugin.id)

    @property
    def id(self) -> str:
        return records.cell_id(self.hub, self.task, self.entry, self.seed)

    @property
    def scope(self) -> str:
        """Names the cell's checkpoints and lock: a search trial's, those of every rung of it."""
        entry = self.record_type.entry(self.plugin.trained) if self.trial else self.entry
        return f"{self.suite.name}/{records.cell_id(self.hub, self.task, entry, self.seed)}"

    @property
    def stream(self) -> str:
        """Names its model's random streams (`Context`): the same in every suite and variant."""
        return f"{self.hub}/{self.task}/{self.entry}"

    def path(self, results: Path) -> Path:
        return records.record_path(results, self.suite.name, self.hub, self.task, self.entry, self.seed)

    @property
    def protocol(self) -> Protocol:
        """The task's protocol with the suite's overrides (known without the task's data); a trial's, at its setting."""
        protocol = self.suite.protocol_for(self.task)
        return self.plugin.protocol(protocol) if self.trial else protocol

    def make_task(self) -> Task:
        from hubbench.tasks import TASKS

        return TASKS.get(self.task)(self.protocol)

    @property
    def code(self) -> dict[str, dict[str, str]]:
        """Where the code of the cell's method (or ranker), hub and task comes from, where not hubbench itself."""
        method = type(self.plugin.subject if self.trial else self.plugin)
        made_by = {"method": code_of(method), "hub": catalogue.code("hubs", self.hub),
                   "task": catalogue.code("tasks", self.task)}
        return {part: code for part, code in made_by.items() if code}

    def config(self, hub: Hub, task: Task, runtime: Runtime) -> records.Config:
        """What determined the cell beyond its identity, as its record states it (a ranking's, no runtime: it
        trains nothing)."""
        return records.Config(hub.describe(), task.config(), self.suite.recorded(self.task),
                              None if self.ranking else dataclasses.asdict(runtime), self.code)

    def change(self, record: records.CellRecord) -> str | None:
        """What `record` was made under that differs from this cell now (None: nothing): the hub's
        description (its version, its weights), the code of a plugin's method, hub or task (its file's
        sha256, wherever it was loaded from; its package's version), the plugin's parameters (a changed
        default) and the task's protocol: all of it and its search for a method's cell, for a ranking the fields its
        features depend on (it trains nothing; `record.FEATURE_PROTOCOL`). What a record does not state (an older
        runner's) is no change, but a search added or removed is."""
        if record.config is None:
            return None
        then = {"hub": record.config.hub, "code": {part: identity(code) for part, code in record.config.code.items()},
                "params": record.plugin.params}
        now = {"hub": catalogue.hub(self.hub).describe(), "code": {part: identity(code) for part, code in
                                                                    self.code.items()}, "params": self.plugin.params}
        if "protocol" in record.config.task:
            then["protocol"], now["protocol"] = record.config.task["protocol"], dataclasses.asdict(self.protocol)
            if self.ranking:
                then["protocol"], now["protocol"] = (records.feature_protocol(p) for p in (then["protocol"],
                                                                                          now["protocol"]))
            else:
                then["search"], now["search"] = record.config.suite_protocol.get("search"), self.suite.recorded(
                    self.task).get("search")
        return records.first_change(then, now)


def plugin_of(entry: str) -> Method | Ranker:
    """The method or ranker that a cell's entry (`Cell.entry`) names (a search trial's is made by
    `tuning.trial_cell`)."""
    record_type, spec = records.entry_kind(entry)
    return next(base for base in (Method, Ranker) if base.RECORD is record_type).of(spec)


def pick(kind: str, chosen: list | None, available: tuple) -> tuple:
    """The subset of `available` named in `chosen` (all when None); unknown names are errors."""
    for c in chosen or ():
        if c not in available:
            raise UnknownName(kind, str(c), [str(a) for a in available])
    return tuple(a for a in available if not chosen or a in chosen)


def expand(suite: Suite, hubs=None, tasks=None, methods=None, seeds=None) -> list[Cell]:
    """The suite's cells, optionally restricted (a method or ranker by name, suite entry or id);
    ordered hub, task, seed, then the suite's rankers and methods in its order, so the rankings
    and artifacts a seed's methods share are made by the first that needs them."""
    cells = []
    for hub_name in pick("hub", hubs, suite.hubs):
        hub = catalogue.hub(hub_name)
        variants: dict[str, tuple[Method | Ranker, set[str]]] = {}
        for base, specs in ((Ranker, suite.rankers), (Method, suite.methods)):
            for spec in specs:
                cls, params = base.parse(spec)
                for v in cls.variants(hub):
                    p = cls(**{**v, **params})
                    entry = base.RECORD.entry(p.id)
                    variants.setdefault(entry, (p, {spec, cls.name, p.id, entry}))
        names = tuple(dict.fromkeys(n for _, aliases in variants.values() for n in sorted(aliases)))
        chosen = set(pick("method", methods, names))
        selected = [m for m, aliases in variants.values() if aliases & chosen]
        for task in pick("task", tasks, suite.tasks):
            for seed in pick("seed", seeds, suite.seeds):
                cells += [Cell(suite, hub_name, task, m, seed) for m in selected]
    return cells
