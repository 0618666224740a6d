"""Ranking quality: weighted Kendall tau, top-1 hit and rank-then-tune against the realised fine-tunes."""

import json
import math

import pandas as pd
import pytest

from hubbench.leaderboard.ranking import (
    FINETUNE_COLUMNS,
    best_over_same_sources,
    figure,
    quality,
    sources_text,
    summary,
)
from hubbench.record import SCORE_COLUMNS

VALUES = {"a": 90.0, "b": 80.0, "c": 70.0, "d": 60.0, "e": 50.0}  # a is the best fine-tune


def finetunes(kind="classification", higher=True, values=VALUES):
    rows = [("hub", kind, "t", s, seed, v + seed, higher, 10.0) for s, v in values.items() for seed in (0, 1)]
    return pd.DataFrame(rows, columns=FINETUNE_COLUMNS)


def scores(ranker, order, kind="classification"):
    """Scores that rank `order` best first."""
    rows = [("hub", kind, "t", ranker, seed, s, float(len(order) - i), 2.0) for i, s in enumerate(order)
            for seed in (0, 1)]
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS))


def row(table, ranker):
    return table.set_index("ranker").loc[ranker]


def test_a_perfect_ranking_hits_and_a_reversed_one_misses():
    table = quality(pd.concat([scores("good", "abcde"), scores("bad", "edcba")]), finetunes())
    good, bad = row(table, "good"), row(table, "bad")
    assert good.tau_w == pytest.approx(1) and good.top1_hit and good.pick == "a"
    assert bad.tau_w == pytest.approx(-1) and not bad.top1_hit and bad.pick == "e"
    assert bad.pick_value == pytest.approx(50.5) and bad.best_value == pytest.approx(90.5)
    assert good.mean_value == pytest.approx(70.5) and good.sources == 5
    assert good.rank_s == 2.0 and good.finetune_s == 50.0  # one ranking vs five fine-tunes


def test_swapping_the_top_costs_more_than_swapping_the_bottom():
    """The weighting of tau_w: plain Kendall tau scores both swaps alike."""
    table = quality(pd.concat([scores("top", "bacde"), scores("bottom", "abced")]), finetunes())
    assert row(table, "top").tau_w < row(table, "bottom").tau_w < 1


def test_lower_is_better_metrics_are_ranked_by_their_best():
    nme = {"a": 3.0, "b": 4.0, "c": 5.0, "d": 6.0, "e": 7.0}  # a has the lowest error
    table = quality(scores("good", "abcde", "landmarks"), finetunes("landmarks", higher=False, values=nme))
    assert row(table, "good").tau_w == pytest.approx(1) and row(table, "good").top1_hit


def test_a_ranker_that_scores_some_sources_is_judged_on_them_and_picks_among_them():
    table = quality(scores("partial", "cb"), finetunes())  # cannot score a, the best fine-tune
    partial = row(table, "partial")
    assert partial.sources == 2 and partial.pick == "c" and not partial.top1_hit
    assert partial.tau_w == pytest.approx(-1)
    single = row(quality(scores("one", "b"), finetunes()), "one")
    assert math.isnan(single.tau_w) and single.pick == "b"


def test_summary_and_figure():
    table = quality(pd.concat([scores("good", "abcde"), scores("bad", "edcba")]), finetunes())
    totals = summary(table).set_index("ranker")
    assert totals.loc["good", "hits"] == 1 and totals.loc["bad", "hits"] == 0 and totals.loc["good", "tasks"] == 1
    both = pd.concat([scores("good", "abcde"), scores("bad", "edcba")])
    assert figure(both, finetunes(), "hub", "classification").startswith(b"\x89PNG")
    assert figure(both, finetunes(), "hub", "landmarks") is None


def test_no_finetunes_means_no_ranking_quality():
    empty = pd.DataFrame(columns=FINETUNE_COLUMNS)
    assert quality(scores("good", "abcde"), empty).empty


def test_the_table_says_over_which_sources_and_marks_the_best_only_among_the_same_sources():
    """LEEP's and NCE's tau over the 2 sources with a classifier is not better than LogME's over all 5."""
    table = quality(pd.concat([scores("all_good", "abcde"), scores("all_bad", "edcba"), scores("two_good", "ab"),
                               scores("two_bad", "ba"), scores("alone", "ce")]), finetunes())
    totals = summary(table)
    by = totals.set_index("ranker")
    assert by.loc["all_good", "sources_max"] == 5 and sources_text(by.loc["all_good"]) == "5 of 5"
    assert sources_text(by.loc["two_good"]) == "2 of 5 (a, b)" and by.loc["two_good", "tau_w"] == pytest.approx(1)
    assert best_over_same_sources(totals) == {"all_good", "two_good"}  # "alone" is compared with none
    two_tasks = pd.concat([finetunes(), finetunes().assign(task="u")])
    partial = pd.concat([scores("p", "ab"), scores("p", "abc").assign(task="u")])
    assert sources_text(summary(quality(partial, two_tasks)).iloc[0]) == "2–3 of 5 (a, b | a, b, c)"


def test_a_ranking_made_at_another_image_size_than_its_fine_tunes_is_flagged_on_its_row(tmp_path):
    """The issue's case: LogME ranked at 256 px, the fine-tunes at 32 px; LEEP at 32 px like them."""
    from test_leaderboard import config, full, write

    from hubbench.leaderboard.generate import generate

    tuned = [full("t", f"finetune[model={s}]", 0, v, hub="hub", kind="classification") for s, v in VALUES.items()]
    for r in tuned:
        r["method"].update(name="finetune", params={"model": r["method"]["id"][15:-1]})
        r["config"]["task"]["protocol"].update(image_size=32, resize=36)
    write(tmp_path / "r", tuned)
    for ranker, size in (("logme", 256), ("leep", 32)):
        ranking = {"schema": "hubbench.ranking/2", "suite": "s", "hub": "hub", "task": "t", "kind": "classification",
                   "ranker": {"id": ranker, "name": ranker, "params": {}}, "seed": 0, "status": "ok",
                   "scores": {s: -i for i, s in enumerate("abcde")}, "order": list("abcde"),
                   "config": config("t", image_size=size, resize=size + 4 if size == 32 else 0)}
        path = tmp_path / "r" / "s" / "hub" / "t" / "rank" / ranker / "seed0.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(ranking))
    readme = (generate("s", tmp_path / "r", tmp_path / "lb") / "README.md").read_text()
    quality_rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| l")}
    assert "1.00 ✓ ⚠" in quality_rows["logme"] and "⚠" not in quality_rows["leep"]
    assert "⚠ **Other images than the fine-tunes'**: logme on t was ranked at image_size 256, resize 0; " \
           "fine-tuned at image_size 32, resize 36" in readme
    assert "leep on t" not in readme
