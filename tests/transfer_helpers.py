"""Helpers shared by the tests of the hub-transfer methods (FE, CED, Distill, K-Flow, soups)."""

import contextlib

import torch
from helpers import make_ctx
from torch import nn


def small_ctx(hub, scope, **protocol):
    """A context with batches of 8 and no evaluation during training: the properties tested here
    do not depend on either, and the fine-tuned artifacts cost a quarter."""
    return make_ctx(hub, scope=scope, **{"batch_size": 8, "eval_every": 0, **protocol})


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    """Bit-identical state dicts (same keys, equal tensors)."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@contextlib.contextmanager
def forward_calls(cls):
    """Collect every module of type `cls` that runs a forward pass inside the block."""
    calls = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, _i, _o: calls.append(m) if isinstance(m, cls) else None)
    try:
        yield calls
    finally:
        handle.remove()


def fit_recording_training(method, ctx) -> tuple[nn.Module, list[tuple[nn.Module, object]]]:
    """`method.fit(ctx)`, and the (model, loss) of every training stage it ran (loss None: the task loss)."""
    stages, train = [], ctx.train

    def spy(model, loss=None, **kw):
        stages.append((model, loss))
        return train(model, loss=loss, **kw)

    ctx.train = spy
    try:
        return method.fit(ctx), stages
    finally:
        del ctx.train
