"""A suite's hyper-parameter searches run as units of its work: each trial (one setting, trained up to one rung of
the schedule) is a cell of the suite, with its own record, lock and checkpoints, so every executor runs, resumes
and skips it as it does a method's cell and `hubbench status` shows it (`hubbench.search` decides what to try and
what to keep; this module runs it).

What a search tunes (a *subject*) is a method's own training, where the search's fields apply to it, and every
fine-tuned source the method builds on: a source is tuned once per (hub, task, seed), shared by every method that
uses it, as an artifact keyed by its selected setting. A search is resolved by the first process that needs it:
it runs (or waits for, or reads) the trials of the first rung, keeps the best of them (`search.promoted`), runs
those to the next rung from their checkpoints, and so on; then it selects the best trial that completed the
schedule. The executors submit the first rung's trials of every search up front (`first_trials`), so they run in
parallel as cells do; what follows runs inside the cells that need the selection, in every executor alike.

Trials fit on the train split and are scored on the validation split; the test split is read once, by the final
run at the selected setting: with `retrain = "train"` that is the selected trial itself, resumed at its end (the
same bits a new training would give: same data stream, same initialisation), with `retrain = "train+val"` a new
training on both splits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubbench import record as records
from hubbench.artifacts import FinetunedSource, checkpoint_stem
from hubbench.context import Context, Phase, Tuned
from hubbench.search import FAILED, OK, PRUNED, Result, Setting, Space, Trial, asks, grid, promoted, selected
from hubbench.training import Checkpoint

if TYPE_CHECKING:
    from hubbench.benchmark.cells import Cell

Run = Callable[["Cell"], "records.TrialRecord | None"]  # runs (or waits for, or reads) a trial's cell: its record


class SearchFailed(Exception):
    """Every trial of a search failed: nothing to select."""


class Undecided(Exception):
    """A search whose trials have not all run yet (`known_trials`)."""


def space_of(cell: Cell) -> Space | None:
    return cell.suite.spaces.get(cell.task)


def domains(space: Space, subject) -> dict:
    """The fields `space` tunes for `subject`: a fine-tuned source trains (the protocol's fields); a method trains
    a model of its own where it says so (`Method.trains`), and has its own fields."""
    if isinstance(subject, FinetunedSource):
        return space.applied(trains=True, method=None)
    return space.applied(trains=type(subject).trains, method=subject.name)


def subjects(cell: Cell) -> list:
    """What the searches of a method's cell tune: the fine-tuned sources it needs (not its rankings: they train
    nothing), then its own training."""
    if cell.ranking or cell.trial or (space := space_of(cell)) is None:
        return []
    needed = [a for a in cell.plugin.needs(hub_of(cell), cell.make_task()) if isinstance(a, FinetunedSource)]
    return [s for s in [*needed, cell.plugin] if domains(space, s)]


def hub_of(cell: Cell):
    from hubbench.hubs.base import get_hub

    return get_hub(cell.hub)


def trial_cell(owner: Cell, subject_id: str, setting: Setting, rung: int) -> Cell:
    """The cell of a trial of `owner`'s search of `subject_id` (its method's id, or a needed source's artifact
    id), made alike in every process (a worker re-creates it from these, see `executors.CellJob`)."""
    if subject_id == owner.plugin.id:
        subject = owner.plugin
    else:
        subject = next(a for a in owner.plugin.needs(hub_of(owner), owner.make_task()) if a.id == subject_id)
    return dataclasses.replace(owner, plugin=Trial(subject, setting, rung, owner.plugin))


def rounds(space: Space, doms: dict) -> list[int]:
    return space.round_sizes(len(grid(doms)) if space.sampler == "grid" else 0)


def settings_of(space: Space, doms: dict, told: list[list[Result]], size: int, last: int, higher: bool) -> list:
    """The settings of the next round: the grid's, or the sampler's asks after the earlier rounds' results."""
    return grid(doms) if space.sampler == "grid" else asks(space, doms, told, size, last, higher)


def known_trials(cells: list[Cell], results) -> list[Cell]:
    """Every trial of the cells' searches that is known now: the first rung's, and those the records under
    `results` decide (the next rung's of the trials kept, the next round's), each once (for `hubbench status`)."""
    found: dict[str, Cell] = {unit.id: unit for unit in first_trials(cells)}

    def peek(unit: Cell) -> records.TrialRecord | None:
        found.setdefault(unit.id, unit)
        return records.read(unit.path(results), records.TrialRecord)

    for cell in cells:
        for subject in subjects(cell):
            try:
                resolve(cell, subject, peek)
            except (Undecided, SearchFailed):
                pass
    return list(found.values())


def first_trials(cells: list[Cell]) -> list[Cell]:
    """The trials of the first rung of the first round of every search the cells need, each once, in the cells'
    order: what the executors submit before the cells (the rest is decided as their results come in)."""
    found: dict[str, Cell] = {}
    for cell in cells:
        for subject in subjects(cell):
            space, doms = space_of(cell), domains(space_of(cell), subject)
            rungs = space.rungs(cell.protocol.iterations)
            settings = settings_of(space, doms, [], rounds(space, doms)[0], rungs[-1], higher(cell))
            for setting in settings:  # a lone setting trains straight to the end (`resolve`)
                unit = trial_cell(cell, subject.id, setting, rungs[0] if len(settings) > 1 else rungs[-1])
                found.setdefault(unit.id, unit)
    return list(found.values())


def higher(cell: Cell) -> bool:
    from hubbench.tasks.base import TASKS

    return TASKS.get(cell.task).higher_is_better


def resolve(owner: Cell, subject, run: Run) -> Tuned:
    """The selection of `owner`'s search of `subject`: every round's trials run (`run(cell)` -> its record, run now,
    waited for, or read; None: not run, and the search is `Undecided` past that rung), halved rung by rung, then
    the best trial that completed the schedule. Raises `SearchFailed` if none did."""
    space, doms = space_of(owner), domains(space_of(owner), subject)
    rungs, up = space.rungs(owner.protocol.iterations), higher(owner)
    told: list[list[Result]] = []
    tried: list[tuple[Setting, Result, float]] = []
    for size in rounds(space, doms):
        settings = settings_of(space, doms, told, size, rungs[-1], up)
        results, seconds = [Result(s, {}) for s in settings], [0.0] * len(settings)
        alive = list(range(len(settings)))
        for rung in rungs:
            if len(alive) == 1 and rung != rungs[-1]:
                continue  # nothing left to compare: straight to the end
            done = {i: run(trial_cell(owner, subject.id, settings[i], rung)) for i in alive}
            if None in done.values():
                raise Undecided
            for i, record in done.items():
                if record.status == records.OK:  # a failed trial's seconds are not known: not counted
                    seconds[i] = record.train_s or 0.0
                results[i] = outcome(results[i], rung, record)
            alive = promoted(results, rung, space.eta, up)
        told.append(results)
        tried += zip(settings, results, seconds, strict=True)
    best = selected([r for _, r, _ in tried], rungs[-1], up)
    if best is None:
        reasons = "; ".join(dict.fromkeys(r.failed or "" for _, r, _ in tried))
        raise SearchFailed(f"every trial of the search of {subject.id} failed: {reasons}")
    winner = trial_cell(owner, subject.id, tried[best][0], rungs[-1])
    search = summary(subject, owner.suite.search_for(owner.task)[1], space, rungs, tried, best)
    return Tuned({k: v for k, v in tried[best][0] if "." not in k}, winner.scope, dataclasses.asdict(search),
                 search.cost_s)


def outcome(result: Result, rung: int, record: records.TrialRecord) -> Result:
    """`result` with what the trial's record at `rung` says: its value there, or why it failed."""
    if record.status != records.OK:
        return dataclasses.replace(result, failed=record.reason or record.status)
    return dataclasses.replace(result, values={**result.values, rung: record.metric.value})


def settle(owner: Cell, subject, run: Run, cache: Path) -> Tuned:
    """`resolve` the search, then delete the checkpoints of its trials that will not continue (all but the
    selection's, which its final run resumes)."""
    tuned = resolve(owner, subject, run)
    for trial in tuned.search["trials"]:
        if trial["setting"] != tuned.search["selected"]:
            clear_checkpoints(trial_cell(owner, subject.id, tuple(trial["setting"].items()), 1), cache)
    return tuned


def stage_checkpoints(unit: Cell, cache: Path) -> list[Path]:
    """A trial's stage checkpoints (those of every rung of it: one per training stage)."""
    return sorted((cache / "checkpoints").glob(f"{checkpoint_stem(unit.scope, unit.seed, unit.protocol)}-*.ckpt"))


def clear_checkpoints(unit: Cell, cache: Path) -> None:
    for path in stage_checkpoints(unit, cache):
        Checkpoint(path, 1).clear()


def summary(subject, table: dict, space: Space, rungs: list[int], tried: list, best: int) -> records.Search:
    trials = [records.SearchTrial(dict(setting), status(result, rungs[-1]), {str(k): v for k, v in
                                                                             result.values.items()},
                                  result.failed, seconds) for setting, result, seconds in tried]
    return records.Search(subject.id, table, rungs, space.retrain, trials, dict(tried[best][0]),
                          sum(t.status == FAILED for t in trials), sum(seconds for _, _, seconds in tried))


def status(result: Result, last: int) -> str:
    return FAILED if result.failed else OK if result.at(last) is not None else PRUNED


def final_phase(space: Space | None) -> Phase:
    """The phase of a cell's final run: as outside a search; on train, with the validation curves its selected
    trial made (the test split is read once, at the end); or on train and validation, with test curves."""
    if space is None:
        return Phase()
    return Phase(curves=("val",)) if space.retrain == "train" else Phase(("train", "val"), ("test",))


def tuned_sources(cell: Cell, run: Run, cache: Path) -> dict[str, Tuned]:
    return {s.id: settle(cell, s, run, cache) for s in subjects(cell) if isinstance(s, FinetunedSource)}


def final(cell: Cell, ctx: Context, run: Run) -> tuple[Context, Any, Tuned | None]:
    """The context and the method of a method cell's final run: its sources tuned, its own setting selected
    (None: no search of its own), on the splits its search retrains on; `run` runs the trials it needs."""
    space = space_of(cell)
    if space is None:
        return ctx, cell.plugin, None
    tuned = tuned_sources(cell, run, ctx.cache)
    own = settle(cell, cell.plugin, run, ctx.cache) if cell.plugin in subjects(cell) else None
    task, method, scope = ctx.task, cell.plugin, cell.scope
    if own is not None:
        chosen = own.search["selected"]
        task = type(ctx.task)(ctx.task.protocol.replace(**own.setting))
        method = dataclasses.replace(method, **{k.split(".", 1)[1]: v for k, v in chosen.items() if "." in k})
        scope = own.scope if space.retrain == "train" else scope
    out = Context(ctx.hub, task, ctx.seed, scope=scope, stream=cell.stream, cache=ctx.cache, device=ctx.device,
                  runtime=ctx.runtime, retrain=ctx.retrain, phase=final_phase(space), tuned=tuned)
    out.search = own and own.search
    return out, method, own


def run_trial(cell: Cell, ctx: Context, run: Run) -> dict:
    """A trial's part of its cell: its subject trained at the trial's setting on the train split, up to its rung
    (continued from its checkpoint at the previous rung), then scored on the validation split. A method of
    several training stages starts again at each rung (its later stages were built on the earlier ones' state at
    the previous rung). A validation metric (or loss) that is not finite is a failure: it diverged."""
    trial, task = cell.plugin, ctx.task  # `execute` made the task under the trial's protocol (`Cell.protocol`)
    owner = dataclasses.replace(cell, plugin=trial.owner)
    source = isinstance(trial.subject, FinetunedSource)
    first = space_of(owner).rungs(owner.protocol.iterations)[0]
    if trial.rung > first and len(stage_checkpoints(cell, ctx.cache)) > 1:
        clear_checkpoints(cell, ctx.cache)  # continued to a later rung: several stages start again
    stream = f"{cell.hub}/{cell.task}/{trial.subject.id}" if source else owner.stream
    tuned = {} if source else tuned_sources(owner, run, ctx.cache)
    method = trial.subject if source else dataclasses.replace(
        trial.subject, **{k.split(".", 1)[1]: v for k, v in trial.setting if "." in k})
    phase = Phase(curves=("val",), until=trial.rung / task.protocol.iterations)
    trained = Context(ctx.hub, task, ctx.seed, scope=cell.scope, stream=stream, cache=ctx.cache, device=ctx.device,
                      runtime=ctx.runtime, retrain=ctx.retrain, phase=phase, tuned=tuned)
    model = trained.fit(method)
    metrics = trained.evaluate(model, "val")
    for name, value in metrics.items():  # weights gone to inf or nan can leave an argmax's top1 finite, not its loss
        if not math.isfinite(value):
            raise FloatingPointError(f"validation {name} became {value} (diverged)")
    value = metrics[task.metric]
    return dict(status=records.OK, metric=records.Metric(task.metric, task.higher_is_better, value),
                iteration=trial.rung, train_s=trained.train_seconds, curves=trained.curves)
