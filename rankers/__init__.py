"""Rankers: scores that predict, without training, how well each hub model transfers to a task.

Importing this package registers every module of it and every ranker an installed package declares
under the `hubbench.rankers` entry point group.
"""

from hubbench.discovery import import_submodules, load_entry_points
from hubbench.features import SourceFeatures
from hubbench.rankers.base import RANKERS, NotScored, Ranker, Ranking, Score, parse_spec, ranking, register

import_submodules(__name__, __path__)
load_entry_points("hubbench.rankers")  # rankers of installed packages

__all__ = ["RANKERS", "NotScored", "Ranker", "Ranking", "Score", "SourceFeatures", "parse_spec", "ranking",
           "register"]
