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

# a hyper-parameter value's column type, by its Python type (bool before int: a bool is an int; a tuple is a list
# column in Parquet)
HP_TYPES = {bool: "boolean", int: "Int64", float: "float64", str: "str", tuple: "object", list: "object"}


def hp_kind(value) -> type:
    return next(t for t in HP_TYPES if isinstance(value, t))


def hp_columns(rows: list[dict]) -> dict[str, dict[type, str]]:
    """{parameter column of the rows -> {value type: typed column}}: `hp_<name>` where every method that has the
    parameter gives it one type, else one column per type, `hp_<name>:<type>` (a plugin's `model: int` beside
    `finetune`'s `model: str`), so that no column mixes types."""
    kinds: dict[str, set[type]] = {}
    for row in rows:
        for column, value in row.items():
            if column.startswith(record.HP_PREFIX) and value is not None:
                kinds.setdefault(column, set()).add(hp_kind(value))
    return {column: {k: column if len(found) == 1 else f"{column}:{k.__name__}" for k in found}
            for column, found in kinds.items()}


def split_hps(row: dict, columns: dict[str, dict[type, str]]) -> dict:
    """`row` with each hyper-parameter in its typed column."""
    out = {k: v for k, v in row.items() if k not in columns}
    for column, typed in columns.items():
        out.update(dict.fromkeys(typed.values()))
        if (value := row.get(column)) is not None:
            out[typed[hp_kind(value)]] = value
    return out


def results(records: list[Record]) -> pd.DataFrame:
    """One row per record, in the records' order, with typed columns."""
    raw = [r.row() for r in records]
    typed = hp_columns(raw)
    rows = pd.DataFrame([split_hps(row, typed) for row in raw])
    metrics = [c for prefix in record.METRIC_PREFIXES for c in sorted(rows) if c.startswith(prefix)]
    hps = {name: HP_TYPES[kind] for columns in typed.values() for kind, name in columns.items()}
    rows = rows[[*record.IDENTITY_COLUMNS, *record.OUTCOME_COLUMNS, *metrics, *sorted(hps), *record.MEASURE_COLUMNS]]
    types = {name: c.dtype for name, c in record.columns().items() if c.dtype != "category"}
    rows = rows.astype({**types, **dict.fromkeys(metrics, "float64"), **hps})
    rows["status"] = pd.Categorical(rows.status, categories=record.STATUSES)
    return rows


def hyper_parameter(rows: pd.DataFrame, name: str) -> pd.Series:
    """The values of parameter `name` in `rows`, whichever typed column holds them."""
    columns = [c for c in rows if c == record.HP_PREFIX + name or c.startswith(f"{record.HP_PREFIX}{name}:")]
    return rows[columns].astype(object).bfill(axis=1).iloc[:, 0] if columns else pd.Series(None, index=rows.index)


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
