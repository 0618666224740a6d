"""The answer of `hubbench rank`: picks (ties as ties, none where nothing is told apart), numbers to a common
significance per ranker, and the seconds of scoring apart from the features'."""

import math

import pytest

from hubbench import record as records
from hubbench.benchmark.rank_cmd import column, summary, table, tune_cell, tune_method
from hubbench.benchmark.suites import Suite
from hubbench.errors import InputError

LN10 = math.log(10)


@pytest.mark.parametrize("scores, picks", [
    ({"a": -0.8, "b": -0.5, "c": -0.9}, ["b"]),
    ({"a": -LN10, "b": -math.log(10.0000000001), "c": -3.0}, ["a", "b"]),  # tied to a relative 1e-9
    ({"a": -LN10, "b": -LN10, "c": -LN10}, []),  # LEEP on random weights: every source alike, none told apart
    ({"a": math.nan, "b": math.nan}, []),
    ({"a": math.nan, "b": -1.0, "c": -2.0}, ["b"]),
    ({"a": math.nan, "b": -1.0, "c": -1.0}, []),
    ({"a": 3.0}, ["a"]),  # one source scored: the only choice
    ({}, []),
])
def test_picks_are_the_best_finite_scores_and_none_where_all_tie(scores, picks):
    assert records.best(scores) == picks


def test_each_rankers_numbers_share_their_decimals():
    assert column([9.0, 3.25, 10.5]) == ["9.00", "3.25", "10.50"]  # four significant digits of the largest
    assert column([-0.81234, -0.5]) == ["-0.8123", "-0.5000"]
    assert column([-2302.6, -1.0]) == ["-2303", "-1"]
    assert column([0.0, math.nan]) == ["0.0000", "nan"]


def ranking(name, scores, score_s=0.01):
    return records.RankingRecord("rank", "h", "t", "classification", records.PluginId(name, name, {}), 0, records.OK,
                                 scores=scores, order=sorted(scores, key=lambda s: -scores[s]),
                                 features={s: {"key": "k", "seconds": 2.0, "dim": 8} for s in scores},
                                 cost=records.RankingCost(6.0, score_s, 6.0 + score_s))


def test_the_table_says_ties_and_the_features_once():
    rankings = {"logme": ranking("logme", {"a": -0.81234, "b": -0.5, "c": -0.9}),
                "leep": ranking("leep", {"a": -LN10, "b": -LN10, "c": -3.0}),
                "nce": ranking("nce", {"a": -LN10, "b": -LN10, "c": -LN10}),
                "hscore": ranking("hscore", {"a": 9.0, "b": 3.25, "c": 1.0}, score_s=0.5)}
    result = summary("h", "t", rankings, None, reused=["nce"], results="r", seconds=1.5)
    lines = table(["a", "b", "c"], result).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:8]}
    assert rows["a"] == ["-0.8123", "-2.303", "-2.303", "9.000"]
    assert rows["pick"] == ["b", "tie:", "a", "=", "b", "-", "a"]
    assert rows["scoring"] == ["s", "0.01", "0.01", "0.01", "0.50"]
    assert "features of the 3 sources: 6.0 s when computed, once for every ranker (cached); this answer took 1.5 s" \
        in lines
    assert "reused the records of an earlier run for nce (in r; --force ranks again)" in lines
    assert result["rankers"]["leep"]["pick"] is None and result["rankers"]["leep"]["tied"] == ["a", "b"]


def test_tune_refuses_a_tie_and_a_ranker_without_a_pick():
    suite = Suite("rank", "", ("mini",), ("digits",), (), (0,), rankers=("leep",))
    tied = {"leep": ranking("leep", {"a": -LN10, "b": -LN10, "c": -3.0})}
    with pytest.raises(InputError, match="--tune: ranker leep ties a and b: --by another ranker, or --tune b_tuning"):
        tune_cell(suite, tune_method(""), "leep", tied)
    with pytest.raises(InputError, match="--tune: no ranker picked no source"):
        tune_cell(suite, tune_method(""), None, tied)
    assert tune_cell(suite, tune_method(""), None, {**tied, "logme": ranking("logme", {"a": 1.0, "b": 0.0})}).entry == \
        "finetune[model=a]"
