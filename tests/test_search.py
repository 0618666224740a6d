"""Hyper-parameter search as part of the protocol: successive halving and selection, the samplers, and searches run
end to end as units of a suite (trials never read the test split; a killed search resumes; a diverging trial is
recorded and the search goes on; the selection is reproducible bit for bit, and its final run is the plain run at
the selected setting)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import PLUGIN, ROOT, hubbench

from hubbench.search import Range, Result, Space, asks, promoted, selected

SEARCH_PLUGIN = '''
from hubbench.models import task_model
from hubbench.methods import Method
from hubbench.methods import register as register_method
from hubbench.tasks import TASKS
from hubbench.tasks.base import register
from hubbench.testing import register_tiny_tasks

register_tiny_tasks()


@register_method
class TwoStage(Method):
    """A new head trained alone, then the whole model: a method of two training stages."""

    name = "two_stage"
    description = "head first, then everything"

    def fit(self, ctx):
        model = task_model(ctx.hub.sources[0].backbone(pretrained=True), ctx.task)
        ctx.train(model, params=model.head.parameters(), key="head")
        return ctx.train(model)


@register
class Sealed(TASKS.get("tiny-scenes")):
    """tiny-scenes whose test split may not be read."""

    name = "sealed"

    def pixels(self, split):
        if split == "test":
            raise PermissionError("the test split was read")
        return super().pixels(split)
'''


def r(*values, failed=None):
    return Result((), dict(zip((2, 4), values, strict=False)), failed)


def test_successive_halving_keeps_the_best_of_each_rung_never_a_failed_trial():
    results = [r(50.0), r(70.0), r(60.0, failed="diverged"), r(70.0), r(40.0)]
    assert promoted(results, 2, 3, higher_is_better=True) == [1, 3]  # ceil(4 / 3) of the 4 that reached it; ties: both
    assert promoted(results, 2, 4, higher_is_better=True) == [1]  # the earlier of equals
    assert promoted(results, 2, 3, higher_is_better=False) == [0, 4]  # NME: lower is better
    assert promoted([r(1.0, failed="x")], 2, 3, True) == []


def test_the_selection_is_the_best_trial_that_completed_the_schedule():
    results = [r(90.0), r(50.0, 70.0), r(60.0, 70.0), r(10.0, failed="diverged")]
    assert selected(results, 4, True) == 1  # 90 was stopped at the first rung; 70 twice: the earlier
    assert selected(results, 4, False) == 1
    assert selected([r(1.0, failed="x")], 4, True) is None


def test_rungs_of_the_schedule():
    def space(**options):
        return Space({"lr": (0.1,)}, {}, **options)

    assert space().rungs(300) == [75, 225, 300]  # a quarter of the iterations, 3x further, the end
    assert space(first_rung=0.5, eta=2).rungs(4) == [2, 4]
    assert space(first_rung=0.1, eta=3).rungs(300) == [30, 90, 270, 300]
    assert space(pruner="none").rungs(300) == [300]


def test_a_samplers_settings_are_reproducible_and_follow_its_seed():
    domains = {"lr": Range(1e-3, 1.0, log=True), "optimizer": ("sgd", "adamw")}

    def ask(seed, sampler="random", told=()):
        return asks(Space(domains, {}, sampler=sampler, trials=4, seed=seed), domains, list(told), 4, 4, True)

    first = ask(0)
    assert first == ask(0) != ask(1) and len(first) == 4 and all(1e-3 <= dict(s)["lr"] <= 1 for s in first)
    told = [[Result(s, {4: float(i)}) for i, s in enumerate(ask(0, "tpe"))]]
    assert ask(0, "tpe", told) == ask(0, "tpe", told) != ask(0, "tpe")  # the next round, after the first's results


def write(tmp_path, name, methods, task="tiny-scenes", search=True, **protocol):
    protocol = {"iterations": 4, "eval_every": 2, "checkpoint_every": 1, "batch_size": 8, **protocol}
    lines = [f'description = "{name}"', 'hubs = ["tiny"]', f'tasks = ["{task}"]', f"methods = {json.dumps(methods)}",
             "seeds = [0]", "[protocol]", *(f"{k} = {v}" for k, v in protocol.items())]
    if search:
        lines += ["[protocol.search]", "lr = [0.01, 0.1, 1e30]  # the last diverges", "eta = 2",
                  "first_rung = 0.5"]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "search_plugin.py"
    path.write_text(SEARCH_PLUGIN)
    return path


def run(plugin, suite, results, cache, *more, check=True):
    return hubbench("--plugin", str(plugin), "run", "--suite", str(suite), "--results", str(results), *more,
                    env={**os.environ, "HUBBENCH_CACHE": str(cache)}, check=check)


def record(results, suite, method):
    return json.loads((results / suite / "tiny" / "tiny-scenes" / method / "seed0.json").read_text())


def without_seconds(obj):
    """A record's search or cost without wall-clock figures."""
    if isinstance(obj, dict):
        return {k: without_seconds(v) for k, v in obj.items() if k not in ("train_s", "cost_s")}
    if isinstance(obj, list):
        return [without_seconds(v) for v in obj]
    return obj


METHODS = ["finetune[model=supervised]", "scratch"]


def test_a_search_selects_reproducibly_goes_on_past_a_diverging_trial_and_ends_with_the_plain_run(plugin, tmp_path):
    suite = write(tmp_path, "tuned", METHODS)
    run(plugin, suite, tmp_path / "a", tmp_path / "cache-a")
    run(plugin, suite, tmp_path / "b", tmp_path / "cache-b", "--executor", "local", "--workers", "2")
    for method in ("finetune@model=supervised", "scratch"):
        a, b = record(tmp_path / "a", "tuned", method), record(tmp_path / "b", "tuned", method)
        assert a["status"] == "ok" and without_seconds(a["search"]) == without_seconds(b["search"])
        assert a["metrics"] == b["metrics"] and a["curves"] == b["curves"]
        search = a["search"]
        assert search["rungs"] == [2, 4] and search["failed"] == 1 and search["retrain"] == "train"
        diverged = next(t for t in search["trials"] if t["setting"] == {"lr": 1e30})
        assert diverged["status"] == "failed" and "became" in diverged["reason"]
        assert sorted(t["status"] for t in search["trials"]) == ["failed", "ok", "pruned"]
        assert "test_top1" not in a["curves"] and a["cost"]["total_s"] >= search["cost_s"] > 0
    finetune = record(tmp_path / "a", "tuned", "finetune@model=supervised")
    assert finetune["search"]["subject"] == "finetuned-supervised"  # the source's search, shared by its users
    lr = finetune["search"]["selected"]["lr"]
    plain = write(tmp_path, "plain", METHODS[:1], search=False)
    run(plugin, plain, tmp_path / "p", tmp_path / "cache-p", "--set", f"lr={lr}")
    assert record(tmp_path / "p", f"plain@lr={lr}", "finetune@model=supervised")["metrics"] == finetune["metrics"]
    status = hubbench("--plugin", str(plugin), "status", "--suite", str(suite), "--results", str(tmp_path / "a"),
                      "--list", env={**os.environ, "HUBBENCH_CACHE": str(tmp_path / "cache-a")}).stdout
    assert "tiny/tiny-scenes/trial:finetuned-supervised/lr=0.1/rung2/seed0" in status
    assert status.count("trial:scratch/") == 4 and "missing" not in status  # 3 at the first rung, 1 at the second


def test_trials_never_read_the_test_split(plugin, tmp_path):
    """A task whose test data raise on access completes every search; only the final runs read the test split."""
    suite = write(tmp_path, "sealed", METHODS, task="sealed")
    done = run(plugin, suite, tmp_path / "r", tmp_path / "cache", check=False)
    assert done.returncode == 1
    trials = sorted((tmp_path / "r" / "sealed" / "tiny" / "sealed" / "trial").rglob("seed0.json"))
    assert len(trials) == 8 and {json.loads(p.read_text())["status"] for p in trials} == {"ok", "failed"}
    assert all("the test split was read" not in p.read_text() for p in trials)
    for method in ("finetune@model=supervised", "scratch"):
        final = json.loads((tmp_path / "r" / "sealed" / "tiny" / "sealed" / method / "seed0.json").read_text())
        assert final["status"] == "failed" and "the test split was read" in final["reason"]


def test_a_search_killed_mid_way_resumes_without_redoing_its_finished_trials(plugin, tmp_path):
    suite = write(tmp_path, "tuned", ["scratch"], iterations=8, eval_every=4)
    results, cache = tmp_path / "r", tmp_path / "cache"
    trials = results / "tuned" / "tiny" / "tiny-scenes" / "trial" / "scratch"
    args = [sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), "--plugin", str(plugin), "run",
            "--suite", str(suite), "--results", str(results)]
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "HUBBENCH_CACHE": str(cache)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None and len(list(trials.rglob("seed0.json"))) < 2:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in trials.rglob("seed0.json")}
    assert 2 <= len(before) < 4 and not (results / "tuned" / "tiny" / "tiny-scenes" / "scratch").exists()
    run(plugin, suite, results, cache)
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == kept for p, kept in before.items())  # not run again
    run(plugin, suite, tmp_path / "whole", tmp_path / "cache-whole")
    resumed = record(results, "tuned", "scratch")
    whole = record(tmp_path / "whole", "tuned", "scratch")
    assert without_seconds(resumed["search"]) == without_seconds(whole["search"])
    assert resumed["metrics"] == whole["metrics"] and resumed["curves"] == whole["curves"]


def searched(r, selected, cost=30.0, failed=0, own=True):
    """Record `r` with a search that selected `selected` (its own, counted in its cost; or, `own=False`, a source's
    that a fine-tune adopts)."""
    trials = [{"setting": {"lr": lr}, "status": "ok" if {"lr": lr} == selected else "pruned", "values": {"10": 1.0}}
              for lr in (0.01, 0.1)]
    r["schema"] = "hubbench.record/5"
    r["search"] = {"subject": r["method"]["id"], "space": {"lr": [0.01, 0.1]}, "rungs": [10, 20], "retrain": "train",
                   "trials": trials, "selected": selected, "failed": failed, "cost_s": cost}
    if own:
        r["cost"] = {**r["cost"], "search_s": cost, "total_s": r["cost"]["total_s"] + cost}
    return r


def test_the_page_shows_each_selected_setting_and_the_search_cost_beside_the_accuracy(tmp_path):
    from test_leaderboard import full, render, rows

    records = [searched(full("t", "finetune[model=a]", 0, 80.0), {"lr": 0.1}, own=False),
               searched(full("t", "finetune[model=a]", 1, 82.0), {"lr": 0.01}, own=False),
               searched(full("t", "scratch", 0, 50.0), {"lr": 0.1}, cost=60.0, failed=1),
               searched(full("t", "scratch", 1, 52.0), {"lr": 0.1}, cost=40.0),
               full("t", "ensemble_i", 0, 85.0), full("t", "ensemble_i", 1, 86.0)]
    readme = render(tmp_path, records)
    table = rows(readme, "### Hyper-parameter search")
    assert set(table) == {"finetune[model=a]", "scratch"}  # ensemble_i searched nothing of its own
    assert table["scratch"] == ["51.00", "50.00", "2 (1 of 4 failed)", "lr=0.1"]  # Avg, cost, trials, per task
    assert table["finetune[model=a]"][-1] == "lr=0.01 ×1; lr=0.1 ×1"
    assert "+ those of its own search's trials" in readme and "65.00 (10.00 + 5.00 + 50.00)" in readme
    results = pd.read_csv(tmp_path / "lb" / "s" / "results.csv")
    assert results.search_selected.dropna().tolist() == ["lr=0.1", "lr=0.01", "lr=0.1", "lr=0.1"]
    untuned = render(tmp_path / "untuned", [full("t", "scratch", 0, 50.0)])
    assert "Hyper-parameter search" not in untuned and "(own + artifacts [+ own search])" in untuned


def test_the_rankers_are_judged_against_tuned_fine_tunes_where_the_suite_tunes_them():
    from test_leaderboard import full

    from hubbench import record as records
    from hubbench.leaderboard import frame, ranking
    from hubbench.leaderboard.board import boards, method_roles

    def board(rs):
        found = [records.from_json(r) for r in rs]
        return boards(frame.results(found), method_roles(found))[0]

    tuned = [searched(full("t", f"finetune[model={m}]", 0, 80.0), {"lr": 0.1}, own=False) for m in "ab"]
    assert ranking.judged(board(tuned)).startswith("every fine-tune tuned")
    assert ranking.judged(board([full("t", "finetune[model=a]", 0, 80.0)])) == (
        "fine-tunes at the suite's fixed protocol, untuned")


def test_a_method_of_two_stages_is_tuned_as_a_plain_run_at_its_selection(plugin, tmp_path):
    """Its later stage was built on the earlier one at the previous rung: continued to the next rung, the trial
    trains both stages again, so that the selected trial is the plain run at its setting."""
    suite = write(tmp_path, "tuned", ["two_stage"])
    run(plugin, suite, tmp_path / "r", tmp_path / "cache")
    tuned = record(tmp_path / "r", "tuned", "two_stage")
    kept = [t for t in tuned["search"]["trials"] if t["status"] == "ok"]
    assert len(kept) == 1 and set(kept[0]["values"]) == {"2", "4"}  # it went on from the first rung
    lr = tuned["search"]["selected"]["lr"]
    run(plugin, write(tmp_path, "plain", ["two_stage"], search=False), tmp_path / "p", tmp_path / "cache-p",
        "--set", f"lr={lr}")
    assert record(tmp_path / "p", f"plain@lr={lr}", "two_stage")["metrics"] == tuned["metrics"]


def test_rows_of_train_then_val():
    import torch

    from hubbench.tasks import TASKS

    task = TASKS.get("digits")()
    n = len(task.splits["train"])
    idx = torch.tensor([n + 1, 0, n, 3])
    images, targets = task.joined(("train", "val"), idx)
    train, val = task.splits["train"], task.splits["val"]
    assert torch.equal(images, torch.stack([val.images[1], train.images[0], val.images[0], train.images[3]]))
    assert targets.tolist() == [val.targets[1], train.targets[0], val.targets[0], train.targets[3]]


def test_a_final_run_on_train_and_validation_reads_both_and_only_it(tiny_hub, tmp_path, monkeypatch):
    """retrain = "train+val": the trials fit on train, the final run (a new training at the selected setting) on
    train and validation, with test curves (validation is training data there)."""
    import torch
    from conftest import write_suite

    from hubbench.benchmark.cells import expand
    from hubbench.benchmark.runner import run_cell
    from hubbench.benchmark.suites import Suite
    from hubbench.tasks.base import Task

    fitted_on = []
    original = Task.stage_train

    def spy(self, idx, g, splits=("train",)):
        fitted_on.append(splits)
        return original(self, idx, g, splits)

    monkeypatch.setattr(Task, "stage_train", spy)
    path = write_suite(tmp_path, methods=("scratch",), iterations=4, eval_every=2)
    path.write_text(path.read_text() + '[protocol.search]\nlr = [0.01, 0.1]\nretrain = "train+val"\nfirst_rung = 0.5\n')
    (cell,) = expand(Suite.load(str(path)))
    status, record = run_cell(cell, tmp_path / "r", torch.device("cpu"))
    assert status == "ok" and record.search.retrain == "train+val" and record.search.rungs == [2, 4]
    trials, final, profiler = [("train",)] * (2 * 2 + 2), [("train", "val")] * 4, [("train",)]
    assert fitted_on == trials + final + profiler
    assert set(record.curves) == {"train_loss", "test_top1"} and record.cost.train_s > 0
