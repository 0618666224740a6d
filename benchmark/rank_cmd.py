"""`hubbench rank`: which model of a hub for a task? Every applicable ranker scores every source, as a table.

The rankings run as the ranking cells of a one-off suite named `rank` (hub, task, every chosen ranker, one
seed), so they write the records a suite would, under the cache unless `--results` names a folder
(`<results>/rank/<hub>/<task>/rank/<ranker>/seed<N>.json`), and reuse the cached features and rankings of earlier
runs: the answer says which records it reused (a stale one, made under another protocol, is made again). The
table gives each source's scores, each ranker's pick (ties as ties: no pick where every source ties or no
score is a number), the seconds each ranker's scoring took beside the features' once, and, where suites under
`--boards` hold this hub's fine-tunes and rankings, how well each ranker's scores matched the fine-tunes there
(its mean weighted Kendall τ over their tasks). `--tune` then runs one method's cell of that suite: a
single-source method (`finetune` by default) of the pick (the top source of the `--by` ranker), or another method
as it is (`b_tuning`), and reports its test metric.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hubbench import record as records
from hubbench.benchmark.cells import Cell
from hubbench.benchmark.declarations import declare_files
from hubbench.benchmark.preflight import review_protocols
from hubbench.benchmark.runner import Redo, run_cell
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
    """The cell of `--tune`: a single-source method tuning the pick of the `by` ranker (default: the first with one
    pick, LogME's when it has one), or another method as it is (B-Tuning picks and weighs its sources by LogME
    itself)."""
    if method.role == Role.SINGLE_SOURCE:
        by = by or next((name for name, r in rankings.items() if len(r.picks) == 1), None)
        picks = rankings[by].picks if by else []
        if len(picks) != 1:
            why = f"ranker {by} ties {' and '.join(picks)}" if picks else \
                f"{'ranker ' + by if by else 'no ranker'} picked no source"
            raise InputError(f"--tune: {why}: --by another ranker, or --tune b_tuning")
        method = dataclasses.replace(method, model=picks[0])
    return Cell(suite, suite.hubs[0], suite.tasks[0], method, suite.seeds[0])


def run(hub: str, task: str, results: Path, device: torch.device, check: Callable[[list[Cell]], None], *,
        rankers: Sequence[str] = (), by: str | None = None, tune: str | None = None, seed: int = 0,
        overrides: dict[str, Any] | None = None, declare: Sequence[Path] = (), as_json: bool = False,
        boards: Path | None = None, force: bool = False) -> int:
    """Rank (and `tune`: see `tune_method`; None: no tuning), after the task has reviewed its protocol and `check`
    has read the data and found the weights of the cells; print the table (or, `as_json`, the summary). `force`
    ranks again where records exist."""
    start = time.perf_counter()
    suite = suite_of(hub, task, rankers, by, seed, overrides or {}, declare)
    method = None if tune is None else tune_method(tune)
    cells = [Cell(suite, hub, task, Ranker.of(spec), seed) for spec in suite.rankers]
    notes = review_protocols(cells)  # a refusal raises here
    check(cells)
    redo = Redo(all=force, stale=True)  # a one-off answer: a record made under another protocol is made again
    ran = {cell.plugin.name: run_cell(cell, results, device, redo=redo) for cell in cells}
    rankings = {name: record for name, (_, record) in ran.items()}
    reused = [name for name, (status, _) in ran.items() if status == "skipped"]
    tuned = None
    if method is not None:
        tuned = run_cell(tune_cell(suite, method, by, rankings), results, device, redo=redo)[1]
    measured = measured_tau(hub, boards) if boards else {}
    result = summary(hub, task, rankings, tuned, notes=notes, reused=reused, measured=measured, results=results,
                     seconds=time.perf_counter() - start)
    print(json.dumps(result, indent=1) if as_json else table(get_hub(hub).names, result))
    return 0 if tuned is None or tuned.status == records.OK else 1


def measured_tau(hub: str, boards: Path) -> dict[str, dict[str, Any]]:
    """ranker id -> its mean weighted Kendall τ between scores and realised fine-tunes on the hub's tasks in the
    suites under `boards` (those with both), with its top-1 hits, its tasks and the suites: how often it was
    right on this hub."""
    from hubbench.leaderboard import frame, ranking
    from hubbench.leaderboard.board import method_roles
    from hubbench.leaderboard.generate import load_records, suite_folders

    rows = []
    for suite in suite_folders(boards) if boards.is_dir() else []:
        if not (boards / suite / hub).is_dir():
            continue  # records are filed by hub: none of this one there
        found, rankings = load_records(boards / suite)
        found, rankings = [r for r in found if r.hub == hub], [r for r in rankings if r.hub == hub]
        if found and rankings:
            finetunes = ranking.finetunes(frame.results(found), method_roles(found))
            quality = ranking.quality(ranking.scores(rankings), finetunes)
            rows += [{**row, "suite": suite} for row in quality.to_dict("records")]
    by_ranker: dict[str, list[dict]] = {}
    for row in rows:
        by_ranker.setdefault(row["ranker"], []).append(row)
    return {ranker: {"tau_w": _mean([r["tau_w"] for r in found]), "top1_hits": sum(bool(r["top1_hit"]) for r in found),
                     "tasks": len(found), "suites": sorted({r["suite"] for r in found})}
            for ranker, found in by_ranker.items()}


def _mean(values: list[float]) -> float | None:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) / len(known) if known else None


def summary(hub: str, task: str, rankings: dict[str, records.RankingRecord], tuned: records.Record | None, *,
            notes: Sequence[str] = (), reused: Sequence[str] = (), measured: dict | None = None,
            results: Path | None = None, seconds: float | None = None) -> dict:
    features = next((r.features for r in rankings.values() if r.features), {})
    out = {"hub": hub, "task": task, "notes": list(notes), "records": str(results) if results else None,
           "reused": list(reused), "seconds": seconds,
           "features": {"seconds": sum(f["seconds"] for f in features.values()), "sources": len(features)},
           "rankers": {name: {"status": r.status, "scores": r.scores, "reasons": r.reasons,
                              "pick": r.picks[0] if len(r.picks) == 1 else None, "tied": r.picks if len(r.picks) > 1
                              else [], "score_s": r.cost.score_s if r.cost else None,
                              "measured": (measured or {}).get(r.ranker.id),
                              **({"reason": r.reason} if r.reason else {})}
                       for name, r in rankings.items()}}
    if tuned is not None:
        out["tuned"] = {"method": tuned.method.id, "status": tuned.status, "metric": tuned.metric.name,
                        "test": tuned.metric.value, "reason": tuned.reason,
                        "train_s": tuned.cost.total_s if tuned.cost else None}
    return out


def column(values: list[float]) -> list[str]:
    """Numbers of one ranker to a common number of decimals: four significant digits of the largest."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    top = max(finite, default=0.0)
    decimals = max(0, 3 - math.floor(math.log10(top))) if top > 0 else 4
    return [f"{v:.{decimals}f}" for v in values]


def table(sources: list[str], result: dict) -> str:
    """Scores per source (rows) and ranker (columns), then each ranker's pick, its scoring seconds and, where known,
    its measured τw on the hub's boards; n/a where none."""
    rankers = result["rankers"]
    cells = {name: dict(zip(r["scores"], column(list(r["scores"].values())), strict=True))
             for name, r in rankers.items()}
    rows = [["source", *rankers]]
    rows += [[s, *(cells[name].get(s, "n/a") for name in rankers)] for s in sources]
    rows.append(["pick", *(r["pick"] or (f"tie: {' = '.join(r['tied'])}" if r["tied"] else "-")
                           for r in rankers.values())])
    rows.append(["scoring s", *(f"{r['score_s']:.2f}" if r["score_s"] is not None else "-" for r in rankers.values())])
    if any(r["measured"] for r in rankers.values()):
        rows.append(["τw here", *(measured_text(r["measured"]) for r in rankers.values())])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines[:0] = [*result["notes"], f"hub {result['hub']}, task {result['task']}: scores of each source "
                                   "(higher: better pick)"]
    f = result["features"]
    lines.append(f"features of the {f['sources']} sources: {f['seconds']:.1f} s when computed, once for every ranker "
                 f"(cached); this answer took {result['seconds']:.1f} s")
    if result["reused"]:
        lines.append(f"reused the records of an earlier run for {', '.join(result['reused'])} (in "
                     f"{result['records']}; --force ranks again)")
    if any(r["measured"] for r in rankers.values()):
        suites = sorted({s for r in rankers.values() if r["measured"] for s in r["measured"]["suites"]})
        lines.append(f"τw here: each ranker's mean weighted Kendall τ between its scores and the realised fine-tunes "
                     f"of this hub on the tasks of suite{'s' if len(suites) > 1 else ''} {', '.join(suites)} "
                     "(1: it ordered them right), with its top-1 hits")
    lines += [f"n/a, {name}: {r.get('reason') or '; '.join(r['reasons'].values())}"
              for name, r in rankers.items() if r["status"] != records.OK or r["reasons"]]
    if "tuned" in result:
        t = result["tuned"]
        value = f"{t['metric']} {t['test']:.2f}" if t["status"] == records.OK else f"{t['status']}: {t['reason']}"
        lines.append(f"tuned: {t['method']}: test {value}")
    return "\n".join(lines)


def measured_text(m: dict | None) -> str:
    if not m:
        return "-"
    tau = "n/a" if m["tau_w"] is None else f"{m['tau_w']:.2f}"
    return f"{tau} ({m['top1_hits']}/{m['tasks']} top-1)"
