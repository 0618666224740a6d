"""No silent stretch: `rank`, `run --estimate` and a local `run` say something at least every progress interval
while a step that makes no progress stalls them, a cluster job's progress lines reach the client while it runs,
and the ETA of a resumed loop counts only what it trained since."""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import PLUGIN, ROOT, write_suite

from hubbench import logs, progress

GATE_PLUGIN = '''"""`digits` whose batches, for training and for feature extraction alike, are made once a gate file
exists: a stretch in which nothing progresses, for as long as the test likes."""
import os
import time
from pathlib import Path

from hubbench.tasks.base import TASKS, register
from hubbench.tasks.digits import Digits


def through_the_gate():
    gate = Path(os.environ["HUBBENCH_TEST_GATE"])
    gate.with_suffix(".reached").touch()
    while not gate.exists():
        time.sleep(0.05)


if "stalled-digits" not in TASKS:
    @register
    class StalledDigits(Digits):
        """`digits`, each batch made once the gate is open."""

        name = "stalled-digits"

        def finish_train(self, host):
            through_the_gate()
            return super().finish_train(host)

        def finish_eval(self, images):
            through_the_gate()
            return super().finish_eval(images)
'''
LIMIT_S = 600  # a process said nothing for that long: killed, and the test fails (not a measure of speed)


@pytest.fixture(scope="module")
def gated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "gate_plugin.py"
    path.write_text(GATE_PLUGIN)
    return path


def said_while_stalled(command: list[str], gate: Path, activity: str) -> tuple[str, str]:
    """Run `command` (its stderr read line by line) until it stalls at `gate`; open the gate once it has said twice
    what it is doing (`activity`, a pattern), as it says every progress interval (1 s). The command must then
    succeed; returns its stdout and stderr."""
    env = {**os.environ, "HUBBENCH_PROGRESS_S": "1", "HUBBENCH_TEST_GATE": str(gate)}
    out = gate.with_suffix(".out")
    with open(out, "w") as stdout:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(LIMIT_S, proc.kill)
    watchdog.start()
    lines, said = [], 0
    try:
        for line in proc.stderr:
            lines.append(line)
            if gate.with_suffix(".reached").exists() and not gate.exists():
                said += bool(re.search(activity, line))
                if said == 2:
                    gate.touch()
        assert proc.wait() == 0, "".join(lines[-30:])
    finally:
        watchdog.cancel()
    assert gate.exists(), "".join(lines[-30:])  # what it said while stalled opened it
    return out.read_text(), "".join(lines)


def hubbench_command(gated: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), "--plugin", str(gated), *args]


@pytest.mark.parametrize("command, activity", [
    (["rank", "--hub", "tiny", "--task", "stalled-digits", "--ranker", "logme"],
     r"computing the features of tiny/\w+ on stalled-digits: 0:\d\d:\d\d elapsed$"),
    (["run", "--suite", "{suite}", "--estimate", "--device", "cpu"],
     r"measuring the step times of tiny/stalled-digits/scratch/seed0: 0:\d\d:\d\d elapsed$"),
    (["run", "--suite", "{suite}", "--executor", "local", "--workers", "1", "--device", "cpu"],
     r"running tiny/stalled-digits/scratch/seed0: 0:\d\d:\d\d elapsed$"),
], ids=["rank", "run-estimate", "local-run"])
def test_a_stalled_step_is_no_silent_stretch(command, activity, gated, tmp_path):
    """The step makes no progress for as long as the test waits: the command says what it is doing, and for how
    long, every progress interval (here 1 s) until then. `--estimate` beside `run` says first how long measuring
    takes, then measures, prints the estimate and runs the cells."""
    suite = write_suite(tmp_path, tasks=("stalled-digits",), methods=("scratch",))
    args = [a.replace("{suite}", str(suite)) for a in command] + ["--results", str(tmp_path / "results")]
    out, err = said_while_stalled(hubbench_command(gated, *args), tmp_path / "gate", activity)
    if "--estimate" in command:
        forecast = re.search(r"\] measuring the step times of 1 methods on .+ \(1 threads\): about \d:\d\d:\d\d", err)
        measured = re.search(r"\] measured 1 of 1: tiny/stalled-digits/scratch, 1 training stages in \d+ s\n", err)
        assert forecast and measured and forecast.start() < measured.start(), err[-3000:]
        assert out.index("estimated device-hours") < out.index("ok      tiny/stalled-digits/scratch/seed0")


class Clock:
    """time.monotonic of the progress module, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_eta_of_a_resumed_loop_counts_only_the_steps_it_made(monkeypatch, capsys):
    """Resumed at 25 of 300, a first step of 10 s (loading, warming up), then 0.125 s a step: at 66, 234 steps to go
    at 8 a second, 29 s (not the 85 s of 41 steps in 15 s)."""
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    monkeypatch.setenv("HUBBENCH_PROGRESS_S", "5")
    monkeypatch.setattr(progress, "to_terminal", lambda: False)
    with logs.to_stderr():  # as the command line has it
        for i in progress.Lines(range(25, 300), total=300, initial=25, desc="stage"):
            clock.now += 10.0 if i == 25 else 0.125
            if i == 66:  # the line of the 66th step is said as the 67th starts
                break
    said = capsys.readouterr().err.splitlines()
    assert said[0].endswith("] stage: 26/300 it, 0:00:10 elapsed, ETA ?")  # one step: no rate yet
    assert said[1].endswith("] stage: 66/300 it, 0:00:15 elapsed, ETA 0:00:29")


def test_a_cluster_jobs_progress_lines_reach_the_client_while_it_runs(gated, tmp_path):
    """submitit's local cluster runs the job, as SLURM would: the client relays its cell's lines, with the job's
    id, while the job is stalled at the gate (a client that said them only at the end would never open it)."""
    suite = write_suite(tmp_path, tasks=("stalled-digits",), methods=("scratch",))
    client = f"""
import sys
from pathlib import Path
from hubbench import logs
from hubbench.benchmark.executors import Submitit, slurm_resources, submitit_folder
from hubbench.benchmark.plugins import load_plugins
from hubbench.benchmark.cells import expand
from hubbench.benchmark.runner import run_cells
from hubbench.benchmark.suites import Suite
plugins = [{str(PLUGIN)!r}, {str(gated)!r}]
load_plugins(plugins)
suite = Suite.load({str(suite)!r})
results = Path({str(tmp_path / "results")!r})
executor = Submitit(submitit_folder(results, suite.name), "t", slurm_resources(suite, {{}}, 1), cluster="local",
                    plugins=plugins)
with logs.to_stderr():  # a Python program shows hubbench's log where it likes: here as the command line does
    counts = run_cells(expand(suite), results, "cpu", executor=executor)
sys.exit(0 if counts == {{"ok": 1}} else 1)
"""
    said_while_stalled([sys.executable, "-c", client], tmp_path / "gate",
                       r"^\[\d\d:\d\d:\d\d\] job \d+: running tiny/stalled-digits/scratch/seed0: 0:\d\d:\d\d elapsed$")
