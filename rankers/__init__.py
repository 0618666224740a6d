"""Rankers: scores that predict, without training, how well each hub model transfers to a task.

Importing this package registers every module of it (the rankers' declarations, which import no torch) and
every ranker an installed package declares under the `hubbench.rankers` entry point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbench.discovery import import_submodules, load_entry_points
from hubbench.rankers.base import RANKERS, NotScored, Ranker, Ranking, Score, parse_spec, ranking, register

if TYPE_CHECKING:
    from hubbench.features import SourceFeatures

import_submodules(__name__, __path__)
load_entry_points("hubbench.rankers")  # rankers of installed packages

__all__ = ["RANKERS", "NotScored", "Ranker", "Ranking", "Score", "SourceFeatures", "parse_spec", "ranking",
           "register"]


def __getattr__(name: str) -> Any:
    if name == "SourceFeatures":  # a ranker's input, made with torch: loaded when first asked for
        from hubbench.features import SourceFeatures

        return SourceFeatures
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
