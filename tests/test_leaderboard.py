import base64
import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image

from hubbench import record as records
from hubbench.figures import Panel, canvas, label, styles
from hubbench.leaderboard import reported
from hubbench.leaderboard.board import method_roles, paired
from hubbench.leaderboard.figures import annotate_apart, marker_extent, overlaps, pareto
from hubbench.leaderboard.generate import generate, load_records, main
from hubbench.params import Role


def record(task, method, seed, value, *, status="ok", higher=True, metric="top1", reason=None, hub="h", kind="k"):
    """A record as older runners wrote it (schema version 1): identity, status and metric only."""
    return {
        "schema": "hubbench.record/1", "suite": "s", "hub": hub, "task": task, "kind": kind, "seed": seed,
        "method": {"id": method, "name": method.split("[")[0], "params": {}}, "status": status,
        "reason": reason, "metric": {"name": metric, "higher_is_better": higher, "value": value},
        "environment": {"device_name": "cpu", "torch": "2", "git": {"commit": "abc"}, "device": "cpu"},
    }


def png_b64(size=16):
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (40, 80, 120)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def config(task, **protocol):
    """A record's config: the task's protocol (`protocol` overriding), runtime, split sizes, the hub's sources."""
    return {"hub": {"name": "h", "sources": [{"name": "b", "family": "f"}, {"name": "a", "family": "f"}]},
            "task": {"name": task, "protocol": {"batch_size": 32, "iterations": 20, "lr": 0.1, **protocol},
                     "sizes": {"test": 4, "train": 8, "val": 2}},  # as record files have them: keys sorted
            "suite_protocol": {}, "runtime": {"bf16": False}}


def full(task, method, seed, value, *, kind="classification", gflops=1.0, **kw):
    """A record with everything the current runner writes: complexity, cost, curves, diagnostics, examples, config."""
    metric = "top1" if kind == "classification" else "nme"
    r = record(task, method, seed, value, kind=kind, metric=metric, higher=kind == "classification", **kw)
    r["config"] = config(task)
    r["complexity"] = {
        "params": {"total": 2_000_000, "trainable": 2_000_000, "active": 1_000_000.0},
        "flops": {"fvcore_gflops": gflops, "flop_counter_gflops": 2 * gflops, "fvcore_unsupported": {"aten::x": 1},
                  "batch": 8},
        "memory": {"device": "cpu", "measure": "CPU peak RSS growth", "train_mb": 100.0, "infer_mb": 50.0},
        "speed": {"infer_samples_s": 400.0, "train_samples_s": 100.0, "batch": 8, "precision": "fp32",
                  "memory_format": "contiguous", "compile": None, "device_name": "Test CPU", "torch": "2.x",
                  "cuda": None, "warmup": 2, "repeats": 5}}
    r["cost"] = {"train_s": 10.0, "artifacts_s": 5.0, "total_s": 15.0}
    r["curves"] = {"train_loss": [[10, 2.0], [20, 1.0]], f"val_{metric}": [[10, value - 1], [20, value]],
                   f"test_{metric}": [[10, value + 1], [20, value]]}
    name = r["method"]["name"]
    if name.startswith("zoo_tuning"):
        r["diagnostics"] = {"gate_sources": ["a", "b"], "gates": {"conv1": [0.2, 0.8], "layer1.conv": [0.5, 0.5]}}
    if name == "hub_pathway":
        summary = {"activation": {"a": 0.7, "b": 0.3}, "mean_weight": {"a": 0.6, "b": 0.4}}
        r["diagnostics"] = {"pathway": {"split": "test", "k": 1, **summary, "per_class": {"0": summary, "1": summary}}}
    if kind == "landmarks":
        points = [[[4.0, 4.0], [12.0, 8.0]]] * 2
        r["examples"] = {"split": "test", "images": [png_b64(), png_b64()], "target": points,
                         "predicted": [[[5.0, 4.5], [11.0, 8.5]]] * 2}
    return r


def write(results, records, suite="s"):
    for i, r in enumerate(records):
        path = results / suite / r["hub"] / r["task"] / r["method"]["id"] / f"seed{r['seed']}-{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))


def render(tmp_path, records):
    write(tmp_path / "r", records)
    return (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()


def rows(readme, heading="### Test", key="Method"):
    """The `key` column (else the first) -> the cells after it, of the first table after the first line starting
    with `heading`, in the table's order."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    header, out = None, {}
    for line in lines[start + 1:]:
        if line.startswith("#") or (header and not line.startswith("|")):
            break
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if header is None:
            header = cells
            at = header.index(key) if key in header else 0
        else:
            out[cells[at]] = cells[at + 1:]
    return out


@pytest.mark.parametrize("higher", [True, False])
def test_table_mean_std_avg_and_direction_aware_bold(tmp_path, higher):
    readme = render(tmp_path, [
        record("a", "m1", 0, 10, higher=higher), record("a", "m1", 1, 20, higher=higher),
        record("b", "m1", 0, 30, higher=higher),
        record("a", "m2", 0, 40, higher=higher), record("b", "m2", 0, 6, higher=higher),
    ])
    table = rows(readme)
    if higher:
        assert table["m1"] == ["15.00 ± 7.07", "**30.00**", "22.50"]
        assert table["m2"] == ["**40.00**", "6.00", "**23.00**"]
    else:
        assert table["m1"] == ["**15.00 ± 7.07**", "30.00", "**22.50**"]
        assert table["m2"] == ["40.00", "**6.00**", "23.00"]
    assert ("higher is better" if higher else "lower is better") in readme


def test_na_failed_missing_cells_and_missing_fields(tmp_path):
    readme = render(tmp_path, [
        record("a", "ok", 0, 1.0), record("b", "ok", 0, 2.0),
        record("a", "soup", 0, None, status="n/a", reason="needs a homogeneous hub"),
        record("b", "soup", 0, None, status="n/a", reason="needs a homogeneous hub"),
        record("a", "bad", 0, None, status="failed", reason="RuntimeError: boom"),
        record("a", "half", 0, 3.0), record("a", "half", 1, None, status="failed"),
    ])
    table = rows(readme)
    assert table["soup"] == ["n/a [1]", "n/a [1]", "—"] and "1. needs a homogeneous hub" in readme
    assert table["bad"] == ["failed (1)", "—", "—"]
    assert table["half"][0] == "**3.00** (1 seeds, 1 failed)" and table["half"][2] == "—"
    assert rows(readme, "### Complexity")["ok"] == ["1.50", "—", "—", "—", "—", "—"]
    assert "bad" not in rows(readme, "### Complexity")  # no ok record: no row
    assert "Memory: not measured" in readme and "No fine-tune records" in readme
    with open(tmp_path / "lb/s/results.csv") as f:
        assert len(list(csv.DictReader(f))) == 7


def test_complexity_table_averages_tasks_then_seeds_and_states_settings(tmp_path):
    readme = render(tmp_path, [
        full("a", "m", 0, 10, gflops=1.0), full("a", "m", 1, 20, gflops=3.0),  # task a: 2 GFLOPs
        full("b", "m", 0, 30, gflops=6.0),  # task b: 6, so 4 over tasks (not 10/3 over records)
        full("a", "hub_pathway", 0, 50, gflops=0.5), full("b", "hub_pathway", 0, 50, gflops=0.5),
    ])
    table = rows(readme, "### Complexity")
    assert table["m"] == ["22.50", "2.00 (1.00 active)", "4.00", "100.00 / 50.00", "400.00 / 100.00",
                          "15.00 (10.00 + 5.00)"]
    assert table["hub_pathway"][:3] == ["50.00", "2.00 (1.00 active)", "0.5"]
    assert "Memory: CPU peak RSS growth on cpu." in readme
    assert "Speed: batch 8, fp32, contiguous, eager, on Test CPU" in readme
    with open(tmp_path / "lb/s/results.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["method"] == "m")  # rows sorted by hub, task, method, seed
    assert row["gflops_fvcore"] == "1.0" and row["params_active"] == "1000000.0" and row["train_mb"] == "100.0"
    assert row["fvcore_unsupported"] == "aten::x x1" and row["artifacts_s"] == "5.0"


def test_partial_complexity_renders_dashes(tmp_path):
    partial = full("a", "m", 0, 10)
    partial["complexity"] = {"params": {"total": 3_000_000}, "flops": {}}
    del partial["cost"]["artifacts_s"], partial["curves"]
    readme = render(tmp_path, [partial])
    assert rows(readme, "### Complexity")["m"] == ["10.00", "3.00", "—", "—", "—", "15.00 (10.00 + —)"]
    assert "Memory: not measured" in readme and "Speed: not measured" in readme


def test_a_measured_column_declared_once_is_in_results_csv_and_on_the_page(tmp_path, monkeypatch):
    """One `Column` in `MEASURE_COLUMNS` is the whole change: its value in results.csv, its header and text in the
    complexity table (a column not shown stays out of the page)."""
    monkeypatch.setitem(records.MEASURE_COLUMNS, "flop_ratio", records.Column(
        "float64", "complexity.flops.flop_counter_gflops", label="FlopCounter GFLOPs", unit="per sample",
        fmt=lambda row: f"{row['flop_ratio'] / row['gflops_fvcore']:.0f}x fvcore", shown=True))
    monkeypatch.setitem(records.MEASURE_COLUMNS, "hidden", records.Column("float64", "cost.train_s", label="Hidden"))
    readme = render(tmp_path, [full("a", "m", 0, 10, gflops=1.5)])
    assert "| FlopCounter GFLOPs (per sample) |" in readme and "Hidden" not in readme
    assert rows(readme, "### Complexity")["m"][-1] == "2x fvcore"
    frame = pd.read_csv(tmp_path / "lb/s/results.csv")
    assert frame.flop_ratio.tolist() == [3.0] and frame.hidden.tolist() == [10.0]
    assert list(frame.columns[-2:]) == ["flop_ratio", "hidden"]  # after the columns declared before them


def test_landmark_tables_show_failure_rates_and_auc_beside_the_nme(tmp_path):
    """Every metric a landmark record holds and `METRIC_COLUMNS` declares is on the page, averaged as the NME is;
    a classification board, whose records hold none of them, gets no such table."""
    made = [full("a", "m", seed, 10.0 + seed, kind="landmarks") for seed in (0, 1)] + [
        full("b", "m", 0, 14.0, kind="landmarks"), full("c", "m", 0, 70.0)]
    for r, fr10 in zip(made, (40.0, 60.0, 20.0, None), strict=True):
        r["metrics"] = {"test": {r["metric"]["name"]: r["metric"]["value"], "loss": 1.0}}
        if fr10 is not None:
            r["metrics"]["test"] |= {"fr8": fr10 + 10, "fr10": fr10, "auc10": 100 - fr10}
    readme = render(tmp_path, made)
    assert readme.count("The other test metrics") == 1
    assert "| Rank | Method | nme Avg | FR@8 (%) | FR@10 (%) | AUC@10 (%) |" in readme
    # over tasks of the means over seeds: nme (10.5 + 14) / 2, FR@8 (60 + 30) / 2, ...
    assert rows(readme.split("The other test metrics")[1], "")["m"] == ["12.25", "45.00", "35.00", "65.00"]


def test_names_no_method():
    """Figures of a method's diagnostics are its own (`Method.figures`): the leaderboard's code names none."""
    code = "".join(path.read_text() for path in Path(reported.__file__).parent.glob("*.py"))
    assert not re.search("zoo_tuning|hub_pathway", code)


def test_paired_interval_on_a_known_example():
    def seeds(values: dict) -> pd.Series:
        return pd.Series(values, dtype="float64")

    p = paired(seeds({0: 12, 1: 14, 2: 16, 3: 99}), seeds({0: 11, 1: 12, 2: 13}), higher=True)  # seed 3 unpaired
    assert (p.n, p.mean) == (3, 2.0)  # diffs 1, 2, 3
    half = 4.302652729911275 / 3 ** 0.5  # t(0.975, 2) * sd 1 / sqrt(3)
    assert p.low == pytest.approx(2 - half) and p.high == pytest.approx(2 + half) and p.sign == 0
    lower = paired(seeds({0: 1.0, 1: 2.0}), seeds({0: 3.0, 1: 3.5}), higher=False)  # lower is better: 2, 1.5 better
    assert lower.mean == pytest.approx(1.75) and lower.n == 2
    assert paired(seeds({0: 5.0}), seeds({0: 4.0}), higher=True) == type(p)(1.0, None, None, 1)
    assert paired(seeds({1: 5.0}), seeds({0: 4.0}), higher=True) is None


def test_paired_table_against_best_single_finetune(tmp_path):
    readme = render(tmp_path, [
        *(record("a", "finetune[model=x]", s, v) for s, v in enumerate([11, 12, 13])),
        *(record("a", "finetune[model=y]", s, v) for s, v in enumerate([1, 2, 3])),
        *(record("a", "m", s, v) for s, v in enumerate([12, 14, 16])),  # +1, +2, +3: interval spans 0
        *(record("a", "z", s, v) for s, v in enumerate([13, 14.1, 14.9])),  # +2, +2.1, +1.9: consistently better
        *(record("a", "w", s, v) for s, v in enumerate([10, 11])),  # two seeds: each cell says its n
    ])
    table = rows(readme, "### Paired")
    assert "Best single fine-tune: a `finetune[model=x]`." in readme
    assert list(table) == ["m", "z", "finetune[model=x]", "w", "finetune[model=y]"]  # by rank (m, z tie: by id)
    assert table["w"] == ["-1.00 [-1.00, -1.00] (n=2)"]
    assert table["m"] == ["+2.00 [-0.48, +4.48] (n=3)"] and table["finetune[model=x]"] == ["baseline"]
    assert table["z"] == ["**+2.00 [+1.75, +2.25] (n=3)**"]
    assert "`z` is consistently better than the best single fine-tune on a." in readme
    assert "`m` is consistently" not in readme and "Consistently worse: `w` (a); `finetune[model=y]` (a)." in readme


def test_roles_not_names_make_the_single_fine_tunes(tmp_path):
    """A plugin method whose records state the single-source role (its code not loaded here) is a single fine-tune:
    the baseline the others are paired with, drawn in the fine-tunes' look. Records made before roles keep the role
    their method declares (`finetune`), and a method unknown here without one is a hub method."""
    lpft = [record("a", "lpft[model=y]", s, v) for s, v in enumerate([20, 21])]
    for r in lpft:
        r["method"]["role"] = "single-source"
    write(tmp_path / "r", [*lpft, *(record("a", "finetune[model=x]", s, v) for s, v in enumerate([11, 12])),
                           *(record("a", "m", s, v) for s, v in enumerate([15, 16]))])
    readme = (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()
    assert "Best single fine-tune: a `lpft[model=y]`." in readme and rows(readme, "### Paired")["lpft[model=y]"] == [
        "baseline"]
    roles = method_roles(load_records(tmp_path / "r" / "s")[0])
    assert roles == {"lpft[model=y]": Role.SINGLE_SOURCE, "finetune[model=x]": Role.SINGLE_SOURCE, "m": Role.HUB}
    looks = styles(roles)
    assert looks["lpft[model=y]"]["linestyle"] == looks["finetune[model=x]"]["linestyle"] != looks["m"]["linestyle"]


def test_protocol_differing_between_tasks_is_stated_per_task(tmp_path):
    records = [full(t, m, 0, 10.0) for t in ("a", "b") for m in ("m", "n")]
    for r in records[2:]:
        r["config"]["task"]["protocol"]["lr"] = 0.2
    for i, r in enumerate(records):
        r["config"]["hub"]["config"] = {"version": 5 + i // 2}
    readme = render(tmp_path, [*records, record("a", "old", 0, 1.0, kind="classification")])
    assert "**Protocol** (from the records' config (1 records without a config)): `batch_size` 32; `iterations` 20; " \
           "`lr` 0.1 (a), 0.2 (b); `runtime.bf16` false; images train/val/test 8/2/4; hub sources b, a; " \
           "hub version 5 (a), 6 (b)." in readme
    assert "Mixed protocol" not in readme and "Dirty tree" not in readme and "**Code**: commit `abc` (5 records)." \
        in readme


def test_front_labels_cover_no_label_marker_or_each_other():
    """Four front points too close for one fixed offset: each label finds a free place inside the axes."""
    points = {f"method_{i}": (1.0 + 0.04 * i, 50.0 + 0.4 * i) for i in range(4)}
    with canvas(4, 3) as (fig, (ax,)):
        ax.set_xscale("log")
        ax.margins(0.08)  # as the figure has
        ax.scatter(*zip(*points.values(), strict=True))
        ax.scatter([1.06], [50.4])  # a point off the front, where method_1's first choice of place would be
        annotate_apart(ax, points, list(points))
        fig.draw_without_rendering()
        labels = [Text.get_window_extent(t) for t in ax.texts]  # the words, not the line to the point
        markers = marker_extent(ax)
        inside = ax.get_window_extent()
    assert len(labels) == 4 and all(inside.contains(b.x0, b.y0) and inside.contains(b.x1, b.y1) for b in labels)
    assert not any(overlaps(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] + markers)


def test_curves_are_mean_and_std_over_seeds_drawn_with_a_band():
    points = pd.DataFrame([("r0", "val_top1", 10, 1.0), ("r1", "val_top1", 10, 3.0), ("r0", "val_top1", 20, 5.0),
                           ("r1", "val_top1", 20, 9.0), ("r0", "val_top1", 30, 7.0), ("r2", "val_top1", 10, 4.0)],
                          columns=["record", "curve", "iteration", "value"])
    ids = {"m": ["r0", "r1"], "single": ["r2"]}
    records = {m: [type("R", (), {"id": i})() for i in rs] for m, rs in ids.items()}
    looks = {"m": {"color": "red", "linestyle": "-", "marker": "o"}, "single": {"color": "blue"}}
    panel = Panel("h", "k", "t", "top1", True, records, points, looks, {}, None, None)
    curve = panel.seed_curve("m", "val_top1")  # iteration 30: one seed only, left out
    assert curve.index.tolist() == [10, 20] and curve["mean"].tolist() == [2.0, 7.0]
    assert curve["std"].tolist() == pytest.approx([2 ** 0.5, 8 ** 0.5])
    with canvas(3, 2) as (fig, (ax,)):
        assert panel.draw_curve(ax, "m", "val_top1") and panel.draw_curve(ax, "single", "val_top1")
        assert not panel.draw_curve(ax, "m", "train_loss")
        assert len(ax.lines) == 2 and len(ax.collections) == 1  # a band for two seeds, none for one
        band = ax.collections[0].get_paths()[0].vertices
        assert band[:, 1].min() == pytest.approx(2 - 2 ** 0.5) and band[:, 1].max() == pytest.approx(7 + 8 ** 0.5)


def test_axis_labels_are_readable_with_units():
    assert label("val_top1") == "validation top-1 accuracy (%)" and label("train_loss") == "training loss"
    assert label("test_nme") == "test NME (%)" and label("fr10") == "failure rate at NME 10% (%)"
    assert label("test_my_score") == "test my score" and label("top1") == "top-1 accuracy (%)"


def test_pareto_front_is_direction_aware():
    points = {"cheap": (1, 50), "dear": (10, 80), "dominated": (5, 40), "tie": (1, 45)}
    assert pareto(points, higher=True) == ["cheap", "dear"]
    assert pareto(points, higher=False) == ["tie", "dominated"]


@pytest.mark.parametrize("hub", ["resnet50-zoo", "hetero-zoo", "mini"])
def test_reported_rows_only_for_real_hubs_and_kept_apart(tmp_path, hub):
    readme = render(tmp_path, [full("cifar100", "zoo_tuning", 0, 70.0, hub=hub), full("cifar100", "scratch", 0, 20.0,
                                                                                         hub=hub)])
    ours = rows(readme)
    assert set(ours) == {"scratch", "zoo_tuning"} and ours["zoo_tuning"] == ["**70.00**", "**70.00**"]
    if hub == "mini":
        assert "Reported (paper)" not in readme
        return
    paper = rows(readme, "**Reported (paper)**: Hub-Pathway")
    assert "**Reported (paper)**: Hub-Pathway (NeurIPS 2022) poster" in readme
    if hub == "resnet50-zoo":
        assert paper["finetune[model=supervised] (ImageNet)"][0] == "81.18"
        assert paper["zoo_tuning (Zoo-Tuning)"][-1] == "85.16"  # Avg of the paper's seven tasks
        assert "Zoo-Tuning (ICML 2021) supplementary, Table 1" in readme
        complexity = rows(readme, "**Reported (paper)**: Hub-Pathway (NeurIPS 2022) poster, complexity")
        assert complexity["hub_pathway (Hub-Pathway)"] == ["85.63", "128.43", "9.11", "3537", "240.48", "not stated"]
    else:
        assert paper["finetune[model=detection] (MaskRCNN)"][0] == "79.12 ± 0.06"


def test_a_mini_hub_is_compared_with_the_papers_ranking_of_the_hub_it_stands_for(tmp_path):
    """mini stands for resnet50-zoo (the Hub-Pathway poster's Avg: Hub-Pathway 85.63 > Zoo-Tuning 85.16 > ImageNet
    83.41 > MoCo 80.66). Ours: zoo_tuning first, then supervised, hub_pathway, selfsup: τ = 2/6, and one of the
    two hub methods beats the best single fine-tune (both in the paper)."""
    ours = {"zoo_tuning": 50.0, "finetune[model=supervised]": 40.0, "hub_pathway": 35.0,
            "finetune[model=selfsup]": 30.0, "scratch": 10.0}
    readme = render(tmp_path, [full(task, m, 0, v + i, hub="mini") for m, v in ours.items()
                               for i, task in enumerate(("shapes", "clutter"))])
    line = next(line for line in readme.splitlines() if line.startswith("Against `resnet50-zoo`"))
    assert "Kendall τ = 0.33 between the two rankings of these 4 methods" in line
    # hub methods and the best single: zoo_tuning > supervised > hub_pathway here, hub_pathway > zoo_tuning >
    # ImageNet (supervised) in the paper: one concordant pair of three
    assert "τ = -0.33 over the 2 hub methods and the best single fine-tune" in line
    assert "1 of 2 hub methods beat the best single fine-tune here, 2 of 2 in the paper" in line
    table = rows(readme, "Against `resnet50-zoo`")
    assert table["zoo_tuning"][:4] == ["50.50", "1", "85.16", "2"]
    assert table["hub_pathway"][:4] == ["35.50", "3", "85.63", "1"]
    assert "scratch" not in table  # the paper has no such row


@pytest.mark.parametrize("own", ["declared", "plugin"])
def test_a_board_of_the_users_own_tasks_is_not_compared_with_the_papers(tmp_path, own):
    """The mini hub on a task declared in TOML (or a plugin's): the papers' ranking of resnet50-zoo, and their
    tables, say nothing about it."""
    ours = {"zoo_tuning": 50.0, "finetune[model=supervised]": 40.0, "hub_pathway": 35.0,
            "finetune[model=selfsup]": 30.0}
    records = [full(task, m, 0, v + i, hub="mini") for m, v in ours.items()
               for i, task in enumerate(("shapes", "mine"))]
    for r in records:
        if r["task"] == "mine" and own == "declared":
            r["config"]["task"]["declared"] = {"folder": "mine"}
        elif r["task"] == "mine":
            r["config"]["code"] = {"task": {"plugin": "my_tasks.py", "sha256": "ab"}}
    readme = render(tmp_path, records)
    assert "resnet50-zoo" not in readme and "Reported (paper)" not in readme and "| zoo_tuning |" in readme


def test_the_comparison_with_the_papers_flags_methods_still_rising_at_the_end(tmp_path):
    """zoo_tuning's val top1 still climbs over the last fifth of training on every task and seed; hub_pathway's
    is flat there after its lr step, which does not count (the window starts at its first evaluation inside)."""
    def curve(r, end):
        v = r["metric"]["value"]
        r["curves"][f"val_{r['metric']['name']}"] = [[10, v - 9], [16, v - end], [18, v - end / 2], [20, v]]
        return r

    ours = {"zoo_tuning": (50.0, 2.0), "hub_pathway": (45.0, 0.0), "finetune[model=supervised]": (40.0, 0.0),
            "finetune[model=selfsup]": (30.0, -0.5)}
    readme = render(tmp_path, [curve(full(task, m, seed, v + i + seed / 10, hub="mini"), end + (seed - 1) / 10)
                               for m, (v, end) in ours.items() for i, task in enumerate(("shapes", "clutter"))
                               for seed in (0, 1, 2)])
    table = rows(readme, "Against `resnet50-zoo`")
    assert table["zoo_tuning"][4] == "+2.00 rising" and table["hub_pathway"][4] == "+0.00"
    assert table["finetune[model=selfsup]"][4] == "-0.50"
    line = next(line for line in readme.splitlines() if line.startswith("Against `resnet50-zoo`"))
    assert line.endswith("Still rising over the last 20% of training, so unconverged here: `zoo_tuning`.")


def test_every_reported_name_maps_to_ours():
    """A reported row names its task as our task, one of the paper datasets (their classes hold everything of a
    dataset but its reported rows, which the leaderboard reads without importing the tasks)."""
    from hubbench.tasks import TASKS

    paper = {name for name in TASKS.names() if getattr(TASKS.get(name), "synthesise", None)}
    for row in reported.read("reported_accuracy.csv"):
        assert row["method"] in reported.METHODS and row["task"] in {*paper, reported.AVG}
        assert row["metric"] in reported.METRICS and row["source"]
    for row in reported.read("reported_complexity.csv"):
        assert row["method"] in reported.METHODS and row["source"]


def test_regeneration_is_idempotent_and_errors_are_one_line(tmp_path, capsys):
    write(tmp_path / "r", [record("a", "m", 0, 1.0)])
    args = ["--results", str(tmp_path / "r"), "--out", str(tmp_path / "lb")]
    assert main(args) == 0
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "lb").rglob("*") if p.is_file()}
    assert main(args) == 0
    assert files == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "lb").rglob("*") if p.is_file()}
    assert main(["--suite", "nope", *args]) == 2
    assert main(["--suite", "../x", *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("hubbench leaderboard: error: no records for suite 'nope'")
    assert "invalid suite name" in err[1]
