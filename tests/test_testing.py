"""hubbench.testing itself: its checks fail on broken methods and rankers, and expected failures are marked."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from hubbench.artifacts import FinetunedSource
from hubbench.methods.scratch import Scratch
from hubbench.rankers.base import NotScored, Score
from hubbench.rankers.logme import LogME
from hubbench.testing import (
    CHECK_TASKS,
    check_cell,
    check_describes_itself,
    check_fit_predicts_task_outputs,
    check_needs,
    check_ranking_cell,
    check_scores_sources,
    parametrize_with_checks,
    parametrize_with_ranker_checks,
)


class Broken(nn.Module):
    """Wraps a trained model: drops the last output channel, or gives NaN, in evaluation only."""

    def __init__(self, model: nn.Module, how: str):
        super().__init__()
        self.model, self.how = model, how

    def forward(self, x):
        out = self.model(x)
        if self.training:
            return out
        return out[:, :-1] if self.how == "shape" else out * float("nan")


@dataclass(frozen=True)
class BrokenScratch(Scratch):  # not registered: checked as a plugin's method is, without joining the registry
    how: str = "shape"

    def fit(self, ctx):
        return Broken(super().fit(ctx), self.how)


@dataclass(frozen=True)
class Nowhere(Scratch):  # not registered
    reason: str = "defined on no hub"

    def applicable(self, hub, task):
        return False, self.reason


def test_a_method_that_is_not_applicable_passes_if_it_says_why():
    check_fit_predicts_task_outputs(Nowhere(), "faces")
    check_cell(Nowhere(), "faces", "bf16")
    with pytest.raises(AssertionError, match="must say why"):
        check_fit_predicts_task_outputs(Nowhere(reason=""), "faces")


def test_checks_fail_on_broken_methods():
    with pytest.raises(AssertionError, match="is not registered"):
        check_describes_itself(BrokenScratch())
    with pytest.raises(AssertionError, match=r"outputs of shape \(5, \d+\), not the task's"):
        check_fit_predicts_task_outputs(BrokenScratch("shape"), "scenes")
    with pytest.raises(AssertionError, match=r"non-finite (val|test) metrics: {.loss.: nan}"):
        check_cell(BrokenScratch("nan"), "scenes", "fp32")
    check_fit_predicts_task_outputs(Scratch(), "scenes")  # the unbroken method passes


@dataclass(frozen=True)
class Peeking(Scratch):  # not registered
    """Reuses the first source's fine-tune (for its validation metric, say) as it trains from scratch."""

    declared: bool = False

    def needs(self, hub, task):
        return [FinetunedSource(hub.names[0])] if self.declared else []

    def fit(self, ctx):
        ctx.artifact(FinetunedSource(ctx.hub.names[0]))
        return super().fit(ctx)


def test_the_needs_check_fails_on_a_method_reusing_an_artifact_it_does_not_declare():
    task = CHECK_TASKS["classification"]
    with pytest.raises(AssertionError, match=r"fit reused finetuned-\w+, which needs\(\) does not declare"):
        check_needs(Peeking(), task)
    check_needs(Peeking(declared=True), task)
    check_needs(Scratch(), task)


def test_checks_are_named_per_kind_and_runtime_and_expected_failures_are_strict_xfails():
    mark = parametrize_with_checks([Scratch()], tasks={"landmarks": "faces"}, expected_failed_checks=lambda m: {
        "check_cell": "every runtime", "check_fit_predicts_task_outputs[landmarks]": "this one"})
    names, params = mark.args
    assert names == "method, check"
    ids = {p.id: p for p in params}
    assert list(ids) == ["scratch-check_describes_itself", "scratch-check_fit_predicts_task_outputs[landmarks]",
                         "scratch-check_needs[landmarks]", "scratch-check_cell[landmarks-fp32]",
                         "scratch-check_cell[landmarks-bf16]", "scratch-check_cell[landmarks-bf16-channels_last]"]
    reasons = {i: [(m.kwargs["reason"], m.kwargs["strict"]) for m in p.marks] for i, p in ids.items()}
    assert reasons["scratch-check_describes_itself"] == []
    assert reasons["scratch-check_fit_predicts_task_outputs[landmarks]"] == [("this one", True)]
    assert reasons["scratch-check_cell[landmarks-bf16]"] == [("every runtime", True)]
    assert all(isinstance(p.values[0], Scratch) and callable(p.values[1]) for p in params)


@dataclass(frozen=True)
class BrokenLogME(LogME):  # not registered; its parameter gives it ids (and cached rankings) of its own
    how: str = "nan"

    def score(self, features, targets):
        if self.how == "nan":
            return Score(float("nan"))
        if self.how == "random":
            return Score(torch.rand(()).item())
        if self.how == "mute":
            raise NotScored("")
        raise RuntimeError("the ranker crashed")


@dataclass(frozen=True)
class RanksNothing(LogME):  # not registered
    reason: str = "defined on no hub"

    def applicable(self, hub, task):
        return False, self.reason


def test_ranker_checks_fail_on_broken_rankers():
    task = CHECK_TASKS["classification"]
    with pytest.raises(AssertionError, match="is not registered"):
        check_describes_itself(BrokenLogME())
    with pytest.raises(AssertionError, match="non-finite score of"):
        check_scores_sources(BrokenLogME(how="nan"), task)
    with pytest.raises(AssertionError, match="scored twice differs"):
        check_scores_sources(BrokenLogME(how="random"), task)
    with pytest.raises(AssertionError, match="must say why"):
        check_scores_sources(BrokenLogME(how="mute"), task)
    with pytest.raises(AssertionError, match="non-finite scores"):
        check_ranking_cell(BrokenLogME(how="nan"), task)
    with pytest.raises(AssertionError, match="RuntimeError: the ranker crashed"):
        check_ranking_cell(BrokenLogME(how="crash"), task)
    check_scores_sources(LogME(), task)  # the unbroken ranker passes
    check_describes_itself(LogME())


def test_a_ranker_that_is_not_applicable_passes_if_it_says_why():
    for check in (check_scores_sources, check_ranking_cell):
        check(RanksNothing(), CHECK_TASKS["landmarks"])
        with pytest.raises(AssertionError, match="must say why"):
            check(RanksNothing(reason=""), CHECK_TASKS["landmarks"])


def test_ranker_checks_are_named_per_kind_and_marked_like_the_methods():
    mark = parametrize_with_ranker_checks([LogME()], expected_failed_checks=lambda r: {"check_ranking_cell": "why"})
    names, params = mark.args
    assert names == "ranker, check"
    assert [p.id for p in params] == [
        "logme-check_describes_itself", "logme-check_scores_sources[classification]",
        "logme-check_ranking_cell[classification]", "logme-check_scores_sources[landmarks]",
        "logme-check_ranking_cell[landmarks]"]
    assert [bool(p.marks) for p in params] == [False, False, True, False, True]
