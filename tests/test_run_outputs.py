"""What a run says and leaves: progress lines in a log, files others can read, suite variants made by
`--set`, the status summary and its filters, and cached artifacts invalidated on request."""

import json
import os
import re
import stat
import subprocess
import sys

from conftest import PLUGIN, ROOT, hubbench, write_suite

from hubbench import record as records
from hubbench.benchmark.cli import main
from hubbench.io import write_json


def unreadable(root):
    """Files and folders under `root` that group or others cannot read."""
    return [p for p in root.rglob("*") if p.stat().st_mode & 0o044 != 0o044]


def test_a_run_outside_a_terminal_logs_progress_and_writes_readable_files(tmp_path):
    suite = write_suite(tmp_path, methods=("scratch",))
    results, cache, record = tmp_path / "results", tmp_path / "cache", None
    env = {**os.environ, "HUBBENCH_CACHE": str(cache), "HUBBENCH_PROGRESS_S": "0"}  # a line per step
    cmd = [sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), "run", "--suite", str(suite),
           "--results", str(results), "--set", "iterations=8"]
    run = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: os.umask(0o022))
    record = results / "tiny@iterations=8/tiny/digits/scratch/seed0.json"
    lines, seen_while_training = [], False
    for line in run.stderr:
        lines.append(line)
        if re.search(r"tiny@iterations=8/tiny/digits/scratch/seed0 model: [1-7]/8 it", line):
            seen_while_training |= not record.exists()
    assert run.wait() == 0, "".join(lines)
    assert seen_while_training, "".join(lines)
    start = next(i for i, line in enumerate(lines) if line.endswith("] start tiny/digits/scratch/seed0\n"))
    end = next(i for i, line in enumerate(lines) if line.endswith("] end tiny/digits/scratch/seed0: ok\n"))
    progress = [line for line in lines[start:end] if " model: " in line]
    assert len(progress) == 8 and re.search(r"4/8 it, loss \d+\.\d+, 0:00:\d\d elapsed, ETA 0:00:\d\d$",
                                            progress[3].strip())

    saved = json.loads(record.read_text())  # the variant's records are its own, with the override in the config
    assert saved["suite"] == "tiny@iterations=8" and saved["config"]["suite_protocol"]["iterations"] == 8
    assert saved["config"]["task"]["protocol"]["iterations"] == 8 and saved["curves"]["train_loss"][-1][0] == 8
    assert saved["method"]["role"] == "from-scratch"  # as the method declares it, for the leaderboard

    (results / "profile/tiny/digits").mkdir(parents=True)  # `hubbench profile` output: not a suite
    write_json(results / "profile/tiny/digits/scratch.json", {"schema": "hubbench.profile/1"})
    board = subprocess.run([sys.executable, "-m", "hubbench.benchmark", "leaderboard", "--results", str(results),
                            "--out", str(tmp_path / "lb")], cwd=ROOT, capture_output=True, text=True,
                           preexec_fn=lambda: os.umask(0o022))
    assert board.returncode == 0 and board.stdout == f"{tmp_path / 'lb/tiny@iterations=8/README.md'}\n", board.stderr
    assert unreadable(results) == unreadable(cache) == unreadable(tmp_path / "lb") == []


def test_atomic_writes_follow_the_umask(tmp_path):
    code = ("import os, sys; os.umask(int(sys.argv[2], 8)); from hubbench.io import write_json; "
            "write_json(sys.argv[1], {})")
    for umask, mode in (("022", 0o644), ("027", 0o640), ("077", 0o600)):
        path = tmp_path / f"{umask}.json"
        subprocess.run([sys.executable, "-c", code, str(path), umask], check=True)
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_leaderboard_takes_the_suite_forms_of_run(tmp_path, capsys):
    suite = write_suite(tmp_path, "mine", hubs=("mini",), methods=("scratch",))
    records.write(tmp_path / "r/mine@lr=0.5/h/t/m/seed0.json", records.Record(
        "mine@lr=0.5", "h", "t", "k", records.PluginId("m", "m"), 0, records.OK, records.Metric("top1", value=1.0)))
    args = ["leaderboard", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "lb")]
    assert main([*args, "--suite", str(suite), "--set", "lr=0.5"]) == 0  # a suite file and a variant of it
    assert main([*args, "--suite", "mine@lr=0.5"]) == 0  # its folder's name
    assert capsys.readouterr().out == f"{tmp_path / 'lb/mine@lr=0.5/README.md'}\n" * 2


def test_status_summarises_and_filters(tiny_hub, tmp_path, capsys):
    suite = write_suite(tmp_path, methods=("scratch", "finetune"), seeds=(0, 1))
    results = tmp_path / "results"
    for seed, status, reason in ((0, records.OK, None), (1, records.FAILED, "boom")):
        records.write(results / f"tiny/tiny/digits/scratch/seed{seed}.json", records.Record(
            "tiny", "tiny", "digits", "classification", records.PluginId("scratch", "scratch"), seed, status,
            records.Metric("top1", value=50.0), reason=reason))
    args = ["status", "--suite", str(suite), "--results", str(results)]

    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"tiny: {2 * (1 + len(tiny_hub.sources))} cells: 1 done, 1 failed, 10 missing"
    assert re.fullmatch(r"hub  method +done +failed +missing", out[1])
    assert re.fullmatch(r"tiny  scratch +1 +1 +0", out[2])
    assert re.fullmatch(r"tiny  finetune\[model=supervised\] +0 +0 +2", out[3]) and len(out) == 2 + 6

    assert main([*args, "--state", "failed", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "tiny: 1 cells: 1 failed" and len(out) == 3
    assert re.fullmatch(r"tiny/digits/scratch/seed1 +failed +boom", out[2])

    assert main([*args, "--method", "finetune[model=selfsup]", "--seed", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "tiny: 1 cells: 1 missing"


def test_retrain_artifacts_trains_the_cells_artifacts_again(tiny_hub, tmp_path):
    suite = write_suite(tmp_path, methods=("finetune[model=supervised]", "scratch"))
    env = {**os.environ, "HUBBENCH_CACHE": str(tmp_path / "cache")}
    run = ["run", "--suite", str(suite), "--results", str(tmp_path / "results")]
    hubbench(*run, env=env)
    [artifact] = (tmp_path / "cache/artifacts/tiny/digits").glob("finetuned-supervised-seed0-*.pt")
    trained = artifact.stat().st_mtime_ns
    out = hubbench(*run, "--retrain-artifacts", "--method", "finetune", env=env).stdout
    assert "tiny: 1 cells: 1 ok" in out and artifact.stat().st_mtime_ns != trained
