"""The pre-trained weights hubbench ships for the hubs it builds itself, as a real hub ships checkpoints.

Each file under `hubs/pretrained/` is a safetensors file named `<source>-<lineage>[.head].safetensors`,
where the lineage is the digest of everything that determined the weights (hub version, architecture,
source task, pre-training, the starting weights' lineage). `manifest.json` lists every file with its
sha256 and says what made them (torch, CPU), the way torchvision's weights carry their metadata. A
source whose lineage is listed loads its file, its hash checked once per process; any other (a changed
pre-training, a test's tiny hub) is pre-trained as before. `hubbench hub build NAME --from-scratch`
trains them again and compares; `--ship` writes what it trained here (after a hub version bump).
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

import torch

from hubbench.environment import cpu_name
from hubbench.hubs.checkpoints import BadCheckpoint
from hubbench.io import atomic_write, write_json

FOLDER = Path(__file__).with_name("pretrained")
MANIFEST = "manifest.json"
SUFFIX = ".safetensors"


def file_name(source: str, lineage: str, part: str) -> str:
    return f"{source}-{lineage}{'' if part == 'backbone' else '.' + part}{SUFFIX}"


@functools.cache
def manifest() -> dict:
    """The manifest ({"files": {name: sha256}, "hub_version": ..., "made_with": ...}); empty where there is none."""
    try:
        return json.loads((FOLDER / MANIFEST).read_text())
    except FileNotFoundError:
        return {"files": {}}


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find(source: str, lineage: str, part: str = "backbone") -> Path | None:
    """The shipped file of this source's lineage, or None where none is shipped."""
    name = file_name(source, lineage, part)
    return FOLDER / name if name in manifest()["files"] else None


@functools.cache
def verified(path: Path) -> Path:
    """`path` once its sha256 is the manifest's; raises BadCheckpoint (one line naming the file) otherwise."""
    expected = manifest()["files"][path.name]
    try:
        found = sha256(path)
    except OSError as e:
        raise BadCheckpoint(f"shipped weights {path}: unreadable ({e.strerror or e}); reinstall hubbench") from None
    if found != expected:
        raise BadCheckpoint(f"shipped weights {path}: sha256 {found[:12]}... is not the manifest's {expected[:12]}...; "
                            "reinstall hubbench, or rebuild with `hubbench hub build <hub> --from-scratch`")
    return path


def load(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(verified(path))


def save(path: Path, tensors: dict) -> str:
    """Write `tensors` as a safetensors file (atomically); its sha256."""
    from safetensors.torch import save

    data = save({k: v.contiguous() for k, v in tensors.items()})
    atomic_write(path, lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


def made_with() -> dict:
    """What the shipped files were trained with: results are bit-exact only on the same torch and CPU kind."""


    return {"torch": torch.__version__, "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version()}


def ship(files: dict[str, dict], hub_version: int) -> None:
    """Write `files` ({name: tensors}) as shipped files and list them in the manifest (other hubs' files kept)."""
    listed = dict(manifest()["files"])
    for name, tensors in sorted(files.items()):
        listed[name] = save(FOLDER / name, tensors)
    write_json(FOLDER / MANIFEST, {"hub_version": hub_version, "made_with": made_with(), "files": listed})
    manifest.cache_clear()
