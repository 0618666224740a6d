"""Ranking cells: the public common checks (hubbench.testing) every registered ranker passes, the shared caches,
and selection through the runner, the executors' jobs and the CLI."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import PLUGIN, hubbench, write_suite
from helpers import make_task

from hubbench import record as records
from hubbench.benchmark.cells import expand
from hubbench.benchmark.executors import CellJob
from hubbench.benchmark.rank_cmd import tune_cell, tune_method
from hubbench.benchmark.suites import Suite
from hubbench.io import cache_dir
from hubbench.methods.finetune import Finetune
from hubbench.rankers import RANKERS, ranking
from hubbench.testing import parametrize_with_ranker_checks, registered_rankers

SMALL = {"iterations": 4, "eval_every": 2, "checkpoint_every": 2}
CLASSIFIERS = {"supervised", "selfsup"}  # the tiny hub's sources pre-trained to classify whole images


@parametrize_with_ranker_checks(registered_rankers())
def test_common_ranker_checks(ranker, check):
    check(ranker)


@pytest.mark.parametrize("ranker_name", RANKERS.names())
def test_a_ranker_reading_the_source_classifier_scores_only_the_sources_that_have_one(ranker_name, tiny_hub):
    cpu = torch.device("cpu")
    got = ranking(RANKERS.get(ranker_name)(), tiny_hub, make_task("digits"), cache=cache_dir(), device=cpu)
    assert set(got.scores) == (CLASSIFIERS if ranker_name in ("leep", "nce") else set(tiny_hub.names))
    assert all(got.reasons[s] for s in set(tiny_hub.names) - set(got.scores))


def test_features_are_computed_once_and_shared_by_rankers_and_seeds(tiny_hub):
    task, cache, cpu = make_task("shapes"), cache_dir(), torch.device("cpu")
    first = ranking(RANKERS.get("logme")(), tiny_hub, task, cache=cache, device=cpu)
    files = sorted((cache / "features" / "tiny" / "shapes").glob("*.pt"))
    assert len(files) == len(tiny_hub.names)
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = ranking(RANKERS.get("hscore")(), tiny_hub, task, cache=cache, device=cpu)
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # loaded, not recomputed
    assert first.features == second.features  # same keys and recorded cost
    again = ranking(RANKERS.get("logme")(), tiny_hub, task, cache=cache, device=cpu)
    assert again.scores == first.scores and all(torch.equal(again.weights[s], first.weights[s]) for s in first.weights)
    assert first.weights["supervised"].shape == (task.num_classes, 128)  # LogME's posterior means [C, D]


def test_ranking_cells_come_first_and_are_selected_and_run_as_executor_jobs(tiny_hub, tmp_path):
    suite = Suite("sel", "", ("tiny",), ("digits",), ("scratch",), (0, 1), SMALL, rankers=("logme", "hscore"))
    cells = expand(suite)
    assert [c.entry for c in cells] == ["rank:logme", "rank:hscore", "scratch"] * 2
    assert [c.id for c in expand(suite, methods=["logme"], seeds=[1])] == ["tiny/digits/rank:logme/seed1"]
    job = CellJob.of(cells[0], tmp_path, "cpu")
    assert job.cell() == cells[0]
    status, detail, _ = job()  # what a worker process or a cluster job runs
    assert status == "ok" and detail.startswith("top=")
    assert records.read(cells[0].path(tmp_path), records.RankingRecord).order[0] == detail[len("top="):]
    assert cells[0].path(Path("r")).parts[-3:] == ("rank", "logme", "seed0.json")


def test_a_suite_may_not_name_a_ranker_and_a_method_alike(tmp_path):
    with pytest.raises(ValueError, match="'rankers' must be a list"):
        Suite.from_dict("s", {"hubs": ["mini"], "tasks": ["digits"], "methods": ["scratch"], "rankers": "logme"})
    with pytest.raises(LookupError, match="unknown ranker 'nope'"):
        Suite.from_dict("s", {"hubs": ["mini"], "tasks": ["digits"], "methods": ["scratch"], "rankers": ["nope"]})


def test_cli_runs_ranking_cells_and_the_leaderboard_judges_them(tmp_path):
    assert all(f"ranker {n}" in hubbench("list", "rankers").stdout for n in ("logme", "leep", "nce", "hscore"))
    suite = write_suite(tmp_path, methods=("finetune",))
    suite.write_text(suite.read_text().replace('seeds = ', 'rankers = ["logme", "leep"]\nseeds = '))
    results = tmp_path / "r"
    out = hubbench("run", "--suite", str(suite), "--results", str(results), "--method", "rank:leep").stdout
    assert "1 ok" in out and "top=" in out
    status = hubbench("status", "--suite", str(suite), "--results", str(results)).stdout
    assert "1 done" in status and any(line.split()[:3] == ["tiny", "rank:leep", "1"] for line in status.splitlines())
    hubbench("run", "--suite", str(suite), "--results", str(results))
    hubbench("leaderboard", "--results", str(results), "--out", str(tmp_path / "lb"))
    readme = (tmp_path / "lb/tiny/README.md").read_text()
    assert "Ranking the hub's models before tuning" in readme
    assert "| rank then tune: logme |" in readme and "| leep |" in readme
    assert (tmp_path / "lb/tiny/figures/tiny-classification-ranking.png").exists()
    assert (tmp_path / "lb/tiny/rankings.csv").read_text().startswith("hub,kind,task,ranker,seed,source,score")


def test_a_ranking_goes_stale_when_its_features_would_change_and_run_refuses_it(tiny_hub, tmp_path, capsys):
    """A ranking trains nothing, but its features are the images at the protocol's size: another `image_size` in
    the suite makes its record stale (status says so, run refuses to keep it); another number of iterations
    does not."""
    from hubbench.benchmark.cli import main

    suite = write_suite(tmp_path, methods=("scratch",))
    suite.write_text(suite.read_text().replace("seeds = ", 'rankers = ["logme"]\nseeds = '))
    grid = ["--plugin", str(PLUGIN), "--suite", str(suite), "--results", str(tmp_path / "r")]
    assert main(["run", *grid, "--method", "logme"]) == 0
    ranked = next((tmp_path / "r").rglob("rank/logme/seed0.json"))
    kept = ranked.read_bytes()
    listing = ["status", *grid, "--method", "logme", "--list"]
    suite.write_text(suite.read_text().replace("iterations = 6", "iterations = 8"))
    capsys.readouterr()
    assert main(listing) == 0 and capsys.readouterr().out.splitlines()[-1].split()[:2] == [
        "tiny/digits/rank:logme/seed0", "done"]
    suite.write_text(suite.read_text() + "image_size = 24\n")
    assert main(listing) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.split()[:2] == ["tiny/digits/rank:logme/seed0", "stale"] and "protocol.image_size: 32 -> 24" in line
    assert main(["run", *grid, "--method", "logme"]) == 2
    err = capsys.readouterr().err
    assert "the record of tiny/digits/rank:logme/seed0 was made under another configuration " \
           "(protocol.image_size: 32 -> 24)" in err and err.count("\n") == 1
    assert ranked.read_bytes() == kept
    assert main(["run", *grid, "--method", "logme", "--rerun-stale"]) == 0
    assert records.read(ranked, records.RankingRecord).config.task["protocol"]["image_size"] == 24


PLUGIN_RANKER = '''
from hubbench.rankers import Ranker, Score, register


@register
class FeatureNorm(Ranker):
    """The mean feature norm (a plugin's ranker)."""

    name = "feature_norm"
    description = "mean norm of the pooled features"
    power: float = 2.0

    def score(self, features, targets):
        return Score(features.features.norm(p=self.power, dim=1).mean().item())
'''


@pytest.mark.parametrize("how", ["plugin", "entry_point"])
def test_an_external_ranker_is_listed_and_runs(how, tmp_path):
    import os

    env, args = dict(os.environ), []
    if how == "plugin":
        (tmp_path / "norm_ranker.py").write_text(PLUGIN_RANKER)
        args = ["--plugin", str(tmp_path / "norm_ranker.py")]
    else:
        site = tmp_path / "site"
        dist = site / "norm_ranker-0.1.dist-info"
        dist.mkdir(parents=True)
        (site / "norm_ranker.py").write_text(PLUGIN_RANKER)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: norm-ranker\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[hubbench.rankers]\nfeature_norm = norm_ranker\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    assert "ranker feature_norm" in hubbench(*args, "list", "rankers", env=env).stdout
    suite = write_suite(tmp_path, methods=("scratch",))
    suite.write_text(suite.read_text().replace("seeds = ", 'rankers = ["feature_norm[power=1.0]"]\nseeds = '))
    out = hubbench(*args, "run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--method", "feature_norm",
                   env=env).stdout
    assert "1 ok" in out and "rank:feature_norm[power=1.0]" in out


@dataclass(frozen=True)
class Lpft(Finetune):  # not registered: a plugin's single-source method (a role and a `model`), as rank sees it
    name = "lpft"


def test_rank_tunes_the_pick_with_a_single_source_method_and_runs_another_as_it_is():
    """`hubbench rank --tune [METHOD]`: by role, not by name."""
    suite = Suite("rank", "", ("tiny",), ("digits",), (), (0,))
    picked = {"logme": records.RankingRecord("rank", "tiny", "digits", "classification",
                                             records.PluginId("logme", "logme"), 0, records.OK, order=["b", "a"],
                                             scores={"b": 2.0, "a": 1.0})}
    assert tune_cell(suite, tune_method(""), None, picked).plugin.id == "finetune[model=b]"
    assert tune_cell(suite, Lpft(), None, picked).plugin.id == "lpft[model=b]"
    assert tune_cell(suite, tune_method("b_tuning"), None, picked).plugin.id == "b_tuning"
