"""The README's own-data example runs as written: its commands, on the two files docs/own-data.md declares (copied
from the page, verbatim), beside a small folder of flowers and the two checkpoint files they name. The published
ImageNet weights are not on a test machine: HUBBENCH_RANDOM_WEIGHTS (what `--random-weights` sets) stands in for
them, and for them only."""

import re
import shlex
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from hubbench import record as records
from hubbench.benchmark.cli import main

ROOT = Path(__file__).resolve().parent.parent


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def commands(readme: str) -> list[list[str]]:
    """The `hubbench` commands of the README's own-data section, as written (comments dropped, `&&` split)."""
    section = readme.split("## Your own data and models", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("#", 1)[0] for block in blocks(section, "bash") for line in block.splitlines()]
    return [shlex.split(part) for line in lines for part in line.split("&&") if part.strip()]


def test_the_readme_own_data_example_runs_as_written(tmp_path, monkeypatch, capsys):
    declared = {block.splitlines()[0].lstrip("# ").split(":")[0]: block
                for block in blocks((ROOT / "docs" / "own-data.md").read_text(), "toml")
                if block.startswith(("# my-data.toml", "# my-suite.toml"))}
    assert set(declared) == {"my-data.toml", "my-suite.toml"}
    for name, text in declared.items():
        (tmp_path / name).write_text(text)
    rng = np.random.default_rng(0)
    for label in ("daisy", "rose", "tulip"):
        (tmp_path / "flowers" / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 60, (32, 32, 3)) + rng.integers(0, 190, 3)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "flowers" / label / f"{i}.png")
    (tmp_path / "ckpt").mkdir()
    for seed, name in enumerate(("run1", "run2")):
        torch.manual_seed(seed)
        state = torchvision.models.resnet18().state_dict()
        torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ckpt" / f"{name}.pth")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.setenv("HUBBENCH_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")
    found = commands((ROOT / "README.md").read_text())
    assert [c[:2] for c in found] == [["hubbench", "rank"], ["hubbench", "rank"], ["hubbench", "run"],
                                      ["hubbench", "leaderboard"]]
    for command in found:
        assert main(command[1:]) == 0, command
    out = capsys.readouterr().out
    assert "tuned: finetune[model=" in out and (tmp_path / "leaderboard" / "my-suite" / "README.md").is_file()
    made = [records.read(p) for p in sorted((tmp_path / "results" / "my-suite").glob("*/*/*/seed0.json"))]
    assert {r.method.name for r in made} == {"finetune", "ensemble_i", "zoo_tuning_l", "hub_pathway"}
    assert all(r.status == records.OK for r in made), [(r.method.id, r.reason) for r in made]
    assert made[0].config.hub["config"]["weights"] == {"imagenet": "random", "run1": "pretrained", "run2": "pretrained"}
