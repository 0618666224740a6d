"""Figures drawn from records: the kit the leaderboard and the methods' own figures share.

A method declares the figures of its diagnostics with `Method.figures()`: functions `(panel, methods)
-> list[Figure]` that the leaderboard calls once per table (hub × task kind) and task, with the ids of
the methods whose records are there and which declare it. The `Panel` gives them the task's ok records
and the means, method styles and source order and colours the rest of the page uses, so every figure
agrees on what "best" is and draws a method (or a source) alike.

Figures are drawn on bare `matplotlib.figure.Figure`s (no pyplot state, no GUI backend) under
matplotlib's default style and saved without the "Software" stamp, so the same records give the same
bytes. Method modules import this one, and runs draw nothing: matplotlib is imported when drawing.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hubbench.params import Role

if TYPE_CHECKING:
    import pandas as pd

    from hubbench.record import Record

RC = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": 100, "savefig.dpi": 160}
# the curves tasks record, their splits and their metrics as axis labels with units (metrics are in %)
SPLITS = {"train": "training", "val": "validation", "test": "test"}
METRICS = {"top1": "top-1 accuracy (%)", "nme": "NME (%)", "loss": "loss"}
NUMBERED = {"fr": "failure rate at NME {}% (%)", "auc": "AUC of NME up to {}% (%)"}
GREY = (0.3, 0.3, 0.3, 1.0)


def label(name: str) -> str:
    """A metric or curve name as an axis label with its unit: 'val_top1' -> 'validation top-1 accuracy (%)'."""
    split, _, metric = name.partition("_")
    if split not in SPLITS or not metric:
        split, metric = "", name
    if metric in METRICS:
        text = METRICS[metric]
    elif (m := re.fullmatch(r"([a-z]+)(\d+)", metric)) and m[1] in NUMBERED:
        text = NUMBERED[m[1]].format(m[2])
    else:
        text = metric.replace("_", " ")
    return f"{SPLITS[split]} {text}" if split else text


# Methods fall in three groups by their role (`hubbench.params.Role`, which their records state), each drawn in
# one visual language: the hub methods (solid lines, circles, tab10 and more), the single-source fine-tunes they
# must beat (dashed, squares, Dark2: dark enough for the source names written in their colours) and the rest
# (dotted, triangles, greys): the methods that use no source, and any other.
HUB, FINETUNES, OTHERS = "hub methods", "single fine-tunes", "others"
GROUPS = {Role.HUB: HUB, Role.SINGLE_SOURCE: FINETUNES, Role.FROM_SCRATCH: OTHERS, Role.OTHER: OTHERS}
GROUP_LOOKS = {  # group -> (colours, line style, marker); past its colours a group repeats them, hollow
    HUB: (("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#000000", "#000080", "#800000", "#008080", "#ffd700", "#7f7f7f", "#ff00ff"), "-", "o"),
    FINETUNES: (("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"), "--", "s"),
    OTHERS: (("#404040", "#909090", "#000000"), ":", "^"),
}


def group(role: Role | str) -> str:
    """The figure group of a method's role (Role.SINGLE_SOURCE -> 'single fine-tunes')."""
    return GROUPS[Role(role)]


def styles(roles: dict[str, Role]) -> dict[str, dict[str, Any]]:
    """One look per method of `roles` (method id -> its role; matplotlib `plot` keywords: colour, line style,
    marker), in the given order within each group: its group's line style and marker, and the group's colours in
    turn, so that two methods of a group never share a colour until the group has more methods than colours."""
    looks, taken = {}, dict.fromkeys(GROUP_LOOKS, 0)
    for m, role in roles.items():
        colours, line, marker = GROUP_LOOKS[group(role)]
        i, taken[group(role)] = taken[group(role)], taken[group(role)] + 1
        looks[m] = {"color": colours[i % len(colours)], "linestyle": line, "marker": marker}
        if i >= len(colours):
            looks[m]["markerfacecolor"] = "none"
    return looks


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
    """The figure as a 256-colour PNG: plots have few colours, and a palette makes them a third of the size
    of true colour (the page embeds every figure) with no visible change."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    image = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


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
    styles: dict[str, dict[str, Any]]  # method id -> its `styles` look, the same in every figure of the page
    sources: dict[str, tuple]  # the hub's sources in the hub's order -> colour (that of the source's fine-tune)
    best: str | None  # the method with the best mean test metric on the task
    baseline: str | None  # the single-source fine-tune with the best mean on the task
    roles: dict[str, Role] = field(default_factory=dict)  # method id -> its role; a hub method if absent

    def ok(self, method: str) -> list[Record]:
        return self.records.get(method, [])

    def role(self, method: str) -> Role:
        return self.roles.get(method, Role.HUB)

    def source_order(self, names) -> list[str]:
        """`names` (sources a diagnostic lists) in the hub's order; names the hub does not list last."""
        order = {s: i for i, s in enumerate(self.sources)}
        return sorted(names, key=lambda s: order.get(s, len(order)))

    def source_ticks(self, ax, names: list[str]) -> None:
        """Label the x axis of `ax` with the source `names` (one tick each), each in its colour."""
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        for tick, name in zip(ax.get_xticklabels(), names, strict=True):
            tick.set_color(self.sources.get(name, GREY))

    def seed_curve(self, method: str, curve: str) -> pd.DataFrame | None:
        """Mean and std over seeds (columns `mean`, `std`; std NaN for one seed) of one curve of a method,
        indexed by the iterations every seed logged."""
        ids = [r.id for r in self.ok(method)]
        points = self.curves[self.curves.record.isin(ids) & (self.curves.curve == curve)]
        table = points.pivot(index="iteration", columns="record", values="value").dropna()
        if table.empty:
            return None
        return table.agg(["mean", "std"], axis=1)

    def draw_curve(self, ax, method: str, curve: str) -> bool:
        """Plot one curve of a method in its look: the mean over seeds, with a band of ± one std where there
        are several seeds. False when the method's records lack the curve."""
        if (points := self.seed_curve(method, curve)) is None:
            return False
        look = self.styles[method]
        ax.plot(points.index, points["mean"], label=method, lw=1.2, markersize=3, **look)
        if points["std"].notna().all():
            ax.fill_between(points.index, points["mean"] - points["std"], points["mean"] + points["std"],
                            color=look["color"], alpha=0.12, lw=0)
        return True

    def figure(self, parts: list[str], caption: str, fig) -> Figure:
        """The drawn `fig` (inside its `canvas` block) as a page figure named after the table, task and `parts`."""
        return Figure(file_name(self.hub, self.kind, self.task, *parts), f"`{self.hub}` / {self.task}: {caption}",
                      png(fig))


FigureHook = Callable[[Panel, list[str]], list[Figure]]
