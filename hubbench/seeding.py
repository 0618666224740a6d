"""Seeds derived from names, so every random stream is reproducible and independent of order.

numpy and torch are imported by the functions that seed them: keys and seeds are made without them
(`hubbench status` computes lock and checkpoint names without importing torch)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any JSON-able parts (unlike `hash`, the same in every process)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def digest(obj: object, length: int = 16) -> str:
    """Short content key of a JSON-able object (used for cache keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(*parts: object) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(derive_seed(*parts))


@contextlib.contextmanager
def preserved_rng():
    """Run a block without disturbing the caller's random streams (python, numpy, torch CPU), so
    that whether a cached object was loaded or built does not change what comes after."""
    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@contextlib.contextmanager
def threads(n: int):
    """Run a block with `n` intra-op CPU threads: results depend on the count, so it is pinned."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
