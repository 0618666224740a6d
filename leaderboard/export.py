"""`hubbench export --tensorboard DIR`: the records as TensorBoard runs, to watch them beside one's other
experiments.

One run per cell with an ok record, in DIR/<suite>/<hub>/<task>/<method id>/seed<N>/: each metric under one
tag, `<split>/<name>` (`train/loss`, `val/top1`, a stage's `<stage>/val/top1`): its curve over training
iterations, ending with the record's final value at the last iteration; and the cell's hyper-parameters
(method, its parameters, seed, the task's protocol) with the final metrics in the HParams dashboard. Written
offline by torch's `SummaryWriter`; TensorBoard need not run. Failed and inapplicable records have nothing to
plot and are left out (the leaderboard lists them).

TensorBoard rather than MLflow: its event files are plain files a researcher points `tensorboard --logdir`
at, with no store or server to set up, and torch writes them with no further dependency than the
`tensorboard` package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hubbench import record
from hubbench.errors import InputError
from hubbench.io import check_output_dir
from hubbench.leaderboard.generate import LeaderboardError, load_records, selected_suites
from hubbench.progress import progress
from hubbench.record import OK


def hparams(r: record.Record) -> dict[str, int | float | str | bool]:
    """The cell's identity and what it ran under, as the scalar values TensorBoard's HParams take (lists
    and nested values as JSON text)."""
    protocol = r.config.task.get("protocol", {}) if r.config else {}
    values = {"hub": r.hub, "task": r.task, "method": r.method.name, "seed": r.seed,
              **{f"param/{k}": v for k, v in r.method.params.items()},
              **{f"protocol/{k}": v for k, v in protocol.items()}}
    return {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in values.items()
            if v is not None}


def run_dir(out: Path, suite: str, r: record.Record) -> Path:
    return record.record_path(out, suite, r.hub, r.task, r.method.id, r.seed).with_suffix("")


def tag(curve: str) -> str:
    """A curve's tag, as its final metric's: `val_top1` -> `val/top1`, `student/train_loss` -> `student/train/loss`."""
    stage, slash, name = curve.rpartition("/")
    split, sep, metric = name.partition("_")
    return stage + slash + (f"{split}/{metric}" if sep and split in ("train", "val", "test") else name)


def export_run(path: Path, r: record.Record) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    last = max((int(it) for points in r.curves.values() for it, _ in points), default=0)
    finals = {f"{split}/{name}": v for split, values in sorted(r.metrics.items()) for name, v in sorted(values.items())}
    with SummaryWriter(log_dir=str(path)) as writer:
        for name, points in sorted(r.curves.items()):
            for it, v in points:
                if not (int(it) == last and tag(name) in finals):  # the record's final value takes that step
                    writer.add_scalar(tag(name), v, int(it))
        for name, v in finals.items():
            writer.add_scalar(name, v, last)
        # the three HParams summaries in this run itself (SummaryWriter.add_hparams would open a sub-run)
        for summary in hparams_summary(hparams(r), finals):
            writer.file_writer.add_summary(summary)


def export(suites: list[str], results: Path, out: Path) -> int:
    """Write every ok record of `suites` as a run under `out`; the number of runs written. Refuses (before
    writing any) where a run's folder exists: event files add up, and a second export would draw each curve
    twice."""
    loaded = {s: load_records(results / s)[0] for s in suites}
    runs = [(run_dir(out, s, r), r) for s, records in loaded.items() for r in records if r.status == OK]
    if not runs:
        raise LeaderboardError(f"no ok records for {', '.join(suites)} under {results}")
    if taken := next((path for path, _ in runs if path.exists()), None):
        raise LeaderboardError(f"{taken} exists: export to a new folder")
    for path, r in progress(runs, total=len(runs), desc="export"):
        export_run(path, r)
    return len(runs)


def run(suites: list[str] | None, results: Path, tensorboard: Path) -> int:
    """Export the records of `suites` (None: every suite folder of `results`) under `tensorboard`."""
    try:
        check_output_dir(tensorboard, "--tensorboard")
        n = export(selected_suites(suites, results), results, tensorboard)
    except InputError as e:
        print(f"hubbench export: error: {e}", file=sys.stderr)
        return 2
    print(f"{n} runs written to {tensorboard}; view them with: tensorboard --logdir {tensorboard}")
    return 0
