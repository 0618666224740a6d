"""Bad input is `hubbench.errors.InputError`, and only that is one line and exit code 2: any other exception,
a ValueError of a method included, keeps its traceback (in the cell's record, or out of the command). The buggy
method runs in subprocesses, as a user's plugin: registered here, it would join the tests that run every method."""

import json
from pathlib import Path

import pytest
from conftest import hubbench, write_suite

from hubbench.benchmark.cli import main
from hubbench.leaderboard import generate

BUGGY_PLUGIN = '''
from hubbench.methods import Method, register

@register
class Buggy(Method):
    name = "buggy"
    description = "a method with a bug that raises ValueError"

    def fit(self, ctx):
        raise ValueError("a bug in fit")
'''


@pytest.fixture(scope="module")
def buggy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "buggy_plugin.py"
    path.write_text(BUGGY_PLUGIN)
    return path


def test_a_value_error_inside_fit_is_a_failed_record_with_its_traceback(buggy, tmp_path):
    suite = write_suite(tmp_path, methods=("buggy",))
    args = ["--plugin", str(buggy), "run", "--suite", str(suite), "--results", str(tmp_path / "results")]
    run = hubbench(*args, check=False)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stderr
    record = json.loads((tmp_path / "results/tiny/tiny/digits/buggy/seed0.json").read_text())
    assert record["status"] == "failed" and record["reason"] == "ValueError: a bug in fit"
    assert 'raise ValueError("a bug in fit")' in record["traceback"]
    assert "1 skipped" in hubbench(*args).stdout  # not a bad input file: a plain rerun keeps the record


def test_a_value_error_of_a_command_keeps_its_traceback(buggy, tmp_path):
    """`hubbench profile` runs the method's `fit` itself: its ValueError leaves the command with its traceback
    (exit code 1), not as one line of bad input (exit code 2)."""
    run = hubbench("--plugin", str(buggy), "profile", "--hub", "tiny", "--task", "digits", "--method", "buggy",
                   "--device", "cpu", "--out", str(tmp_path / "p.json"), check=False)
    assert run.returncode == 1 and "error:" not in run.stderr
    assert "Traceback (most recent call last)" in run.stderr and run.stderr.endswith("ValueError: a bug in fit\n")


def test_the_leaderboard_reports_only_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    assert generate.run(["nope"], tmp_path, tmp_path / "lb") == 2
    err = capsys.readouterr().err
    assert err == f"hubbench leaderboard: error: no records for suite 'nope' under {tmp_path / 'nope'}\n"

    def bug(*args):
        raise ValueError("a bug in the leaderboard")

    monkeypatch.setattr(generate, "generate", bug)
    with pytest.raises(ValueError, match="a bug in the leaderboard"):
        generate.run(["nope"], tmp_path, tmp_path / "lb")


def test_a_bad_progress_interval_is_one_line_before_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HUBBENCH_PROGRESS_S", "soon")
    assert main(["run", "--suite", "smoke", "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == "hubbench: error: $HUBBENCH_PROGRESS_S must be a number of seconds (0 or " \
                                      "more), got 'soon'\n"
    assert not (tmp_path / "results").exists()
