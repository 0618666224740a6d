"""Bad input files end a run before any cell starts, with one line naming the file and exit code 2: a truncated
image, and checkpoint files that are truncated, have the wrong hash, hold another architecture or would run
code when unpickled. A file that passed is not read again until it changes."""

import os

import pytest
import torch
from conftest import write_suite
from test_checks import files
from test_paper_cls import dmlab
from test_zoo import MOCO, named, publish, resnet_state, weights_dir  # noqa: F401 (fixtures)

from hubbench.benchmark.cli import main
from hubbench.hubs import checkpoints, zoo
from hubbench.hubs.base import HUBS, made_hub
from hubbench.hubs.checkpoints import BadCheckpoint
from hubbench.tasks import TASKS
from hubbench.tasks.base import _SPLITS

HUB = "checked-zoo"  # the MoCo model alone: its file name carries no hash, so the other checks are reached
if HUB not in HUBS:
    HUBS.register(HUB)(lambda: zoo.zoo_hub(HUB, "MoCo alone", (MOCO,)))


class RunsCode:
    def __reduce__(self):
        return os.system, ("echo this ran",)


def one_line_refusal(capsys, args, root, *names) -> str:
    before = files(root)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hubbench: error: "), err
    assert all(name in err for name in names), err
    assert files(root) == before
    return err


@pytest.fixture
def quiet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path.parent / f"{tmp_path.name}-cache"))  # not under tmp_path
    made_hub.cache_clear()
    yield tmp_path
    made_hub.cache_clear()


@pytest.mark.parametrize("bad", ["truncated", "code", "architecture"])
def test_a_bad_checkpoint_ends_the_run_before_any_cell(bad, quiet, weights_dir, resnet_state, capsys):  # noqa: F811
    state = {f"module.encoder_q.{k}": v for k, v in resnet_state.items()}
    if bad == "architecture":  # another backbone's tensors under the same keys' prefix
        state = {f"module.encoder_q.{k}": v for k, v in torch.nn.Conv2d(3, 8, 3).state_dict().items()}
    name = publish({"state_dict": RunsCode() if bad == "code" else state}, weights_dir, MOCO.checkpoint.file)
    path = weights_dir / name
    if bad == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    suite = write_suite(quiet, hubs=(HUB,), methods=("finetune",))
    err = one_line_refusal(capsys, ["run", "--suite", str(suite)], quiet, path.name)
    assert ("does not match the backbone" if bad == "architecture" else "weights_only=True") in err
    assert "this ran" not in capsys.readouterr().out


def test_a_checkpoint_of_the_wrong_hash_is_refused(weights_dir, resnet_state):  # noqa: F811
    model = named(zoo.RESNET50_ZOO[0], "resnet50-0123abcd.pth")
    torch.save(resnet_state, weights_dir / "resnet50-0123abcd.pth")
    with pytest.raises(BadCheckpoint, match=r"resnet50-0123abcd.pth: sha256 \w+ does not start with 0123abcd"):
        zoo.zoo_hub("wrong-hash", "", (model,)).check()


def test_a_checked_file_is_not_read_again_until_it_changes(weights_dir, resnet_state, quiet, monkeypatch):  # noqa: F811
    name = publish({"state_dict": {f"module.encoder_q.{k}": v for k, v in resnet_state.items()}}, weights_dir,
                   MOCO.checkpoint.file)
    hub = zoo.zoo_hub(HUB, "", (MOCO,))
    hub.check()

    def unread(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(checkpoints, "read", unread)
    hub.check()  # remembered by path, size and modification time
    os.utime(weights_dir / name, ns=(0, 0))
    with pytest.raises(AssertionError, match="read again"):
        hub.check()


def test_a_truncated_image_ends_the_run_before_any_cell(quiet, tiny_hub, monkeypatch, capsys):
    monkeypatch.setenv("HUBBENCH_DATA_DIR", str(quiet / "data"))
    dmlab(quiet / "data" / "dmlab")
    image = quiet / "data" / "dmlab" / "images" / "trainval" / "7.jpg"
    image.write_bytes(image.read_bytes()[:100])
    _SPLITS.pop(TASKS.get("dmlab"), None)
    try:
        suite = write_suite(quiet, tasks=("dmlab",), methods=("scratch",))
        err = one_line_refusal(capsys, ["run", "--suite", str(suite)], quiet, str(image), "not a readable image")
    finally:
        _SPLITS.pop(TASKS.get("dmlab"), None)
    assert "expected" in err
