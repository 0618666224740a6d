"""The figures of one board, as PNG bytes: those every method gets (metric against GFLOPs, curves, the
examples a task records), then those the methods declare for their own diagnostics (`Method.figures`),
in the order their methods first declare them. A figure whose records lack the data is left out."""

from __future__ import annotations

import base64
import io
import math

import matplotlib
import numpy as np
import pandas as pd
from hubbench.leaderboard.board import Board
from hubbench.methods import METHODS
from PIL import Image

from hubbench.figures import Figure, FigureHook, Panel, canvas, file_name, png
from hubbench.record import Record

TARGET, PREDICTED = {"c": "lime", "marker": "o", "s": 6}, {"c": "red", "marker": "x", "s": 8}


def colours(board: Board) -> dict[str, tuple]:
    """One colour per method, the same in every figure of the board."""
    palette = matplotlib.colormaps["tab10" if len(board.methods) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(board.methods)}


def pareto(points: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """Keys of the points no other point beats in both cost (x, lower is better) and score (y), by cost."""
    sign = 1 if higher else -1
    front, best = [], -math.inf
    for key in sorted(points, key=lambda k: (points[k][0], -sign * points[k][1])):
        if sign * points[key][1] > best:
            front.append(key)
            best = sign * points[key][1]
    return front


def scatter(board: Board, gflops: pd.Series) -> Figure | None:
    """Avg metric against GFLOPs per sample, one point per method, the Pareto front joined."""
    points = {m: (gflops[m], board.avg[m]) for m in board.methods if m in board.avg and gflops.get(m)}
    if not points:
        return None
    front = pareto(points, board.higher)
    colour = colours(board)
    with canvas(6.5, 4.5) as (fig, (ax,)):
        for m, (x, y) in points.items():
            ax.scatter(x, y, color=colour[m], zorder=3)
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6)
        ax.plot(*zip(*(points[m] for m in front), strict=True), "k--", lw=0.8, label="Pareto front", zorder=2)
        xs = [x for x, _ in points.values()]
        if max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set(xlabel="GFLOPs per sample (fvcore)", ylabel=f"{board.metric} Avg",
               title=f"{board.hub}, {board.kind}: {board.metric} vs inference cost")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        data = png(fig)
    return Figure(file_name(board.hub, board.kind, "pareto"), f"`{board.hub}`, {board.kind}: {board.metric} Avg "
                  "against GFLOPs per sample, Pareto front dashed.", data)


def curves(panel: Panel, methods: list[str]) -> list[Figure]:
    """Val and test metric over training iterations, per method, mean over seeds."""
    keys = [k for k in (f"val_{panel.metric}", f"test_{panel.metric}")
            if any(panel.mean_curve(m, k) for m in methods)]
    if not keys:
        return []
    with canvas(5 * len(keys) + 2, 3.6, cols=len(keys)) as (fig, axes):
        for ax, key in zip(axes, keys, strict=True):
            for m in methods:
                if curve := panel.mean_curve(m, key):
                    ax.plot(*curve, color=panel.colours[m], label=m, marker=".", lw=1)
            ax.set(xlabel="iteration", ylabel=key, title=f"{panel.task}: {key.split('_', 1)[0]} {panel.metric}")
            ax.grid(alpha=0.3)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper")
        return [panel.figure(["curves"], f"{' and '.join(keys)} over training iterations, mean over seeds.", fig)]


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
                if i == 0:
                    ax.set_title(f"{m}, seed {r.seed} ({' and '.join(roles[m])})", loc="left", fontsize=7)
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


def panel(board: Board, task: str, records: dict[str, Record], points: pd.DataFrame) -> Panel:
    ok = board.ok[board.ok.task == task].sort_values("seed", kind="stable")
    by_method = {m: [records[i] for i in rows.id] for m, rows in ok.groupby("method")}
    return Panel(board.hub, board.kind, task, board.metric, board.higher, by_method,
                 points[points.record.isin(ok.id)], colours(board), board.best_method(task), board.best_finetune(task))


def board_figures(board: Board, records: dict[str, Record], points: pd.DataFrame) -> list[Figure]:
    """Every figure the board's records have data for, in page order (`records`: by id; `points`: their curves)."""
    gflops = board.task_mean(["gflops_fvcore"]).gflops_fvcore.dropna()
    out = [] if (pareto_figure := scatter(board, gflops)) is None else [pareto_figure]
    hooks = {curves: board.methods, **declared(board), examples: board.methods}
    for task in board.tasks:
        view = panel(board, task, records, points)
        out += [figure for hook, methods in hooks.items() for figure in hook(view, methods)]
    return out
