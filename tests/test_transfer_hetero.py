"""FE, CED and K-Flow train on a hub of several architecture families (soups decline it: test_soups)."""

import pytest
import torch
from transfer_helpers import small_ctx

from hubbench.hubs import HUBS, get_hub
from hubbench.methods import METHODS


@pytest.fixture(scope="module")
def hetero(tiny_hub):  # tiny_hub loads the plugin that registers tiny-hetero
    if "tiny-hetero" not in HUBS:
        pytest.skip("the tiny-hetero hub is not registered")
    hub = get_hub("tiny-hetero")
    assert not hub.homogeneous
    return hub


@pytest.mark.parametrize("name", ["fe", "ced", "kflow"])
def test_feature_methods_train_on_a_heterogeneous_hub(name, hetero):
    ctx = small_ctx(hetero, f"hetero/{name}")
    method = METHODS.get(name)()
    assert method.applicable(hetero, ctx.task) == (True, "")
    model = method.fit(ctx)
    x = next(ctx.task.eval_batches("test"))[:4]
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, ctx.task.num_classes) and torch.isfinite(out).all()

