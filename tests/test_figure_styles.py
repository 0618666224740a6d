"""Figures that stay legible with 20 methods: one visual language per group of methods, distinct colours
within a group, and curve panels of the hub methods against the best single fine-tune only."""

from hubbench.figures import FINETUNES, HUB, OTHERS, group, styles
from hubbench.leaderboard.figures import HUB_CURVES, shown_curves
from hubbench.params import Role

FINETUNE_IDS = [f"finetune[model=s{i}]" for i in range(6)]
HUB_IDS = ["zoo_tuning", "zoo_tuning_l", "hub_pathway", "b_tuning", "ensemble_i", "ensemble_j", "distill", "kflow",
           "ced", "ced_ft", "fe", "fe_ft", "soup", "soup[recipe=uniform]"]
ROLES = {**dict.fromkeys(FINETUNE_IDS, Role.SINGLE_SOURCE), **dict.fromkeys(HUB_IDS, Role.HUB),
         "scratch": Role.FROM_SCRATCH}


def test_each_group_has_one_look_and_distinct_colours():
    looks = styles({m: ROLES[m] for m in sorted(ROLES)})
    assert {group(ROLES[m]) for m in FINETUNE_IDS} == {FINETUNES} and {group(ROLES[m]) for m in HUB_IDS} == {HUB}
    assert group(ROLES["scratch"]) == OTHERS
    for members in (FINETUNE_IDS, HUB_IDS):
        assert len({looks[m]["color"] for m in members}) == len(members)  # told apart by colour alone
        assert len({(looks[m]["linestyle"], looks[m]["marker"]) for m in members}) == 1  # one language per group
    languages = {(looks[m]["linestyle"], looks[m]["marker"]) for m in (FINETUNE_IDS[0], HUB_IDS[0], "scratch")}
    assert len(languages) == 3
    assert not {looks[m]["color"] for m in FINETUNE_IDS} & {looks[m]["color"] for m in HUB_IDS}


def test_curve_panels_show_the_best_hub_methods_and_the_best_fine_tune():
    class R:
        def __init__(self, value):
            self.value = value

    class Panel:  # what shown_curves reads of a panel
        higher = True
        baseline = "finetune[model=s2]"
        role = ROLES.get

        @staticmethod
        def ok(m):
            return [R(float(len(m))), R(float(len(m)))]  # the longer the id, the better

    methods = [*FINETUNE_IDS, *HUB_IDS, "scratch"]
    best = sorted(HUB_IDS, key=len, reverse=True)[:HUB_CURVES]
    assert shown_curves(Panel, methods) == [*best, "finetune[model=s2]"]
    Panel.higher = False
    assert shown_curves(Panel, methods)[:HUB_CURVES] == sorted(HUB_IDS, key=len)[:HUB_CURVES]
    assert shown_curves(Panel, FINETUNE_IDS + ["scratch"]) == sorted(FINETUNE_IDS + ["scratch"], key=len)[:HUB_CURVES]
