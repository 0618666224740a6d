"""Run a suite's cells (`benchmark.cells`) each into one record; the same cell function for every executor."""

from __future__ import annotations

import errno
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import torch
from submitit.core.utils import UncompletedJobError
from tqdm.auto import tqdm

from hubbench import record as records
from hubbench.benchmark import preflight
from hubbench.benchmark.cells import Cell
from hubbench.context import Context
from hubbench.environment import environment
from hubbench.errors import InputError
from hubbench.hubs.base import get_hub
from hubbench.hubs.checkpoints import BadCheckpoint
from hubbench.io import cache_dir, check_output_dir
from hubbench.locks import locked
from hubbench.methods.base import Method
from hubbench.methods.base import applicable as method_applicable
from hubbench.progress import note, working
from hubbench.rankers.base import Ranker, ranking
from hubbench.search import Trial
from hubbench.seeding import preserved_rng
from hubbench.settings import VARIABLES
from hubbench.tasks.base import Task
from hubbench.tasks.datasets import DatasetError
from hubbench.training import Runtime


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


INPUT_ERRORS = (BadCheckpoint, DatasetError)  # a bad file of the user's, not the method's fault


def not_the_methods(e: Exception) -> bool:
    """Whether `e` ends a cell for a reason outside the method, so that it must leave no record and keep the
    checkpoints for a rerun: a full disk or quota, or the cluster stopping the job for good (submitit raises
    `UncompletedJobError` inside the cell when a job timed out more often than it may be requeued)."""
    return isinstance(e, UncompletedJobError) or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))


def failed_on_input(record: records.CellRecord) -> bool:
    """A failed record whose reason is a bad input file: it stands for no result, so a plain rerun redoes it
    (the checks before a run refuse the file while it is still bad)."""
    return record.status == records.FAILED and (record.reason or "").startswith(
        tuple(f"{cls.__name__}:" for cls in INPUT_ERRORS))


@dataclass(frozen=True)
class Redo:
    """Which cells that have a record run again: every one (`--force`), the failed ones
    (`--retry-failed`), the stale ones (`--rerun-stale`: made under another hub or protocol); and always
    those that failed on a bad input file. With `artifacts` (a token naming the run: `--retrain-artifacts`),
    the cells train again each cached artifact they use that no cell of the run has trained yet."""

    all: bool = False
    failed: bool = False
    stale: bool = False
    artifacts: str = ""

    def __call__(self, cell: Cell, record: records.CellRecord | None) -> bool:
        """Whether `cell`, whose record is `record` (None: it has none), runs."""
        return (record is None or self.all or (self.failed and record.status == records.FAILED)
                or failed_on_input(record) or (self.stale and cell.change(record) is not None))


class StaleRecords(InputError):
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


def check_run(cells: list[Cell], results: Path, redo: Redo = Redo(), *, data: bool = True) -> None:
    """The checks before any of `cells` runs, each raising an `InputError`: the results and cache directories
    can be written, the record files are readable and none is stale (`check_records`), and (`data`: not for a
    dry run, which reads no dataset) the datasets read, the hubs' checkpoint files are there and fit, the images
    decode (`benchmark.preflight`)."""
    check_output_dir(results, "the results directory")
    check_output_dir(cache_dir(), f"the cache directory (${VARIABLES['cache']})")
    check_records(cells, results, redo)
    if data:
        preflight.check_data(cells)
    preflight.check_weights(cells)  # before the images are decoded: a missing or bad weights file is found in seconds
    if data:
        preflight.check_images(cells)


def run_cell(cell: Cell, results: Path, device: torch.device, *, cache: Path | None = None,
             redo: Redo = Redo(), threads: int = 1,
             runtime: Runtime | None = None) -> tuple[str, records.CellRecord]:
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
    with locked(cell.scope, f"running {cell.id}"), working(f"running {cell.id}"):
        new = records.read(path, cell.record_type)
        if new is not None and new != old:  # written by another process while this one waited
            return "skipped", new
        note(f"start {cell.id}")
        record = execute(cell, results, device, cache or cache_dir(), threads, (runtime or Runtime()).resolve(device),
                         redo.artifacts)
        note(f"end {cell.id}: {record.status}")
    return record.status, record


def execute(cell: Cell, results: Path, device: torch.device, cache: Path, threads: int, runtime: Runtime,
            retrain: str = "") -> records.CellRecord:
    """The one path of every cell, a method's, a ranking or a search trial: whether its plugin applies, the plugin's
    part (`Kind.run`), the record (a failure of the plugin's is a 'failed' one; one outside it, `not_the_methods`,
    leaves none and the checkpoints for a rerun) written to its path under `results`, then the cell's checkpoints
    dropped. `retrain`: the run that trains the artifacts again (`Redo.artifacts`)."""
    path = cell.path(results)
    torch.set_num_threads(threads)
    runtime.apply(device)
    hub, task = get_hub(cell.hub), cell.make_task()
    kind = next(k for base, k in KINDS.items() if isinstance(cell.plugin, base))
    started, made_with = now(), environment(device)
    ok, reason = kind.applicable(cell.plugin, hub, task)
    ctx = Context(hub, task, cell.seed, scope=cell.scope, stream=cell.stream, cache=cache, device=device,
                  runtime=runtime, retrain=retrain)
    outcome = kind.known(task)
    if not ok:
        outcome.update(status=records.INAPPLICABLE, reason=reason)
    else:
        try:
            outcome.update(kind.run(cell, ctx, results))
        except Exception as e:  # a failed cell is a row of the leaderboard, not a crash
            if not_the_methods(e):
                raise  # no record, the checkpoints kept for a rerun
            outcome.update(status=records.FAILED, reason=f"{type(e).__name__}: {e}",
                           traceback=traceback.format_exc(limit=9))  # this frame and 8 of the plugin's part
    record = cell.record_type(cell.suite.name, cell.hub, cell.task, task.kind, records.PluginId.of(cell.plugin),
                              cell.seed, **outcome, started=started, finished=now(),
                              config=cell.config(hub, task, runtime), environment=made_with)
    records.write(path, record)
    ctx.clear_checkpoints()
    return record


def fit(cell: Cell, ctx: Context, results: Path) -> dict:
    """A method's part of its cell: train (where the suite searches, at the selected setting, on the tuned sources:
    `tuning.final`), evaluate on val and test, profile the deployed model as it was trained."""
    from hubbench.benchmark import tuning
    from hubbench.benchmark.profiling import Settings, StageTimer, profile  # here: `status` needs cells, not fvcore

    settings = Settings(ctx.runtime)
    start = time.perf_counter()
    final, method, own = tuning.final(cell, ctx, trials(ctx, results))
    final.on_stage = stages = StageTimer(final.scope, settings)  # times the method's own training step, as trained
    model = final.fit(method)
    if final is not ctx:
        ctx.checkpoints += final.checkpoints  # dropped once the record is written
    ctx, task = final, final.task
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    outputs = {split: ctx.predict(model, split) for split in ("val", "test")}
    metrics = {split: task.evaluate(out, task.splits[split].targets) for split, out in outputs.items()}
    eval_s = time.perf_counter() - start
    start = time.perf_counter()
    complexity = profile(model, task, ctx.device, settings, stages.last, cache=ctx.cache, what=f"profiling {cell.id}")
    artifacts_s = sum(a["train_s"] for a in ctx.used.values())
    search_s = own.cost_s if own else 0.0
    train_s = ctx.train_seconds - (ctx.carried_seconds if own and ctx.scope == own.scope else 0.0)  # not twice
    return dict(
        status=records.OK,
        metric=records.Metric(task.metric, task.higher_is_better, metrics["test"][task.metric]),
        metrics=metrics,
        complexity=complexity,
        examples=task.examples(outputs["test"]),
        timings=records.Timings(fit_s, eval_s, time.perf_counter() - start),
        cost=records.Cost(train_s, artifacts_s, train_s + artifacts_s + search_s, own and search_s),
        artifacts=[records.Artifact(k, a["key"], a["train_s"]) for k, a in ctx.used.items()],
        curves=ctx.curves,
        diagnostics=ctx.diagnostics,
        search=ctx.search and records.Search.of(ctx.search),
    )


def trial(cell: Cell, ctx: Context, results: Path) -> dict:
    """A search trial's part of its cell (`tuning.run_trial`)."""
    from hubbench.benchmark.tuning import run_trial

    return run_trial(cell, ctx, trials(ctx, results))


def trials(ctx: Context, results: Path) -> Callable[[Cell], records.CellRecord]:
    """How a cell's process runs the search trials it needs: as cells, each under its lock (waiting for another
    process that runs it, skipping it when done), with the cell's device, threads and runtime; a stale trial is
    redone, as no selection may rest on it. The caller's random streams are left as they were."""
    def run(unit: Cell) -> records.CellRecord:
        with preserved_rng():
            return run_cell(unit, results, ctx.device, cache=ctx.cache, redo=Redo(stale=True),
                            threads=torch.get_num_threads(), runtime=ctx.runtime)[1]

    return run


def rank(cell: Cell, ctx: Context, results: Path) -> dict:
    """A ranker's part of its cell: the ranking of the hub's sources for the task (cached, if another seed or a
    method made it): each source's score, or why it has none, and what they cost."""
    start = time.perf_counter()
    result = ranking(cell.plugin, ctx.hub, ctx.task, cache=ctx.cache, device=ctx.device)
    return dict(
        status=records.OK if result.scores else records.INAPPLICABLE,
        reason=None if result.scores else "; ".join(f"{s}: {r}" for s, r in result.reasons.items()),
        scores=result.scores, reasons=result.reasons, order=result.top(len(result.scores)), key=result.key,
        features=result.features, wall_s=time.perf_counter() - start,
        cost=records.RankingCost(result.features_s, result.score_s, result.features_s + result.score_s))


class Kind(NamedTuple):
    """A kind of plugin's part of `execute` (the records of its cells: its `RECORD`)."""

    run: Callable[[Cell, Context, Path], dict]  # (cell, context, results) -> the fields of the plugin's own outcome
    known: Callable[[Task], dict] = lambda task: {}  # the record's fields known before the plugin runs
    applicable: Callable = lambda plugin, hub, task: plugin.applicable(hub, task)  # -> (whether it applies, why not)


def metric(task: Task) -> dict:
    return {"metric": records.Metric(task.metric, task.higher_is_better)}


# Where running a cell tells methods, rankers and search trials apart.
KINDS: dict[type, Kind] = {
    Method: Kind(fit, metric, method_applicable),
    Ranker: Kind(rank),
    Trial: Kind(trial, metric)}


def run_cells(cells: list[Cell], results: Path, device: torch.device | str, *, executor=None, checked: bool = False,
              **kw) -> Counter:
    """Run cells with a progress bar and one line per finished cell: in this process and in order,
    or through a parallel `executor` (see benchmark.executors), after `check_run` (unless the caller has
    `checked`) and under the settings in use (`hubbench.settings`). Returns the count of each outcome (a search
    trial's as `trial <status>`: a trial that fails is an outcome of its search, which goes on)."""
    if not checked:
        check_run(cells, results, kw.get("redo", Redo()))
    counts: Counter = Counter()
    bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=None, dynamic_ncols=True)
    outcomes = executor.run(cells, results, device, **kw) if executor else inline(cells, results, device, bar, **kw)
    with working(f"0 of {len(cells)} cells ended") as activity:
        for cell, status, detail, seconds in outcomes:
            counts[f"trial {status}" if cell.trial else status] += 1
            activity.what = f"{counts.total()} of {len(cells)} cells ended"
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
