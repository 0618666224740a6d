"""Numbers printed in the papers (leaderboard/reported/*.csv, with their source), shown next to ours
for the real hubs only, in tables of their own: never averaged with our runs, never bold; and nowhere on a
board of the user's own tasks (`of_papers`). A row names its task by our task's name (the dataset's class,
`tasks.paper_cls`), or `Avg` for a paper's average."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau

from hubbench.leaderboard import convergence
from hubbench.leaderboard.board import Board
from hubbench.leaderboard.document import MISSING, Block, Table, Text
from hubbench.params import Role
from hubbench.record import Record

DIR = Path(__file__).with_name("reported")

AVG = "Avg"  # a paper's average over its own tasks, as a row's task
METRICS = {"top1_acc": "top1", "nme": "nme"}


@functools.cache
def read(name: str) -> tuple[dict, ...]:
    with open(DIR / name, newline="") as f:
        return tuple(csv.DictReader(f))


# the papers' method names -> our method ids (as the runner writes them; `soup` is the greedy recipe, the paper's
# default), kept with the numbers so that the leaderboard's code names no method
METHODS = {row["paper"]: row["ours"] for row in read("method_names.csv")}


def label(paper_name: str) -> str:
    return f"{METHODS[paper_name]} ({paper_name})"


def by_source(rows) -> dict[str, list[dict]]:
    """Rows grouped by the paper table they come from, in the file's order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["source"], []).append(r)
    return out


def of_papers(board: Board, records: dict[str, Record]) -> bool:
    """Whether the papers' numbers speak to this board: none of its records is of a task that is the user's own
    data (declared in TOML, or a plugin's), of which the papers know nothing."""
    return not any((c := records[i].config) and ("declared" in c.task or "task" in c.code)
                   for i in board.rows.id if i in records)


def marked(source: str) -> Text:
    return Text(f"**Reported (paper)**: {source}. Printed numbers, not our runs: not in our means, Avg or bold.")


def column(row: dict) -> str:
    """A row's column in the tables of the papers' numbers: its task, or the paper's average."""
    return "Avg (paper's tasks)" if row["task"] == AVG else row["task"]


def accuracy(board: Board) -> list[Block]:
    """The paper tables of this hub and metric, methods × tasks under our names, "± std" where printed,
    the tasks in our table's column order."""
    rows = [r for r in read("reported_accuracy.csv") if r["hub"] == board.hub and METRICS[r["metric"]] == board.metric]
    blocks: list[Block] = []
    for source, rs in by_source(rows).items():
        order = {t: i for i, t in enumerate(board.tasks)}  # our tables' column order first, then the paper's
        tasks = sorted(dict.fromkeys(column(r) for r in rs), key=lambda t: order.get(t, len(order)))
        cells = {(r["method"], column(r)): r["value"] + (f" ± {r['std']}" if r["std"] else "") for r in rs}
        methods = list(dict.fromkeys(r["method"] for r in rs))
        table = [[label(m), *(cells.get((m, t), MISSING) for t in tasks)] for m in methods]
        blocks += [marked(source), Table(["Reported (paper)", *tasks], table)]
    return blocks


def complexity(board: Board) -> list[Block]:
    """The paper's complexity table of this hub (top-1 accuracy is its only metric)."""
    if board.metric != "top1":
        return []
    rows = [r for r in read("reported_complexity.csv") if r["hub"] == board.hub]
    blocks: list[Block] = []
    for source, rs in by_source(rows).items():
        table = [[label(r["method"]), r["avg_top1_acc"], r["params_M"], r["gflops_fvcore"], r["memory_MB"],
                  r["speed_samples_per_s"], r["hardware"]] for r in rs]
        header = ["Reported (paper)", "top1 Avg (paper's tasks)", "Params (M)", "GFLOPs (fvcore)", "Memory (MB)",
                  "Speed (samples/s)", "Hardware"]
        blocks += [marked(source), Table(header, table)]
    return blocks


# a self-built hub -> the real hub it stands for, and the paper's names of its sources where our ids differ
ANALOGUES = {row["hub"]: row["paper_hub"] for row in read("analogues.csv")}
STAND_INS = {(row["hub"], row["paper_method"]): row["ours"] for row in read("analogues.csv") if row["ours"]}


def versus_papers(board: Board, curves: pd.DataFrame) -> list[Block]:
    """How a self-built hub ranks the methods against the papers' table of the real hub it stands for: the Avg of
    each method both have (ours over our tasks, the paper's over its own), the Kendall τ between the two (over all
    of them, and over the hub methods plus the best single fine-tune: the order a reader compares), how many hub
    methods beat the best single fine-tune in each, and whether each method's val metric still rose over the last
    fifth of its training (`convergence`, from the records' `curves`): an unconverged method's rank here is not
    its rank. A proxy that ranks unlike the benchmark misleads."""
    paper_hub = ANALOGUES.get(board.hub)

    def ours(paper_name: str) -> str | None:
        return STAND_INS.get((board.hub, paper_name), METHODS.get(paper_name))

    rows = [r for r in read("reported_accuracy.csv") if r["hub"] == paper_hub and r["task"] == AVG
            and METRICS[r["metric"]] == board.metric and ours(r["method"]) in board.avg.index]
    if not rows:
        return []
    source, rs = max(by_source(rows).items(), key=lambda item: len(item[1]))
    paper = pd.Series({ours(r["method"]): float(r["value"]) for r in reversed(rs)})  # a name's first row wins
    mine = board.avg[paper.index]
    singles = [m for m in paper.index if board.role(m) == Role.SINGLE_SOURCE]
    hub_methods = [m for m in paper.index if m not in singles]
    if len(paper) < 3 or not singles or not hub_methods:
        return []
    tau = kendalltau(mine, paper).statistic
    sign = 1 if board.higher else -1
    best = "best single fine-tune"

    def hub_view(avg: pd.Series) -> pd.Series:
        """The hub methods' Avg and, as one entry, the best single fine-tune's."""
        return pd.concat([avg[hub_methods], pd.Series({best: avg[board.best(avg[singles])]})])

    hub_tau = kendalltau(hub_view(mine), hub_view(paper)).statistic
    trend = convergence.rising(board, curves)
    still = [m for m in paper.index if m in trend and trend[m].sign > 0]

    def above(avg: pd.Series) -> int:
        """How many hub methods beat the best single fine-tune, in the board's direction."""
        best_single = avg[board.best(avg[singles])]
        return sum(sign * (avg[m] - best_single) > 0 for m in hub_methods)

    order = mine.rank(ascending=not board.higher, method="min"), paper.rank(ascending=not board.higher, method="min")
    table = [[m, f"{mine[m]:.2f}", str(int(order[0][m])), f"{paper[m]:.2f}", str(int(order[1][m])),
              convergence.text(trend.get(m))] for m in sorted(paper.index, key=lambda m: order[1][m])]
    unconverged = (f"Still rising over the last {convergence.FRACTION:.0%} of training, so unconverged here: "
                   f"{', '.join(f'`{m}`' for m in still)}." if still else
                   f"No method's val {board.metric} still rises over the last {convergence.FRACTION:.0%} of training.")
    return [
        Text(f"Against `{paper_hub}` in the papers ({source}): Kendall τ = {tau:.2f} between the two rankings of "
             f"these {len(paper)} methods, τ = {hub_tau:.2f} over the {len(hub_methods)} hub methods and the best "
             f"single fine-tune; {above(mine)} of {len(hub_methods)} hub methods beat the best single fine-tune "
             f"here, {above(paper)} of {len(hub_methods)} in the paper. Each Avg is over its own tasks. Gain: the "
             f"change of the val {board.metric} (positive: better) from the first evaluation in the last "
             f"{convergence.FRACTION:.0%} of training to the end, mean over tasks and seeds; rising where its 95% "
             f"t-interval is above 0; {MISSING} where a method trains no model of its own (it combines fine-tunes) or "
             f"evaluates once in that window. {unconverged}"),
        Table(["Method", f"Avg ({board.hub})", "Rank", f"Avg ({paper_hub}, paper)", "Rank (paper)",
               f"Gain, last {convergence.FRACTION:.0%}"], table),
    ]
