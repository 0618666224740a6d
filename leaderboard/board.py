"""One hub × task kind (and primary metric): its rows of the results frame as methods × tasks × seeds,
with the means every table and figure ranks by and each method's role, so that all of them agree on what
"best" is and on which methods are the single fine-tunes the others must beat."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from scipy.stats import t as student_t

from hubbench.methods import METHODS
from hubbench.params import Role
from hubbench.record import OK, Record


@dataclass
class Board:
    hub: str
    kind: str
    metric: str
    higher: bool
    rows: pd.DataFrame  # this board's rows of `frame.results`, in record order
    roles: dict[str, Role] = field(default_factory=dict)  # method id -> its role (`method_roles`); hub if absent
    tasks: list[str] = field(init=False)
    methods: list[str] = field(init=False)
    ok: pd.DataFrame = field(init=False)  # the ok rows
    scores: pd.Series = field(init=False)  # (method, task, seed) -> primary test metric of the ok rows
    means: pd.Series = field(init=False)  # (method, task) -> mean over seeds
    avg: pd.Series = field(init=False)  # method -> mean over tasks of its means, for methods with every task
    rank: pd.Series = field(init=False)  # method -> rank of its Avg in the board's direction (ties share the best)
    ranked: list[str] = field(init=False)  # the methods by rank, then those without an Avg, by id

    def __post_init__(self):
        self.tasks = sorted(self.rows.task.unique())
        self.methods = sorted(self.rows.method.unique())
        self.ok = self.rows[self.rows.status == OK]
        self.scores = self.ok.dropna(subset=["value"]).set_index(["method", "task", "seed"]).value.sort_index()
        self.means = self.scores.groupby(["method", "task"]).mean()
        by_task = self.means.unstack("task").reindex(columns=self.tasks)
        self.avg = by_task.mean(axis=1, skipna=False).dropna()
        self.rank = self.avg.rank(ascending=not self.higher, method="min").astype("int64")
        self.ranked = sorted(self.methods, key=lambda m: (self.rank.get(m, math.inf), m))

    def seeds(self, method: str, task: str) -> pd.Series:
        """seed -> primary test metric of the ok records of one cell."""
        if (method, task) not in self.means.index:
            return pd.Series(dtype="float64")
        return self.scores.loc[method, task]

    def best(self, scores: pd.Series) -> str | None:
        """The label of the best score in the board's direction (None for no scores); ties: the first."""
        if scores.empty:
            return None
        return scores.idxmax() if self.higher else scores.idxmin()

    def task_means(self, task: str) -> pd.Series:
        """method -> mean over seeds on `task`."""
        return self.means[self.means.index.get_level_values("task") == task].droplevel("task")

    def best_method(self, task: str) -> str | None:
        return self.best(self.task_means(task))

    def role(self, method: str) -> Role:
        return self.roles.get(method, Role.HUB)

    def best_finetune(self, task: str) -> str | None:
        """The single-source fine-tune (by role) with the best mean on `task`: the baseline methods must beat."""
        means = self.task_means(task)
        return self.best(means[means.index.map(self.role) == Role.SINGLE_SOURCE])

    def baselines(self) -> dict[str, str]:
        """task -> its best single fine-tune, for the tasks that have one."""
        return {t: b for t in self.tasks if (b := self.best_finetune(t)) is not None}

    def pairs(self) -> dict[tuple[str, str], Paired]:
        """(method, task) -> the method paired with the task's best single fine-tune, by rank then task, for the
        cells with a seed in common (the baseline itself is left out)."""
        baselines = self.baselines()
        pairs = {(m, t): paired(self.seeds(m, t), self.seeds(b, t), self.higher)
                 for m in self.ranked for t, b in baselines.items() if m != b}
        return {key: p for key, p in pairs.items() if p is not None}

    def method_name(self, method: str) -> str:
        return self.rows.method_name[self.rows.method == method].iloc[0]

    def task_mean(self, columns: list[str]) -> pd.DataFrame:
        """method -> mean over tasks of the per-task mean over seeds of each column (ok rows, known values)."""
        per_task = self.ok.groupby(["method", "task"])[columns].mean()
        return per_task.groupby("method").mean().astype("float64").reindex(self.methods)


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


def paired(method: pd.Series, baseline: pd.Series, higher: bool, level: float = 0.95) -> Paired | None:
    """Differences on the seeds (index) both have, oriented so that positive means `method` is better.

    Pairing by seed removes what a seed shares between methods (its data order and head
    initialisation), which an unpaired comparison of two means would count as noise.
    """
    diffs = (method - baseline).dropna() * (1 if higher else -1)
    if diffs.empty:
        return None
    if len(diffs) < 2:
        return Paired(diffs.mean(), None, None, 1)
    half = student_t.ppf((1 + level) / 2, len(diffs) - 1) * diffs.std() / math.sqrt(len(diffs))
    return Paired(diffs.mean(), diffs.mean() - half, diffs.mean() + half, len(diffs))


def method_roles(records: list[Record]) -> dict[str, Role]:
    """method id -> its role: as its records state it, else (records made before roles) as the method of that name
    declares it (`hubbench.methods`: declarations, no torch); a method unknown here is a hub method."""
    def role(method) -> Role:
        if method.role:
            return Role(method.role)
        return METHODS.get(method.name).role if method.name in METHODS else Role.HUB

    return {r.method.id: role(r.method) for r in records}


def boards(frame: pd.DataFrame, roles: dict[str, Role] | None = None) -> list[Board]:
    """One board per (hub, kind, primary metric), in that order; its direction is its first record's, its
    methods' roles those of `roles` (`method_roles`)."""
    return [Board(hub, kind, metric, bool(rows.higher_is_better.iloc[0]), rows, roles or {})
            for (hub, kind, metric), rows in frame.groupby(["hub", "kind", "metric"], sort=True)]


def comparisons(boards: list[Board]) -> pd.DataFrame:
    """comparisons.csv: one row per board, task and method paired with the task's best single fine-tune (by
    mean test metric): the mean per-seed difference oriented so that positive is better, its 95% t-interval
    (empty for one seed) and the number of seeds paired."""
    rows = [(b.hub, b.kind, b.metric, b.higher, t, b.baselines()[t], m, p.mean, p.low, p.high, p.n)
            for b in boards for (m, t), p in b.pairs().items()]
    columns = {"hub": "str", "kind": "str", "metric": "str", "higher_is_better": "bool", "task": "str",
               "baseline": "str", "method": "str", "diff_mean": "float64", "diff_low95": "float64",
               "diff_high95": "float64", "n": "int64"}
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)
