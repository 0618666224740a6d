"""The software, hardware and code a record is made with: what `Environment` holds, captured here so that the
record format (`hubbench.record`) imports no torch. Versions are read from the installed distributions where the
package itself is not needed (importing torchvision for its version took seconds)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

import hubbench
from hubbench.discovery import loaded_plugins
from hubbench.io import BOARDS, RESULTS
from hubbench.record import Environment, Git

CHECKOUT = Path(__file__).resolve().parent.parent  # hubbench's own checkout, when it runs from one
OUTPUTS = (RESULTS, BOARDS)  # the checkout's folders of what runs make (the commands' defaults)


@functools.cache
def git_state(root: Path = CHECKOUT) -> Git:
    """Commit of the hubbench checkout the code runs from ('unknown' when not a checkout), and whether its tracked
    code differs from it. The checkout's own records and boards (`results/`, `leaderboard/`) are outputs, not code:
    a rerun of a committed board replaces them, and must not call its own records dirty."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        return Git(git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                                         *(f":(exclude){d}" for d in OUTPUTS))))
    except (OSError, subprocess.SubprocessError):
        return Git("unknown", None)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device) -> Environment:
    """The software and hardware a record is made with (`device`: the torch.device it runs on)."""
    return Environment(
        hubbench=hubbench.__version__, git=git_state(), python=platform.python_version(),
        platform=platform.platform(), torch=torch.__version__, torchvision=metadata.version("torchvision"),
        numpy=np.__version__, cuda=torch.version.cuda, device=device.type,
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        threads=torch.get_num_threads(), cpus=os.cpu_count(), plugins=loaded_plugins())
