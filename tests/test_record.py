"""The record format: every committed record loads, earlier shapes are upgraded on read, and a file this
hubbench cannot read (newer, corrupt, malformed) is refused by `run` and skipped with a warning by `status`
and `leaderboard`, never replaced or counted as missing."""

import json
import subprocess

import pandas as pd
import pytest
from conftest import PLUGIN, ROOT, write_suite
from test_leaderboard import full, record, write

from hubbench import record as records
from hubbench.benchmark.cells import expand
from hubbench.benchmark.cli import main
from hubbench.benchmark.status import report
from hubbench.benchmark.suites import Suite
from hubbench.environment import git_state
from hubbench.leaderboard import frame
from hubbench.leaderboard.generate import generate
from hubbench.logs import to_stderr

# the oldest shape: the runner's own parameter count at top level, no complexity, "n/a" for inapplicable
OLDEST = {**record("a", "finetune[model=x]", 0, 40.0), "params": {"total": 2_000_000, "trainable": 1_000_000},
          "metrics": {"val": {"top1": 39.0, "loss": 1.5}, "test": {"top1": 40.0, "loss": 1.4}},
          "timings": {"fit_s": 3.0, "eval_s": 0.5}, "cost": {"train_s": 3.0, "artifacts_s": 0, "total_s": 3.0},
          "curves": {"val_top1": [[5, 30.0], [10, 39.0]]}, "diagnostics": {}, "artifacts": []}


def test_every_committed_record_loads():
    paths = sorted((ROOT / "results").rglob("seed*.json"))
    kinds = [records.RankingRecord if "rank" in p.relative_to(ROOT).parts
             else records.TrialRecord if "trial" in p.relative_to(ROOT).parts else records.Record for p in paths]
    loaded = [records.read(p, kind) for p, kind in zip(paths, kinds, strict=True)]
    assert paths and all(isinstance(r, kind) for r, kind in zip(loaded, kinds, strict=True))
    assert records.RankingRecord in kinds and {r.status for r in loaded} <= set(records.STATUSES)


def test_a_config_change_is_the_first_differing_value_and_what_a_record_lacks_is_no_change():
    then = {"hub": {"config": {"version": 5, "widths": [16, 32]}, "sources": [{"name": "a"}]},
            "protocol": {"iterations": 150, "milestones": [0.4, 0.8]}}
    hub = {"config": {"version": 5, "widths": (16, 32), "added": 1}, "sources": ({"name": "a"},)}
    protocol = {"iterations": 150, "milestones": (0.4, 0.8), "added": 2}
    change = records.first_change
    assert change(then, {"hub": hub, "protocol": protocol}) is None  # tuples are lists read back; new fields no change
    assert change(then, {"hub": {**hub, "config": {"version": 6}}}) == "hub.config.version: 5 -> 6"
    assert change(then, {"hub": {**hub, "sources": ({"name": "b"},)}}) == 'hub.sources[0].name: "a" -> "b"'
    assert (change(then, {"hub": hub, "protocol": {**protocol, "milestones": (0.5,)}})
            == "protocol.milestones: [0.4, 0.8] -> [0.5]")
    assert change({"hub": then["hub"]}, {"hub": hub, "protocol": protocol}) is None  # a record without a protocol


def test_previous_shape_is_upgraded(tmp_path):
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(OLDEST))
    r = records.read(path)
    assert r.complexity.params == records.Params(total=2_000_000, trainable=1_000_000)
    assert r.value == 40.0 and r.metrics["val"]["top1"] == 39.0 and r.timings.profile_s is None
    na = tmp_path / "na.json"
    na.write_text(json.dumps(record("a", "soup", 0, None, status="n/a", reason="needs a homogeneous hub")))
    assert records.read(na).status == records.INAPPLICABLE
    assert records.read(tmp_path / "none.json") is None


def test_a_record_made_before_training_steps_were_timed_as_trained_says_what_its_speed_timed(tmp_path):
    """Version 3 and earlier timed an SGD step of the deployed model whatever the method; the upgrade says so (and
    a record without a speed gains none)."""
    old = {**full("a", "distill", 0, 40.0), "schema": "hubbench.record/3"}
    assert records.from_json(old).complexity.speed.train_step == records.EARLY_TRAIN_STEP
    assert "deployed model" in records.EARLY_TRAIN_STEP
    assert records.from_json(OLDEST).complexity.speed is None


def test_round_trip_and_current_version(tmp_path):
    current = records.from_json(full("faces", "zoo_tuning", 1, 7.5, kind="landmarks"))
    path = records.write(tmp_path / "r.json", current)
    assert json.loads(path.read_text())["schema"] == "hubbench.record/5" and records.read(path) == current


@pytest.mark.parametrize("content, message", [
    ({"schema": "hubbench.record/99", "suite": "s"}, "written by a newer hubbench (schema hubbench.record/99; "
                                                     "this one reads up to hubbench.record/5)"),
    ('{"schema": "hubbench.record/5", "hub": ', "not valid JSON"),
    ({**OLDEST, "surprise": 1}, "unknown field(s) surprise in record"),
    ({"schema": "hubbench.record/5", "suite": "s"}, "missing"),
    ({**OLDEST, "status": "done"}, "record status 'done' is not one of ok, failed, inapplicable"),
    ([1, 2], "not a record (no schema)"),
])
def test_unreadable_files_are_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "seed0.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(records.RecordError) as error:
        records.read(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_results_csv_reads_back_typed_without_options(tmp_path):
    rs = [full("a", "finetune[model=x]", s, 50.0 + s) for s in (0, 1)]
    rs += [record("a", "soup", 0, None, status="n/a", reason="heterogeneous", kind="classification"),
           record("a", "broken", 0, None, status="failed", reason="RuntimeError: boom", kind="classification")]
    rs[0]["environment"]["cuda"] = "13.0"
    rs[0]["method"]["params"] = {"model": "x", "lr_mult": 2.0}
    rs[0]["metrics"] = {"val": {"top1": 49.0, "loss": 1.0}, "test": {"top1": 50.0, "loss": 0.9}}
    write(tmp_path / "r", rs)
    out = generate("s", tmp_path / "r", tmp_path / "lb")
    table = pd.read_csv(out / "results.csv")
    assert table.status.tolist() == ["failed", "ok", "ok", "inapplicable"]  # by hub, task, method, seed
    assert table.seed.dtype == "int64" and table.higher_is_better.dtype == bool
    for column in ("value", "val_top1", "test_top1", "hp_lr_mult", "gflops_fvcore", "params_total", "total_s"):
        assert pd.api.types.is_float_dtype(table[column]), column
    assert table.cuda[1] == "CUDA 13.0" and pd.api.types.is_string_dtype(table.cuda)
    assert table.hp_model[1] == "x" and table.compile[1] == "eager" and table.reason[0] == "RuntimeError: boom"
    assert not table.map(lambda v: isinstance(v, str) and v.startswith(("{", "["))).any().any()  # no JSON
    typed = pd.read_parquet(out / "results.parquet")
    assert list(typed.status.cat.categories) == list(records.STATUSES) and typed.flops_batch.dtype == "Int64"
    assert typed.columns.tolist() == table.columns.tolist()
    curves = pd.read_parquet(out / "curves.parquet")
    assert curves.columns.tolist() == ["record", "hub", "task", "method", "seed", "curve", "iteration", "value"]
    assert curves.iteration.dtype == "int64" and curves.seed.dtype == "int64"
    assert len(curves) == 2 * 6 and set(curves.record) == {"h/a/finetune[model=x]/seed0", "h/a/finetune[model=x]/seed1"}
    assert frame.results([records.from_json(r) for r in rs]).status.dtype == "category"


def test_leaderboard_skips_unreadable_records_with_a_warning(tmp_path, capsys):
    write(tmp_path / "r", [record("a", "m", 0, 1.0), record("a", "n", 0, 2.0)])
    newer, corrupt = tmp_path / "r/s/h/a/x/seed0.json", tmp_path / "r/s/h/a/y/seed0.json"
    for path, text in ((newer, '{"schema": "hubbench.record/6"}'), (corrupt, "{")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    (tmp_path / "r/s/.submitit").mkdir()
    (tmp_path / "r/s/.submitit/jobs.json").write_text('{"jobs": {}}')  # an executor's file: not a record
    (tmp_path / "r/s/h/a/y/seed1.json").write_text('{"schema": "hubbench.profile/1"}')  # another kind: ignored
    with to_stderr():  # as the command line shows the log
        readme = (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [f"hubbench leaderboard: warning: skipping {newer}: written by a newer hubbench (schema "
                        "hubbench.record/6; this one reads up to hubbench.record/5)",
                        f"hubbench leaderboard: warning: skipping {corrupt}: not valid JSON (Expecting property name "
                        "enclosed in double quotes: line 1 column 2 (char 1))"]
    assert "from 2 records" in readme and "| m |" in readme and "| n |" in readme


@pytest.fixture
def unreadable(tmp_path):
    """A two-cell suite whose first cell's record was written by a newer hubbench, the second's is corrupt."""
    suite = write_suite(tmp_path, methods=("scratch", "finetune[model=supervised]"))
    results = tmp_path / "results"
    cells = expand(Suite.load(str(suite)))
    contents = ['{"schema": "hubbench.record/6", "novel": true}\n', '{"schema": "hubbench.rec']
    for cell, text in zip(cells, contents, strict=True):
        cell.path(results).parent.mkdir(parents=True)
        cell.path(results).write_text(text)
    return suite, results, cells, contents


def test_run_refuses_before_any_cell_and_leaves_the_file(unreadable, capsys, tiny_hub):
    suite, results, cells, contents = unreadable
    assert main(["--plugin", str(PLUGIN), "run", "--suite", str(suite), "--results", str(results), "--force"]) == 2
    err = capsys.readouterr().err
    assert err == (f"hubbench: error: {cells[0].path(results)}: written by a newer hubbench (schema "
                   "hubbench.record/6; this one reads up to hubbench.record/5); move it away to run its cell again\n")
    assert [c.path(results).read_text() for c in cells] == contents
    assert sorted(p.name for p in results.rglob("*") if p.is_file()) == ["seed0.json", "seed0.json"]


def test_status_warns_and_tells_unreadable(unreadable, capsys, tmp_path, tiny_hub):
    _, results, cells, _ = unreadable
    with to_stderr():  # as the command line shows the log
        counts, lines = report(cells, results, tmp_path / "cache", {})
    assert counts == {"unreadable": 2} and all("unreadable" in line for line in lines[1:])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"hubbench status: warning: {cells[0].path(results)}: written by a newer hubbench "
                      "(schema hubbench.record/6; this one reads up to hubbench.record/5)")
    assert err[1].startswith(f"hubbench status: warning: {cells[1].path(results)}: not valid JSON")


def test_a_checkout_is_dirty_by_its_code_not_by_its_records_and_boards(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    for path in ("hubbench/code.py", "results/mini/seed0.json", "leaderboard/mini/README.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("0")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    (tmp_path / "results/mini/seed0.json").unlink()  # a rerun of a committed board replaces its records
    (tmp_path / "leaderboard/mini/README.md").write_text("1")
    (tmp_path / "notes.txt").write_text("untracked")
    assert git_state.__wrapped__(tmp_path).dirty is False
    (tmp_path / "hubbench/code.py").write_text("1")
    assert git_state.__wrapped__(tmp_path).dirty is True
