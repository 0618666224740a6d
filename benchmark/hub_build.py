"""`hubbench hub build`: a hub's weights made ready, or a self-built hub pre-trained again from scratch and
compared, file by file, with the weights hubbench ships (`hubs.shipped`).

Pre-training from scratch runs the sources in worker processes, those that start from random weights first,
so that independent sources train at the same time (`selfsup` does not wait for `supervised`); a source that
starts from another's weights waits on that one's lock while it trains.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import torch

from hubbench.benchmark.plugins import load_plugins, started_as
from hubbench.errors import InputError
from hubbench.hubs import Hub, get_hub, shipped
from hubbench.settings import Settings, current


class NotSelfBuilt(InputError):
    """--from-scratch asked of a hub whose weights come from checkpoint files."""


def _pretrain(hub: str, source: str, plugins: Sequence[str], settings: Settings) -> None:
    with started_as(settings):
        load_plugins(plugins)
        pretrained = get_hub(hub).source(source).pretrained
        for part in pretrained.parts:
            pretrained.weights(part, from_scratch=True)


def compare(trained: dict[str, torch.Tensor], shipped_file) -> str:
    """How weights trained here compare with a shipped file: equal bit for bit, or how far apart."""
    if shipped_file is None:
        return "no shipped file to compare with"
    reference = shipped.load(shipped_file)
    if trained.keys() != reference.keys():
        return f"differs from {shipped_file.name}: other tensors ({len(trained)} against {len(reference)})"
    differing = [k for k in trained if not torch.equal(trained[k], reference[k])]
    if not differing:
        return f"equal to {shipped_file.name}, bit for bit"
    gap = max((trained[k].double() - reference[k].double()).abs().max().item() for k in differing)
    return f"differs from {shipped_file.name}: {len(differing)} of {len(trained)} tensors, max |difference| {gap:.3g}"


def from_scratch(hub: Hub, workers: int, plugins: Sequence[str], ship: bool = False) -> list[str]:
    """Pre-train every source of `hub` again (into the cache) and compare it with the shipped weights; with
    `ship`, make what was trained here the shipped files. One line per file."""
    if any(s.pretrained is None for s in hub.sources):
        raise NotSelfBuilt(f"hub {hub.name}'s weights come from checkpoint files: --from-scratch applies to the hubs "
                           "hubbench pre-trains itself (see `hubbench list hubs`)")
    roots_first = sorted(hub.sources, key=lambda s: s.pretrained.task.starts_from is not None)
    context = multiprocessing.get_context("spawn")  # a fork of a process that imported torch is unsafe
    with ProcessPoolExecutor(min(workers, len(roots_first)), mp_context=context) as pool:
        for future in [pool.submit(_pretrain, hub.name, s.name, tuple(plugins), current()) for s in roots_first]:
            future.result()
    lines, files = [], {}
    for source in hub.sources:
        for part in source.pretrained.parts:
            trained = source.pretrained.weights(part, from_scratch=True)
            lines.append(f"{source.name} {part}: {compare(trained, source.pretrained.shipped(part))}")
            files[source.pretrained.shipped_name(part)] = trained
    if ship:
        shipped.ship(files, hub.config["version"])
        lines.append(f"shipped {len(files)} files as {shipped.FOLDER}/ (listed in {shipped.MANIFEST}); copy the "
                     "hubs' new config to the catalogue: python -m hubbench.benchmark.catalogue")
    return lines


def build(name: str, scratch: bool, workers: int, plugins: Sequence[str], ship: bool) -> list[str]:
    hub = get_hub(name)
    if scratch:
        return from_scratch(hub, workers, plugins, ship)
    hub.check()
    hub.build()
    return [f"hub {hub.name}: {len(hub.sources)} models ready ({', '.join(hub.names)})"]
