"""The pre-trained weights hubbench ships for its self-built hubs: complete for the current hub version, loaded
without training, verified before any cell, and what pre-training here from scratch makes."""

import dataclasses
import shutil

import pytest
import torch
from conftest import PLUGIN, write_suite

from hubbench.benchmark.cli import main
from hubbench.hubs import get_hub, mini, shipped
from hubbench.hubs.base import made_hub
from hubbench.images import to_input
from hubbench.io import save_torch


def shipped_parts(hub_name: str) -> set[str]:
    return {s.pretrained.shipped_name(part) for s in get_hub(hub_name).sources for part in s.pretrained.parts}


def test_every_source_of_the_mini_hubs_is_shipped_at_the_current_hub_version():
    """A hub version bump (or a change of pre-training) without shipping new files fails here: regenerate them
    with `hubbench hub build mini --from-scratch --ship` (and mini-hetero), then delete the files listed here."""
    listed = set(shipped.manifest()["files"])
    wanted = shipped_parts("mini") | shipped_parts("mini-hetero")
    assert shipped.manifest()["hub_version"] == mini.HUB_VERSION
    assert wanted <= listed, f"not shipped: {sorted(wanted - listed)}"
    assert listed <= wanted, f"shipped for no current source: {sorted(listed - wanted)}"
    assert {p.name for p in shipped.FOLDER.glob("*.safetensors")} == listed


def test_shipped_weights_load_without_training_and_records_state_their_hashes(monkeypatch):
    monkeypatch.setattr(mini, "train", lambda *a, **k: pytest.fail("shipped weights were trained again"))
    hub = get_hub("mini")
    hub.check()
    for source in hub.sources:
        source.backbone()
        if source.classifier:
            source.classifier()
    weights = hub.describe()["config"]["weights"]
    assert weights == {s.name: shipped.sha256(s.pretrained.shipped()) for s in hub.sources}


@pytest.fixture
def copied(tmp_path, monkeypatch):
    """The shipped files, copied where a test may break them."""
    folder = tmp_path / "pretrained"
    shutil.copytree(shipped.FOLDER, folder)
    monkeypatch.setattr(shipped, "FOLDER", folder)
    for cached in (shipped.manifest, shipped.verified, made_hub):
        cached.cache_clear()
    yield folder
    for cached in (shipped.manifest, shipped.verified, made_hub):
        cached.cache_clear()


def test_a_shipped_file_that_fails_its_hash_stops_the_run_before_any_cell(copied, tmp_path, capsys):
    bad = copied / get_hub("mini").source("selfsup").pretrained.shipped_name("backbone")
    data = bytearray(bad.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    suite = write_suite(tmp_path, hubs=("mini",), methods=("scratch",))
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hubbench: error: shipped weights {bad}: sha256 ") and err.count("\n") == 1
    assert not results.exists()


def test_the_cheapest_source_pretrained_here_from_scratch_equals_the_shipped_file(tmp_path, monkeypatch):
    """`segmentation` trained again from its parent (`supervised`, placed in the cache as if trained here too).

    Bit for bit where the torch build and the CPU's vector units are the manifest's (`made_with`): pre-training
    runs one thread in a fixed order, so the same kernels give the same bits. Elsewhere other kernels (AVX2
    against AVX-512, another torch) round differently and 500 steps of SGD carry the rounding on, so single
    weights drift (up to 6.3% of a tensor's scale, measured on the manifest's machine forced onto its AVX2
    kernels with ATEN_CPU_CAPABILITY=avx2); the test then asks for the same function: the two backbones'
    feature maps on the source task's images within 10% of each other (measured there: 3.0%)."""
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path))
    pretrained = get_hub("mini").source("segmentation").pretrained
    parent = get_hub("mini").source("supervised").pretrained
    path = tmp_path / "hubs" / f"supervised-{mini.weights_key(parent.task, parent.cfg, parent.arch)}.pt"
    save_torch(path, parent.weights())
    trained = pretrained.weights(from_scratch=True)
    reference = shipped.load(pretrained.shipped())
    made_with = shipped.manifest()["made_with"]
    if (made_with["torch"], made_with["cpu_capability"]) == (torch.__version__,
                                                              torch.backends.cpu.get_cpu_capability()):
        assert all(torch.equal(trained[k], reference[k]) for k in reference)
    else:
        images, _ = mini.source_data(pretrained.task, dataclasses.replace(pretrained.cfg, images=64))
        ours, theirs = pretrained.arch.build().eval(), pretrained.arch.build().eval()
        ours.load_state_dict(trained)
        theirs.load_state_dict(reference)
        with torch.no_grad():
            a, b = ours(to_input(images)), theirs(to_input(images))
        assert (a - b).norm() <= 0.1 * b.norm()


def test_hub_build_from_scratch_reports_each_file_and_ships(copied, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path / "cache"))
    args = ["--plugin", str(PLUGIN), "hub", "build", "tiny", "--from-scratch", "--workers", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert first[0] == "supervised backbone: no shipped file to compare with" and len(first) == 7  # 2 with heads
    assert main([*args, "--ship"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"shipped 7 files as {copied}/")
    made_hub.cache_clear()
    assert main(args) == 0
    assert all(" equal to " in line and line.endswith(", bit for bit") for line in capsys.readouterr().out.splitlines())
    assert get_hub("tiny").describe()["config"]["weights"]["selfsup"] != "pre-trained here"


def test_from_scratch_refuses_a_hub_of_checkpoint_files(capsys):
    assert main(["hub", "build", "resnet50-zoo", "--from-scratch"]) == 2
    assert "weights come from checkpoint files" in capsys.readouterr().err
