"""`hubbench profile`: the papers' complexity figures from random weights and no data, stand-in tasks, bad input."""

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import hubbench

from hubbench.benchmark.cli import main
from hubbench.benchmark.profile_cmd import first_variant, profile_task
from hubbench.tasks.crops import first_view
from hubbench.tasks.landmarks import unpack


def files_under(path):
    return sorted(p.relative_to(path) for p in path.rglob("*"))


def profile_json(cwd, *args, **env):
    """Run `hubbench profile` single-threaded in a subprocess in `cwd`; return the JSON it wrote, where
    (relative to `cwd`), and its stdout."""
    result = hubbench("profile", *args, "--device", "cpu", cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    out = Path(result.stdout.splitlines()[-1].removeprefix("written to "))
    return json.loads((cwd / out).read_text()), out, result.stdout


@pytest.mark.parametrize("method, params_m, gflops", [
    ("finetune", "23.71", "4.11"),
    # The papers print 118.55 M: five times the rounded 23.71. Five ResNet-50s with 100-class heads hold
    # 5 x 23 712 932 = 118 564 660 parameters, which round to 118.56.
    ("ensemble_i", "118.56", "20.55"),
])
def test_papers_complexity_of_resnet50_zoo_on_cifar100_without_data_or_weights(method, params_m, gflops, tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    record, out, stdout = profile_json(tmp_path, "--hub", "resnet50-zoo", "--task", "cifar100", "--method", method,
                                       "--random-weights", "--batch", "1", HUBBENCH_DATA_DIR=str(empty))
    c = record["complexity"]
    assert f"{c['params']['total'] / 1e6:.2f}" == params_m and f"{c['flops']['fvcore_gflops']:.2f}" == gflops
    assert f"Params (M)          {params_m} total" in stdout and f"GFLOPs              {gflops} fvcore" in stdout
    assert record["stand_in"] and record["protocol"]["image_size"] == 224 and record["protocol"]["iterations"] == 1
    assert record["hub_config"]["config"]["weights"] == "random" and list(empty.iterdir()) == []
    if method == "finetune":  # a bare name: the hub's first model
        assert out == Path("results/profile/resnet50-zoo/cifar100/finetune@model=supervised.json")


def test_routed_method_on_in_memory_landmarks_leaves_the_users_cache_alone(tiny_hub, cache, tmp_path):
    tiny_hub.build()  # the hub's weights belong in the user's cache; everything after must not go there
    before = files_under(cache)
    record, out, stdout = profile_json(tmp_path, "--hub", "tiny", "--task", "faces", "--method", "hub_pathway")
    assert files_under(cache) == before and out == Path("results/profile/tiny/faces/hub_pathway.json")
    assert (record["schema"], record["hub"], record["task"], record["kind"]) == ("hubbench.profile/3", "tiny",
                                                                                 "faces", "landmarks")
    assert record["method"]["name"] == "hub_pathway" and not record["stand_in"]
    c = record["complexity"]
    assert 0 < c["params"]["active"] < c["params"]["total"]  # top-k routing: not every source runs
    assert c["flops"]["fvcore_gflops"] > 0 and c["speed"]["batch"] == 2 and c["memory"]["device"] == "cpu"
    assert record["environment"]["device"] == "cpu" and "tiny / faces / hub_pathway (task data)" in stdout


def test_a_bare_method_name_is_its_first_variant_on_the_hub(tiny_hub):
    assert first_variant("finetune", tiny_hub).id == f"finetune[model={tiny_hub.names[0]}]"
    assert first_variant("finetune[model=selfsup]", tiny_hub).id == "finetune[model=selfsup]"
    assert first_variant("soup[bn_batches=5]", tiny_hub).params == {"recipe": "greedy", "bn_batches": 5}


@pytest.mark.parametrize("name, batch", [("cifar100", 3), ("300w", 1)])
def test_stand_in_tasks_have_the_tasks_shapes_and_read_no_file(name, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(tmp_path))
    task, stand_in = profile_task(name, batch)
    size, n = task.protocol.image_size, max(batch, 2)
    assert stand_in and task.name == name and {len(s) for s in task.splits.values()} == {n}
    x, y = task.train_batch(torch.arange(2), torch.Generator().manual_seed(0))
    test = first_view(next(task.eval_batches("test")))
    assert x.shape == (2, 3, size, size) and test.shape == (n, 3, size, size)
    targets = task.splits["test"].targets
    if task.kind == "classification":
        assert targets.dtype == torch.long and 0 <= targets.min() and targets.max() < task.num_classes
    else:
        points, normaliser = unpack(targets)
        assert points.shape == (n, task.num_points, 2) and (normaliser > 0).all()
        assert ((0 <= points) & (points < task.frame)).all()
        heatmaps = torch.rand(n, task.num_points, 64, 64)
        assert torch.isfinite(task.loss(heatmaps, targets)) and "nme" in task.evaluate(heatmaps, targets)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--hub", "resnet50-zoo", "--task", "cifar100", "--method", "nope"], "unknown method 'nope' (choose from:"),
    (["--hub", "hetero-zoo", "--task", "cifar100", "--method", "soup"],
     "soup does not apply to hub 'hetero-zoo' and task 'cifar100': weight averaging needs one "
     "architecture family; hub 'hetero-zoo' is heterogeneous"),
    (["--hub", "nope", "--task", "cifar100", "--method", "finetune"], "unknown hub 'nope'"),
    (["--hub", "mini", "--task", "nope", "--method", "finetune"], "unknown task 'nope'"),
    (["--hub", "mini", "--task", "digits", "--method", "finetune", "--batch", "0"], "--batch must be at least 1"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["profile", *args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hubbench: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_missing_weights_without_random_weights_is_one_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HUBBENCH_RANDOM_WEIGHTS", "HUBBENCH_WEIGHTS_DIR")}
    result = hubbench("profile", "--hub", "resnet50-zoo", "--task", "cifar100", "--method", "finetune",
                      check=False, cwd=tmp_path, env={**env, "TORCH_HOME": str(tmp_path / "torch")})
    # one error, listing every file (on several lines)
    assert result.returncode == 2 and result.stderr.startswith("hubbench: error: hub 'resnet50-zoo' needs 5 checkpoint")
    assert not (tmp_path / "results").exists()
