"""The records as tidy pandas tables, which every table and figure of the leaderboard derives from, and
the data files written from them:

- results.csv and results.parquet: one row per record, the columns of `Record.row` (identity, status as a
  category, the primary metric, every val and test metric, every hyper-parameter, complexity, cost and
  environment). The CSV reads back with a plain `pandas.read_csv` into numbers, booleans and text: no
  JSON in cells, no status or version string that pandas takes for a missing value or a number.
- curves.parquet: one row per point of every record's curves (record id, its hub, task, method id and seed,
  curve, iteration, value): a plot filters it by task and method with no merge.
- comparisons.csv: per board, task and method the paired difference to the task's best single fine-tune
  (`board.comparisons`).
"""

from __future__ import annotations

import io

import pandas as pd

from hubbench import record
from hubbench.record import Record


def results(records: list[Record]) -> pd.DataFrame:
    """One row per record, in the records' order, with typed columns."""
    rows = pd.DataFrame([r.row() for r in records])
    metrics = [c for prefix in record.METRIC_PREFIXES for c in sorted(rows) if c.startswith(prefix)]
    hps = sorted(c for c in rows if c.startswith(record.HP_PREFIX))
    rows = rows[[*record.IDENTITY_COLUMNS, *record.OUTCOME_COLUMNS, *metrics, *hps, *record.MEASURE_COLUMNS]]
    types = {c: t for c, t in record.COLUMNS.items() if t != "category"}
    rows = rows.astype({**types, **dict.fromkeys(metrics, "float64")})
    rows[hps] = rows[hps].infer_objects()
    rows["status"] = pd.Categorical(rows.status, categories=record.STATUSES)
    return rows


def curves(records: list[Record]) -> pd.DataFrame:
    """Every curve point of the records, with the record's identity, in the records' order."""
    points = [(r.id, r.hub, r.task, r.method.id, r.seed, name, it, v)
              for r in records for name, pairs in r.curves.items() for it, v in pairs]
    frame = pd.DataFrame(points, columns=["record", *CURVE_IDENTITY, "curve", "iteration", "value"])
    return frame.astype({"record": "str", **CURVE_IDENTITY, "curve": "category", "iteration": "int64",
                         "value": "float64"})


CURVE_IDENTITY = {"hub": "str", "task": "str", "method": "str", "seed": "int64"}


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
