"""How good each ranking is: the rankers' scores (ranking records) against the realised results of the same
suite's single-source fine-tunes (the methods of that role, `finetune[model=...]`), as pure functions of two
tidy DataFrames (one row per score, and the results frame's fine-tune rows), then the tables and the figure of
one board.

Per hub and task: the weighted Kendall tau between scores and fine-tune results (Vigna's hyperbolic
weighting, scipy's `weightedtau`, as the LogME paper reports it), whether the best-scored model is the
best fine-tune of the whole hub (top-1 hit; a source a ranker cannot score is never its pick), the
"rank then tune" result (the fine-tune of its pick) beside the best and the mean single fine-tune, and
the ranking's cost (features and scoring) against that of fine-tuning every source once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import weightedtau

from hubbench.figures import Figure, canvas, file_name, png, styles
from hubbench.leaderboard import frame
from hubbench.leaderboard.board import Board, method_roles
from hubbench.leaderboard.document import MISSING, Block, Flag, Table, Text
from hubbench.params import Role
from hubbench.record import OK, SCORE_COLUMNS, RankingRecord, Record, feature_protocol

FINETUNE_COLUMNS = ["hub", "kind", "task", "source", "seed", "value", "higher_is_better", "cost_s"]


def mixed(rankings: list[RankingRecord], records: list[Record]) -> dict[tuple[str, str, str, str], str]:
    """(hub, kind, task, ranker) -> how the ranking's features saw the images (`FEATURE_PROTOCOL`) where the
    fine-tunes it is judged against saw them otherwise: a ranking at 256 px says nothing of fine-tunes at 32 px.
    Records that state no protocol (an older runner's) differ in nothing."""
    def seen(r) -> str:
        return ", ".join(f"{k} {v}" for k, v in feature_protocol(r.config.task.get("protocol", {})).items())

    tuned: dict[tuple[str, str, str], set[str]] = {}
    roles = method_roles(records)
    for r in records:
        if roles[r.method.id] == Role.SINGLE_SOURCE and r.status == OK and r.config:
            tuned.setdefault((r.hub, r.kind, r.task), set()).add(seen(r))
    out = {}
    for r in rankings:
        found = tuned.get((r.hub, r.kind, r.task), set()) - {""}
        if r.status == OK and r.config and (mine := seen(r)) and found and found != {mine}:
            out[r.hub, r.kind, r.task, r.ranker.id] = f"ranked at {mine}; fine-tuned at {' and '.join(sorted(found))}"
    return out


def scores(rankings: list[RankingRecord]) -> pd.DataFrame:
    """One row per (ok ranking record, scored source); `cost_s` is the record's (features and scoring)."""
    return pd.DataFrame([row for r in rankings for row in r.rows()], columns=list(SCORE_COLUMNS)).astype(SCORE_COLUMNS)


def finetunes(results: pd.DataFrame, roles: dict[str, Role]) -> pd.DataFrame:
    """The ok rows of a results frame (leaderboard.frame) of its single-source fine-tunes (`roles`: method id ->
    role), as (source: their `model`, seed, value, cost); where several such methods tuned a source for a task,
    the rows of the one with the best mean."""
    rows = results[(results.method.map(roles) == Role.SINGLE_SOURCE) & (results.status == OK)]
    rows = rows.assign(source=frame.hyper_parameter(rows, "model")).dropna(subset=["source"])
    if rows.empty:
        return pd.DataFrame(columns=FINETUNE_COLUMNS)
    scored = rows.value.where(rows.higher_is_better, -rows.value)  # larger is better
    mean = scored.groupby([rows.hub, rows.kind, rows.task, rows.source, rows.method]).transform("mean")
    best = mean == mean.groupby([rows.hub, rows.kind, rows.task, rows.source]).transform("max")
    return rows[best].rename(columns={"total_s": "cost_s"})[FINETUNE_COLUMNS]


def quality(scores: pd.DataFrame, finetunes: pd.DataFrame) -> pd.DataFrame:
    """One row per (hub, kind, task, ranker) with both scores and fine-tunes: `tau_w`, `top1_hit`,
    `pick` and `pick_value` (rank then tune), `best`/`best_value`, `mean_value` (single fine-tunes,
    means over seeds), `sources` (scored and fine-tuned: what tau_w and the pick are over) of `of` (the hub's
    fine-tuned sources), `scored` (their names), `rank_s` (mean over seeds) and `finetune_s` (every source
    fine-tuned once: the sum over sources of their mean cost)."""
    keys = ["hub", "kind", "task"]
    results = finetunes.groupby([*keys, "source"], sort=True).agg(
        value=("value", "mean"), cost_s=("cost_s", "mean"), higher=("higher_is_better", "first")).reset_index()
    rows = []
    for (hub, kind, task, ranker), group in scores.groupby([*keys, "ranker"], sort=True):
        realised = results[(results.hub == hub) & (results.kind == kind) & (results.task == task)].set_index("source")
        mean_scores = group.groupby("source", sort=False).score.mean()
        both = mean_scores[mean_scores.index.isin(realised.index)]
        if both.empty:
            continue
        sign = 1.0 if realised.higher.iloc[0] else -1.0  # so that larger is better for both
        pick, best = both.idxmax(), (sign * realised.value).idxmax()
        tau = weightedtau(both.to_numpy(), sign * realised.value[both.index].to_numpy()).statistic \
            if len(both) > 1 else np.nan
        rows.append({"hub": hub, "kind": kind, "task": task, "ranker": ranker, "tau_w": tau,
                     "top1_hit": pick == best, "pick": pick, "pick_value": realised.value[pick], "best": best,
                     "best_value": realised.value[best], "mean_value": realised.value.mean(), "sources": len(both),
                     "of": len(realised), "scored": ", ".join(sorted(both.index)),
                     "rank_s": group.groupby("seed").cost_s.first().mean(), "finetune_s": realised.cost_s.sum()})
    return pd.DataFrame(rows, columns=["hub", "kind", "task", "ranker", "tau_w", "top1_hit", "pick", "pick_value",
                                       "best", "best_value", "mean_value", "sources", "of", "scored", "rank_s",
                                       "finetune_s"])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (hub, kind, ranker): mean tau_w over tasks, top-1 hits out of tasks, the sources they were computed
    over (`scored`, their fewest and most over tasks `sources_min`/`sources_max`, of `of`), and total ranking
    time against the total time of fine-tuning every source on every task."""
    return table.groupby(["hub", "kind", "ranker"], sort=True).agg(
        tau_w=("tau_w", "mean"), hits=("top1_hit", "sum"), tasks=("task", "count"),
        sources_min=("sources", "min"), sources_max=("sources", "max"), of=("of", "max"),
        scored=("scored", lambda s: " | ".join(sorted(set(s)))),
        rank_s=("rank_s", "sum"), finetune_s=("finetune_s", "sum")).reset_index()


def best_over_same_sources(totals: pd.DataFrame) -> set[str]:
    """The rankers with the best mean tau_w among those computed over the same sources (`summary` rows):
    a tau over the 2 sources that have a classifier does not compare with one over all 5. A ranker alone
    with its sources is compared with none and marked with none."""
    best = set()
    for _, group in totals.dropna(subset=["tau_w"]).groupby("scored"):
        if len(group) > 1:
            best |= set(group.ranker[group.tau_w == group.tau_w.max()])
    return best


def sources_text(total: pd.Series) -> str:
    """`5 of 5`, or `2 of 5 (selfsup, supervised)`: over how many of the hub's sources a ranker was judged."""
    n = f"{total.sources_min}" if total.sources_min == total.sources_max else f"{total.sources_min}–{total.sources_max}"
    return f"{n} of {total.of}" + ("" if total.sources_min == total.of else f" ({total.scored})")


def fmt(v: float, digits: int = 2) -> str:
    return MISSING if pd.isna(v) else f"{v:.{digits}f}"


def section(board: Board, all_scores: pd.DataFrame, protocols: dict | None = None) -> list[Block]:
    """The board's ranking tables and figure (nothing when no ranker scored a fine-tuned source); `protocols`
    (`mixed`) flags each (task, ranker) whose ranking saw the images otherwise than its fine-tunes."""
    flagged = {(t, r): why for (hub, kind, t, r), why in (protocols or {}).items()
               if (hub, kind) == (board.hub, board.kind)}
    mine = all_scores[(all_scores.hub == board.hub) & (all_scores.kind == board.kind)]
    if mine.empty:
        return []
    tuned = finetunes(board.rows, board.roles)
    table = quality(mine, tuned)
    if table.empty:
        return []
    tasks, rankers = sorted(table.task.unique()), sorted(table.ranker.unique())
    cells = table.set_index(["ranker", "task"])
    totals = summary(table)
    best = best_over_same_sources(totals)
    totals = totals.set_index("ranker")
    rows = []
    for ranker in rankers:
        per_task = [f"{fmt(cells.tau_w[ranker, t])} {'✓' if cells.top1_hit[ranker, t] else '✗'}"
                    + (" ⚠" if (t, ranker) in flagged else "") if (ranker, t) in cells.index else MISSING
                    for t in tasks]
        total = totals.loc[ranker]
        ratio = f" ({total.finetune_s / total.rank_s:.0f}x)" if total.rank_s > 0 else ""
        tau = fmt(total.tau_w)
        rows.append([ranker, *per_task, f"**{tau}**" if ranker in best else tau,
                     f"{int(total.hits)}/{int(total.tasks)}", sources_text(total), f"{total.rank_s:.1f} s",
                     f"{total.finetune_s:.0f} s{ratio}"])
    quality_table = Table(["Ranker", *tasks, "Avg τw", "Top-1 hits", "Sources", "Ranking time",
                           "Fine-tuning every source"], rows)
    first = table.drop_duplicates("task").set_index("task")
    tune_rows = [["best single fine-tune", *(f"{fmt(first.best_value[t])} ({first.best[t]})" for t in tasks)],
                 ["mean single fine-tune", *(fmt(first.mean_value[t]) for t in tasks)]]
    tune_rows += [[f"rank then tune: {r}", *(f"{fmt(cells.pick_value[r, t])} ({cells.pick[r, t]})"
                                             if (r, t) in cells.index else MISSING for t in tasks)] for r in rankers]
    blocks: list[Block] = [
        Text("Weighted Kendall τ (hyperbolic weights, as the LogME paper) between each ranker's scores of the "
             "pre-trained models and their fine-tuned test " + board.metric + " (means over seeds; " + judged(board)
             + "), over the sources it scores (Sources: how many of the hub's fine-tuned sources, and which where "
             "not all); "
             "✓ where its best-scored model, picked among those, is the best fine-tune of the whole hub. Bold: "
             "the best Avg τw among rankers scored over the same sources (τ over fewer sources compares with "
             "no other). Times: the ranking (features and scoring) against fine-tuning every source once."),
        quality_table,
        *[Flag(f"⚠ **Other images than the fine-tunes'**: {ranker} on {task} was {why}: its τw and pick judge "
               "another input (`hubbench run --rerun-stale` ranks again under the suite's protocol).")
          for (task, ranker), why in sorted(flagged.items()) if (ranker, task) in cells.index],
        Text(f"Rank then tune: the test {board.metric} of fine-tuning each ranker's pick, beside the best and "
             "the mean single fine-tune."),
        Table(["", *tasks], tune_rows),
    ]
    plot = figure(mine, tuned, board.hub, board.kind, board.metric)
    return blocks + ([Figure(file_name(board.hub, board.kind, "ranking"),
                             f"`{board.hub}`, {board.kind}: each ranker's score of a source (x) against its "
                             f"fine-tuned test {board.metric} (y), per task.", plot)] if plot else [])


def judged(board: Board) -> str:
    """What the rankers are judged against: fine-tunes at the setting the suite's search selected per source, task and
    seed (as the transferability literature tunes them), or at the suite's one fixed protocol."""
    rows = board.ok[board.ok.method.map(board.role) == Role.SINGLE_SOURCE]
    if rows.empty or rows.search_selected.isna().all():
        return "fine-tunes at the suite's fixed protocol, untuned"
    tuned = "every" if rows.search_selected.notna().all() else "some"
    return f"{tuned} fine-tune tuned: each at the setting its source's search selected on the validation split"


def figure(scores: pd.DataFrame, finetunes: pd.DataFrame, hub: str, kind: str, metric: str = "result") -> bytes | None:
    """Score (x) against fine-tune result (y, mean over seeds) of each source, one panel per task and
    ranker; None when the hub and kind have no pair to draw."""
    scores = scores[(scores.hub == hub) & (scores.kind == kind)]
    finetunes = finetunes[(finetunes.hub == hub) & (finetunes.kind == kind)]
    tasks = sorted(set(scores.task) & set(finetunes.task))
    rankers = sorted(set(scores.ranker))
    if not tasks or not rankers:
        return None
    results = finetunes.groupby(["task", "source"]).value.mean()
    # each source in the colour of its fine-tune on the page's other figures, named once in the legend (labels
    # beside points that rankers score alike would cover each other)
    sources = sorted(set(scores.source))
    looks = styles(dict.fromkeys(sources, Role.SINGLE_SOURCE))
    with canvas(2.2 * len(rankers) + 1.6, 1.9 * len(tasks), cols=len(rankers), rows=len(tasks)) as (fig, axes):
        for i, task in enumerate(tasks):
            for j, ranker in enumerate(rankers):
                ax = axes[i * len(rankers) + j]
                mine = scores[(scores.task == task) & (scores.ranker == ranker)].groupby("source").score.mean()
                for source, x in mine.items():
                    if (task, source) in results.index:
                        look = looks[source]
                        ax.scatter(x, results[task, source], s=22, color=look["color"], marker=look["marker"],
                                   edgecolors="0.2", linewidths=0.4, label=source)
                ax.set_title(f"{task}: {ranker}")
                ax.set_xlabel("score")
                ax.set_ylabel(f"fine-tuned {metric}" if j == 0 else "")
        handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
        fig.legend([handles[s] for s in sources if s in handles], [s for s in sources if s in handles],
                   loc="outside right upper", title="source")
        return png(fig)
