"""The leaderboard's files for a suite with every kind of data: figures, a self-contained index.html,
and a second run that changes nothing."""

import re
import subprocess
import sys

import pytest
from PIL import Image
from test_leaderboard import full, record, write

from hubbench.figures import canvas
from hubbench.leaderboard.generate import generate
from hubbench.methods import Method, register

METHODS = ["finetune[model=a]", "finetune[model=b]", "zoo_tuning", "hub_pathway", "scratch"]


def suite_records():
    """Records of every kind; the classification table's zoo_tuning ran from a dirty checkout, the landmark
    table's hub_pathway from another commit, its scratch with more iterations."""
    out = []
    for seed in (0, 1):
        for i, m in enumerate(METHODS):
            out.append(full("shapes", m, seed, 50.0 + 5 * i + seed, gflops=0.1 * (i + 1)))
            out.append(full("faces", m, seed, 20.0 - 2 * i - seed, kind="landmarks", gflops=0.1 * (i + 1)))
    for r in out:
        r["environment"]["git"]["dirty"] = r["method"]["id"] == "zoo_tuning" and r["task"] == "shapes"
        if r["task"] == "faces" and r["method"]["id"] == "hub_pathway":
            r["environment"]["git"]["commit"] = "def"
        if r["task"] == "faces" and r["method"]["id"] == "scratch":
            r["config"]["task"]["protocol"]["iterations"] = 30
    return out + [record("shapes", "soup", 0, None, status="n/a", reason="heterogeneous", kind="classification"),
                  record("shapes", "broken", 0, None, status="failed", reason="boom", kind="classification")]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """The leaderboard of `suite_records`, rendered in a process of its own: from the records and the methods'
    declarations (their roles, their own figures), without torch."""
    tmp = tmp_path_factory.mktemp("lb")
    write(tmp / "r", suite_records())
    code = ("import sys\nfrom pathlib import Path\nfrom hubbench.leaderboard.generate import generate\n"
            f"generate('s', Path({str(tmp / 'r')!r}), Path({str(tmp / 'lb')!r}))\n"
            "print(sorted({'torch', 'torchvision'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    return tmp, tmp / "lb" / "s"


def test_every_figure_is_drawn(board):
    _, out = board
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == sorted([
        "h-classification-pareto.png", "h-classification-shapes-curves.png",
        "h-classification-shapes-zoo_tuning-gates.png", "h-classification-shapes-hub_pathway-pathway.png",
        "h-landmarks-pareto.png", "h-landmarks-faces-curves.png", "h-landmarks-faces-finetune-vs-zoo-tuning.png",
        "h-landmarks-faces-zoo_tuning-gates.png", "h-landmarks-faces-hub_pathway-pathway.png",
        "h-landmarks-faces-examples.png"])
    for path in (out / "figures").iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
    readme = (out / "README.md").read_text()
    assert all(f"(figures/{n})" in readme for n in names)
    assert "rows: `scratch` (best method), `finetune[model=b]` (best single fine-tune)." in readme


def test_index_html_is_self_contained(board):
    _, out = board
    html = (out / "index.html").read_text()
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html, flags=re.I)
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert links and all(link.startswith(("data:", "#")) for link in links if not link.startswith("figures/"))
    # every figure embedded, and a link to its full-size file beside the page
    assert len(re.findall(r'<a href="figures/[^"]+" title="Open full size"><img src="data:image/png;base64,',
                          html)) == len(figures)
    assert sorted(link.removeprefix("figures/") for link in links if link.startswith("figures/")) == figures
    assert "<strong>" in html and "<table" in html and "@import" not in html and "url(" not in html
    assert not re.search(r"https?://|fetch\(|XMLHttpRequest|import\(", html)  # nothing fetched when viewed


def test_second_run_changes_nothing_and_stale_figures_go(board):
    tmp, out = board
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    generate("s", tmp / "r", tmp / "again")  # a fresh tree is byte-identical too
    assert {p.relative_to(out): b for p, (b, _) in snapshot.items()} == {
        p.relative_to(tmp / "again" / "s"): p.read_bytes() for p in (tmp / "again" / "s").rglob("*") if p.is_file()}
    generate("s", tmp / "r", tmp / "lb")  # the same records: not a file touched
    assert snapshot == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    (out / "figures" / "old.png").write_bytes(b"stale")
    generate("s", tmp / "r", tmp / "lb")  # a new folder swapped in, without the figure no run makes
    assert {p: b for p, (b, _) in snapshot.items()} == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_figures_without_data_are_skipped(tmp_path):
    write(tmp_path / "r", [record("a", "m", 0, 1.0), record("a", "finetune[model=x]", 0, 2.0)])
    out = generate("s", tmp_path / "r", tmp_path / "lb")
    assert not (out / "figures").exists() and "### Figures" not in (out / "README.md").read_text()


def test_a_plugin_method_brings_its_own_figure(tmp_path):
    def seeds_per_method(panel, methods):
        with canvas(3, 2) as (fig, (ax,)):
            ax.bar(methods, [len(panel.ok(m)) for m in methods])
            return [panel.figure(["seeds"], "ok seeds per method.", fig)]

    @register
    class WithFigure(Method):
        name = "with_figure"
        description = "a plugin method declaring a figure of its own"

        def fit(self, ctx):
            raise NotImplementedError

        @classmethod
        def figures(cls):
            return (seeds_per_method,)

    write(tmp_path / "r", [record("a", "with_figure", 0, 1.0), record("a", "with_figure[x=1]", 1, 1.0),
                           record("a", "m", 0, 2.0)])
    out = generate("s", tmp_path / "r", tmp_path / "lb")
    assert [p.name for p in (out / "figures").iterdir()] == ["h-k-a-seeds.png"]
    assert "`h` / a: ok seeds per method." in (out / "README.md").read_text()


def test_page_has_contents_sortable_tables_and_ranks(board):
    _, out = board
    html = (out / "index.html").read_text()
    nav = re.search(r'<nav class="toc".*?</nav>', html, flags=re.S)[0]
    headings = re.findall(r'<h[234] id="([^"]+)"', html)
    assert len(headings) > 10 and [f"#{a}" for a in headings] == re.findall(r'href="([^"]+)"', nav)
    tables = re.findall(r'<div class="scroll"><table class="sortable">', html)
    assert len(tables) == html.count("<table") > 5 and html.count("<script>") == 1
    test_table = html[html.index(">Test top1</h3>"):]
    test_table = test_table[:test_table.index("</table>")]
    header = re.findall(r"<th(?: class=\"([^\"]+)\")?>([^<]+)</th>", test_table)
    assert [h for _, h in header] == ["Rank", "Method", "shapes", "Avg"]
    # numbers right-aligned, names not; Method and Avg held in view while the table scrolls
    assert [c for c, _ in header] == ["num", "key", "num", "num avg"]
    rows = re.findall(r'<tr><td class="num">([^<]+)</td><td class="key">([^<]+)</td>', test_table)
    assert rows == [*((str(i), m) for i, m in enumerate(reversed(METHODS), 1)), ("—", "broken"), ("—", "soup")]
    readme = (out / "README.md").read_text()
    assert "| Rank | Method | faces | Avg |\n|--:|---|--:|--:|\n| 1 | scratch |" in readme  # NME: lowest first
    assert "| 2 | hub_pathway |" in readme and "| 5 | finetune[model=a] |" in readme


def test_protocol_and_code_are_stated_and_dirty_or_mixed_records_flagged(board):
    _, out = board
    readme = (out / "README.md").read_text()
    assert "**Protocol** (from the records' config (2 records without a config)): `batch_size` 32; `iterations` 20; " \
           "`lr` 0.1; `runtime.bf16` false; images train/val/test 8/2/4; hub sources b, a." in readme
    assert "**Mixed protocol**: records of one task ran with different settings: `iterations` 20 (8 records), " \
           "30 (2 records)." in readme
    assert "> ⚠ **Dirty tree**: 2 of 12 records were made from a checkout with uncommitted changes: no commit " \
           "holds the exact code they ran (of `zoo_tuning`)." in readme
    assert "> ⚠ **Mixed commits**: `abc` (8 records), `def` (2 records): this table sets" in readme
    assert "**Code**: commit `abc` (12 records)." in readme  # the classification table: one commit
    assert readme.count("mean [95% t-interval] (n=2 seeds in every cell)") == 2
    html = (out / "index.html").read_text()
    assert html.count('<p class="flag">⚠ <strong>') == 3


def test_curves_filter_by_task_and_method_and_comparisons_are_data(board):
    import pandas as pd

    _, out = board
    curves = pd.read_parquet(out / "curves.parquet")
    one = curves[(curves.task == "shapes") & (curves.method == "zoo_tuning") & (curves.curve == "train_loss")]
    assert set(one.seed) == {0, 1} and set(one.hub) == {"h"} and one.iteration.tolist() == [10, 20, 10, 20]
    pairs = pd.read_csv(out / "comparisons.csv").set_index(["hub", "task", "method"])
    # shapes: finetune[model=b] (55 + seed) is the best fine-tune; zoo_tuning scores 60 + seed, scratch 70 + seed
    columns = ["baseline", "diff_mean", "diff_low95", "diff_high95", "n"]
    assert pairs.loc[("h", "shapes", "zoo_tuning"), columns].tolist() == ["finetune[model=b]", 5.0, 5.0, 5.0, 2]
    # faces, NME (lower is better): scratch 12 - seed against finetune[model=b]'s 18 - seed: 6 better
    assert pairs.loc[("h", "faces", "scratch"), ["baseline", "diff_mean"]].tolist() == ["finetune[model=b]", 6.0]
    assert ("h", "shapes", "finetune[model=b]") not in pairs.index  # the baseline is not paired with itself
    assert pairs.loc[("h", "shapes", "finetune[model=a]"), "diff_mean"] == -5.0
