"""Everything checkable is checked before any cell starts: one line on stderr, exit code 2, nothing written.
Faults of a running command (a full disk) end with one line too, and leave the earlier records intact."""

import errno
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import PLUGIN, ROOT, write_suite
from test_paper_cls import dmlab

from hubbench.benchmark.cli import main
from hubbench.tasks import TASKS
from hubbench.tasks.base import _SPLITS


def files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*"))


@pytest.fixture
def quiet_dir(tmp_path, monkeypatch):
    """A working directory and cache of the test's own, to see that nothing is written to either."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def refused(capsys, args, message, root, lines=1):
    """`hubbench ARGS` exits 2 with one line on stderr (or one error of `lines` lines) holding `message`, and
    writes nothing under `root`."""
    before = files(root)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == lines and "error: " in err and message in err, err
    assert files(root) == before


@pytest.mark.parametrize("protocol, message", [
    ({"iterations": 0}, "protocol field 'iterations' must be at least 1, got 0"),
    ({"lr": -0.1}, "protocol field 'lr' must be a positive number, got -0.1"),
    ({"batch_size": 0}, "protocol field 'batch_size' must be at least 1, got 0"),
    ({"milestones": [0.5, 1.5]}, "protocol field 'milestones' must be fractions of the iterations, each in (0, 1]"),
    ({"eval_every": -1}, "protocol field 'eval_every' must be at least 0"),
    ({"checkpoint_every": 0}, "protocol field 'checkpoint_every' must be at least 1, got 0"),
    ({"momentum": 1.5}, "protocol field 'momentum' must be in [0, 1), got 1.5"),
    ({"flip": 1}, "protocol field 'flip' expects bool, got 1"),
])
def test_bad_protocol_values_in_a_suite(protocol, message, quiet_dir, capsys):
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",), **protocol)
    refused(capsys, ["run", "--suite", str(suite)], message, quiet_dir)


@pytest.mark.parametrize("sets, message", [
    (["iterations=0"], "--set: protocol field 'iterations' must be at least 1, got 0"),
    (["lr=0"], "--set: protocol field 'lr' must be a positive number, got 0.0"),
    (["itrations=3"], "--set: unknown protocol field 'itrations' (choose from: iterations,"),
    (["lr=fast"], "--set 'lr=fast': 'fast' is not a value"),
    (["iterations"], "--set 'iterations': expected KEY=VALUE"),
])
def test_bad_overrides(sets, message, quiet_dir, capsys):
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",))
    args = [a for s in sets for a in ("--set", s)]
    refused(capsys, ["run", "--suite", str(suite), *args], message, quiet_dir)
    refused(capsys, ["status", "--suite", str(suite), *args], message, quiet_dir)


def test_bad_output_paths(quiet_dir, capsys):
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",))
    (quiet_dir / "afile").write_text("")
    for results in ("afile", "afile/below"):
        refused(capsys, ["run", "--suite", str(suite), "--results", results],
                f"--results {results}: afile is not a directory", quiet_dir)
    refused(capsys, ["leaderboard", "--out", "afile"], "--out afile: afile is not a directory", quiet_dir)
    refused(capsys, ["profile", "--hub", "mini", "--task", "digits", "--method", "scratch", "--out", "afile/p.json"],
            "--out afile: afile is not a directory", quiet_dir)


def test_bad_cache_directory(quiet_dir, capsys, monkeypatch):
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",))
    (quiet_dir / "afile").write_text("")
    monkeypatch.setenv("HUBBENCH_CACHE", str(quiet_dir / "afile"))
    refused(capsys, ["run", "--suite", str(suite)], "the cache directory ($HUBBENCH_CACHE)", quiet_dir)


def test_read_only_cache_directory(quiet_dir, capsys, monkeypatch):
    """`hub build --from-scratch` into a cache it cannot write: one line naming it, not an errno after minutes of
    pre-training (chmod cannot stop root, who runs CI containers: `os.access` says no instead)."""
    cache = quiet_dir / "cache"
    cache.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: path != cache and access(path, mode, **kw))
    refused(capsys, ["hub", "build", "mini", "--from-scratch"],
            f"the cache directory ($HUBBENCH_CACHE) {cache}: {cache} is not writable", quiet_dir)


def test_unreadable_suite_file(quiet_dir, capsys, monkeypatch):
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",))
    read_text = type(suite).read_text

    def denied(path, *args, **kw):  # chmod 000 cannot stop root, who runs CI containers
        if path == suite:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return read_text(path, *args, **kw)

    monkeypatch.setattr(type(suite), "read_text", denied)
    refused(capsys, ["run", "--suite", str(suite)], f"cannot read suite file {suite}: Permission denied", quiet_dir)


def test_missing_hub_weights_are_one_error_before_any_cell(quiet_dir, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(quiet_dir / "torch"))
    monkeypatch.delenv("HUBBENCH_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setenv("HUBBENCH_WEIGHTS_DIR", "")  # --weights-dir sets it: restored after the test
    (quiet_dir / "weights").mkdir()
    suite = write_suite(quiet_dir, hubs=("resnet50-zoo",), methods=("finetune",))
    refused(capsys, ["run", "--suite", str(suite), "--weights-dir", "weights"],  # one line per missing file
            "hubbench: error: hub 'resnet50-zoo' needs 5 checkpoint files, 5 missing:\n  resnet50-19c8e357.pth",
            quiet_dir, lines=10)


def test_slurm_without_sbatch(quiet_dir, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(quiet_dir / "empty"))
    suite = write_suite(quiet_dir, hubs=("mini",), methods=("scratch",))
    refused(capsys, ["run", "--suite", str(suite), "--executor", "slurm"],
            "--executor slurm: SLURM's sbatch is not on this machine's PATH", quiet_dir)
    assert main(["run", "--suite", str(suite), "--executor", "slurm", "--dry-run"]) == 0  # a dry run needs no SLURM


def test_unknown_state_filter(quiet_dir, capsys):
    refused(capsys, ["status", "--suite", "smoke", "--state", "finished"], "unknown state 'finished' (choose from: "
            "done, failed, n/a, stale, queued, running, interrupted, unreadable, missing)", quiet_dir)


@pytest.fixture
def small_dmlab(tmp_path, monkeypatch):
    """DMLab with 5 training images per class: 10% of each class, rounded, holds out none for val."""
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(tmp_path / "data"))
    dmlab(tmp_path / "data" / "dmlab", per_class=5)
    _SPLITS.pop(TASKS.get("dmlab"), None)
    yield
    _SPLITS.pop(TASKS.get("dmlab"), None)


def test_an_empty_split_is_refused_before_any_cell(small_dmlab, quiet_dir, capsys, tiny_hub):
    suite = write_suite(quiet_dir, tasks=("dmlab",), methods=("scratch",))
    refused(capsys, ["--plugin", str(PLUGIN), "run", "--suite", str(suite)],
            "no class has 6 or more training images, so holding out 10% of each (rounded) leaves the val split empty",
            quiet_dir)


def test_an_empty_split_of_any_task_is_an_error():
    class Empty(TASKS.get("scenes")):
        name = "empty"

        def make_splits(self):
            splits = super().make_splits()
            return {**splits, "test": type(splits["test"])(splits["test"].images[:0], splits["test"].targets[:0])}

    with pytest.raises(ValueError, match=r"task 'empty': empty split \(test\): train 160, val 160, test 0 images"):
        Empty().splits  # noqa: B018


@pytest.mark.parametrize("full_at", ["record", "checkpoint"])
def test_a_full_disk_ends_with_one_line_and_earlier_records_intact(full_at, tiny_hub, quiet_dir, capsys,
                                                                   monkeypatch):
    """The second cell's disk fills up at its record, or at a checkpoint while it trains (then it is no
    'failed' record either: the machine failed, not the method)."""
    suite = write_suite(quiet_dir, methods=("scratch", "finetune[model=supervised]"))
    first = quiet_dir / "results/tiny/tiny/digits/scratch/seed0.json"
    second = quiet_dir / "results/tiny/tiny/digits/finetune@model=supervised/seed0.json"
    replace = os.replace

    def full(src, dst):
        if str(dst).endswith("finetune@model=supervised/seed0.json" if full_at == "record" else ".ckpt") and (
                first.exists()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    assert main(["run", "--suite", str(suite)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(r"hubbench: error: \[Errno 28\] cannot write (\S+): No space left on device; the records "
                        r"written before it are intact, rerun to resume", err[-1]), err[-1]
    assert re.search(r"seed0\.json:" if full_at == "record" else r"\.ckpt:", err[-1])
    assert not [line for line in err if "Traceback" in line]
    assert json.loads(first.read_text())["status"] == "ok" and not second.exists()
    assert full_at == "checkpoint" or not second.parent.exists(), "the failed write left its empty cell folder"
    assert not list(quiet_dir.rglob("*.tmp"))


def test_status_piped_into_a_reader_that_left_is_quiet(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `head` does once it has its lines; closed before the child exists, so no race
    status = subprocess.run([sys.executable, "-m", "hubbench.benchmark", "status", "--suite", "smoke", "--list",
                             "--results", str(tmp_path)], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    assert status.returncode == 141 and status.stderr.decode() == ""
