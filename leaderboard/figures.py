"""The figures of one board, as PNG bytes: those every method gets (metric against GFLOPs, curves, the
examples a task records), then those the methods declare for their own diagnostics (`Method.figures`),
in the order their methods first declare them. A figure whose records lack the data is left out.

Every figure draws a method in its one look of the page (`hubbench.figures.styles`, by its role), lists methods
in the board's rank order and a hub's sources in the hub's order, each source in the colour of its fine-tune.
Drawing needs the records and the methods' declarations (their roles and `Method.figures`), not torch."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from PIL import Image

from hubbench.figures import GREY, GROUP_LOOKS, HUB, RC, Figure, FigureHook, Panel, canvas, file_name, group, label, png
from hubbench.leaderboard.board import Board
from hubbench.methods import METHODS
from hubbench.params import Role
from hubbench.record import Record

TARGET, PREDICTED = {"c": "lime", "marker": "o", "s": 6}, {"c": "red", "marker": "x", "s": 8}
# where a Pareto label goes relative to its point (points; horizontal alignment), tried in this order
OFFSETS = [(7, 0, "left"), (-7, 0, "right"), (0, 9, "center"), (0, -9, "center"), (7, 14, "left"), (7, -14, "left"),
           (-7, 14, "right"), (-7, -14, "right"), (0, 22, "center"), (0, -22, "center")]


def pareto(points: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """Keys of the points no other point beats in both cost (x, lower is better) and score (y), by cost."""
    sign = 1 if higher else -1
    front, best = [], -math.inf
    for key in sorted(points, key=lambda k: (points[k][0], -sign * points[k][1])):
        if sign * points[key][1] > best:
            front.append(key)
            best = sign * points[key][1]
    return front


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def annotate_apart(ax, points: dict[str, tuple[float, float]], names: list[str], joined: list[str] | None = None,
                   ) -> None:
    """Name the points `names` with labels that cover no other label, marker or the line joining the points
    `joined` (default: `names`): each takes the first of `OFFSETS` inside the axes that covers nothing (else the
    one covering least), joined to its point by a thin line when set apart."""
    from matplotlib.transforms import Bbox

    ax.figure.draw_without_rendering()  # the constrained layout fixes where the points are
    ends = ax.transData.transform([points[n] for n in (names if joined is None else joined)])
    path = [a + (b - a) * t for a, b in zip(ends, ends[1:], strict=False) for t in np.linspace(0, 1, 40)]
    taken = marker_extent(ax) + [Bbox([xy - 1, xy + 1]) for xy in path]
    inside = ax.get_window_extent()

    def label(name, dx, dy, ha, line=False):
        joined = {"arrowstyle": "-", "lw": 0.5, "color": "0.4", "shrinkA": 0, "shrinkB": 4} if line else None
        return ax.annotate(name, points[name], xytext=(dx, dy), textcoords="offset points", ha=ha, va="center",
                           fontsize=7, zorder=4, arrowprops=joined)

    for name in names:
        costs = {}
        for offset in OFFSETS:
            text = label(name, *offset)
            box = text.get_window_extent()
            text.remove()
            costs[offset] = (not (inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1)),
                             sum(overlaps(box, t) for t in taken)), box
            if costs[offset][0] == (False, 0):
                break
        (dx, dy, ha), (_, box) = min(costs.items(), key=lambda item: item[1][0])  # the first of the least
        label(name, dx, dy, ha, line=abs(dy) > 9)
        taken.append(box)


def marker_extent(ax) -> list:
    """Display boxes of the markers of the scatters of `ax` (5 points around each centre)."""
    from matplotlib.transforms import Bbox

    pad = 5 * ax.figure.dpi / 72
    centres = ax.transData.transform([xy for c in ax.collections for xy in c.get_offsets()])
    return [Bbox([xy - pad, xy + pad]) for xy in centres]


def plain_log_ticks(axis, values: list[float]) -> None:
    """Tick labels of a log axis as plain numbers (0.02, not 2×10⁻²), at 2, 3 and 5 times the powers of ten
    too where the values span less than two decades."""
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(plain)
    if math.log10(max(values) / min(values)) < 2:
        axis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(NullFormatter())


LABELLED = 3  # the best methods by rank that the trade-off figure names besides its Pareto front
HUB_CURVES = 6  # the hub methods, best first on the task, that a curve panel draws against the best fine-tune


def mark(ax, x, y, look: dict, **kw) -> None:
    """One scatter point in a method's look (hollow where the look is)."""
    hollow = look.get("markerfacecolor") == "none"
    ax.scatter(x, y, marker=look["marker"], facecolors="none" if hollow else look["color"],
               edgecolors=look["color"] if hollow else "white", linewidths=1.0 if hollow else 0.4, **kw)


def grouped_legend(fig, axes, methods: list[str], text: dict[str, str], role: Callable[[str], Role],
                   extra: list | None = None, **kw) -> None:
    """A figure legend of the `methods` drawn on `axes` (labelled with their `text`) under a heading per figure
    group (of their `role`), in `methods`' order within each, then the `extra` (handle, label) pairs."""
    from matplotlib.lines import Line2D

    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    entries = []
    for name in GROUP_LOOKS:
        mine = [m for m in methods if group(role(m)) == name and text[m] in handles]
        if mine:
            entries += [(Line2D([], [], ls="none"), name.upper()), *((handles[text[m]], text[m]) for m in mine)]
    entries += extra or []
    fig.legend(*zip(*entries, strict=True), loc="outside right upper", **kw)


def scatter(board: Board, gflops: pd.Series, looks: dict[str, dict]) -> Figure | None:
    """Avg metric against GFLOPs per sample (log scale), one point per method in its look, the Pareto front
    joined: every method on the left, the better half of the ranking enlarged on the right (single-backbone
    methods share one cost and crowd one column); the front and the best methods named where they are
    enlarged, every method in the legend by group and rank."""
    points = {m: (gflops[m], board.avg[m]) for m in board.ranked if m in board.avg and gflops.get(m)}
    if not points:
        return None
    front = pareto(points, board.higher)
    named = list(dict.fromkeys([*list(points)[:LABELLED], *front]))
    top = list(points)[:max(2, len(points) // 2)]
    text = {m: f"{board.rank[m]}. {m}" for m in points}
    with canvas(12, 4.6, cols=2) as (fig, axes):
        for ax in axes:
            ax.set_xscale("log")
            ax.margins(0.08)
            for m, (x, y) in points.items():
                mark(ax, x, y, looks[m], s=28, zorder=3, label=text[m])
            line = ax.plot(*zip(*(points[m] for m in front), strict=True), "k--", lw=0.8, zorder=2)[0]
            plain_log_ticks(ax.xaxis, [x for x, _ in points.values()])
            ax.set(xlabel="inference GFLOPs per sample (fvcore, log scale)")
            ax.grid(alpha=0.3, which="both")
        full, zoom = axes
        low, high = min(points[m][1] for m in top), max(points[m][1] for m in top)
        zoom.set_ylim(low - 0.1 * (high - low or 1), high + 0.1 * (high - low or 1))
        full.set(ylabel=f"Avg over tasks, {label(board.metric)}, {'higher' if board.higher else 'lower'} is better",
                 title="every method")
        zoom.set(title=f"ranks 1-{len(top)}, enlarged")
        fig.suptitle(f"{board.hub}, {board.kind}: test {board.metric} Avg against inference cost")
        grouped_legend(fig, [full], list(points), text, board.role, [(line, "Pareto front")], title="rank. method",
                       fontsize=7)
        annotate_apart(zoom, points, [m for m in named if m in top], front)
        annotate_apart(full, points, [m for m in named if m not in top], front)
        data = png(fig)
    return Figure(file_name(board.hub, board.kind, "pareto"), f"`{board.hub}`, {board.kind}: test {board.metric} Avg "
                  "against GFLOPs per sample (log scale), every method (left) and the better half of the ranking "
                  f"enlarged (right); the Pareto front dashed; it and the {LABELLED} best methods named.", data)


def shown_curves(panel: Panel, methods: list[str]) -> list[str]:
    """The methods a curve panel draws: the best `HUB_CURVES` hub methods on the task (by mean test metric; a
    board without hub methods: its best methods), then the best single fine-tune if not among them."""
    pool = [m for m in methods if group(panel.role(m)) == HUB and panel.ok(m)] or [m for m in methods if panel.ok(m)]
    means = {m: sum(r.value for r in panel.ok(m)) / len(panel.ok(m)) for m in pool}
    best = sorted(means, key=lambda m: -means[m] if panel.higher else means[m])[:HUB_CURVES]
    return [*best, *([panel.baseline] if panel.baseline in methods and panel.baseline not in best else [])]


def curves(panel: Panel, methods: list[str]) -> list[Figure]:
    """Training loss, val and test metric over training iterations of the best hub methods and the best single
    fine-tune: mean over seeds, ± std band. Every method's curves are in curves.parquet."""
    hub = any(group(panel.role(m)) == HUB for m in methods)
    methods = shown_curves(panel, methods)
    keys = [k for k in ("train_loss", f"val_{panel.metric}", f"test_{panel.metric}")
            if any(panel.seed_curve(m, k) is not None for m in methods)]
    if not keys:
        return []
    with canvas(3.3 * len(keys) + 2.2, 3.6, cols=len(keys)) as (fig, axes):
        for ax, key in zip(axes, keys, strict=True):
            for m in methods:
                panel.draw_curve(ax, m, key)
            ax.set(xlabel="training iteration", ylabel=label(key), title=f"{panel.task}: {label(key)}")
            ax.grid(alpha=0.3)
        grouped_legend(fig, axes, methods, {m: m for m in methods}, panel.role)
        text = ", ".join(label(k) for k in keys)
        shown = f"the {HUB_CURVES} best hub methods on the task and the best single fine-tune" if hub else \
            f"the {HUB_CURVES} best methods on the task"
        return [panel.figure(["curves"], f"{text} over training iterations of {shown}: mean over seeds, band ± one "
                             "std. The training loss is each method's own objective; every method's curves are in "
                             "curves.parquet.", fig)]


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def examples(panel: Panel, methods: list[str]) -> list[Figure]:
    """Test images with true (green) and predicted (red) points of the best method and the best fine-tune."""
    roles: dict[str, list[str]] = {}
    for role, m in (("best method", panel.best), ("best single fine-tune", panel.baseline)):
        if m is not None:
            roles.setdefault(m, []).append(role)
    picks = {m: rs[0] for m in roles if (rs := [r for r in panel.ok(m) if r.examples and r.examples.images])}
    if not picks:
        return []
    cols = max(len(r.examples.images) for r in picks.values())
    with canvas(1.4 * cols, 1.6 * len(picks) + 0.3, cols=cols, rows=len(picks)) as (fig, axes):
        for row, (m, r) in enumerate(picks.items()):
            ex = r.examples
            for i, ax in enumerate(axes[row * cols:(row + 1) * cols]):
                ax.set_axis_off()
                if i >= len(ex.images):
                    continue
                image = decode(ex.images[i])
                ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0), interpolation="nearest")
                for points, marks in ((ex.target[i], TARGET), (ex.predicted[i], PREDICTED)):
                    points = np.asarray(points).reshape(-1, 2)
                    ax.scatter(points[:, 0], points[:, 1], linewidths=0.8, **marks)
                if i == 0:  # a row's title spans its images: out of the layout, which would widen the first column
                    ax.text(0, 1.04, f"{m}, seed {r.seed} ({' and '.join(roles[m])})", transform=ax.transAxes,
                            fontsize=RC["axes.titlesize"], va="bottom").set_in_layout(False)
        split = next(iter(picks.values())).examples.split
        rows = ", ".join(f"`{m}` ({' and '.join(roles[m])})" for m in picks)
        return [panel.figure(["examples"], f"{split} images, ground truth green, prediction red; rows: {rows}.", fig)]


def declared(board: Board) -> dict[FigureHook, list[str]]:
    """The figures the board's methods declare (methods not registered here declare none), each with the
    methods declaring it, in the order they first do."""
    hooks: dict[FigureHook, list[str]] = {}
    for m in board.methods:
        name = board.method_name(m)
        for hook in METHODS.get(name).figures() if name in METHODS else ():
            hooks.setdefault(hook, []).append(m)
    return hooks


def sources(board: Board, records: dict[str, Record], looks: dict[str, dict]) -> dict[str, tuple]:
    """The hub's sources in the order its records' config lists them (then those only a fine-tune names),
    each in the colour of its single-source fine-tune (grey without one)."""
    mine = [records[i] for i in board.rows.id]
    listed = next((names for r in mine if r.config and (names := [s["name"] for s in r.config.hub.get("sources", [])])),
                  [])
    finetunes = {r.method.params["model"]: r.method.id for r in mine
                 if board.role(r.method.id) == Role.SINGLE_SOURCE and "model" in r.method.params}
    return {s: looks[finetunes[s]]["color"] if s in finetunes else GREY for s in [*listed, *sorted(finetunes)]}


def panel(board: Board, task: str, records: dict[str, Record], points: pd.DataFrame, looks: dict[str, dict],
          colours: dict[str, tuple]) -> Panel:
    ok = board.ok[board.ok.task == task].sort_values("seed", kind="stable")
    by_method = {m: [records[i] for i in rows.id] for m, rows in ok.groupby("method")}
    return Panel(board.hub, board.kind, task, board.metric, board.higher, by_method, points[points.record.isin(ok.id)],
                 looks, colours, board.best_method(task), board.best_finetune(task), board.roles)


def board_figures(board: Board, records: dict[str, Record], points: pd.DataFrame,
                  looks: dict[str, dict]) -> list[tuple[str, list[Figure]]]:
    """Every figure the board's records have data for, in page order, in groups under a title: the board's
    trade-off, then each task's (`records`: by id; `points`: their curves; `looks`: the page's method styles)."""
    gflops = board.task_mean(["gflops_fvcore"]).gflops_fvcore.dropna()
    out = [] if (trade_off := scatter(board, gflops, looks)) is None else [("Avg against inference cost", [trade_off])]
    colours = sources(board, records, looks)
    hooks = {curves: board.ranked, **declared(board), examples: board.ranked}
    for task in board.tasks:
        view = panel(board, task, records, points, looks, colours)
        if figures := [figure for hook, methods in hooks.items() for figure in hook(view, methods)]:
            out.append((task, figures))
    return out
