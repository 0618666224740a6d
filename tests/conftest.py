import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path(__file__).with_name("tiny_plugin.py")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Cells run single-threaded (their results depend on the thread count), and so do tests:
    two test workers on two cores, without thread pools spinning against each other."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def cache(tmp_path_factory):
    """Every test shares one throw-away cache (hubs, artifacts, checkpoints)."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["HUBBENCH_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def own_temp_dir(tmp_path_factory):
    """Each test worker (and the CLIs it starts) its own temporary directory, and so its own device locks
    (`hubbench.exclusive.lock_dir`): one worker's profiling does not pause the other's cells. The tests of
    exclusivity run their processes within one test."""
    path = tmp_path_factory.mktemp("tmp")
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    return path


@pytest.fixture(scope="session")
def tiny_hub(cache):
    from hubbench.benchmark.cli import load_plugin
    from hubbench.hubs import get_hub

    load_plugin(str(PLUGIN))
    return get_hub("tiny")


def write_suite(directory: Path, name: str = "tiny", *, methods=("scratch", "finetune", "ensemble_i"),
                tasks=("digits",), seeds=(0,), hubs=("tiny",), **protocol) -> Path:
    protocol = {"iterations": 6, "eval_every": 3, "checkpoint_every": 3, **protocol}
    lines = [f"description = {name!r}", f"hubs = {list(hubs)!r}", f"tasks = {list(tasks)!r}",
             f"methods = {list(methods)!r}", f"seeds = {list(seeds)!r}", "[protocol]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}" for k, v in protocol.items()]
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


def hubbench(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess with the tiny plugin loaded."""
    cmd = [sys.executable, "-m", "hubbench.benchmark", "--plugin", str(PLUGIN), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=kw.pop("cwd", ROOT), **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result
