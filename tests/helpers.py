"""Shared test helpers: a context on the tiny hub with a tiny protocol."""

import contextlib
import tempfile
from pathlib import Path
from unittest import mock

import torch

from hubbench.context import Context
from hubbench.io import cache_dir
from hubbench.tasks import TASKS


def make_task(name="digits", **protocol):
    cls = TASKS.get(name)
    return cls(cls.protocol.replace(**{"iterations": 4, "eval_every": 2, "checkpoint_every": 2, **protocol}))


def make_ctx(hub, task="digits", seed=0, scope="test", cache=None, **protocol):
    return Context(hub, make_task(task, **protocol), seed, scope=scope, cache=cache or cache_dir(),
                   device=torch.device("cpu"))


def one_task_per_kind():
    kinds = {}
    for name in TASKS.names():
        if not TASKS.get(name).external_data:  # real datasets are not in the repository
            kinds.setdefault(TASKS.get(name).kind, name)
    return sorted(kinds.values())


@contextlib.contextmanager
def untrained():
    """A throw-away cache (yielded) in which `ctx.train` builds models without training them: what a method
    starts from (a protocol needs at least one iteration). Artifacts made so never reach the shared cache."""
    with tempfile.TemporaryDirectory(prefix="untrained-") as cache, \
            mock.patch("hubbench.context.train", lambda model, *args, **kw: {"train_loss": []}):
        yield Path(cache)
