"""The figures of one board, as PNG bytes; each is None (or absent) when its records lack the data.

Drawn on bare `matplotlib.figure.Figure`s (no pyplot state, no GUI backend) under matplotlib's
default style, and saved without the "Software" stamp, so the same records give the same bytes.
"""

from __future__ import annotations

import base64
import io
import re
import statistics
from contextlib import contextmanager

import matplotlib
import numpy as np
from hubbench.leaderboard.board import Board
from hubbench.leaderboard.document import Figure
from hubbench.leaderboard.records import field
from hubbench.leaderboard.stats import pareto
from matplotlib import style
from matplotlib.figure import Figure as MplFigure
from PIL import Image

RC = {"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "figure.dpi": 100}
MARKS = {"target": {"c": "lime", "marker": "o", "s": 6}, "predicted": {"c": "red", "marker": "x", "s": 8}}


@contextmanager
def canvas(*size: float, cols: int = 1, rows: int = 1):
    """A figure and its axes under a fixed style (the user's matplotlibrc would change the bytes)."""
    with style.context("default"), matplotlib.rc_context(RC):
        fig = MplFigure(figsize=size, layout="constrained")
        yield fig, fig.subplots(rows, cols, squeeze=False).ravel()


def png(fig: MplFigure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)).strip("_") + ".png"


def colours(board: Board) -> dict[str, tuple]:
    """One colour per method, the same in every figure of the board."""
    palette = matplotlib.colormaps["tab10" if len(board.methods) <= 10 else "tab20"]
    return {m: palette(i % palette.N) for i, m in enumerate(board.methods)}


def mean_curve(records: list[dict], key: str) -> tuple[list[int], list[float]] | None:
    """Mean over seeds at the iterations every seed logged."""
    curves = [dict(map(tuple, c)) for r in records if (c := field(r, "curves", key))]
    if not curves:
        return None
    iterations = sorted(set.intersection(*(set(c) for c in curves)))
    return (iterations, [statistics.fmean(c[i] for c in curves) for i in iterations]) if iterations else None


def scatter(board: Board, gflops: dict[str, float]) -> Figure | None:
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
    return Figure(name(board.hub, board.kind, "pareto"), f"`{board.hub}`, {board.kind}: {board.metric} Avg "
                  "against GFLOPs per sample, Pareto front dashed.", data)


def curves(board: Board, task: str) -> Figure | None:
    """Val and test metric over training iterations, per method, mean over seeds."""
    keys = [k for k in (f"val_{board.metric}", f"test_{board.metric}")
            if any(mean_curve(board.ok(m, task), k) for m in board.methods)]
    if not keys:
        return None
    colour = colours(board)
    with canvas(5 * len(keys) + 2, 3.6, cols=len(keys)) as (fig, axes):
        for ax, key in zip(axes, keys, strict=True):
            for m in board.methods:
                if curve := mean_curve(board.ok(m, task), key):
                    ax.plot(*curve, color=colour[m], label=m, marker=".", lw=1)
            ax.set(xlabel="iteration", ylabel=key, title=f"{task}: {key.split('_', 1)[0]} {board.metric}")
            ax.grid(alpha=0.3)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper")
        data = png(fig)
    return Figure(name(board.hub, board.kind, task, "curves"),
                  f"`{board.hub}` / {task}: {' and '.join(keys)} over training iterations, mean over seeds.", data)


def nme_curve(board: Board, task: str) -> Figure | None:
    """Landmarks: test NME over iterations of the best fine-tune against Zoo-Tuning (the Zoo-Tuning paper's
    Figure 2 view: how much sooner and lower the aggregated hub gets)."""
    key = f"test_{board.metric}"
    if board.kind != "landmarks":
        return None
    baseline = board.best_finetune(task)
    zoo = [m for m in board.methods if board.method_name(m) in ("zoo_tuning", "zoo_tuning_l")]
    lines = {m: c for m in [baseline, *zoo] if m and (c := mean_curve(board.ok(m, task), key))}
    if baseline not in lines or len(lines) < 2:
        return None
    colour = colours(board)
    with canvas(5.5, 3.6) as (fig, (ax,)):
        for m, curve in lines.items():
            ax.plot(*curve, color=colour[m], label=m, marker=".", lw=1.2)
        ax.set(xlabel="iteration", ylabel=key, title=f"{task}: test {board.metric}, fine-tune vs Zoo-Tuning")
        ax.legend()
        ax.grid(alpha=0.3)
        data = png(fig)
    return Figure(name(board.hub, board.kind, task, "finetune-vs-zoo-tuning"),
                  f"`{board.hub}` / {task}: test {board.metric} over iterations, best single fine-tune "
                  "against Zoo-Tuning, mean over seeds.", data)


def gates(board: Board, task: str) -> list[Figure]:
    """Zoo-Tuning's mean gate per layer and source (val split), mean over seeds, one map per method."""
    out = []
    for m in board.methods:
        rs = [r for r in board.ok(m, task) if field(r, "diagnostics", "gates")]
        if not rs:
            continue
        layers = [n for n in rs[0]["diagnostics"]["gates"] if all(n in r["diagnostics"]["gates"] for r in rs)]
        matrix = np.mean([[r["diagnostics"]["gates"][layer] for layer in layers] for r in rs], axis=0)
        sources = field(rs[0], "diagnostics", "gate_sources") or [str(i) for i in range(matrix.shape[1])]
        with canvas(2.5 + 0.8 * len(sources), 1.5 + 0.16 * len(layers)) as (fig, (ax,)):
            image = ax.imshow(matrix, aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(sources)), sources, rotation=30, ha="right")
            ax.set_yticks(range(len(layers)), layers, fontsize=6)
            ax.set_title(f"{task}: {m} mean gates")
            fig.colorbar(image, ax=ax, label="mean gate")
            data = png(fig)
        out.append(Figure(name(board.hub, board.kind, task, m, "gates"),
                          f"`{board.hub}` / {task}: `{m}` mean gate per layer (rows) and source (columns), "
                          f"mean over {len(rs)} seed(s).", data))
    return out


def routing(records: list[dict], sources: list[str], key: str, cls: str | None = None) -> np.ndarray:
    """Mean over seeds of Hub-Pathway's per-source `key` (activation or mean_weight), overall or of one class."""
    parts = [r["diagnostics"]["pathway"] for r in records]
    parts = [p if cls is None else p["per_class"][cls] for p in parts]
    return np.mean([[p[key][s] for s in sources] for p in parts], axis=0)


def pathway(board: Board, task: str) -> list[Figure]:
    """Hub-Pathway: how often each source is activated and its mean weight, overall and per class."""
    out = []
    for m in board.methods:
        rs = [r for r in board.ok(m, task) if field(r, "diagnostics", "pathway", "activation")]
        if not rs:
            continue
        sources = list(rs[0]["diagnostics"]["pathway"]["activation"])
        per_class = [field(r, "diagnostics", "pathway", "per_class") for r in rs]
        classes = [c for c in per_class[0] if all(c in p for p in per_class)] if all(per_class) else []

        activation, weight = (routing(rs, sources, key) for key in ("activation", "mean_weight"))
        height = max(3.2, 1.2 + 0.14 * len(classes))
        with canvas(4 + 0.5 * len(sources) + (2 + 0.6 * len(sources) if classes else 0), height,
                    cols=2 if classes else 1) as (fig, axes):
            x = np.arange(len(sources))
            axes[0].bar(x - 0.2, activation, 0.4, label="activation frequency")
            axes[0].bar(x + 0.2, weight, 0.4, label="mean weight")
            axes[0].set_xticks(x, sources, rotation=30, ha="right")
            axes[0].set_title(f"{task}: {m} routing ({rs[0]['diagnostics']['pathway'].get('split', '?')} split)")
            axes[0].legend()
            if classes:
                grid = np.stack([routing(rs, sources, "activation", c) for c in classes])
                image = axes[1].imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1)
                axes[1].set_xticks(range(len(sources)), sources, rotation=30, ha="right")
                axes[1].set_yticks(range(len(classes)), classes if len(classes) <= 60 else [""] * len(classes))
                axes[1].set_title("activation frequency per class")
                fig.colorbar(image, ax=axes[1])
            data = png(fig)
        out.append(Figure(name(board.hub, board.kind, task, m, "pathway"),
                          f"`{board.hub}` / {task}: `{m}` source activation frequency and mean weight"
                          f"{', overall and per class' if classes else ''}, mean over {len(rs)} seed(s).", data))
    return out


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def examples(board: Board, task: str) -> Figure | None:
    """Test images with true (green) and predicted (red) points of the best method and the best fine-tune."""
    roles: dict[str, list[str]] = {}
    for role, m in (("best method", board.best_method(task)), ("best single fine-tune", board.best_finetune(task))):
        if m is not None:
            roles.setdefault(m, []).append(role)
    picks = {}
    for m in roles:
        with_examples = sorted((r for r in board.ok(m, task) if field(r, "examples", "images")),
                               key=lambda r: r["seed"])
        if with_examples:
            picks[m] = with_examples[0]
    if not picks:
        return None
    cols = max(len(r["examples"]["images"]) for r in picks.values())
    with canvas(1.4 * cols, 1.6 * len(picks) + 0.3, cols=cols, rows=len(picks)) as (fig, axes):
        for row, (m, r) in enumerate(picks.items()):
            ex = r["examples"]
            for i, ax in enumerate(axes[row * cols:(row + 1) * cols]):
                ax.set_axis_off()
                if i >= len(ex["images"]):
                    continue
                image = decode(ex["images"][i])
                ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0), interpolation="nearest")
                for key, marks in MARKS.items():
                    points = np.asarray(ex[key][i]).reshape(-1, 2)
                    ax.scatter(points[:, 0], points[:, 1], linewidths=0.8, **marks)
                if i == 0:
                    ax.set_title(f"{m}, seed {r['seed']} ({' and '.join(roles[m])})", loc="left", fontsize=7)
        data = png(fig)
    split = next(iter(picks.values()))["examples"].get("split", "test")
    rows = ", ".join(f"`{m}` ({' and '.join(roles[m])})" for m in picks)
    return Figure(name(board.hub, board.kind, task, "examples"),
                  f"`{board.hub}` / {task}: {split} images, ground truth green, prediction red; rows: {rows}.", data)


def board_figures(board: Board, gflops: dict[str, float]) -> list[Figure]:
    """Every figure the board's records have data for, in page order."""
    out = [scatter(board, gflops)]
    for task in board.tasks:
        out += [curves(board, task), nme_curve(board, task), *gates(board, task), *pathway(board, task),
                examples(board, task)]
    return [f for f in out if f is not None]
