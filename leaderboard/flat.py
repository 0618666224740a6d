"""results.csv: one row per record, flat columns, for pandas or a spreadsheet (missing fields: empty)."""

from __future__ import annotations

import csv
import io
import json

from hubbench.leaderboard.records import field, params

# column -> path into the record
PATHS: dict[str, tuple[str, ...]] = {
    "suite": ("suite",), "hub": ("hub",), "task": ("task",), "kind": ("kind",),
    "method": ("method", "id"), "method_name": ("method", "name"), "seed": ("seed",),
    "status": ("status",), "reason": ("reason",),
    "metric": ("metric", "name"), "higher_is_better": ("metric", "higher_is_better"), "value": ("metric", "value"),
    "gflops_fvcore": ("complexity", "flops", "fvcore_gflops"),
    "gflops_flop_counter": ("complexity", "flops", "flop_counter_gflops"),
    "flops_batch": ("complexity", "flops", "batch"),
    "memory_device": ("complexity", "memory", "device"), "memory_measure": ("complexity", "memory", "measure"),
    "train_mb": ("complexity", "memory", "train_mb"), "infer_mb": ("complexity", "memory", "infer_mb"),
    "infer_samples_s": ("complexity", "speed", "infer_samples_s"),
    "train_samples_s": ("complexity", "speed", "train_samples_s"),
    "speed_batch": ("complexity", "speed", "batch"), "precision": ("complexity", "speed", "precision"),
    "memory_format": ("complexity", "speed", "memory_format"), "compile": ("complexity", "speed", "compile"),
    "speed_device_name": ("complexity", "speed", "device_name"),
    "warmup": ("complexity", "speed", "warmup"), "repeats": ("complexity", "speed", "repeats"),
    "train_s": ("cost", "train_s"), "artifacts_s": ("cost", "artifacts_s"), "total_s": ("cost", "total_s"),
    "device": ("environment", "device"), "device_name": ("environment", "device_name"),
    "torch": ("environment", "torch"), "cuda": ("environment", "cuda"), "threads": ("environment", "threads"),
    "git_commit": ("environment", "git", "commit"), "git_dirty": ("environment", "git", "dirty"),
    "started": ("started",), "finished": ("finished",),
}
# columns holding a whole mapping, as sorted JSON
JSON_PATHS: dict[str, tuple[str, ...]] = {
    "params": ("method", "params"), "val_metrics": ("metrics", "val"), "test_metrics": ("metrics", "test"),
    "fvcore_unsupported": ("complexity", "flops", "fvcore_unsupported"),
}
PARAM_COLUMNS = {"params_total": "total", "params_trainable": "trainable", "params_active": "active"}
COLUMNS = [*PATHS, *PARAM_COLUMNS, *JSON_PATHS]


def row(record: dict) -> dict:
    out = {column: field(record, *path) for column, path in PATHS.items()}
    out.update({column: params(record, kind) for column, kind in PARAM_COLUMNS.items()})
    out.update({column: None if (v := field(record, *path)) is None else json.dumps(v, sort_keys=True)
                for column, path in JSON_PATHS.items()})
    return out


def results_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(row(r) for r in records)
    return buf.getvalue()
