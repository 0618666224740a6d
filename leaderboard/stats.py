"""The few statistics the leaderboard states: seed spread, paired differences with t-intervals, Pareto fronts."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy.stats import t as student_t


def mean_std(values: list[float]) -> str:
    """"mean ± sample std" over seeds; a single seed has no spread to show."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


@dataclass(frozen=True)
class Paired:
    """Mean of per-seed differences (positive = better) and its two-sided t-interval (None for n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def sign(self) -> int:
        """+1 / -1 when the interval excludes 0 on the better / worse side, else 0."""
        if self.low is not None and self.low > 0:
            return 1
        if self.high is not None and self.high < 0:
            return -1
        return 0


def paired(method: dict[int, float], baseline: dict[int, float], higher: bool, level: float = 0.95) -> Paired | None:
    """Differences on the seeds both have, oriented so that positive means `method` is better.

    Pairing by seed removes what a seed shares between methods (its data order and head
    initialisation), which an unpaired comparison of two means would count as noise.
    """
    seeds = sorted(method.keys() & baseline.keys())
    if not seeds:
        return None
    diffs = [(method[s] - baseline[s]) * (1 if higher else -1) for s in seeds]
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return Paired(mean, None, None, 1)
    half = student_t.ppf((1 + level) / 2, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Paired(mean, mean - half, mean + half, len(diffs))


def pareto(points: dict[str, tuple[float, float]], higher: bool) -> list[str]:
    """Keys of the points no other point beats in both cost (x, lower is better) and score (y), by cost."""
    sign = 1 if higher else -1
    front, best = [], -math.inf
    for key in sorted(points, key=lambda k: (points[k][0], -sign * points[k][1])):
        if sign * points[key][1] > best:
            front.append(key)
            best = sign * points[key][1]
    return front
