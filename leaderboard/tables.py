"""The tables of one board: test metric per method × task, complexity and cost per method, and
the paired comparison of every method with the best single fine-tune."""

from __future__ import annotations

from collections import Counter

from hubbench.leaderboard.board import Board
from hubbench.leaderboard.document import MISSING, Block, Table, Text
from hubbench.leaderboard.records import field, params
from hubbench.leaderboard.stats import mean_std, paired


def num(v: float | None) -> str:
    """Two decimals, or three significant digits below 1 (the mini hub's 0.3 M parameters)."""
    if v is None:
        return MISSING
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def accuracy(board: Board, notes: list[str]) -> Table:
    """Methods × tasks: mean ± std over seeds of the test metric, Avg over tasks, the best of each column bold.

    A cell says how many seeds failed next to the mean of the others; n/a cells point to `notes`,
    which collects the reasons (numbered over the whole page)."""
    best_task = {t: board.means[b, t] for t in board.tasks if (b := board.best_method(t)) is not None}
    best_avg = board.avg.get(board.best(board.avg))
    rows = []
    for m in board.methods:
        row = [m]
        for t in board.tasks:
            rs = board.cells.get((m, t), [])
            ok = list(board.seeds(m, t).values())
            failed = sum(r["status"] == "failed" for r in rs)
            if ok:
                text = mean_std(ok)
                text = f"**{text}**" if board.means[m, t] == best_task[t] else text
                text += f" ({len(ok)} seeds, {failed} failed)" if failed else ""
            elif reason := next((r.get("reason") or "" for r in rs if r["status"] == "n/a"), None):
                if reason not in notes:
                    notes.append(reason)
                text = f"n/a [{notes.index(reason) + 1}]"
            elif failed:
                text = f"failed ({failed})"
            else:
                text = MISSING
            row.append(text)
        a = board.avg.get(m)
        row.append(MISSING if a is None else (f"**{a:.2f}**" if a == best_avg else f"{a:.2f}"))
        rows.append(row)
    return Table(["Method", *board.tasks, "Avg"], rows)


def mean_of(board: Board, method: str, *path: str) -> float | None:
    return board.task_mean(method, lambda r: field(r, *path))


def settings(records: list[dict], label: str, describe) -> str:
    """One line naming each distinct measurement setting of `records` (with its share when they differ);
    `describe` gives a record's setting, None when it has none."""
    counts = Counter(d for r in records if (d := describe(r)) is not None)
    if not counts:
        return f"{label}: not measured in these records."
    if len(counts) == 1:
        return f"{label}: {next(iter(counts))}."
    return f"{label}: " + "; ".join(f"{s} ({n} records)" for s, n in sorted(counts.items())) + "."


def speed_setting(r: dict) -> str | None:
    if not (s := field(r, "complexity", "speed")):
        return None
    compiled = f"torch.compile {s['compile']}" if s.get("compile") else "eager"
    return (f"batch {s.get('batch', MISSING)}, {s.get('precision', MISSING)}, {s.get('memory_format', MISSING)}, "
            f"{compiled}, on {s.get('device_name', MISSING)} (torch {s.get('torch', MISSING)}, "
            f"CUDA {s.get('cuda') or 'none'}), median of {s.get('repeats', MISSING)} after {s.get('warmup', MISSING)} "
            "warm-up steps")


def memory_setting(r: dict) -> str | None:
    if not (m := field(r, "complexity", "memory")):
        return None
    return f"{m.get('measure', MISSING)} on {m.get('device', MISSING)}"


def params_text(total: float | None, active: float | None) -> str:
    """Total parameters in millions, and those a sample goes through on average when that is fewer."""
    text = num(None if total is None else total / 1e6)
    if total and active is not None and abs(active - total) > 0.005 * total:
        text += f" ({num(active / 1e6)} active)"
    return text


def pair_text(a: float | None, b: float | None) -> str:
    return MISSING if a is None and b is None else f"{num(a)} / {num(b)}"


def complexity(board: Board) -> list[Block]:
    """Per method, over the board's tasks (mean over tasks of the mean over seeds, ok records only):
    the metric's Avg next to what it costs to run and to train."""
    rows = []
    for m in board.methods:
        if not board.ok(m):
            continue
        avg = board.avg.get(m)
        own, artifacts, total = (mean_of(board, m, "cost", k) for k in ("train_s", "artifacts_s", "total_s"))
        rows.append([
            m, MISSING if avg is None else f"{avg:.2f}",
            params_text(board.task_mean(m, lambda r: params(r, "total")),
                        board.task_mean(m, lambda r: params(r, "active"))),
            num(mean_of(board, m, "complexity", "flops", "fvcore_gflops")),
            pair_text(mean_of(board, m, "complexity", "memory", "train_mb"),
                      mean_of(board, m, "complexity", "memory", "infer_mb")),
            pair_text(mean_of(board, m, "complexity", "speed", "infer_samples_s"),
                      mean_of(board, m, "complexity", "speed", "train_samples_s")),
            MISSING if total is None else f"{num(total)} ({num(own)} + {num(artifacts)})",
        ])
    ok = [r for r in board.records if r["status"] == "ok"]
    notes = [
        f"Each row: mean over the {len(board.tasks)} task(s) of this table of the mean over seeds (ok records). "
        "GFLOPs per sample at inference, fvcore's convention (one multiply-add = one flop); "
        "cost: training seconds, the record's own + those of the artifacts it reuses (fine-tuned sources).",
        settings(ok, "Memory", memory_setting), settings(ok, "Speed", speed_setting)]
    header = ["Method", f"{board.metric} Avg", "Params (M)", "GFLOPs (fvcore)", "Memory train / infer (MB)",
              "Speed infer / train (samples/s)", "Cost (s): total (own + artifacts)"]
    return [Table(header, rows), *map(Text, notes)]


def comparison(board: Board) -> list[Block]:
    """Each method minus the best single fine-tune of each task, paired by seed, 95% t-interval.

    The baseline is picked by its mean test metric, which can only flatter it: a method shown
    consistently better beats the fine-tune chosen with hindsight."""
    baselines = {t: b for t in board.tasks if (b := board.best_finetune(t)) is not None}
    if not baselines:
        return [Text("No fine-tune records: nothing to compare with.")]
    tasks = list(baselines)
    rows = [["best single fine-tune", *(f"`{baselines[t]}`" for t in tasks)]]
    verdicts: dict[int, dict[str, list[str]]] = {1: {}, -1: {}}
    for m in board.methods:
        row = [m]
        for t in tasks:
            p = None if m == baselines[t] else paired(board.seeds(m, t), board.seeds(baselines[t], t), board.higher)
            if p is None:
                row.append("baseline" if m == baselines[t] else MISSING)
                continue
            interval = f" [{p.low:+.2f}, {p.high:+.2f}]" if p.low is not None else ""
            text = f"{p.mean:+.2f}{interval} (n={p.n})"
            row.append(f"**{text}**" if p.sign > 0 else text)
            if p.sign:
                verdicts[p.sign].setdefault(m, []).append(t)
        rows.append(row)
    lines = [f"`{m}` is consistently better than the best single fine-tune on {', '.join(ts)}."
             for m, ts in verdicts[1].items()]
    if verdicts[-1]:
        lines.append("Consistently worse: " + "; ".join(f"`{m}` ({', '.join(ts)})" for m, ts in verdicts[-1].items())
                     + ".")
    intro = ("Difference to the best single fine-tune of each task (by mean test metric), per seed, oriented so "
             "that positive is better: mean [95% t-interval] (seeds). \"Consistently better\" (bold) only "
             "where the interval excludes 0.")
    lines = lines or ["No method is consistently better or worse than the best single fine-tune."]
    return [Text(intro), Table(["Method", *tasks], rows), *map(Text, lines)]
