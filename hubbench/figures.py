"""Figures drawn from records: the kit the leaderboard and the methods' own figures share.

A method declares the figures of its diagnostics with `Method.figures()`: functions `(panel, methods)
-> list[Figure]` that the leaderboard calls once per table (hub × task kind) and task, with the ids of
the methods whose records are there and which declare it. The `Panel` gives them the task's ok records
and the means and colours the rest of the page uses, so every figure agrees on what "best" is.

Figures are drawn on bare `matplotlib.figure.Figure`s (no pyplot state, no GUI backend) under
matplotlib's default style and saved without the "Software" stamp, so the same records give the same
bytes. Method modules import this one, and runs draw nothing: matplotlib is imported when drawing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from hubbench.record import Record

RC = {"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "figure.dpi": 100}


@dataclass(frozen=True)
class Figure:
    """A PNG, written to figures/<name> next to the leaderboard's README.md and embedded in its index.html."""

    name: str
    caption: str
    png: bytes


@contextmanager
def canvas(*size: float, cols: int = 1, rows: int = 1) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes (flat) under a fixed style (the user's matplotlibrc would change the bytes);
    take its `png` inside the block."""
    import matplotlib
    from matplotlib import style
    from matplotlib.figure import Figure as MplFigure

    with style.context("default"), matplotlib.rc_context(RC):
        fig = MplFigure(figsize=size, layout="constrained")
        yield fig, fig.subplots(rows, cols, squeeze=False).ravel()


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def file_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)).strip("_") + ".png"


@dataclass(frozen=True)
class Panel:
    """One task of one leaderboard table (hub × task kind), as a figure sees it."""

    hub: str
    kind: str
    task: str
    metric: str  # the primary metric's name
    higher: bool  # its direction
    records: dict[str, list[Record]]  # method id -> its ok records on the task, by seed
    curves: pd.DataFrame  # the long curves (record, curve, iteration, value) of those records
    colours: dict[str, tuple]  # method id -> its colour, the same in every figure of the table
    best: str | None  # the method with the best mean test metric on the task
    baseline: str | None  # the single-source fine-tune with the best mean on the task

    def ok(self, method: str) -> list[Record]:
        return self.records.get(method, [])

    def mean_curve(self, method: str, curve: str) -> tuple[list[int], list[float]] | None:
        """(iterations, mean over seeds) of one curve of a method, at the iterations every seed logged."""
        ids = [r.id for r in self.ok(method)]
        points = self.curves[self.curves.record.isin(ids) & (self.curves.curve == curve)]
        table = points.pivot(index="iteration", columns="record", values="value").dropna()
        return (table.index.tolist(), table.mean(axis=1).tolist()) if len(table) else None

    def figure(self, parts: list[str], caption: str, fig) -> Figure:
        """The drawn `fig` (inside its `canvas` block) as a page figure named after the table, task and `parts`."""
        return Figure(file_name(self.hub, self.kind, self.task, *parts), f"`{self.hub}` / {self.task}: {caption}",
                      png(fig))


FigureHook = Callable[[Panel, list[str]], list[Figure]]
