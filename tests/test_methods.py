"""Properties that define the methods of the walking skeleton."""

import pytest
import torch
from helpers import make_ctx, untrained
from transfer_helpers import same_state

from hubbench.methods import METHODS, FinetunedSource, parse_spec
from hubbench.models import Ensemble


def test_spec_parsing_is_typed_and_validated():
    cls, params = parse_spec("finetune[model=selfsup]")
    assert cls is METHODS.get("finetune") and params == {"model": "selfsup"}
    assert cls(**params).id == "finetune[model=selfsup]"
    for bad in ("finetune[model=a/b]", "finetune[model]", "fine tune", "finetune[nope=1]"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_finetune_starts_from_the_source_and_scratch_does_not(tiny_hub):
    source = tiny_hub.sources[2]
    with untrained() as cache:
        ft = METHODS.get("finetune")(model=source.name).fit(make_ctx(tiny_hub, scope="p1", cache=cache))
        scratch = METHODS.get("scratch")().fit(make_ctx(tiny_hub, scope="p1", cache=cache))
    assert same_state(source.weights(), ft.backbone.state_dict())
    assert not any(same_state(s.weights(), scratch.backbone.state_dict()) for s in tiny_hub.sources)


def test_unknown_finetune_model_is_not_applicable(tiny_hub):
    ok, reason = METHODS.get("finetune")(model="nope").applicable(tiny_hub, None)
    assert not ok and "choose from" in reason


def test_artifact_is_trained_once_and_reused(tiny_hub, monkeypatch):
    ctx = make_ctx(tiny_hub, scope="reuse", seed=7)
    members = [METHODS.get("finetune")(model=name).fit(ctx) for name in tiny_hub.names]
    monkeypatch.setattr(FinetunedSource, "train", lambda *a: pytest.fail("artifact retrained"))
    ensemble_ctx = make_ctx(tiny_hub, scope="reuse-2", seed=7)
    ensemble = METHODS.get("ensemble_i")().fit(ensemble_ctx)
    for member, reused in zip(members, ensemble.members, strict=True):
        assert same_state(member.state_dict(), reused.state_dict())
    assert ensemble_ctx.train_seconds == 0
    assert ensemble_ctx.used == ctx.used and all(a["train_s"] > 0 for a in ctx.used.values())


def test_ensemble_i_averages_member_probabilities(tiny_hub):
    ctx = make_ctx(tiny_hub, scope="ens", seed=3)
    ensemble = METHODS.get("ensemble_i")().fit(ctx)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == len(tiny_hub.sources)
    x = next(ctx.task.eval_batches("test"))[:6]
    with torch.no_grad():
        probs = torch.stack([m(x).softmax(-1) for m in ensemble.members]).mean(0)
        assert torch.allclose(ensemble(x).exp(), probs, atol=1e-5)


def test_records_do_not_depend_on_the_cache_state(tiny_hub):
    """Loading a cached artifact or training it anew leaves the caller's random stream alone."""
    torch.manual_seed(5)
    make_ctx(tiny_hub, scope="rng", seed=11).artifact(FinetunedSource(tiny_hub.names[0]))  # trains it
    after_training = torch.rand(3)
    torch.manual_seed(5)
    make_ctx(tiny_hub, scope="rng", seed=11).artifact(FinetunedSource(tiny_hub.names[0]))  # loads it
    assert torch.equal(torch.rand(3), after_training)
