"""Records: one JSON file per cell, schema-versioned, written atomically.

The leaderboard reads nothing else, so a record carries everything needed to interpret it:
identity, status, metrics, cost, curves, diagnostics, the full config and the environment.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch
import torchvision

import hubbench
from hubbench.io import read_json, write_json

SCHEMA = hubbench.RECORD_SCHEMA
STATUSES = ("ok", "failed", "n/a")


@functools.cache
def git_state() -> dict:
    """Commit of the hubbench checkout the code runs from ('unknown' when not a checkout)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    return {
        "hubbench": hubbench.__version__,
        "git": git_state(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
    }


def write_record(path: Path, record: dict) -> Path:
    assert record["schema"] == SCHEMA and record["status"] in STATUSES
    return write_json(path, record)


def read_record(path: Path) -> dict | None:
    """The record at `path`, or None if there is none or it is not a record of this schema."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == SCHEMA else None
