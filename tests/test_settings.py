"""The library apart from the command line: its settings come from one module (the environment read there only)
and reach worker processes with their jobs; `run_cells` checks its inputs before any cell, for any caller; library
code logs rather than prints."""

import logging
import re
from pathlib import Path

import pytest
from conftest import PLUGIN, ROOT, write_suite

from hubbench import record as records
from hubbench.benchmark.cells import expand
from hubbench.benchmark.executors import LocalPool
from hubbench.benchmark.runner import run_cells
from hubbench.benchmark.status import report
from hubbench.benchmark.suites import Suite
from hubbench.errors import InputError
from hubbench.settings import VARIABLES, Settings, current, using

LAYERS = ("hubbench", "benchmark", "hubs", "tasks", "methods", "rankers", "leaderboard", "examples")
VARIABLE = re.compile(r"HUBBENCH_[A-Z_]+(?![\w.])")  # a name followed by a suffix is a file's (HUBBENCH_SYNTHETIC.txt)


def test_only_the_settings_module_names_the_environment_variables():
    files = [p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")]
    naming = sorted(str(p.relative_to(ROOT)) for p in files if VARIABLE.search(p.read_text()))
    assert naming == ["hubbench/settings.py"]
    assert set(VARIABLE.findall((ROOT / "hubbench/settings.py").read_text())) == set(VARIABLES.values())


def test_settings_from_the_environment(tmp_path):
    default = Settings.from_environment({})
    assert default == Settings(Path.home() / ".cache/hubbench", Path.home() / "data", None, False, 30.0)
    given = {"HUBBENCH_CACHE": str(tmp_path), "HUBBENCH_DATA_DIR": "~/d", "HUBBENCH_WEIGHTS_DIR": "w",
             "HUBBENCH_RANDOM_WEIGHTS": "1", "HUBBENCH_PROGRESS_S": "0"}
    assert Settings.from_environment(given) == Settings(tmp_path, Path.home() / "d", Path("w"), True, 0.0)
    assert not Settings.from_environment({"HUBBENCH_RANDOM_WEIGHTS": "0"}).random_weights
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(InputError, match=rf"\$HUBBENCH_PROGRESS_S must be a number of seconds .* got '{bad}'"):
            Settings.from_environment({"HUBBENCH_PROGRESS_S": bad})
    with using(default.replace(progress_s=5.0)) as inner:
        assert current() is inner
    assert current() == Settings.from_environment()


def test_worker_processes_get_the_settings_with_their_jobs(tiny_hub, tmp_path, monkeypatch):
    """The cells run in a spawned worker under the settings in use where they were submitted, not under the
    worker's environment."""
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "environment-cache"))
    suite = Suite.load(str(write_suite(tmp_path, methods=("scratch",))))
    with using(current().replace(cache=tmp_path / "cache")):
        counts = run_cells(expand(suite), tmp_path / "results", "cpu", executor=LocalPool(1, plugins=[str(PLUGIN)]))
    assert counts == {"ok": 1}
    assert (tmp_path / "cache/locks").is_dir() and not (tmp_path / "environment-cache").exists()


def test_run_cells_checks_every_record_before_any_cell(tiny_hub, tmp_path):
    suite = Suite.load(str(write_suite(tmp_path, methods=("scratch", "finetune[model=supervised]"))))
    cells, results = expand(suite), tmp_path / "results"
    cells[1].path(results).parent.mkdir(parents=True)
    cells[1].path(results).write_text("{")
    with pytest.raises(records.RecordError, match="not valid JSON"):
        run_cells(cells, results, "cpu")
    assert not cells[0].path(results).exists()


def test_library_messages_are_logged_not_printed(tiny_hub, tmp_path, capsys, caplog):
    [cell] = expand(Suite.load(str(write_suite(tmp_path, methods=("scratch",)))))
    cell.path(tmp_path).parent.mkdir(parents=True)
    cell.path(tmp_path).write_text("{")
    with caplog.at_level(logging.WARNING, logger="hubbench"):
        assert report([cell], tmp_path, tmp_path / "cache", {})[0] == {"unreadable": 1}
    assert capsys.readouterr().err == ""
    [logged] = caplog.records
    assert logged.levelname == "WARNING" and logged.message.startswith(
        f"hubbench status: warning: {cell.path(tmp_path)}: not valid JSON")
