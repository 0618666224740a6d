"""`hubbench compare A B`: the cells two sets of records share, side by side, and what differs between the
runs that made them.

A and B are each a suite's records folder: a suite or variant name (`mini`, `mini@iterations=20`) under
RESULTS, or the path of any folder laid out as one (another checkout's `results/mini`); the command line also
takes a suite file (`my-suite.toml`), for its name. Two runs that share no cell are an error, not an empty
table. Per (hub, task, method) with ok records in both: the mean test metric in each, B − A, and B − A paired
over the seeds both have with its 95% t-interval; then the protocol, hub and runtime settings (from the
records' config) and the code commits in which the two differ, which the numbers must be read against.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from hubbench import record
from hubbench.io import atomic_write
from hubbench.leaderboard.board import paired
from hubbench.leaderboard.document import MISSING, Block, Flag, Heading, Table, Text
from hubbench.leaderboard.generate import LeaderboardError, load_records
from hubbench.leaderboard.html import page
from hubbench.leaderboard.markdown import markdown
from hubbench.record import OK


def records_folder(spec: str, results: Path) -> Path:
    """The folder `spec` names: itself where it is a folder of records, else RESULTS/<spec>."""
    for path in (Path(spec), results / spec):
        if path.is_dir() and next(path.glob(record.RECORD_FILES[0]), None):
            return path
    raise LeaderboardError(f"{spec!r} is neither a folder of records nor a suite with records under {results}")


def settings(records: list[record.Record]) -> dict[tuple[str, str], dict]:
    """(hub, task) -> the configuration its first record with one ran under: hub, task protocol, suite, runtime."""
    out = {}
    for r in records:
        if r.config and (r.hub, r.task) not in out:
            c = r.config
            out[r.hub, r.task] = {"hub": c.hub, "protocol": c.task.get("protocol", {}), "suite": c.suite_protocol,
                                  "runtime": c.runtime or {}}
    return out


def commits(records: list[record.Record]) -> dict[str, int]:
    """The code commits of `records` (dirty checkouts marked) with how many records each made."""
    return dict(sorted(pd.Series([f"{(g.commit or '?')[:12]}{' (dirty)' if g.dirty else ''}"
                                  for r in records if (g := r.environment and r.environment.git)],
                                 dtype="str").value_counts().items()))


def commits_text(counts: dict[str, int]) -> str:
    return ", ".join(f"`{c}` ({n})" for c, n in counts.items()) or "unknown"


def mean_text(values: pd.Series) -> str:
    return f"{values.mean():.2f}" + (f" ± {values.std():.2f}" if len(values) > 1 else "") + f" (n={len(values)})"


def rows(a: list[record.Record], b: list[record.Record]) -> list[list[str]]:
    """One row per (hub, task, method) with ok records on both sides."""
    def scores(records):
        return pd.DataFrame([(r.hub, r.task, r.method.id, r.metric.name, r.metric.higher_is_better, r.seed, r.value)
                             for r in records if r.status == OK],
                            columns=["hub", "task", "method", "metric", "higher", "seed", "value"])

    keys = ["hub", "task", "method", "metric"]
    theirs = dict(iter(scores(b).groupby(keys)))
    out = []
    for key, left in scores(a).groupby(keys, sort=True):
        if (right := theirs.get(key)) is None:
            continue
        higher = bool(left.higher.iloc[0])
        x, y = left.set_index("seed").value, right.set_index("seed").value
        p = paired(y, x, higher=True)  # raw B − A: its sign is read with the metric's arrow
        pair = MISSING if p is None else f"{p.mean:+.2f}" + (
            f" [{p.low:+.2f}, {p.high:+.2f}]" if p.low is not None else "") + f" (n={p.n})"
        hub, task, method, metric = key
        out.append([hub, task, method, f"{metric} {'↑' if higher else '↓'}", mean_text(x), mean_text(y),
                    f"{y.mean() - x.mean():+.2f}", pair])
    return out


def blocks(a_name: str, a: list[record.Record], b_name: str, b: list[record.Record]) -> list[Block]:
    out: list[Block] = [Heading(1, f"Compare `{a_name}` (A) with `{b_name}` (B)")]
    table = rows(a, b)
    if not table:
        raise LeaderboardError(f"{a_name!r} and {b_name!r} share no (hub, task, method) cell with ok records in both")
    cells = {(r.hub, r.task, r.method.id) for r in a}, {(r.hub, r.task, r.method.id) for r in b}
    out.append(Text(f"{len(table)} (hub, task, method) cells with ok records in both; "
                    f"{len(cells[0] - cells[1])} only in A, {len(cells[1] - cells[0])} only in B. Test metric: mean ± "
                    "std over seeds (n seeds); B − A of the means; and B − A paired over the seeds both have, "
                    "with its 95% t-interval (↑: higher is better, ↓: lower)."))
    out.append(Table(["Hub", "Task", "Method", "Metric", "A", "B", "B − A", "B − A paired [95%]"], table))
    sa, sb = settings(a), settings(b)
    differ = [f"{hub}/{task}: " + "; ".join(changed) for (hub, task) in sorted(sa.keys() & sb.keys())
              if (changed := list(record.changes(sa[hub, task], sb[hub, task])))]
    out.append(Heading(2, "What differs between the runs"))
    out += [Flag(f"**Settings differ** (A -> B) on {line}") for line in differ] or [
        Text("The records' hub, protocol, suite and runtime settings agree on every shared task.")]
    ca, cb = commits(a), commits(b)
    out.append(Flag(f"**Commits differ**: A {commits_text(ca)}; B {commits_text(cb)}.") if ca.keys() != cb.keys()
               else Text(f"Both from the same commits: A {commits_text(ca)}; B {commits_text(cb)}."))
    return out


def compare(a: str, b: str, results: Path) -> list[Block]:
    """The comparison page of `a` against `b` (see the module's docstring); LeaderboardError for bad input."""
    loaded = [load_records(records_folder(spec, results))[0] for spec in (a, b)]
    if not all(loaded):
        raise LeaderboardError(f"no readable records in {a if not loaded[0] else b!r}")
    return blocks(a, loaded[0], b, loaded[1])


def run(a: str, b: str, results: Path, html: Path | None = None, force: bool = False) -> int:
    """Print the comparison as Markdown and, with `html`, write it as a page (a file there is replaced only
    with `force`)."""
    try:
        if html is not None:
            if html.exists() and not force:
                raise LeaderboardError(f"--html {html} exists; pass --force to replace it")
            if not html.parent.is_dir():
                raise LeaderboardError(f"--html {html}: no folder {html.parent}")
        blocks = compare(a, b, results)
    except LeaderboardError as e:
        print(f"hubbench compare: error: {e}", file=sys.stderr)
        return 2
    print(markdown(blocks), end="")
    if html is not None:
        text = page(f"Compare {a} with {b}", blocks).encode()
        atomic_write(html, lambda f: f.write(text))
    return 0
