"""The tables of one board: test metric per method × task, complexity and cost per method, and
the paired comparison of every method with the best single fine-tune."""

from __future__ import annotations

import pandas as pd

from hubbench.leaderboard.board import Board
from hubbench.leaderboard.document import MISSING, Block, Table, Text
from hubbench.record import FAILED, INAPPLICABLE, MEASURE_COLUMNS, METRIC_COLUMNS, Column, known, number


def mean_std(values: pd.Series) -> str:
    """"mean ± sample std" over seeds; a single seed has no spread to show."""
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std():.2f}"


def rank(board: Board, method: str) -> str:
    return str(board.rank[method]) if method in board.rank else MISSING


def accuracy(board: Board, notes: list[str]) -> Table:
    """Methods × tasks, ranked by Avg: mean ± std over seeds of the test metric, Avg over tasks, the best of
    each column bold.

    A cell says how many seeds failed next to the mean of the others; inapplicable cells point to `notes`,
    which collects the reasons (numbered over the whole page)."""
    best_task = {t: board.means[b, t] for t in board.tasks if (b := board.best_method(t)) is not None}
    best_avg = board.avg.get(board.best(board.avg))
    cells = board.rows.groupby(["method", "task"])
    rows = []
    for m in board.ranked:
        row = [rank(board, m), m]
        for t in board.tasks:
            rs = cells.get_group((m, t)) if (m, t) in cells.groups else board.rows.iloc[:0]
            ok = board.seeds(m, t)
            failed = (rs.status == FAILED).sum()
            reasons = rs.reason[rs.status == INAPPLICABLE].fillna("")
            if len(ok):
                text = mean_std(ok)
                text = f"**{text}**" if board.means[m, t] == best_task[t] else text
                text += f" ({len(ok)} seeds, {failed} failed)" if failed else ""
            elif len(reasons) and reasons.iloc[0]:
                if reasons.iloc[0] not in notes:
                    notes.append(reasons.iloc[0])
                text = f"n/a [{notes.index(reasons.iloc[0]) + 1}]"
            elif failed:
                text = f"failed ({failed})"
            else:
                text = MISSING
            row.append(text)
        a = board.avg.get(m)
        row.append(MISSING if a is None else (f"**{a:.2f}**" if a == best_avg else f"{a:.2f}"))
        rows.append(row)
    return Table(["Rank", "Method", *board.tasks, "Avg"], rows)


def settings(rows: pd.DataFrame, label: str, describe) -> str:
    """One line naming each distinct measurement setting of `rows` (with its share when they differ);
    `describe` gives a row's setting, None when it has none."""
    counts = rows.apply(describe, axis=1).dropna().value_counts() if len(rows) else pd.Series(dtype=object)
    if counts.empty:
        return f"{label}: not measured in these records."
    if len(counts) == 1:
        return f"{label}: {counts.index[0]}."
    return f"{label}: " + "; ".join(f"{s} ({n} records)" for s, n in sorted(counts.items())) + "."


def text(v) -> str:
    return str(v) if known(v) else MISSING


def under(path: str) -> list[str]:
    """The measured columns a record holds under `path` (`complexity.speed`: the speed and how it was measured)."""
    return [name for name, c in MEASURE_COLUMNS.items() if f"{c.path}.".startswith(f"{path}.")]


SPEED, MEMORY = under("complexity.speed"), under("complexity.memory")


def speed_setting(r: pd.Series) -> str | None:
    if not r[SPEED].notna().any():
        return None
    compiled = f"torch.compile {r.compile}" if known(r.compile) and r.compile != "eager" else "eager"
    return (f"batch {text(r.speed_batch)}, {text(r.precision)}, {text(r.memory_format)}, {compiled}, on "
            f"{text(r.speed_device_name)} (torch {text(r.speed_torch)}, "
            f"{r.speed_cuda if known(r.speed_cuda) else 'CUDA none'}), median of {text(r.repeats)} after "
            f"{text(r.warmup)} warm-up steps")


def memory_setting(r: pd.Series) -> str | None:
    if not r[MEMORY].notna().any():
        return None
    return f"{text(r.memory_measure)} on {text(r.memory_device)}"


def summary(board: Board, columns: dict[str, Column]) -> list[list[str]]:
    """Per method with ok records, by rank: the metric's Avg, then each of `columns` as it writes itself from the
    mean over the board's tasks of the mean over seeds of every numeric column (ok records)."""
    means = board.task_mean(list(board.ok.select_dtypes("number").columns))
    rows = []
    for m in board.ranked:
        if m not in set(board.ok.method):
            continue
        avg = board.avg.get(m)
        row = means.loc[m].to_dict()
        rows.append([rank(board, m), m, MISSING if avg is None else f"{avg:.2f}",
                     *(c.text(name, row) for name, c in columns.items())])
    return rows


def header(board: Board, columns: dict[str, Column]) -> list[str]:
    return ["Rank", "Method", f"{board.metric} Avg", *(c.header for c in columns.values())]


def metrics(board: Board) -> list[Block]:
    """The task metrics the records hold beyond the primary one, those the page shows (`METRIC_COLUMNS`), per
    method: e.g. a landmark task's failure rates and AUC beside its NME."""
    columns = {f"test_{name}": c for name, c in METRIC_COLUMNS.items()
               if c.shown and name != board.metric and board.ok.get(f"test_{name}", pd.Series()).notna().any()}
    if not columns:
        return []
    return [Text(f"The other test metrics: mean over the {len(board.tasks)} task(s) of this table of the mean over "
                 "seeds (ok records)."), Table(header(board, columns), summary(board, columns))]


def complexity(board: Board) -> list[Block]:
    """Per method, over the board's tasks (mean over tasks of the mean over seeds, ok records only):
    the metric's Avg next to what it costs to run and to train (the measured columns the page shows)."""
    columns = {name: c for name, c in MEASURE_COLUMNS.items() if c.shown}
    searched = board.ok.search_s.notna().any()
    notes = [
        f"Each row: mean over the {len(board.tasks)} task(s) of this table of the mean over seeds (ok records). "
        "GFLOPs per sample at inference, fvcore's convention (one multiply-add = one flop); "
        "cost: training seconds, the record's own + those of the artifacts it reuses (fine-tuned sources"
        + (", their searches included) + those of its own search's trials." if searched else ")."),
        settings(board.ok, "Memory", memory_setting), settings(board.ok, "Speed", speed_setting),
        settings(board.ok, "Training memory and speed", lambda r: r.train_step if known(r.train_step) else None)]
    return [Table(header(board, columns), summary(board, columns)), *map(Text, notes)]


def selections(rows: pd.DataFrame) -> str:
    """The settings a cell's seeds selected: one, or each with how many seeds chose it."""
    counts = rows.search_selected.dropna().value_counts(sort=False)
    if len(counts) == 1:
        return counts.index[0]
    return "; ".join(f"{setting} ×{n}" for setting, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def search(board: Board) -> list[Block]:
    """Where the suite searches: the setting each method and fine-tuned source selected per task, and the search's
    cost beside the method's Avg (nothing for a suite without a search)."""
    if not board.ok.search_selected.notna().any():
        return []
    searched = board.ok[board.ok.search_selected.notna()]
    cells = searched.groupby(["method", "task"])
    means = board.task_mean(["search_cost_s", "search_trials"])
    totals = searched.groupby("method")[["search_trials", "search_failed"]].sum()
    rows = []
    for m in board.ranked:
        if m not in totals.index:
            continue
        c, n, a = means.loc[m], totals.loc[m], board.avg.get(m)
        chosen = [selections(cells.get_group((m, t))) if (m, t) in cells.groups else MISSING for t in board.tasks]
        rows.append([rank(board, m), m, MISSING if a is None else f"{a:.2f}", number(c.search_cost_s),
                     f"{c.search_trials:.3g} ({n.search_failed} of {n.search_trials} failed)", *chosen])
    intro = ("The setting each method and each fine-tuned source selected on the validation split (where seeds "
             "differ, each setting with how many chose it); its search's cost: the training seconds of all its "
             "trials, mean over tasks and seeds (a fine-tune's: its source's search, which the methods built on "
             "the source count in their artifacts' cost); trials: per search, and how many of all its searches' "
             "trials failed.")
    return [Text(intro), Table(["Rank", "Method", f"{board.metric} Avg", "Search cost (s)", "Trials",
                                *board.tasks], rows)]


def comparison(board: Board) -> list[Block]:
    """Each method minus the best single fine-tune of each task, paired by seed, 95% t-interval.

    The baseline is picked by its mean test metric, which can only flatter it: a method shown
    consistently better beats the fine-tune chosen with hindsight."""
    baselines = board.baselines()
    if not baselines:
        return [Text("No fine-tune records: nothing to compare with.")]
    tasks = list(baselines)
    pairs = board.pairs()
    seeds = {p.n for p in pairs.values()}  # said once when every cell pairs as many seeds
    rows = []
    verdicts: dict[int, dict[str, list[str]]] = {1: {}, -1: {}}
    for m in board.ranked:
        row = [m]
        for t in tasks:
            if (p := pairs.get((m, t))) is None:
                row.append("baseline" if m == baselines[t] else MISSING)
                continue
            interval = f" [{p.low:+.2f}, {p.high:+.2f}]" if p.low is not None else ""
            cell = f"{p.mean:+.2f}{interval}" + ("" if len(seeds) == 1 else f" (n={p.n})")
            row.append(f"**{cell}**" if p.sign > 0 else cell)
            if p.sign:
                verdicts[p.sign].setdefault(m, []).append(t)
        rows.append(row)
    lines = [f"`{m}` is consistently better than the best single fine-tune on {', '.join(ts)}."
             for m, ts in verdicts[1].items()]
    if verdicts[-1]:
        lines.append("Consistently worse: " + "; ".join(f"`{m}` ({', '.join(ts)})" for m, ts in verdicts[-1].items())
                     + ".")
    n = f"n={next(iter(seeds))} seeds in every cell" if len(seeds) == 1 else "seeds"
    intro = ("Difference to the best single fine-tune of each task (by mean test metric), per seed, oriented so "
             f"that positive is better: mean [95% t-interval] ({n}). \"Consistently better\" (bold) only "
             "where the interval excludes 0. Best single fine-tune: "
             + ", ".join(f"{t} `{b}`" for t, b in baselines.items()) + ".")
    lines = lines or ["No method is consistently better or worse than the best single fine-tune."]
    return [Text(intro), Table(["Method", *tasks], rows), *map(Text, lines)]
