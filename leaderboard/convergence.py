"""Whether a method's training had converged, from its records' curves: the gain of its primary val metric
over the last fifth of training, per (task, seed), and whether that gain is surely above 0 (still rising)."""

from __future__ import annotations

import math

import pandas as pd

from hubbench.leaderboard.board import Board, Paired, paired
from hubbench.leaderboard.document import MISSING

FRACTION = 0.2  # the last fifth of training


def gains(board: Board, curves: pd.DataFrame, fraction: float = FRACTION) -> pd.Series:
    """(method, task, seed) -> the val metric's change, oriented so that positive is better, from the first
    evaluation at or after (1 - `fraction`) of the record's last evaluated iteration to that last one.
    The first evaluation inside the window, not one before it: the suites' last lr step (at 0.8 of
    training) would otherwise count as progress. Records with fewer than two evaluations there have none."""
    val = curves[(curves.curve == f"val_{board.metric}") & curves.record.isin(board.ok.id)]
    sign = 1 if board.higher else -1
    out = {}
    for record, points in val.sort_values("iteration").groupby("record", sort=True, observed=True):
        window = points[points.iteration >= (1 - fraction) * points.iteration.max()]
        if len(window) > 1:
            out[record] = sign * (window.value.iloc[-1] - window.value.iloc[0])
    keys = board.ok.set_index("id").loc[list(out), ["method", "task", "seed"]]
    return pd.Series(list(out.values()), index=pd.MultiIndex.from_frame(keys), dtype="float64").sort_index()


def rising(board: Board, curves: pd.DataFrame) -> dict[str, Paired]:
    """method -> mean gain over its tasks and seeds with a 95% t-interval; `.sign > 0`: still rising."""
    return {method: paired(g, pd.Series(0.0, index=g.index), higher=True)
            for method, g in gains(board, curves).groupby("method", sort=True)}


def text(p: Paired | None) -> str:
    """`+0.42`, and `rising` where the interval is above 0."""
    if p is None or math.isnan(p.mean):
        return MISSING
    return f"{p.mean:+.2f}" + (" rising" if p.sign > 0 else "")
