"""`hubbench compare A B`: the shared cells side by side, paired over seeds, and the settings and commits
that differ between the two runs."""

import json

from test_leaderboard import full, write

from hubbench.benchmark.cli import main


def suites(tmp_path):
    """A: two methods, seeds 0-2; B (a variant with 30 iterations, from another commit): one of them, seeds 1-2,
    each seed 3 to 5 points better."""
    a = [full("shapes", m, s, 50.0 + s) for m in ("scratch", "fe") for s in range(3)]
    b = [full("shapes", "scratch", s, 51.0 + 3 * s) for s in (1, 2)]
    for r in b:
        r["config"]["task"]["protocol"]["iterations"] = 30
        r["environment"]["git"]["commit"] = "def"
    write(tmp_path / "results", a)
    write(tmp_path / "results", b, suite="s@iterations=30")
    write(tmp_path / "results", [full("scenes", "scratch", 0, 40.0)], suite="t")  # nothing in common with s
    return tmp_path / "results"


def test_compare_pairs_shared_cells_and_flags_what_differs(tmp_path, capsys):
    results = suites(tmp_path)
    assert main(["compare", "s", str(results / "s@iterations=30"), "--results", str(results),
                 "--html", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    # scratch: A 50, 51, 52 (seeds 0-2); B 54, 57 (seeds 1, 2): means 51 and 55.5; paired by seed: 3 and 5
    assert "| h | shapes | scratch | top1 ↑ | 51.00 ± 1.00 (n=3) | 55.50 ± 2.12 (n=2) | +4.50 | +4.00 [" in out
    assert "(n=2) |" in out and "| fe |" not in out
    assert "1 (hub, task, method) cells with ok records in both; 1 only in A, 0 only in B." in out
    assert "**Settings differ** (A -> B) on h/shapes: protocol.iterations: 20 -> 30" in out
    assert "**Commits differ**: A `abc` (6); B `def` (2)." in out
    html = (tmp_path / "c.html").read_text()
    assert "<table" in html and "Settings differ" in html


def test_compare_takes_suite_files_and_sees_one_commit_as_one(tmp_path, capsys, monkeypatch):
    """A suite file names its records' folder; the same commit on both sides is no difference, whatever the
    number of records each side has from it."""
    results = suites(tmp_path)
    for path in (results / "s@iterations=30").rglob("*.json"):
        data = json.loads(path.read_text())
        data["environment"]["git"]["commit"] = "abc"
        path.write_text(json.dumps(data))
    (tmp_path / "s.toml").write_text('hubs = ["mini"]\ntasks = ["shapes"]\nmethods = ["scratch"]\n')
    assert main(["compare", str(tmp_path / "s.toml"), "s@iterations=30", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "# Compare `s` (A) with `s@iterations=30` (B)" in out
    assert "Commits differ" not in out and "Both from the same commits: A `abc` (6); B `abc` (2)." in out


def test_compare_refuses_bad_input_before_writing(tmp_path, capsys):
    results = suites(tmp_path)
    (tmp_path / "c.html").write_text("mine")
    for argv, message in [(["s", "nosuch"], "'nosuch' is neither a folder of records"),
                          (["s", "s", "--html", str(tmp_path / "c.html")], "exists; pass --force"),
                          (["s", "s", "--html", str(tmp_path / "no" / "c.html")], "no folder"),
                          (["s", str(results / "t")], "'s' and '" + str(results / "t") + "' share no (hub, task, "
                                                      "method) cell with ok records in both")]:
        assert main(["compare", *argv, "--results", str(results)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.err.count("\n") == 1 and not captured.out
    assert (tmp_path / "c.html").read_text() == "mine"
