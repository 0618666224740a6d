"""`hubbench rank`: which model of a hub for a task? Every applicable ranker scores every source, as a table.

The rankings run as the ranking cells of a one-off suite named `rank` (hub, task, every chosen ranker, one
seed), so they write the records a suite would (`<results>/rank/<hub>/<task>/rank/<ranker>/seed<N>.json`) and
reuse the cached features and rankings of earlier runs. `--tune` then runs one method's cell of that suite: a
single-source method (`finetune` by default) of the pick (the top source of the `--by` ranker), or another method
as it is (`b_tuning`), and reports its test metric.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hubbench import record as records
from hubbench.benchmark.cells import Cell
from hubbench.benchmark.declarations import declare_files
from hubbench.benchmark.runner import run_cell
from hubbench.benchmark.suites import Suite
from hubbench.errors import InputError
from hubbench.hubs.base import HUBS, get_hub
from hubbench.methods.base import Method
from hubbench.methods.finetune import Finetune
from hubbench.params import Role
from hubbench.rankers.base import RANKERS, Ranker
from hubbench.tasks.base import TASKS


def suite_of(hub: str, task: str, rankers: Sequence[str], by: str | None, seed: int, overrides: dict[str, Any],
             declare: Sequence[Path]) -> Suite:
    """The one-off suite of the hub, task, rankers (none: every one, LogME first), seed and protocol overrides,
    after the `declare` files are read; `by` must be one of its rankers."""
    found = declare_files(declare)
    HUBS.get(hub)
    TASKS.get(task)
    rankers = tuple(dict.fromkeys(rankers or sorted(RANKERS.names(), key=lambda n: n != "logme")))  # LogME first
    for spec in rankers:
        Ranker.parse(spec)
    if by is not None and by not in rankers:
        raise InputError(f"--by {by}: not one of the rankers run ({', '.join(rankers)})")
    return Suite("rank", f"hubbench rank --hub {hub} --task {task}", (hub,), (task,), (), (seed,), rankers=rankers,
                 declared=found).overridden(overrides)


def tune_method(tune: str) -> Method:
    """The method of `--tune` (a spec; empty: fine-tune), checked before anything runs: a single-source one (its
    role) must name its source in a `model` parameter, which the pick fills."""
    method = Method.of(tune) if tune else Finetune()
    if method.role == Role.SINGLE_SOURCE and "model" not in method.params:
        raise InputError(f"--tune {tune}: a single-source method without a `model` parameter to tune the pick with")
    return method


def tune_cell(suite: Suite, method: Method, by: str | None, rankings: dict[str, records.RankingRecord]) -> Cell:
    """The cell of `--tune`: a single-source method tuning the pick of the `by` ranker (default: the first that
    scored, LogME's when it did), or another method as it is (B-Tuning picks and weighs its sources by LogME
    itself)."""
    if method.role == Role.SINGLE_SOURCE:
        by = by or next((name for name, r in rankings.items() if r.order), None)
        if by is None or not rankings[by].order:
            raise InputError(f"--tune: {'ranker ' + by if by else 'no ranker'} picked no source to fine-tune")
        method = dataclasses.replace(method, model=rankings[by].order[0])
    return Cell(suite, suite.hubs[0], suite.tasks[0], method, suite.seeds[0])


def run(hub: str, task: str, results: Path, device: torch.device, check: Callable[[list[Cell]], None], *,
        rankers: Sequence[str] = (), by: str | None = None, tune: str | None = None, seed: int = 0,
        overrides: dict[str, Any] | None = None, declare: Sequence[Path] = (), as_json: bool = False) -> int:
    """Rank (and `tune`: see `tune_method`; None: no tuning), after `check` has read the data and found the weights
    of the cells; print the table (or, `as_json`, the summary)."""
    suite = suite_of(hub, task, rankers, by, seed, overrides or {}, declare)
    method = None if tune is None else tune_method(tune)
    cells = [Cell(suite, hub, task, Ranker.of(spec), seed) for spec in suite.rankers]
    check(cells)
    rankings = {cell.plugin.name: run_cell(cell, results, device)[1] for cell in cells}
    tuned = None
    if method is not None:
        tuned = run_cell(tune_cell(suite, method, by, rankings), results, device)[1]
    result = summary(hub, task, rankings, tuned)
    print(json.dumps(result, indent=1) if as_json else table(get_hub(hub).names, result))
    return 0 if tuned is None or tuned.status == records.OK else 1


def summary(hub: str, task: str, rankings: dict[str, records.RankingRecord], tuned: records.Record | None) -> dict:
    out = {"hub": hub, "task": task, "rankers": {
        name: {"status": r.status, "scores": r.scores, "reasons": r.reasons, "pick": r.order[0] if r.order else None,
               "seconds": r.cost.total_s if r.cost else None, **({"reason": r.reason} if r.reason else {})}
        for name, r in rankings.items()}}
    if tuned is not None:
        out["tuned"] = {"method": tuned.method.id, "status": tuned.status, "metric": tuned.metric.name,
                        "test": tuned.metric.value, "reason": tuned.reason,
                        "train_s": tuned.cost.total_s if tuned.cost else None}
    return out


def table(sources: list[str], result: dict) -> str:
    """Scores per source (rows) and ranker (columns), then each ranker's pick and seconds; n/a where none."""
    rankers = result["rankers"]
    rows = [["source", *rankers]]
    rows += [[s, *(f"{r['scores'][s]:.4g}" if s in r["scores"] else "n/a" for r in rankers.values())] for s in sources]
    rows.append(["pick", *(r["pick"] or "-" for r in rankers.values())])
    rows.append(["seconds", *(f"{r['seconds']:.1f}" if r["seconds"] is not None else "-" for r in rankers.values())])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(0, f"hub {result['hub']}, task {result['task']}: scores of each source (higher: better pick)")
    lines += [f"n/a, {name}: {r.get('reason') or '; '.join(r['reasons'].values())}"
              for name, r in rankers.items() if r["status"] != records.OK or r["reasons"]]
    if "tuned" in result:
        t = result["tuned"]
        value = f"{t['metric']} {t['test']:.2f}" if t["status"] == records.OK else f"{t['status']}: {t['reason']}"
        lines.append(f"tuned: {t['method']}: test {value}")
    return "\n".join(lines)
