"""A plugin method goes from the README to a leaderboard: its parameters of any type render beside the built-in
methods', its record names its code, a changed plugin makes its records stale, and the run's closing hint
repeats what finds them."""

import hashlib
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import PLUGIN, ROOT, hubbench, write_suite
from test_leaderboard import full, write

from hubbench import record as records
from hubbench.leaderboard import frame
from hubbench.leaderboard.generate import generate

EXAMPLE = ROOT / "examples" / "linear_probe.py"


def with_params(r: dict, params: dict) -> dict:
    r["method"]["params"] = params
    return r


def test_plugin_parameters_of_any_type_keep_every_column_typed(tmp_path):
    """A plugin's int/float/bool/str/tuple fields named like built-in fields of another type."""
    rows = [with_params(full("shapes", f"finetune[model={m}]", 0, 50.0), {"model": m}) for m in ("a", "b")]
    rows += [with_params(full("shapes", "zoo_tuning", 0, 52.0), {"k": 2, "renormalise": True, "gate_scale": 1.5}),
             with_params(full("shapes", "probe", 0, 51.0),
                         {"model": 1, "k": "top", "renormalise": 0.5, "gate_scale": False, "stages": (1, 2)})]
    write(tmp_path / "r", rows)
    table = frame.results([records.read(p) for p in sorted((tmp_path / "r").rglob("*.json"))])
    hps = {c: str(t) for c, t in table.dtypes.items() if c.startswith("hp_")}
    assert hps == {"hp_gate_scale:bool": "boolean", "hp_gate_scale:float": "float64", "hp_k:int": "Int64",
                   "hp_k:str": "str", "hp_model:int": "Int64", "hp_model:str": "str",
                   "hp_renormalise:bool": "boolean", "hp_renormalise:float": "float64", "hp_stages": "object"}
    models = frame.hyper_parameter(table, "model")
    assert list(table.method_name) == ["finetune", "finetune", "probe", "zoo_tuning"]
    assert [None if pd.isna(m) else m for m in models] == ["a", "b", 1, None]
    out = generate("s", tmp_path / "r", tmp_path / "lb")
    parquet = pd.read_parquet(out / "results.parquet")
    assert str(parquet["hp_model:int"].dtype) == "Int64" and list(parquet["hp_stages"].dropna().iloc[0]) == [1, 2]
    assert {"README.md", "index.html", "results.csv"} <= {p.name for p in out.iterdir()}


def test_a_leaderboard_that_fails_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    write(tmp_path / "r", [full("shapes", "scratch", 0, 40.0)])
    out = generate("s", tmp_path / "r", tmp_path / "lb")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write(tmp_path / "r", [full("shapes", "finetune", 0, 45.0)])

    def broken(frame_):
        raise RuntimeError("cannot render")

    monkeypatch.setattr(frame, "parquet_bytes", broken)
    with pytest.raises(RuntimeError, match="cannot render"):
        generate("s", tmp_path / "r", tmp_path / "lb")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (tmp_path / "lb").iterdir()) == ["s"]  # no staging folder left behind


@pytest.fixture
def example(tmp_path):
    """The README's plugin example, copied where a test may edit it, and a tiny suite running it beside finetune."""
    plugin = tmp_path / "linear_probe.py"
    shutil.copy(EXAMPLE, plugin)
    suite = write_suite(tmp_path, methods=("finetune[model=supervised]", "linear_probe"))
    return plugin, suite, tmp_path / "results"


def test_the_readme_example_renders_states_its_code_and_goes_stale_when_changed(example, tmp_path):
    plugin, suite, results = example
    grid = ["--plugin", str(plugin), "--suite", str(suite), "--results", str(results)]
    hint = hubbench("run", *grid).stdout.strip().splitlines()[-1]
    options = f"--plugin={PLUGIN} --plugin={plugin} --suite {suite} --results {results}"
    assert hint.endswith(f"render them with: hubbench leaderboard {options}")
    as_printed = hint.partition("render them with: hubbench ")[2].split()
    subprocess.run([sys.executable, "-m", "hubbench.benchmark", *as_printed, "--out", tmp_path / "lb"], check=True)
    assert "linear_probe" in (tmp_path / "lb" / "tiny" / "README.md").read_text()
    probe = records.read(next(results.rglob("linear_probe/seed0.json")))
    code = {"plugin": str(plugin), "sha256": hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()}
    assert probe.config.code == {"method": code} and code in probe.environment.plugins
    assert records.read(next(results.rglob("finetune@model=supervised/seed0.json"))).config.code == {}

    plugin.write_text(plugin.read_text().replace("model: int = 0", "model: int = 1"))  # a changed default
    assert "1 stale" in hubbench("status", *grid).stdout
    refused = hubbench("run", *grid, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "linear_probe/seed0" in refused.stderr and "code.method.sha256" in refused.stderr
    rerun = hubbench("run", *grid, "--rerun-stale")
    assert "ok      tiny/digits/linear_probe/seed0" in rerun.stdout
    again = records.read(next(results.rglob("linear_probe/seed0.json")))
    assert again.method.params == {"model": 1} and again.config.code["method"]["sha256"] != code["sha256"]


def test_the_plugins_run_with_and_the_record_of_a_builtin_method_beside_them(example):
    """Loading a plugin does not make the built-in methods' records stale: only what the plugin defines is."""
    plugin, suite, results = example
    grid = ["--suite", str(suite), "--results", str(results), "--method", "finetune[model=supervised]"]
    hubbench("run", "--plugin", str(plugin), *grid)
    plugin.write_text(plugin.read_text() + "\n# edited\n")
    assert hubbench("status", "--plugin", str(plugin), *grid).stdout.startswith("tiny: 1 cells: 1 done")


def test_a_plugin_given_by_a_relative_path_and_run_by_workers_leaves_records_status_shows_done(example, tmp_path):
    """The command line loads the plugin by the path as typed, `--executor local` workers by its absolute path:
    both state the same code (its file's content), so the workers' records are done, not stale."""
    plugin, suite, results = example
    grid = ["--plugin", plugin.name, "--suite", str(suite), "--results", str(results), "--method", "linear_probe"]
    hubbench("run", *grid, "--executor", "local", "--workers", "1", cwd=tmp_path)
    assert hubbench("status", *grid, cwd=tmp_path).stdout.startswith("tiny: 1 cells: 1 done")


PICKY = '''
from hubbench.artifacts import FinetunedSource
from hubbench.methods import Method, register
from hubbench.methods.base import finetuned_needs


@register
class Picky(Method):
    name = "picky"
    description = "declares every fine-tuned source, reuses one: a method picking its sources as it runs"

    def needs(self, hub, task):
        return finetuned_needs(hub)

    def fit(self, ctx):
        return ctx.artifact(FinetunedSource(ctx.hub.names[0]))
'''


def test_retrain_artifacts_trains_again_what_the_cells_reuse_and_deletes_nothing_else(tmp_path):
    """A method may declare more than it reuses (`needs`: every source it might pick): `--retrain-artifacts`
    trains again the fine-tuned source it reuses and leaves the others it declares cached as they were."""
    plugin = tmp_path / "picky.py"
    plugin.write_text(PICKY)
    suite = write_suite(tmp_path, methods=("finetune[model=selfsup]", "picky"))
    run = ["--plugin", str(plugin), "run", "--suite", str(suite), "--results", str(tmp_path / "results")]
    env = {**os.environ, "HUBBENCH_CACHE": str(tmp_path / "cache")}
    hubbench(*run, env=env)
    artifacts = tmp_path / "cache/artifacts/tiny/digits"
    made = {p.name.split("-seed")[0]: (p, p.stat().st_mtime_ns) for p in artifacts.glob("finetuned-*.pt")}
    assert sorted(made) == ["finetuned-selfsup", "finetuned-supervised"]
    out = hubbench(*run, "--retrain-artifacts", "--method", "picky", env=env).stdout
    assert "tiny: 1 cells: 1 ok" in out
    (used, before), (other, kept) = made["finetuned-supervised"], made["finetuned-selfsup"]
    assert used.stat().st_mtime_ns != before and other.stat().st_mtime_ns == kept
