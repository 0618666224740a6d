"""Expand a suite into cells and run each into one record; the same cell function for every executor."""

from __future__ import annotations

import dataclasses
import errno
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from submitit.core.utils import UncompletedJobError
from tqdm.auto import tqdm

from hubbench import record as records
from hubbench.benchmark.suites import Suite
from hubbench.context import Context
from hubbench.discovery import code_of
from hubbench.environment import environment
from hubbench.hubs.base import HUBS, Hub, get_hub
from hubbench.hubs.checkpoints import BadCheckpoint
from hubbench.io import cache_dir
from hubbench.locks import locked
from hubbench.methods.base import Method, parse_spec
from hubbench.progress import note
from hubbench.rankers.base import Ranker, ranking
from hubbench.rankers.base import parse_spec as parse_ranker
from hubbench.registry import UnknownName
from hubbench.seeding import derive_seed, seed_everything
from hubbench.tasks.base import TASKS, Protocol, Task
from hubbench.tasks.datasets import DatasetError
from hubbench.training import Runtime


@dataclass(frozen=True)
class Cell:
    """A method's cell, or a ranking cell when `method` is a ranker (its id is `rank:<ranker id>`)."""

    suite: Suite
    hub: str
    task: str
    method: Method | Ranker
    seed: int

    @property
    def ranking(self) -> bool:
        return isinstance(self.method, Ranker)

    @property
    def entry(self) -> str:
        """The method's id, or `rank:<ranker id>`."""
        return f"rank:{self.method.id}" if self.ranking else self.method.id

    @property
    def id(self) -> str:
        return records.cell_id(self.hub, self.task, self.entry, self.seed)

    @property
    def record_type(self) -> type:
        return records.RankingRecord if self.ranking else records.Record

    @property
    def scope(self) -> str:
        """Names the cell's checkpoints, random streams and lock."""
        return f"{self.suite.name}/{self.id}"

    def path(self, results: Path) -> Path:
        return records.record_path(results, self.suite.name, self.hub, self.task, self.entry, self.seed)

    @property
    def protocol(self) -> Protocol:
        """The task's protocol with the suite's overrides (known without the task's data)."""
        return TASKS.get(self.task).protocol.replace(**self.suite.protocol)

    def make_task(self) -> Task:
        return TASKS.get(self.task)(self.protocol)

    @property
    def code(self) -> dict[str, dict[str, str]]:
        """Where the code of the cell's method (or ranker), hub and task comes from, where not hubbench itself."""
        made_by = {"method": type(self.method), "hub": HUBS.get(self.hub), "task": TASKS.get(self.task)}
        return {part: code for part, obj in made_by.items() if (code := code_of(obj))}

    def config(self, hub: Hub, task: Task, runtime: Runtime | None = None) -> records.Config:
        """What determined the cell beyond its identity, as its record states it."""
        return records.Config(hub.describe(), task.config(), self.suite.protocol,
                              runtime and dataclasses.asdict(runtime), self.code)

    def change(self, record: records.Record | records.RankingRecord) -> str | None:
        """What `record` was made under that differs from this cell now (None: nothing): the hub's
        description (its version, its weights), the code of a plugin's method, hub or task (its file's
        sha256, its package's version), the method's parameters (a changed default) and, for a method's
        cell, the task's protocol (a ranking does not train). What a record does not state (an older
        runner's) is no change."""
        if record.config is None:
            return None
        made = record.ranker if self.ranking else record.method
        then = {"hub": record.config.hub, "code": record.config.code, "params": made.params}
        now = {"hub": get_hub(self.hub).describe(), "code": self.code, "params": self.method.params}
        if not self.ranking and "protocol" in record.config.task:
            then["protocol"], now["protocol"] = record.config.task["protocol"], dataclasses.asdict(self.protocol)
        return records.first_change(then, now)


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
        hub = get_hub(hub_name)
        variants: dict[str, tuple[Method | Ranker, set[str]]] = {}
        for spec in suite.rankers:
            cls, params = parse_ranker(spec)
            r = cls(**params)
            variants.setdefault(f"rank:{r.id}", (r, {spec, cls.name, r.id, f"rank:{r.id}"}))
        for spec in suite.methods:
            cls, params = parse_spec(spec)
            for v in cls.variants(hub):
                m = cls(**{**v, **params})
                variants.setdefault(m.id, (m, {spec, cls.name, m.id}))
        names = tuple(dict.fromkeys(n for _, aliases in variants.values() for n in sorted(aliases)))
        chosen = set(pick("method", methods, names))
        selected = [m for m, aliases in variants.values() if aliases & chosen]
        for task in pick("task", tasks, suite.tasks):
            for seed in pick("seed", seeds, suite.seeds):
                cells += [Cell(suite, hub_name, task, m, seed) for m in selected]
    return cells


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


INPUT_ERRORS = (BadCheckpoint, DatasetError)  # a bad file of the user's, not the method's fault


def not_the_methods(e: Exception) -> bool:
    """Whether `e` ends a cell for a reason outside the method, so that it must leave no record and keep the
    checkpoints for a rerun: a full disk or quota, or the cluster stopping the job for good (submitit raises
    `UncompletedJobError` inside the cell when a job timed out more often than it may be requeued)."""
    return isinstance(e, UncompletedJobError) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))


def failed_on_input(record: records.Record | records.RankingRecord) -> bool:
    """A failed record whose reason is a bad input file: it stands for no result, so a plain rerun redoes it
    (the checks before a run refuse the file while it is still bad)."""
    return record.status == records.FAILED and (record.reason or "").startswith(
        tuple(f"{cls.__name__}:" for cls in INPUT_ERRORS))


@dataclass(frozen=True)
class Redo:
    """Which cells that have a record run again: every one (`--force`), the failed ones
    (`--retry-failed`), the stale ones (`--rerun-stale`: made under another hub or protocol); and always
    those that failed on a bad input file."""

    all: bool = False
    failed: bool = False
    stale: bool = False

    def __call__(self, cell: Cell, record: records.Record | records.RankingRecord | None) -> bool:
        """Whether `cell`, whose record is `record` (None: it has none), runs."""
        return (record is None or self.all or (self.failed and record.status == records.FAILED)
                or failed_on_input(record) or (self.stale and cell.change(record) is not None))


class StaleRecords(Exception):
    """Records made under another hub or protocol than their cells' now, which a run would not redo."""


def check_records(cells: list[Cell], results: Path, redo: Redo = Redo()) -> None:
    """Raise `RecordError` for the first cell whose record file cannot be read (corrupt, or written by a
    newer hubbench), and `StaleRecords` when records of the cells are stale and `redo` keeps them:
    rather than replace the one or count the others as done, a run refuses to start."""
    stale = []
    for cell in cells:
        record = records.read(cell.path(results), cell.record_type)
        if record is not None and not redo(cell, record) and (change := cell.change(record)):
            stale.append((cell, change))
    if stale:
        (cell, change), more = stale[0], f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
        raise StaleRecords(f"the record of {cell.id}{more} was made under another configuration ({change})")


def run_cell(cell: Cell, results: Path, device: torch.device, *, cache: Path | None = None,
             redo: Redo = Redo(), threads: int = 1,
             runtime: Runtime | None = None) -> tuple[str, records.Record | records.RankingRecord]:
    """Run one cell into its record; returns ('skipped' or the record's status, record).

    A complete record is kept unless `redo` says otherwise. The cell runs
    under its lock: when several processes reach it at once (workers, jobs, concurrent runs), one
    runs it and the others wait, then keep the record it wrote. An exception inside the method
    becomes a 'failed' record; an interrupt leaves no record and the stage checkpoints, so the
    next run resumes where this one stopped. CPU results depend on the number of intra-op
    threads, so it is pinned (`threads`) and recorded, as is the `runtime` (default: bf16 autocast
    on CUDA, nothing else).
    """
    path = cell.path(results)
    old = records.read(path, cell.record_type)
    if not redo(cell, old):
        return "skipped", old
    with locked(cell.scope):
        new = records.read(path, cell.record_type)
        if new is not None and new != old:  # written by another process while this one waited
            return "skipped", new
        note(f"start {cell.id}")
        record = execute(cell, path, device, cache or cache_dir(), threads, (runtime or Runtime()).resolve(device))
        note(f"end {cell.id}: {record.status}")
    return record.status, record


def execute(cell: Cell, path: Path, device: torch.device, cache: Path, threads: int,
            runtime: Runtime) -> records.Record | records.RankingRecord:
    """Run the cell, write its record to `path` and drop its checkpoints."""
    from hubbench.benchmark.profiling import Settings, profile  # here: `hubbench status` needs cells, not fvcore

    torch.set_num_threads(threads)
    runtime.apply(device)
    if cell.ranking:
        return execute_ranking(cell, path, device, cache)
    hub, task = get_hub(cell.hub), cell.make_task()
    started, made_with = now(), environment(device)
    ok, reason = cell.method.applicable(hub, task)
    ctx = Context(hub, task, cell.seed, scope=cell.scope, cache=cache, device=device, runtime=runtime)
    metric = records.Metric(task.metric, task.higher_is_better)
    outcome = {"metric": metric}
    if not ok:
        outcome.update(status=records.INAPPLICABLE, reason=reason)
    else:
        try:
            start = time.perf_counter()
            seed_everything(derive_seed(cell.seed, cell.id, "init"))
            model = cell.method.fit(ctx)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            outputs = {split: ctx.predict(model, split) for split in ("val", "test")}
            metrics = {split: task.evaluate(out, task.splits[split].targets) for split, out in outputs.items()}
            eval_s = time.perf_counter() - start
            start = time.perf_counter()
            complexity = profile(model, task, device, Settings(runtime))
            artifacts_s = sum(a["train_s"] for a in ctx.used.values())
            outcome.update(
                status=records.OK,
                metric=dataclasses.replace(metric, value=metrics["test"][task.metric]),
                metrics=metrics,
                complexity=complexity,
                examples=task.examples(outputs["test"]),
                timings=records.Timings(fit_s, eval_s, time.perf_counter() - start),
                cost=records.Cost(ctx.train_seconds, artifacts_s, ctx.train_seconds + artifacts_s),
                artifacts=[records.Artifact(k, a["key"], a["train_s"]) for k, a in ctx.used.items()],
                curves=ctx.curves,
                diagnostics=ctx.diagnostics,
            )
        except Exception as e:  # a failed cell is a row of the leaderboard, not a crash
            if not_the_methods(e):
                raise  # no record, the checkpoints kept for a rerun
            outcome.update(status=records.FAILED, reason=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=8))
    record = records.Record(
        suite=cell.suite.name, hub=cell.hub, task=cell.task, kind=task.kind,
        method=records.MethodId(cell.method.id, cell.method.name, cell.method.params), seed=cell.seed,
        started=started, finished=now(), **outcome,
        config=cell.config(hub, task, runtime),
        environment=made_with)
    records.write(path, record)
    ctx.clear_checkpoints()
    return record


def execute_ranking(cell: Cell, path: Path, device: torch.device, cache: Path) -> records.RankingRecord:
    """Rank the hub's sources for the task (from the cached ranking if another seed or a method made
    it) and write the record: each source's score, or why it has none, and what they cost."""
    hub, task, ranker = get_hub(cell.hub), cell.make_task(), cell.method
    started, made_with = now(), environment(device)
    ok, reason = ranker.applicable(hub, task)
    outcome: dict = {}
    if not ok:
        outcome.update(status=records.INAPPLICABLE, reason=reason)
    else:
        try:
            start = time.perf_counter()
            result = ranking(ranker, hub, task, cache=cache, device=device)
            outcome.update(
                status=records.OK if result.scores else records.INAPPLICABLE,
                reason=None if result.scores else "; ".join(f"{s}: {r}" for s, r in result.reasons.items()),
                scores=result.scores, reasons=result.reasons, order=result.top(len(result.scores)), key=result.key,
                features=result.features, wall_s=time.perf_counter() - start,
                cost=records.RankingCost(result.features_s, result.score_s, result.features_s + result.score_s))
        except Exception as e:  # a failed cell is a row of the leaderboard, not a crash
            if not_the_methods(e):
                raise
            outcome.update(status=records.FAILED, reason=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=8))
    record = records.RankingRecord(
        suite=cell.suite.name, hub=cell.hub, task=cell.task, kind=task.kind,
        ranker=records.MethodId(ranker.id, ranker.name, ranker.params), seed=cell.seed,
        started=started, finished=now(), **outcome,
        config=cell.config(hub, task), environment=made_with)
    records.write(path, record)
    return record


def run_cells(cells: list[Cell], results: Path, device: torch.device | str, *, executor=None, **kw) -> Counter:
    """Run cells with a progress bar and one line per finished cell: in this process and in order,
    or through a parallel `executor` (see benchmark.executors). Returns the count of each outcome."""
    counts: Counter = Counter()
    bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=None, dynamic_ncols=True)
    outcomes = executor.run(cells, results, device, **kw) if executor else inline(cells, results, device, bar, **kw)
    for cell, status, detail, seconds in outcomes:
        counts[status] += 1
        bar.update()
        if status != "skipped":
            tqdm.write(f"{status:7} {cell.id}  {detail}  ({seconds:.1f}s)")
            sys.stdout.flush()  # a log file gets each line as its cell ends
    bar.close()
    return counts


def inline(cells: list[Cell], results: Path, device: torch.device, bar: tqdm, **kw):
    """The in-process executor: run cells one after the other, yielding (cell, status, detail, seconds)."""
    for cell in cells:
        bar.set_postfix_str(cell.id, refresh=True)
        start = time.perf_counter()
        status, record = run_cell(cell, results, device, **kw)
        yield cell, status, record.summary(), time.perf_counter() - start
