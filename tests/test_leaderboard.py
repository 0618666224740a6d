import csv
import json

import pytest

from leaderboard.generate import generate, main


def record(task, method, seed, value, *, status="ok", higher=True, metric="top1", reason=None):
    return {
        "schema": "hubbench.record/1", "suite": "s", "hub": "h", "task": task, "kind": "k", "seed": seed,
        "method": {"id": method, "name": method.split("[")[0], "params": {}}, "status": status,
        "reason": reason, "metric": {"name": metric, "higher_is_better": higher, "value": value},
        "environment": {"device_name": "cpu", "torch": "2", "git": {"commit": "abc"}, "device": "cpu"},
    }


def write(results, records):
    for i, r in enumerate(records):
        path = results / "s" / r["hub"] / r["task"] / r["method"]["id"] / f"seed{r['seed']}-{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))


def rows(readme):
    return {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in readme.splitlines() if line.startswith("| ") and "Method" not in line}


@pytest.mark.parametrize("higher", [True, False])
def test_table_mean_std_avg_and_direction_aware_bold(tmp_path, higher):
    write(tmp_path / "r", [
        record("a", "m1", 0, 10, higher=higher), record("a", "m1", 1, 20, higher=higher),
        record("b", "m1", 0, 30, higher=higher),
        record("a", "m2", 0, 40, higher=higher), record("b", "m2", 0, 6, higher=higher),
    ])
    readme = (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()
    table = rows(readme)
    if higher:
        assert table["m1"] == ["15.00 ± 7.07", "**30.00**", "22.50"]
        assert table["m2"] == ["**40.00**", "6.00", "**23.00**"]
    else:
        assert table["m1"] == ["**15.00 ± 7.07**", "30.00", "**22.50**"]
        assert table["m2"] == ["40.00", "**6.00**", "23.00"]
    assert ("higher is better" if higher else "lower is better") in readme


def test_na_failed_and_missing_cells(tmp_path):
    write(tmp_path / "r", [
        record("a", "ok", 0, 1.0), record("b", "ok", 0, 2.0),
        record("a", "soup", 0, None, status="n/a", reason="needs a homogeneous hub"),
        record("b", "soup", 0, None, status="n/a", reason="needs a homogeneous hub"),
        record("a", "bad", 0, None, status="failed", reason="RuntimeError: boom"),
        record("a", "half", 0, 3.0), record("a", "half", 1, None, status="failed"),
    ])
    readme = (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()
    table = rows(readme)
    assert table["soup"] == ["n/a [1]", "n/a [1]", "—"] and "1. needs a homogeneous hub" in readme
    assert table["bad"] == ["failed (1)", "—", "—"]
    assert table["half"][0] == "**3.00** (1 seeds, 1 failed)" and table["half"][2] == "—"
    with open(tmp_path / "lb/s/results.csv") as f:
        assert len(list(csv.DictReader(f))) == 7


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
