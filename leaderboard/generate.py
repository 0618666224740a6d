"""Render the leaderboard of a suite from its records: README.md, index.html, results.csv, results.parquet,
curves.parquet, comparisons.csv and figures/.

Reads nothing but record JSON files (and the papers' numbers shipped in leaderboard/reported/), so it
works on records copied from any machine; the methods' own figures are drawn by their code
(`Method.figures`), so a plugin method's need its `--plugin`. A file that is not a readable record
(corrupt, or written by a newer hubbench) is skipped with a warning naming it. The whole folder is made
first and swapped in at once, and only when a byte changes: a failure leaves the previous output whole, and
rerunning on the same records leaves the directory untouched.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hubbench import logs
from hubbench.errors import InputError
from hubbench.io import BOARDS, RESULTS, check_output_dir, dir_mode, file_mode

if TYPE_CHECKING:
    from hubbench import record

log = logging.getLogger(__name__)


class LeaderboardError(InputError):
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
                log.warning(f"hubbench leaderboard: warning: skipping {e}")
            break
    return sorted(found[record.Record], key=lambda r: (r.hub, r.task, r.method.id, r.seed)), found[record.RankingRecord]


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def install(target: Path, files: dict[str, bytes]) -> None:
    """Make `target` hold exactly `files` (relative path -> bytes): untouched when it already does, else a complete
    new folder, written beside it and swapped in, so that a failure leaves the previous leaderboard whole."""
    if target.is_dir() and files_under(target) == files:
        return
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        os.chmod(staging, dir_mode())
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
            os.chmod(staging / name, file_mode())
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def generate(suite: str, results: Path, out: Path) -> Path:
    """Render the suite's leaderboard into `out/<suite>/`: every file made in memory first, then written at once
    (`install`), so that records that cannot be rendered leave the previous output as it was."""
    # the renderers import pandas, matplotlib and scipy: here, so that `hubbench --help` does not wait for them
    from hubbench.leaderboard import frame, ranking
    from hubbench.leaderboard.board import boards, comparisons, method_roles
    from hubbench.leaderboard.document import Figure
    from hubbench.leaderboard.html import page as html_page
    from hubbench.leaderboard.markdown import markdown
    from hubbench.leaderboard.page import page

    records, rankings = load_records(results / suite)
    if not records:
        raise LeaderboardError(f"no records for suite {suite!r} under {results / suite}")
    table, curves = frame.results(records), frame.curves(records)
    scores = ranking.scores(rankings)
    blocks = page(suite, records, table, curves, f"{results.name}/{suite}", scores, ranking.mixed(rankings, records))
    files = {f"figures/{b.name}": b.png for b in blocks if isinstance(b, Figure)}
    files |= {"results.csv": frame.csv_bytes(table), "results.parquet": frame.parquet_bytes(table),
              "curves.parquet": frame.parquet_bytes(curves),
              "comparisons.csv": frame.csv_bytes(comparisons(boards(table, method_roles(records))))}
    if not scores.empty:
        files["rankings.csv"] = frame.csv_bytes(scores)
    files |= {"README.md": markdown(blocks).encode(),
              "index.html": html_page(f"Leaderboard: {suite}", blocks).encode()}
    target = out / suite
    out.mkdir(parents=True, exist_ok=True)
    install(target, files)
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
    args = parser.parse_args(argv)
    with logs.to_stderr():
        return run(args.suite, args.results, args.out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", action="append",
                        help="suite to render, repeatable: a suite name (its folder under RESULTS) or a suite file "
                             "(default: every folder of RESULTS that holds records)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="records directory (default: results)")
    parser.add_argument("--out", type=Path, default=BOARDS,
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


def selected_suites(suites: list[str] | None, results: Path) -> list[str]:
    """The folders `suites` names, else every suite folder of `results`."""
    found = [suite_folder(s) for s in suites or []] or suite_folders(results)
    if not found:
        raise LeaderboardError(f"no records under {results}")
    return found


def run(suites: list[str] | None, results: Path, out: Path) -> int:
    """Render the leaderboard of each of `suites` (None: every suite folder of `results`) into `out`."""
    try:
        check_output_dir(out, "--out")
        for suite in selected_suites(suites, results):
            print(generate(suite, results, out) / "README.md")
    except InputError as e:
        print(f"hubbench leaderboard: error: {e}", file=sys.stderr)
        return 2
    return 0
