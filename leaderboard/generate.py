"""Render the leaderboard of a suite from its records: README.md, index.html, results.csv, results.parquet,
curves.parquet, comparisons.csv and figures/.

Reads nothing but record JSON files (and the papers' numbers shipped in leaderboard/reported/), so it
works on records copied from any machine; the methods' own figures are drawn by their code
(`Method.figures`), so a plugin method's need its `--plugin`. A file that is not a readable record
(corrupt, or written by a newer hubbench) is skipped with a warning naming it. Every file is written
atomically and only when its bytes change, and figures no longer produced are removed: rerunning on the
same records leaves the directory untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hubbench.io import atomic_write, check_output_dir

if TYPE_CHECKING:
    from hubbench import record


class LeaderboardError(Exception):
    """Records that cannot be rendered; the message says which and why."""


def load_records(suite_dir: Path) -> tuple[list[record.Record], list[record.RankingRecord]]:
    """Every record of the suite and every ranking record, in a stable order; record files that cannot be
    read are skipped with a warning, files of another kind (profiles) silently."""
    from hubbench import record  # here, with torch: `hubbench --help` does not import them

    found: dict[type, list] = {record.Record: [], record.RankingRecord: []}
    for path in sorted(p for pattern in record.RECORD_FILES for p in suite_dir.glob(pattern)):
        for cls, kept in found.items():
            try:
                kept.append(record.read(path, cls))
            except record.ForeignFile:
                continue  # perhaps the next kind's
            except record.RecordError as e:
                print(f"hubbench leaderboard: warning: skipping {e}", file=sys.stderr)
            break
    return sorted(found[record.Record], key=lambda r: (r.hub, r.task, r.method.id, r.seed)), found[record.RankingRecord]


def write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        atomic_write(path, lambda f: f.write(data))


def sync_figures(folder: Path, figures: dict[str, bytes]) -> None:
    """Write the figures and delete those an earlier run made that this one no longer does."""
    for name, png in figures.items():
        write_if_changed(folder / name, png)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name not in figures:
                path.unlink()
        if not figures:
            folder.rmdir()


def generate(suite: str, results: Path, out: Path) -> Path:
    # the renderers import pandas, matplotlib and scipy: here, so that `hubbench --help` does not wait for them
    from hubbench.leaderboard import frame, ranking
    from hubbench.leaderboard.board import boards, comparisons
    from hubbench.leaderboard.document import Figure
    from hubbench.leaderboard.html import page as html_page
    from hubbench.leaderboard.markdown import markdown
    from hubbench.leaderboard.page import page

    records, rankings = load_records(results / suite)
    if not records:
        raise LeaderboardError(f"no records for suite {suite!r} under {results / suite}")
    target = out / suite
    table, curves = frame.results(records), frame.curves(records)
    scores = ranking.scores(rankings)
    blocks = page(suite, records, table, curves, f"{results.name}/{suite}", scores)
    sync_figures(target / "figures", {b.name: b.png for b in blocks if isinstance(b, Figure)})
    write_if_changed(target / "results.csv", frame.csv_bytes(table))
    write_if_changed(target / "results.parquet", frame.parquet_bytes(table))
    write_if_changed(target / "curves.parquet", frame.parquet_bytes(curves))
    write_if_changed(target / "comparisons.csv", frame.csv_bytes(comparisons(boards(table))))
    if not scores.empty:
        write_if_changed(target / "rankings.csv", frame.csv_bytes(scores))
    write_if_changed(target / "README.md", markdown(blocks).encode())
    write_if_changed(target / "index.html", html_page(f"Leaderboard: {suite}", blocks).encode())
    return target


DESCRIPTION = ("Regenerate leaderboard/<suite>/ from the suite's records alone: README.md (the tables and figures "
               "in Markdown), index.html (the same page, self-contained, figures embedded), results.csv and "
               "results.parquet (one flat row per record), curves.parquet (one row per curve point, with its hub, "
               "task, method and seed), comparisons.csv (every method paired by seed with each task's best single "
               "fine-tune: mean difference, 95% interval, n) and figures/*.png. Only files whose bytes change are "
               "rewritten; unreadable records are skipped with a warning.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbench leaderboard", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", action="append",
                        help="suite to render, repeatable: a suite name (its folder under RESULTS) or a suite file "
                             "(default: every folder of RESULTS that holds records)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="records directory (default: results)")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"),
                        help="output directory, one folder per suite (default: leaderboard)")


def suite_folders(results: Path) -> list[str]:
    """The folders of `results` laid out as a suite's records (<hub>/<task>/<method>/seed<N>.json): not, for
    instance, `results/profile` of `hubbench profile`."""
    return sorted(p.name for p in results.glob("*") if p.is_dir() and next(p.glob("*/*/*/seed*.json"), None))


def suite_folder(name: str) -> str:
    """A suite's folder name, one plain path component (a suite name, or a variant such as `mini@iterations=20`)."""
    if not name or Path(name).name != name or name.startswith("."):
        raise LeaderboardError(f"invalid suite name {name!r}: a folder name under the results directory")
    return name


def selected_suites(args: argparse.Namespace) -> list[str]:
    """The folders `--suite` names, else every suite folder of `--results`."""
    suites = [suite_folder(s) for s in args.suite or []] or suite_folders(args.results)
    if not suites:
        raise LeaderboardError(f"no records under {args.results}")
    return suites


def run(args: argparse.Namespace) -> int:
    try:
        check_output_dir(args.out, "--out")
        for suite in selected_suites(args):
            print(generate(suite, args.results, args.out) / "README.md")
    except (LeaderboardError, ValueError) as e:
        print(f"hubbench leaderboard: error: {e}", file=sys.stderr)
        return 2
    return 0
