"""Hyper-parameter search as part of a suite's protocol: what a `[protocol.search]` table declares (`Space`), the
settings it tries (a grid, or a seeded Optuna sampler's asks), how far each trial trains (the rungs of successive
halving) and which setting it selects. Pure decisions over trial results: running the trials is the runner's
(`hubbench.benchmark.tuning`), so every executor runs them as it runs cells.

Successive halving is synchronous here: every trial of a round trains to the first rung, the best `1/eta` of them
(at least one) continue to the next, and so on to the full schedule. Optuna's pruners are asynchronous (ASHA: a
trial continues if it is among the best of those that reached its rung *before it*), so with parallel workers a
trial's fate would depend on which trials happened to finish first, and in sequence the first trial always runs to
the end; deciding a rung once all its trials are in keeps the selection reproducible bit for bit whatever runs
the trials, and the cost at what the rungs say. The settings come from Optuna's samplers with a fixed seed
(`sampler = "random"` or `"tpe"`, with a `trials` budget), or from the grid of the listed values.
"""

from __future__ import annotations

import itertools
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hubbench.errors import InputError
from hubbench.record import TrialRecord
from hubbench.schedule import Schedule, field_types, searchable, typed

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("halving", "none")
RETRAIN = ("train", "train+val")
OPTIONS = {  # the search's own keys: name -> (type, default, valid?, what it must be)
    "sampler": (str, "grid", lambda v: v in SAMPLERS, f"one of {', '.join(SAMPLERS)}"),
    "trials": (int, None, lambda v: v >= 1, "a number of trials of at least 1"),
    "rounds": (int, 1, lambda v: v >= 1, "at least 1"),
    "seed": (int, 0, lambda v: v >= 0, "a non-negative integer"),
    "pruner": (str, "halving", lambda v: v in PRUNERS, f"one of {', '.join(PRUNERS)}"),
    "eta": (int, 3, lambda v: v >= 2, "at least 2"),
    "first_rung": (float, 0.25, lambda v: 0 < v < 1, "a fraction of the iterations in (0, 1)"),
    "retrain": (str, "train", lambda v: v in RETRAIN, f"one of {', '.join(RETRAIN)}"),
}
FAILED, PRUNED, OK = "failed", "pruned", "ok"


class SearchError(InputError):
    """A search table that cannot be run; the message names the key and what it must be."""


@dataclass(frozen=True)
class Range:
    """A sampler's interval of a number: uniform, or uniform in its logarithm (`log`)."""

    low: float
    high: float
    log: bool = False


Domain = tuple[Any, ...] | Range  # the values a field takes: listed (a grid's axis, a sampler's choices) or a range


@dataclass(frozen=True)
class Space:
    """A suite's `[protocol.search]` table, checked: the protocol's optimisation fields it tunes (`protocol`), each
    method's own fields (`methods`, by method name), and how (the `OPTIONS`)."""

    protocol: dict[str, Domain]
    methods: dict[str, dict[str, Domain]]
    sampler: str = "grid"
    trials: int | None = None
    rounds: int = 1
    seed: int = 0
    pruner: str = "halving"
    eta: int = 3
    first_rung: float = 0.25
    retrain: str = "train"

    @classmethod
    def parse(cls, table: Any, where: str, methods: dict[str, type]) -> Space:
        """The space of `table` (found at `where`, e.g. `protocol.search`); `methods` are the suite's method classes
        by name. Every mistake is a `SearchError` naming the key: an empty or malformed search, an unknown field,
        a value its field refuses, a range without a sampler, a sampler without a trial budget."""
        if not isinstance(table, dict):
            raise SearchError(f"{where} must be a table of fields to search")
        options = {k: check_option(f"{where}.{k}", k, v) for k, v in table.items() if k in OPTIONS}
        sampled = options.get("sampler", "grid") != "grid"
        protocol, per_method = {}, {}
        for key, value in table.items():
            if key in OPTIONS:
                continue
            if key in methods:
                per_method[key] = method_domains(f"{where}.{key}", value, methods[key], sampled)
            elif key in searchable():
                protocol[key] = domain(f"{where}.{key}", key, value, field_types(Schedule)[key], sampled,
                                       lambda k, v: Schedule(**{"iterations": 1, "lr": 1.0, "batch_size": 1, k: v}))
            else:
                choices = ", ".join([*searchable(), *methods, *OPTIONS])
                raise SearchError(f"{where}: unknown key {key!r}: a search tunes the optimisation fields of the "
                                  f"protocol and the fields of the suite's methods (choose from: {choices})")
        if not protocol and not any(per_method.values()):
            raise SearchError(f"{where} declares no field to search (e.g. lr = [0.01, 0.03, 0.1])")
        if sampled and options.get("trials") is None:
            raise SearchError(f"{where}: sampler {options['sampler']!r} needs a trial budget (trials = N)")
        if not sampled and ({"trials", "rounds"} & options.keys()):
            raise SearchError(f"{where}: 'trials' and 'rounds' go with a sampler (sampler = \"random\" or \"tpe\"); "
                              "a grid tries every combination of the values listed")
        if sampled and options.get("rounds", 1) > options["trials"]:
            raise SearchError(f"{where}.rounds must be at most the trials ({options['trials']})")
        return cls(protocol, per_method, **options)

    def applied(self, trains: bool, method: str | None) -> dict[str, Domain]:
        """The fields this space tunes for a training: the protocol's if it `trains` (a method whose `fit` trains
        a model of its own, or a fine-tuned source), and those of its `method` (by name), as `method.field`."""
        own = {f"{method}.{k}": v for k, v in self.methods.get(method, {}).items()} if method else {}
        return {**(self.protocol if trains else {}), **own}

    def rungs(self, iterations: int) -> list[int]:
        """The iterations at which a trial's validation metric decides whether it continues: the first rung, `eta`
        times further at each next one, and the end of the schedule (only the end without a pruner)."""
        if self.pruner == "none":
            return [iterations]
        count = 1 + max(0, math.ceil(math.log(1 / self.first_rung, self.eta) - 1e-9))
        fractions = [min(1.0, self.first_rung * self.eta**k) for k in range(count)]
        return sorted({max(1, round(f * iterations)) for f in [*fractions, 1.0]})

    def round_sizes(self, grid_size: int) -> list[int]:
        """How many trials each round asks: the whole grid at once, or the budget split over the rounds."""
        if self.sampler == "grid":
            return [grid_size]
        base, extra = divmod(self.trials, self.rounds)
        return [base + (i < extra) for i in range(self.rounds)]


def check_option(where: str, key: str, value: Any) -> Any:
    kind, _, ok, must = OPTIONS[key]
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind or not ok(value):
        raise SearchError(f"{where} must be {must}, got {value!r}")
    return value


def domain(where: str, name: str, value: Any, kind: Any, sampled: bool, check, what: str = "protocol field") -> Domain:
    """The values of field `name` (of type `kind`): a non-empty list of distinct values, each one `check(name,
    value)` accepts, or with a sampler a range {low, high, log} of a number."""
    if isinstance(value, dict):
        if not sampled:
            raise SearchError(f"{where}: a range goes with a sampler (sampler = \"random\" or \"tpe\"); a grid "
                              "lists its values")
        return value_range(where, name, value, kind, check, what)
    if not isinstance(value, list) or not value:
        raise SearchError(f"{where} must be a non-empty list of values" + (", or a range {low, high, log}"
                                                                            if sampled else ""))
    if sampled and typing.get_origin(kind) is tuple:
        raise SearchError(f"{where}: a sampler chooses numbers, booleans and names; list the values of "
                          f"{name!r} in a grid")
    values = tuple(checked(where, name, v, kind, check, what) for v in value)
    if len(set(map(repr, values))) != len(values):
        raise SearchError(f"{where} lists a value twice: {value!r}")
    return values


def value_range(where: str, name: str, value: dict, kind: Any, check, what: str) -> Range:
    if kind not in (int, float) or set(value) - {"low", "high", "log"} or not {"low", "high"} <= set(value):
        raise SearchError(f"{where}: a range is {{low = ..., high = ..., log = true|false}} of a number field")
    low, high = (checked(where, name, value[k], kind, check, what) for k in ("low", "high"))
    log = value.get("log", False)
    if type(log) is not bool or not low < high or (log and low <= 0):
        raise SearchError(f"{where}: a range needs low < high (and low > 0 with log = true), got {value!r}")
    return Range(low, high, log)


def checked(where: str, name: str, value: Any, kind: Any, check, what: str) -> Any:
    """`value` typed as its field holds it, refused (naming `where`) where the field's own checks refuse it."""
    try:
        value = typed(name, value, kind, what)
        check(name, value)
    except (TypeError, ValueError) as e:
        raise SearchError(f"{where}: {e}") from None
    return value


def method_domains(where: str, table: Any, cls: type, sampled: bool) -> dict[str, Domain]:
    """A method's searched fields (`[protocol.search.<method>]`), each checked by making the method with it."""
    import dataclasses

    if not isinstance(table, dict) or not table:
        raise SearchError(f"{where} must be a table of the method's fields to search")
    fields = {f.name for f in dataclasses.fields(cls)}
    hints = field_types(cls)
    out = {}
    for name, value in table.items():
        if name not in fields:
            raise SearchError(f"{where}: method {cls.name!r} has no parameter {name!r} "
                              f"(choose from: {', '.join(sorted(fields)) or 'none'})")
        out[name] = domain(f"{where}.{name}", name, value, hints[name], sampled, lambda k, v: cls(**{k: v}),
                           f"{cls.name} parameter")
    return out


Setting = tuple[tuple[str, Any], ...]  # (field, value) pairs in the space's order: a trial's identity


def grid(domains: dict[str, Domain]) -> list[Setting]:
    """Every combination of the listed values, the first field varying slowest."""
    names = list(domains)
    return [tuple(zip(names, values, strict=True)) for values in itertools.product(*domains.values())]


@dataclass(frozen=True)
class Result:
    """What a trial's records say: its validation metric at each rung it reached, or that it failed there."""

    setting: Setting
    values: dict[int, float]  # rung iteration -> val metric
    failed: str | None = None  # why, where it failed or diverged

    def at(self, rung: int) -> float | None:
        return None if self.failed else self.values.get(rung)


def promoted(results: Sequence[Result], rung: int, eta: int, higher_is_better: bool) -> list[int]:
    """Which trials (indices into `results`) continue past `rung`: the best ceil(n / eta) of the n that reached
    it, at least one; a failed trial never (synchronous successive halving). Ties keep the earlier trial."""
    reached = [i for i, r in enumerate(results) if r.at(rung) is not None]
    keep = math.ceil(len(reached) / eta)
    order = sorted(reached, key=lambda i: (-results[i].at(rung) if higher_is_better else results[i].at(rung), i))
    return sorted(order[:keep])


def selected(results: Sequence[Result], last: int, higher_is_better: bool) -> int | None:
    """The trial that completed the schedule with the best validation metric (the earlier of equals); None if
    none did."""
    done = [i for i, r in enumerate(results) if r.at(last) is not None]
    return promoted(results, last, len(done) or 1, higher_is_better)[0] if done else None


def asks(space: Space, domains: dict[str, Domain], told: list[list[Result]], size: int, last: int,
         higher_is_better: bool) -> list[Setting]:
    """The settings of the next round, from Optuna's sampler seeded with `space.seed`, told every earlier round's
    results in order (a round's settings are asked before any of its trials runs, so they run in parallel; the
    same asks and tells give the same settings). `last`: the rung that ends the schedule."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    study = optuna.create_study(direction="maximize" if higher_is_better else "minimize",
                                sampler=samplers[space.sampler](seed=space.seed))
    distributions = {name: distribution(d) for name, d in domains.items()}
    for results in told:
        for trial, result in [(study.ask(distributions), r) for r in results]:
            if result.failed or not result.values:
                study.tell(trial, state=TrialState.FAIL)
                continue
            for rung, value in sorted(result.values.items()):
                trial.report(value, rung)
            complete = result.at(last) is not None
            study.tell(trial, result.values[last] if complete else None,
                       state=TrialState.COMPLETE if complete else TrialState.PRUNED)
    return [tuple((name, trial.params[name]) for name in domains)
            for trial in [study.ask(distributions) for _ in range(size)]]


def distribution(d: Domain):
    """A field's domain as an Optuna distribution."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(d, Range):
        return (IntDistribution if isinstance(d.low, int) else FloatDistribution)(d.low, d.high, log=d.log)
    return CategoricalDistribution(d)


def setting_id(setting: Setting) -> str:
    """`lr=0.1,weight_decay=0.0005`: a setting as its trial's records and checkpoints are named (lists joined by
    '+', as in a suite variant's name)."""
    def text(v: Any) -> str:
        return "+".join(map(text, v)) if isinstance(v, tuple) else str(v).lower() if isinstance(v, bool) else str(v)

    return ",".join(f"{k}={text(v)}" for k, v in setting)


@dataclass(frozen=True)
class Trial:
    """One setting of a search trained up to one rung (`rung`: an iteration of the schedule): a unit of a suite's
    work like a method's cell (`hubbench.benchmark.tuning`), whose record holds its validation metric there.
    `subject`: what the search tunes, a method (its own training) or a fine-tuned source (an artifact); `owner`:
    the method whose cell needs the search (a worker re-creates the subject from it)."""

    RECORD: ClassVar[type[TrialRecord]] = TrialRecord

    subject: Any
    setting: Setting
    rung: int
    owner: Any = field(compare=False, repr=False)

    @property
    def trained(self) -> str:
        """What is trained, whatever the rung: names the trial's checkpoints and lock."""
        return f"{self.subject.id}/{setting_id(self.setting)}"

    @property
    def id(self) -> str:
        return f"{self.trained}/rung{self.rung}"

    @property
    def name(self) -> str:
        """The method whose job resources it takes: its subject, or for a fine-tuned source the method whose cell
        needs the search."""
        return getattr(self.subject, "name", self.owner.name)

    @property
    def role(self):
        """Its subject's role (a fine-tuned source's: single-source), which its records state."""
        return self.subject.role

    @property
    def params(self) -> dict[str, Any]:
        return {"subject": self.subject.id, "setting": dict(self.setting), "rung": self.rung}

    def protocol(self, base):
        """`base` (a task's protocol) at this trial's setting."""
        return base.replace(**{k: v for k, v in self.setting if "." not in k})

    def applicable(self, hub, task) -> tuple[bool, str]:
        return self.subject.applicable(hub, task) if hasattr(self.subject, "applicable") else (True, "")

    def needs(self, hub, task) -> list:
        return self.subject.needs(hub, task) if hasattr(self.subject, "needs") else []
