"""The cost of a grid before it runs: measured per-stage step times, cached, summed per method."""

import pytest
from conftest import write_suite

from hubbench.benchmark import estimate
from hubbench.benchmark.cells import expand
from hubbench.benchmark.cli import main
from hubbench.benchmark.suites import Suite


def test_a_cells_seconds_are_its_stages_steps_evaluations_and_final_predictions(tiny_hub, tmp_path):
    suite = Suite.load(str(write_suite(tmp_path, methods=("finetune[model=supervised]",), iterations=10,
                                       eval_every=4)))
    cell = expand(suite)[0]
    task = cell.make_task()
    views = len(task.splits["val"]) + len(task.splits["test"])
    found = {"scope": "profile/x", "deployed_infer_s": 1e-3, "stages": [
        {"scope": "profile/x", "step_s": 0.5, "infer_s": 2e-3},
        {"scope": "tiny/digits/finetuned-supervised", "step_s": 0.25, "infer_s": 4e-3}]}
    own, artifacts = estimate.cell_seconds(cell, found)
    assert estimate.evaluations(task.protocol) == 3  # at 4, 8 and the end, 10
    assert own == pytest.approx(views * 1e-3 + 10 * 0.5 + 3 * views * 2e-3)
    assert artifacts == pytest.approx({"finetuned-supervised": 10 * 0.25 + 3 * views * 4e-3
                                       + len(task.splits["val"]) * 4e-3})


def test_dry_run_estimates_from_cached_step_times_measured_with_estimate(tiny_hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "cache"))
    # a dry run measures a few steps whatever the iterations; enough of them that the total shows at the
    # printed resolution (0.001 h): at 6, an idle machine printed 0.000
    suite = write_suite(tmp_path, methods=("scratch", "finetune[model=supervised]"), iterations=3000)
    args = ["run", "--suite", str(suite), "--results", str(tmp_path / "r"), "--dry-run", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "not counted: 2 cells of 2 hub/task/method combinations not measured on this device (add --estimate" in out
    assert main([*args, "--estimate"]) == 0
    measured = capsys.readouterr().out
    rows = {line.split()[0]: line for line in measured.splitlines() if line.startswith("  ")}
    assert "1 cells" in rows["scratch"] and "1 cells" in rows["finetune"] and "not counted" not in measured
    assert "1 trained" in rows["fine-tuned"]
    assert float(rows["total"].split()[-2]) > 0
    monkeypatch.setattr(estimate, "measure", lambda *a: pytest.fail("measured again"))
    assert main(args) == 0
    assert capsys.readouterr().out == measured.replace("loading the weights of hub tiny ...\n", "")
    assert not (tmp_path / "r").exists()
