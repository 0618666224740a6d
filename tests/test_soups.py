"""Model soups: greedy never loses to its best ingredient, uniform averages, one model is itself."""

import dataclasses

import pytest
import torch
from hubbench.methods import METHODS, FinetunedSource, parse_spec
from transfer_helpers import same_state, small_ctx

Soup = METHODS.get("soup")


def test_recipes_are_variants_and_unknown_recipes_are_rejected(tiny_hub):
    assert [Soup(**v).id for v in Soup.variants(tiny_hub)] == ["soup", "soup[recipe=uniform]"]
    cls, params = parse_spec("soup[recipe=mean]")
    with pytest.raises(ValueError, match="greedy, uniform"):
        cls(**params)


def test_heterogeneous_hub_is_not_applicable(tiny_hub):
    odd = dataclasses.replace(tiny_hub.sources[-1], family="other")
    hetero = dataclasses.replace(tiny_hub, sources=(*tiny_hub.sources[:-1], odd))
    ok, reason = Soup().applicable(hetero, None)
    assert not ok and "heterogeneous" in reason


def test_greedy_soup_is_at_least_as_good_as_its_best_ingredient(tiny_hub):
    ctx = small_ctx(tiny_hub, "soup-greedy")
    soup = Soup().fit(ctx)
    singles = {n: ctx.evaluate(ctx.artifact(FinetunedSource(n)), "val")["top1"] for n in tiny_hub.names}
    ingredients = ctx.diagnostics["soup"]["ingredients"]
    assert ingredients[0] == max(singles, key=singles.get)
    assert ctx.evaluate(soup, "val")["top1"] >= max(singles.values())


def test_uniform_soup_averages_weights_and_recomputes_batchnorm(tiny_hub):
    ctx = small_ctx(tiny_hub, "soup-uniform")
    soup = Soup(recipe="uniform").fit(ctx).state_dict()
    states = [ctx.artifact(FinetunedSource(n)).state_dict() for n in tiny_hub.names]
    for key in ("backbone.conv1.weight", "head.2.weight", "backbone.bn1.bias"):
        assert torch.allclose(soup[key], torch.stack([s[key] for s in states]).mean(0), atol=1e-6)
    mean_stats = torch.stack([s["backbone.bn1.running_var"] for s in states]).mean(0)
    assert not torch.allclose(soup["backbone.bn1.running_var"], mean_stats)


@pytest.mark.parametrize("recipe", ["greedy", "uniform"])
def test_soup_of_one_model_is_that_model(recipe, tiny_hub):
    hub = dataclasses.replace(tiny_hub, name="tiny-one", sources=tiny_hub.sources[:1])
    ctx = small_ctx(hub, f"soup-one/{recipe}")
    soup = Soup(recipe=recipe).fit(ctx)
    assert same_state(soup.state_dict(), ctx.artifact(FinetunedSource(hub.names[0])).state_dict())
