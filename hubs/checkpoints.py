"""Backbone weights cut out of the checkpoint files users download (torchvision, MoCo).

Files are found by name, never fetched implicitly: first in the weights directory of the settings
(`hubbench.settings`, `--weights-dir`), then in torch's own download directory ($TORCH_HOME/hub/checkpoints).
Every file is treated as untrusted: its sha256 must start with the hex its name carries (torchvision's
convention), it is unpickled with `weights_only=True`, and the backbone it yields must match the architecture
key for key.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hubbench.errors import InputError
from hubbench.io import cache_dir, file_mode, load_torch
from hubbench.seeding import digest
from hubbench.settings import VARIABLES, current

SHOWN = 8  # keys listed per kind of mismatch


class MissingWeights(InputError, FileNotFoundError):
    """Checkpoint files a hub needs are not on disk; the message lists all of them and where to put them."""


class BadCheckpoint(InputError):
    """A checkpoint file that is refused: wrong hash, unreadable or unsafe, or not the expected backbone."""


class DownloadFailed(InputError, OSError):
    """A checkpoint file could not be fetched (offline, HTTP error, hash mismatch)."""


@dataclass(frozen=True)
class Checkpoint:
    """One downloadable file and where the backbone's tensors sit inside it.

    `weights` is a torchvision weights entry ("Swin_T_Weights.IMAGENET1K_V1"), resolved lazily so
    that importing hubbench does not import torchvision, or a URL for files torchvision does not list.
    """

    weights: str
    prefix: str = ""  # the backbone's keys start with this; other keys are heads and are dropped
    drop: tuple[str, ...] = ()  # heads that share the prefix (after stripping it)
    unwrap: str | None = None  # the tensors sit under this key (training checkpoints)

    @property
    def url(self) -> str:
        if "://" in self.weights:
            return self.weights
        from torchvision.models import get_weight

        return get_weight(self.weights).url

    @property
    def file(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def backbone_state(self, obj: Any, reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The backbone's tensors in `obj` (a loaded file), checked against the model's `reference` state."""
        cut = {k: v for k, v in self.cut(obj, self.prefix).items() if not k.startswith(self.drop)}
        fill_frozen_batchnorm(cut, reference)
        check_match(cut, reference, f"{self.file} (keys under {self.prefix!r})")
        return cut

    def head_state(self, obj: Any, head: str, reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors of the head module `head` (one of those the backbone drops), checked as the backbone's."""
        cut = self.cut(obj, f"{self.prefix}{head}.")
        check_match(cut, reference, f"{self.file} (keys under {self.prefix + head + '.'!r})")
        return cut

    def cut(self, obj: Any, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors of `obj` whose keys start with `prefix`, without it."""
        state = obj.get(self.unwrap) if self.unwrap and isinstance(obj, Mapping) else obj
        if not isinstance(state, Mapping):
            where = f"under key {self.unwrap!r}" if self.unwrap else "at the top level"
            raise BadCheckpoint(f"{self.file}: no state dict {where} (found {type(state).__name__})")
        cut = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not cut:
            tops = sorted({k.split(".", 1)[0] + "." for k in state})
            raise BadCheckpoint(f"{self.file}: no key starts with {prefix!r} (keys start with: {', '.join(tops)})")
        return cut


def fill_frozen_batchnorm(state: dict[str, torch.Tensor], reference: Iterable[str]) -> None:
    """Detection models freeze BatchNorm (FrozenBatchNorm2d), whose state has no `num_batches_tracked`.

    The counter is filled in (zero) only where the layer's statistics are present, so a layer that
    is really missing is still reported.
    """
    for key in reference:
        layer = key.removesuffix("num_batches_tracked")
        if layer != key and key not in state and layer + "running_mean" in state:
            state[key] = torch.tensor(0)


def check_match(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], what: str) -> None:
    """Strict loading, with a report that names the file and every kind of mismatch."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    shapes = [f"{k} {shape(state[k])} vs {shape(reference[k])}"
              for k in reference if k in state and shape(state[k]) != shape(reference[k])]
    problems = [f"{len(keys)} {kind}: {', '.join(keys[:SHOWN])}{', ...' if len(keys) > SHOWN else ''}"
                for kind, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("shape mismatches (file vs model)", shapes)) if keys]
    if problems:
        raise BadCheckpoint(f"{what} does not match the backbone: " + "; ".join(problems))


def shape(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else f"<{type(value).__name__}>"


def weights_dirs() -> list[Path]:
    """Where checkpoint files are looked for, in order: the settings' weights directory, then torch's download dir."""
    given = current().weights
    return [*([given] if given else []), Path(torch.hub.get_dir()) / "checkpoints"]


def find(file: str) -> Path | None:
    return next((d / file for d in weights_dirs() if (d / file).is_file()), None)


def missing_weights(hub: str, files: list[str]) -> MissingWeights | None:
    """One error for all of a hub's absent files, or None when every file is there."""
    absent = [f for f in files if find(f) is None]
    if not absent:
        return None
    width = max(map(len, files))
    listing = "\n".join(f"  {f:<{width}}  {'MISSING' if f in absent else 'found'}" for f in files)
    dirs = "\n".join(f"  {d}" for d in weights_dirs())
    return MissingWeights(
        f"hub {hub!r} needs {len(files)} checkpoint files, {len(absent)} missing:\n{listing}\n"
        f"looked in, in order:\n{dirs}\n"
        f"put the files in one of these directories (or point {VARIABLES['weights']} / --weights-dir at a "
        f"directory holding them), fetch them with `hubbench hub download {hub}`, or set "
        f"{VARIABLES['random_weights']}=1 to use random weights instead")


def sha256_prefix(file: str) -> str | None:
    """The hex after the last '-' of the name's stem (torchvision: `resnet50-19c8e357.pth`), if any."""
    _, dash, tail = file.split(".", 1)[0].rpartition("-")
    return tail if dash and re.fullmatch(r"[0-9a-f]{6,64}", tail) else None


def verify_hash(path: Path) -> None:
    expected = sha256_prefix(path.name)
    if expected is None:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if not h.hexdigest().startswith(expected):
        raise BadCheckpoint(f"{path}: sha256 {h.hexdigest()} does not start with {expected} as its name says; "
                            "the file is corrupt or not the published one: download it again")


def read(path: Path) -> Any:
    """A checkpoint's contents, after the hash check; files that need code to unpickle are refused."""
    verify_hash(path)
    with open(path, "rb") as f:  # failing to open is not the file's fault; failing to read it is
        try:
            return load_torch(f)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
            raise BadCheckpoint(f"{path}: refused, it does not load as plain tensors with weights_only=True "
                                f"({load_failure(e)}); the file is corrupt, truncated or holds objects whose "
                                "unpickling could run code: download it again") from e


def verified_once(path: Path, how: dict, check: Callable[[], object]) -> None:
    """Call `check` (it raises for a bad file) unless `path` passed it (`how` names the check) at its present
    size and modification time; then remember that it passed, as an empty file under the cache's verified/."""
    st = path.stat()
    mark = cache_dir() / "verified" / digest({"path": str(path.resolve()), "size": st.st_size,
                                              "mtime_ns": st.st_mtime_ns, **how})
    if not mark.exists():
        check()
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()


def load_failure(e: Exception) -> str:
    """The informative part of torch.load's message (not its advice to turn weights_only off)."""
    text = str(e)
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", text, re.S)
    return (found.group(1) if found else text.split(". ", 1)[0]).strip()


def download(checkpoints: Iterable[Checkpoint], dest: Path) -> list[Path]:
    """Fetch the files missing from `dest` (checked against the hash their name carries) and return all paths.

    `torch.hub.download_url_to_file` only writes the file (through a temp file) and never unpickles
    it, unlike `load_state_dict_from_url`; loading stays with `read`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for ckpt in checkpoints:
        path = dest / ckpt.file
        if not path.is_file():
            try:
                torch.hub.download_url_to_file(ckpt.url, str(path), hash_prefix=sha256_prefix(ckpt.file))
                path.chmod(file_mode())  # torch moves a 0600 temp file into place
            except (OSError, RuntimeError) as e:
                raise DownloadFailed(f"cannot download {ckpt.url} to {dest}: {e}; without network access, "
                                     f"copy the file there by hand") from e
        paths.append(path)
    return paths
