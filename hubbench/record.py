"""The record: one JSON file per benchmark cell, and the one module that knows its shape.

A record carries everything needed to interpret it (the leaderboard reads nothing else of a run): identity
(suite, hub, task, method and its hyper-parameters, seed), outcome (status, reason, times), the
primary and every val/test metric, complexity, cost, curves, diagnostics, config and environment.
Its shape is `Record` (a ranking cell's, `RankingRecord`; both a `CellRecord`), written with its schema version;
files of every earlier version are upgraded on read (`UPGRADES`), so a version bump neither drops old records from
a leaderboard nor makes `hubbench run` redo them. A file this hubbench cannot read (corrupt, malformed, or written
by a newer hubbench) raises `RecordError` naming it, so that no command mistakes it for a missing record.

`Record.row` is the flat view every table derives from: one column per value, each declared once (`Column`: its type,
where a record holds it, and how the leaderboard shows it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from hubbench.errors import InputError
from hubbench.io import write_json

OK, FAILED, INAPPLICABLE = "ok", "failed", "inapplicable"
STATUSES = (OK, FAILED, INAPPLICABLE)


class RecordError(InputError):
    """A file that is not a record this hubbench can read; the message names it and says why."""


class ForeignFile(RecordError):
    """A JSON file of another kind than records (e.g. a `hubbench profile` result)."""


@dataclass(frozen=True)
class PluginId:
    """The method or ranker a record was made by."""

    id: str  # name[k=v,...] with the parameters that differ from their defaults
    name: str
    params: dict[str, Any] = field(default_factory=dict)  # every hyper-parameter
    # a method's role (`hubbench.params.Role`); None for a ranker, and in records made before roles (the
    # leaderboard then takes the role the method of that name declares)
    role: str | None = None

    @classmethod
    def of(cls, plugin: Any) -> PluginId:
        """The identity of a method or ranker (`hubbench.params.Plugin`)."""
        return cls(plugin.id, plugin.name, plugin.params, getattr(plugin.role, "value", plugin.role))


@dataclass(frozen=True)
class Metric:
    """The task's primary metric: its name, its direction and (ok records) its test value."""

    name: str
    higher_is_better: bool = True
    value: float | None = None


@dataclass(frozen=True)
class Params:
    total: int | None = None
    trainable: int | None = None
    active: float | None = None  # mean parameters a test sample goes through


@dataclass(frozen=True)
class Flops:
    """GFLOPs per sample at inference: fvcore's (1 per multiply-add) and FlopCounterMode's (2)."""

    batch: int | None = None
    fvcore_gflops: float | None = None
    flop_counter_gflops: float | None = None
    fvcore_unsupported: dict[str, int] = field(default_factory=dict)  # operator -> calls counted as 0
    fvcore_error: str | None = None  # why fvcore could not trace the model


@dataclass(frozen=True)
class Memory:
    device: str | None = None
    measure: str | None = None
    train_mb: float | None = None
    infer_mb: float | None = None


@dataclass(frozen=True)
class Speed:
    infer_samples_s: float | None = None
    train_samples_s: float | None = None
    train_step: str | None = None  # what the training speed (and memory) timed
    batch: int | None = None
    precision: str | None = None
    memory_format: str | None = None
    compile: str | None = None  # torch.compile mode; None: eager
    warmup: int | None = None
    repeats: int | None = None
    device_name: str | None = None
    torch: str | None = None
    cuda: str | None = None
    exclusive: bool | None = None  # measured with the device to itself (`hubbench.exclusive`)


@dataclass(frozen=True)
class Complexity:
    """What `hubbench.benchmark.profiling.profile` measured of the deployed model."""

    params: Params | None = None
    flops: Flops | None = None
    memory: Memory | None = None
    speed: Speed | None = None


@dataclass(frozen=True)
class Cost:
    """Training seconds: the record's own, those of the artifacts it reused (their searches included), those of
    its own search's trials, and their sum."""

    train_s: float | None = None
    artifacts_s: float | None = None
    total_s: float | None = None
    search_s: float | None = None


@dataclass(frozen=True)
class SearchTrial:
    """One setting a search tried: its validation metric at each rung it reached (by iteration), and whether it
    completed the schedule (`ok`), was stopped at its last rung (`pruned`) or failed (`failed`, with `reason`:
    an error, or a loss or metric that diverged); `train_s`: its training seconds."""

    setting: dict[str, Any]
    status: str
    values: dict[str, float] = field(default_factory=dict)  # rung iteration (as JSON keys are: text) -> val metric
    reason: str | None = None
    train_s: float | None = None


@dataclass(frozen=True)
class Search:
    """The hyper-parameter search behind a record: what it tuned (`subject`: the method, or the fine-tuned source
    the record is), the suite's search table (`space`), the rungs of its schedule, what the final run retrained
    on, every trial, the selected setting, how many trials failed, and its cost (every trial's training seconds)."""

    subject: str
    space: dict[str, Any]
    rungs: list[int]
    retrain: str
    trials: list[SearchTrial]
    selected: dict[str, Any]
    failed: int
    cost_s: float

    @classmethod
    def of(cls, data: dict) -> Search:
        """A search from its JSON object (as artifacts' metadata keep it)."""
        return _parse(cls, data, "search")


@dataclass(frozen=True)
class Timings:
    fit_s: float | None = None
    eval_s: float | None = None
    profile_s: float | None = None


@dataclass(frozen=True)
class Artifact:
    id: str
    key: str
    train_s: float


@dataclass(frozen=True)
class Examples:
    """A few samples of a split with their targets and predictions, for the leaderboard's pictures:
    PNG images (base64) and, per image, its points in the image's pixels (landmark tasks)."""

    split: str
    images: list[str]
    target: list[list[list[float]]]
    predicted: list[list[list[float]]]


@dataclass(frozen=True)
class Config:
    """What determined the cell beyond its identity, as the hub, the task and the runtime describe themselves."""

    hub: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    suite_protocol: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] | None = None
    # where the code of the cell's method (or ranker), hub and task came from, when not hubbench itself:
    # {"method": {"plugin": path, "sha256": ...} or {"distribution": name, "version": ...}, ...}
    code: dict[str, dict[str, str]] = field(default_factory=dict)


def first_change(then: Any, now: Any, where: str = "") -> str | None:
    """The first of `changes`; None where the trees agree."""
    return next(changes(then, now, where), None)


def changes(then: Any, now: Any, where: str = "") -> Iterator[str]:
    """Every place where two JSON-like trees differ, as 'key.key: then -> now'. A tuple equals the list JSON
    reads back, and a key missing on either side is no change (a field a later hubbench added or dropped
    says nothing about the run)."""
    if isinstance(then, dict) and isinstance(now, dict):
        for k in then:
            if k in now:
                yield from changes(then[k], now[k], f"{where}.{k}".lstrip("."))
    elif isinstance(then, (list, tuple)) and isinstance(now, (list, tuple)) and len(then) == len(now):
        for i, (a, b) in enumerate(zip(then, now, strict=True)):
            yield from changes(a, b, f"{where}[{i}]")
    elif then != now:
        yield f"{where}: {json.dumps(then)} -> {json.dumps(now)}"


@dataclass(frozen=True)
class Git:
    commit: str | None = None
    dirty: bool | None = None


@dataclass(frozen=True)
class Environment:
    hubbench: str | None = None
    git: Git | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    torchvision: str | None = None
    numpy: str | None = None
    cuda: str | None = None
    device: str | None = None
    device_name: str | None = None
    threads: int | None = None
    cpus: int | None = None
    plugins: list[dict[str, str]] = field(default_factory=list)  # each plugin file (path, sha256) or package loaded


def _v1_to_v2(data: dict) -> dict:
    """Version 1 (the first runners): the oldest put the model's own parameter count at top-level `params`
    (later ones: the profiler's, in `complexity.params`), and an inapplicable cell's status was "n/a",
    which CSV readers (pandas among them) take for a missing value."""
    data = dict(data)
    params = data.pop("params", None)
    if params is not None and not (data.get("complexity") or {}).get("params"):
        data["complexity"] = {**(data.get("complexity") or {}), "params": params}
    if data.get("status") == "n/a":
        data["status"] = INAPPLICABLE
    return data


def _provenance_added(data: dict) -> dict:
    """The next version adds where the code came from (`Config.code`, `Environment.plugins`): fields with
    defaults, so an older file reads unchanged (and an older hubbench refuses a newer file by its version)."""
    return data


EARLY_TRAIN_STEP = ("an SGD step of the deployed model on the task loss, whatever the method's own training "
                    "(profiled before hubbench timed each method's own step)")


def _train_step_stated(data: dict) -> dict:
    """The next version says what its training speed timed (`Speed.train_step`): a method's own training step, where
    it has one. Earlier profilers timed an SGD step of the deployed model on the task loss, so say so."""
    speed = (data.get("complexity") or {}).get("speed")
    if speed:
        data = {**data, "complexity": {**data["complexity"], "speed": {**speed, "train_step": EARLY_TRAIN_STEP}}}
    return data


def _search_added(data: dict) -> dict:
    """The next version adds a record's hyper-parameter search (`search`, `cost.search_s`): fields with defaults."""
    return data


def cell_id(hub: str, task: str, entry: str, seed: int) -> str:
    return f"{hub}/{task}/{entry}/seed{seed}"


def record_path(results: Path, suite: str, hub: str, task: str, entry: str, seed: int) -> Path:
    """Where a cell's record lives: results/<suite>/<hub>/<task>/<method id, `[k=v]` as `@k=v`>/seed<N>.json;
    a ranking cell's (`rank:<ranker id>`) under <task>/rank/<ranker id>/."""
    folder = entry.replace("[", "@").replace("]", "").replace(":", "/")
    return Path(results, suite, hub, task, folder, f"seed{seed}.json")


# the records under results/<suite>/, methods' and rankers' (not the executors' files beside them)
RECORD_FILES = ("*/*/*/seed*.json", "*/*/rank/*/seed*.json")


@dataclass(frozen=True)
class CellRecord:
    """What the record of every cell holds, a method's (`Record`) or a ranking's (`RankingRecord`): its identity,
    its outcome, and what determined it beyond its identity. Each kind adds its measurements, names its plugin
    in its JSON (`PLUGIN`) and prefixes its cell's entry in the suite (`PREFIX`)."""

    SCHEMA: ClassVar[str]
    VERSION: ClassVar[int]
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]]  # -> next version
    PLUGIN: ClassVar[str]  # the key of `plugin` in the JSON
    PREFIX: ClassVar[str] = ""

    # identity
    suite: str
    hub: str
    task: str
    kind: str
    plugin: PluginId
    seed: int
    # outcome
    status: str
    _: KW_ONLY  # a kind's own fields follow `status` in the constructor (a method's record: its metric)
    reason: str | None = None  # failed: the exception; inapplicable: why the method or ranker does not apply
    traceback: str | None = None
    started: str | None = None
    finished: str | None = None
    # context
    config: Config | None = None
    environment: Environment | None = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"record status {self.status!r} is not one of {', '.join(STATUSES)}")

    @classmethod
    def entry(cls, plugin_id: str) -> str:
        """A cell's entry in its suite, which names its records (`cell_id`, `record_path`): its plugin's id with
        the kind's prefix."""
        return cls.PREFIX + plugin_id

    @property
    def id(self) -> str:
        return cell_id(self.hub, self.task, self.entry(self.plugin.id), self.seed)

    def summary(self) -> str:
        """One line: the `headline` of an ok record, else the first line of its reason."""
        return self.headline() if self.status == OK else (self.reason or "").strip().split("\n")[0]

    def headline(self) -> str:
        """What an ok record found, in a few words."""
        raise NotImplementedError


@dataclass(frozen=True)
class Record(CellRecord):
    """A method's cell's record: the primary metric always (its value where ok); measurements only where ok."""

    SCHEMA: ClassVar[str] = "hubbench.record"
    VERSION: ClassVar[int] = 5
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]] = {1: _v1_to_v2, 2: _provenance_added,
                                                             3: _train_step_stated, 4: _search_added}
    PLUGIN: ClassVar[str] = "method"

    metric: Metric
    # measurements
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> metric -> value
    complexity: Complexity | None = None
    cost: Cost | None = None
    timings: Timings | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # name -> [iteration, value] pairs
    diagnostics: dict[str, Any] = field(default_factory=dict)  # the method's own (see Method.figures)
    examples: Examples | None = None  # a few test samples with predictions (Task.examples)
    search: Search | None = None  # the search that selected its setting (a fine-tune's: its source's)

    @property
    def method(self) -> PluginId:
        """The method that made the record (its `plugin`)."""
        return self.plugin

    @property
    def value(self) -> float | None:
        """The primary test metric of an ok record; None otherwise."""
        return self.metric.value if self.status == OK else None

    def headline(self) -> str:
        return f"{self.metric.name}={self.metric.value:.2f}"

    def row(self) -> dict[str, Any]:
        """The record's flat columns (see COLUMNS), plus one per val/test metric (`val_<name>`, `test_<name>`)
        and per hyper-parameter (`hp_<name>`); None where the record has no value."""
        def of(columns: dict[str, Column]) -> dict[str, Any]:
            return {name: column.of(self) for name, column in columns.items()}

        metrics = {f"{split}_{name}": v for split, found in sorted(self.metrics.items())
                   for name, v in sorted(found.items())}
        hps = {f"{HP_PREFIX}{name}": v for name, v in sorted(self.plugin.params.items())}
        return {**of(IDENTITY_COLUMNS), **of(OUTCOME_COLUMNS), **metrics, **hps, **of(MEASURE_COLUMNS)}


def cuda_label(version: str | None) -> str | None:
    """'CUDA 13.0': a version that reads back from a CSV as text, not as the number 13.0."""
    return f"CUDA {version}" if version else None


def unsupported_label(ops: dict[str, int] | None) -> str | None:
    return "; ".join(f"{op} x{n}" for op, n in sorted((ops or {}).items())) or None


def compile_label(speed: Speed | None) -> str | None:
    """The torch.compile mode of a measured speed, 'eager' where none."""
    return speed and (speed.compile or "eager")


MISSING = "—"  # a value the records do not have, in every table


def known(v: Any) -> bool:
    """A value, not None, NaN or pandas' NA."""
    try:
        return v is not None and bool(v == v)  # NaN differs from itself
    except TypeError:  # pandas.NA == pandas.NA is NA, which is neither true nor false
        return False


def number(v: float | None) -> str:
    """A table's number: two decimals, or three significant digits below 1 (the mini hub's 0.3 M parameters)."""
    if not known(v):
        return MISSING
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def setting_label(setting: dict[str, Any] | None) -> str | None:
    """A search's setting as `lr=0.1, weight_decay=0.0005`."""
    return None if setting is None else ", ".join(f"{k}={v}" for k, v in setting.items())


class Column(NamedTuple):
    """A fixed column of `Record.row`, declared once for every table made from the rows: its pandas dtype
    ("category": STATUSES, in that order), where a record holds its value (attribute names, or keys of a dict,
    joined by dots; None where one of them is None; then `convert`ed), and whether the leaderboard's page shows it
    (every column is in results.csv and results.parquet): under `label`, its `unit` and `detail` (`header`), as
    `fmt` writes it from the row of every column's value (default: its own value, as a `number`)."""

    dtype: str
    path: str
    convert: Callable[[Any], Any] | None = None
    label: str = ""
    unit: str = ""
    detail: str = ""  # what a cell holding several values shows, after the unit
    fmt: Callable[[dict[str, Any]], str] | None = None
    shown: bool = False

    def of(self, record: Record) -> Any:
        value: Any = record
        for name in self.path.split("."):
            value = value.get(name) if isinstance(value, dict) else None if value is None else getattr(value, name)
        return self.convert(value) if self.convert else value

    @property
    def header(self) -> str:
        unit = f" ({self.unit})" if self.unit else ""
        return f"{self.label}{unit}" + (f": {self.detail}" if self.detail else "")

    def text(self, name: str, row: dict[str, Any]) -> str:
        """Its cell in a table row (`row`: column name -> value)."""
        return self.fmt(row) if self.fmt else number(row[name])


def params_text(row: dict[str, Any]) -> str:
    """Total parameters in millions, and those a sample goes through on average when that is fewer."""
    total, active = row["params_total"], row["params_active"]
    out = number(total / 1e6 if known(total) else None)
    if known(total) and total and known(active) and abs(active - total) > 0.005 * total:
        out += f" ({number(active / 1e6)} active)"
    return out


def pair(first: str, second: str) -> Callable[[dict[str, Any]], str]:
    """Two columns' values in one cell, "first / second"."""
    def text(row: dict[str, Any]) -> str:
        a, b = row[first], row[second]
        return MISSING if not known(a) and not known(b) else f"{number(a)} / {number(b)}"
    return text


def cost_text(row: dict[str, Any]) -> str:
    """The total training seconds, and the record's own, its reused artifacts' and, where it searched, its own
    search's share."""
    if not known(row["total_s"]):
        return MISSING
    search = f" + {number(row['search_s'])}" if known(row.get("search_s")) else ""
    return f"{number(row['total_s'])} ({number(row['train_s'])} + {number(row['artifacts_s'])}{search})"


# The fixed columns of `Record.row`, in order; the metric columns (float64) come after `value`, the
# hyper-parameter columns (types as found) after them.
IDENTITY_COLUMNS = {
    "id": Column("str", "id"), "suite": Column("str", "suite"), "hub": Column("str", "hub"),
    "task": Column("str", "task"), "kind": Column("str", "kind"), "method": Column("str", "plugin.id"),
    "method_name": Column("str", "plugin.name"), "seed": Column("int64", "seed")}
OUTCOME_COLUMNS = {
    "status": Column("category", "status"), "reason": Column("str", "reason"), "metric": Column("str", "metric.name"),
    "higher_is_better": Column("bool", "metric.higher_is_better"), "value": Column("float64", "value")}
MEASURE_COLUMNS = {
    "params_total": Column("Int64", "complexity.params.total", label="Params", unit="M", fmt=params_text,
                           shown=True),
    "params_trainable": Column("Int64", "complexity.params.trainable"),
    "params_active": Column("float64", "complexity.params.active"),
    "gflops_fvcore": Column("float64", "complexity.flops.fvcore_gflops", label="GFLOPs (fvcore)", shown=True),
    "gflops_flop_counter": Column("float64", "complexity.flops.flop_counter_gflops"),
    "flops_batch": Column("Int64", "complexity.flops.batch"),
    "fvcore_unsupported": Column("str", "complexity.flops.fvcore_unsupported", unsupported_label),
    "memory_device": Column("str", "complexity.memory.device"),
    "memory_measure": Column("str", "complexity.memory.measure"),
    "train_mb": Column("float64", "complexity.memory.train_mb", label="Memory train / infer", unit="MB",
                       fmt=pair("train_mb", "infer_mb"), shown=True),
    "infer_mb": Column("float64", "complexity.memory.infer_mb"),
    "infer_samples_s": Column("float64", "complexity.speed.infer_samples_s", label="Speed infer / train",
                              unit="samples/s", fmt=pair("infer_samples_s", "train_samples_s"), shown=True),
    "train_samples_s": Column("float64", "complexity.speed.train_samples_s"),
    "train_step": Column("str", "complexity.speed.train_step"),
    "speed_batch": Column("Int64", "complexity.speed.batch"),
    "precision": Column("str", "complexity.speed.precision"),
    "memory_format": Column("str", "complexity.speed.memory_format"),
    "compile": Column("str", "complexity.speed", compile_label),
    "speed_device_name": Column("str", "complexity.speed.device_name"),
    "speed_torch": Column("str", "complexity.speed.torch"),
    "speed_cuda": Column("str", "complexity.speed.cuda", cuda_label),
    "warmup": Column("Int64", "complexity.speed.warmup"),
    "repeats": Column("Int64", "complexity.speed.repeats"),
    "train_s": Column("float64", "cost.train_s"),
    "artifacts_s": Column("float64", "cost.artifacts_s"),
    "total_s": Column("float64", "cost.total_s", label="Cost", unit="s",
                      detail="total (own + artifacts [+ own search])", fmt=cost_text, shown=True),
    "search_s": Column("float64", "cost.search_s"),
    "search_selected": Column("str", "search.selected", setting_label),
    "search_trials": Column("Int64", "search.trials", lambda t: None if t is None else len(t)),
    "search_failed": Column("Int64", "search.failed"),
    "search_cost_s": Column("float64", "search.cost_s"),
    "device": Column("str", "environment.device"),
    "device_name": Column("str", "environment.device_name"),
    "torch": Column("str", "environment.torch"),
    "cuda": Column("str", "environment.cuda", cuda_label),
    "threads": Column("Int64", "environment.threads"),
    "git_commit": Column("str", "environment.git.commit"),
    "git_dirty": Column("boolean", "environment.git.dirty"),
    "started": Column("datetime64[ns, UTC]", "started"),
    "finished": Column("datetime64[ns, UTC]", "finished")}
# The task metrics a page shows beside the primary one (test values, by metric name); every metric a record holds is
# in results.csv as `val_<name>` and `test_<name>`. Landmark tasks report failure rates and AUC beside the NME.
METRIC_COLUMNS = {name: Column("float64", f"metrics.test.{name}", label=label, unit="%", shown=True)
                  for name, label in (("fr8", "FR@8"), ("fr10", "FR@10"), ("auc10", "AUC@10"))}


def columns() -> dict[str, Column]:
    """Every fixed column of `Record.row`, in order."""
    return {**IDENTITY_COLUMNS, **OUTCOME_COLUMNS, **MEASURE_COLUMNS}


METRIC_PREFIXES = ("val_", "test_")
HP_PREFIX = "hp_"


def _keys(cls: type) -> dict[str, str]:
    """A dataclass's fields by their keys in its JSON object: their names, but a cell record's `plugin`'s (`PLUGIN`)."""
    plugin = cls.PLUGIN if issubclass(cls, CellRecord) else "plugin"
    return {plugin if f.name == "plugin" else f.name: f.name for f in dataclasses.fields(cls)}


@functools.cache
def _fields(cls: type) -> dict[str, tuple[str, type | None, bool]]:
    """Per key of `cls`'s JSON object: its field, the dataclass its value holds if any, and whether a list of them;
    worked out once per class (reading a suite's records took most of `hubbench status`'s time)."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for key, name in _keys(cls).items():
        hint = hints[name]
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(item := typing.get_args(hint)[0]):
            fields[key] = (name, item, True)
        else:
            fields[key] = (name, next((t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)),
                                      None), False)
    return fields


def _parse(cls: type, data: Any, where: str) -> Any:
    """A `cls` (dataclass) from its JSON object: nested dataclasses built likewise, unknown keys refused."""
    if not isinstance(data, dict):
        raise RecordError(f"{where} is not an object")
    known = _fields(cls)
    if unknown := sorted(data.keys() - known.keys()):
        raise RecordError(f"unknown field(s) {', '.join(unknown)} in {where}")
    values = {}
    for key, value in data.items():
        name, inner, many = known[key]
        if many:
            value = [_parse(inner, v, f"{where}.{name}[{i}]") for i, v in enumerate(value or [])]
        elif inner is not None and value is not None:
            value = _parse(inner, value, f"{where}.{name}")
        values[name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise RecordError(f"{where}: {e}") from None


def schema(cls: type = Record) -> str:
    return f"{cls.SCHEMA}/{cls.VERSION}"


def from_json(data: Any, cls: type = Record) -> Any:
    """The record of a JSON object of any version of `cls`'s schema, upgraded to the current one."""
    if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
        raise RecordError("not a record (no schema)")
    name, _, version = data["schema"].partition("/")
    if name != cls.SCHEMA:
        raise ForeignFile(f"not a record (schema {data['schema']})")
    if not version.isdigit():
        raise RecordError(f"unknown schema version {data['schema']!r}")
    version = int(version)
    if version > cls.VERSION:
        raise RecordError(f"written by a newer hubbench (schema {data['schema']}; this one reads up to {schema(cls)})")
    while version < cls.VERSION:
        if version not in cls.UPGRADES:
            raise RecordError(f"no upgrade from schema {cls.SCHEMA}/{version}")
        data, version = cls.UPGRADES[version](data), version + 1
    return _parse(cls, {k: v for k, v in data.items() if k != "schema"}, "record")


def to_json(record: Any) -> dict:
    data = dataclasses.asdict(record)
    return {"schema": schema(type(record)), **{key: data[name] for key, name in _keys(type(record)).items()}}


def read(path: Path, cls: type = Record) -> Any:
    """The record at `path`, upgraded to the current version; None when there is no file there.
    Raises RecordError (its message naming the file) for a file that is not a record of this or an earlier version."""
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RecordError(f"{path}: unreadable ({e.strerror or e})") from None
    try:
        return from_json(json.loads(text), cls)
    except RecordError as e:
        raise type(e)(f"{path}: {e}") from None
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise RecordError(f"{path}: not valid JSON ({e})") from None


def write(path: Path, record: Any) -> Path:
    """Write `record` atomically (temp file and rename) with its schema version."""
    return write_json(path, to_json(record))


@dataclass(frozen=True)
class RankingCost:
    """Seconds the cell's cached ranking cost when it was made: the sources' features and the scoring."""

    features_s: float | None = None
    score_s: float | None = None
    total_s: float | None = None


@dataclass(frozen=True)
class RankingRecord(CellRecord):
    """A ranking cell's record: a ranker's score of each source of the hub for the task (`scores`), why it
    scored none of the others (`reasons`), the sources best first (`order`), and what it cost."""

    SCHEMA: ClassVar[str] = "hubbench.ranking"
    VERSION: ClassVar[int] = 2
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]] = {1: _provenance_added}
    PLUGIN: ClassVar[str] = "ranker"
    PREFIX: ClassVar[str] = "rank:"

    # measurements
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    key: str | None = None  # of the cached ranking
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> its features' key, seconds, dim
    cost: RankingCost | None = None
    wall_s: float | None = None

    @property
    def ranker(self) -> PluginId:
        """The ranker that made the record (its `plugin`)."""
        return self.plugin

    @property
    def picks(self) -> list[str]:
        """The best-scored sources (`best`): one, several that tie, or none."""
        return best(self.scores)

    def headline(self) -> str:
        picks = self.picks
        return f"top={picks[0]}" if len(picks) == 1 else f"tie: {' = '.join(picks)}" if picks else "no pick"

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per scored source (see SCORE_COLUMNS); none unless ok."""
        cost = (self.cost or RankingCost()).total_s
        return [{"hub": self.hub, "kind": self.kind, "task": self.task, "ranker": self.ranker.id, "seed": self.seed,
                 "source": source, "score": score, "cost_s": cost}
                for source, score in self.scores.items() if self.status == OK]


# What the ranked features see of a task's protocol (`hubbench.features`: each training image squashed to `resize`,
# its centre crop at `image_size`, one view whatever the test views): a ranking record is stale when one changes,
# and is judged against fine-tunes made under the same.
FEATURE_PROTOCOL = ("image_size", "resize")


def feature_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """The `FEATURE_PROTOCOL` fields of a protocol (a record's, or `dataclasses.asdict` of one) that it states."""
    return {k: protocol[k] for k in FEATURE_PROTOCOL if k in protocol}


def best(scores: dict[str, float]) -> list[str]:
    """The sources with the best finite score: several where they tie (to a relative 1e-9: LEEP's and NCE's -ln C
    of sources that tell the images apart no better than chance); none where no score is finite, or where every
    source scored ties, which tells none apart."""
    finite = {s: v for s, v in scores.items() if math.isfinite(v)}
    top = max(finite.values(), default=math.nan)
    tied = [s for s, v in finite.items() if math.isclose(v, top, rel_tol=1e-9, abs_tol=1e-12)]
    return [] if len(finite) > 1 and len(tied) == len(finite) else tied


SCORE_COLUMNS = {"hub": "str", "kind": "str", "task": "str", "ranker": "str", "seed": "int64", "source": "str",
                 "score": "float64", "cost_s": "float64"}


@dataclass(frozen=True)
class TrialRecord(CellRecord):
    """A search trial's record, at one rung: the validation metric where it stopped (`metric`; a trial never reads
    the test split), that rung's iteration, its training seconds so far (all its rungs) and its curves."""

    SCHEMA: ClassVar[str] = "hubbench.trial"
    VERSION: ClassVar[int] = 1
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]] = {}
    PLUGIN: ClassVar[str] = "trial"
    PREFIX: ClassVar[str] = "trial:"

    metric: Metric
    iteration: int | None = None
    train_s: float | None = None
    curves: dict[str, list[list[float]]] = field(default_factory=dict)

    def headline(self) -> str:
        return f"val {self.metric.name}={self.metric.value:.2f} at iteration {self.iteration}"


def entry_kind(entry: str) -> tuple[type[CellRecord], str]:
    """The record kind of a cell's entry (`CellRecord.entry`) and its plugin's id."""
    kind = next((k for k in (RankingRecord, TrialRecord) if entry.startswith(k.PREFIX)), Record)
    return kind, entry.removeprefix(kind.PREFIX)


@dataclass(frozen=True)
class Profile:
    """What `hubbench profile` writes: the complexity of one method built with a single training step."""

    SCHEMA: ClassVar[str] = "hubbench.profile"
    VERSION: ClassVar[int] = 3
    UPGRADES: ClassVar[dict[int, Callable[[dict], dict]]] = {1: _provenance_added, 2: _train_step_stated}

    hub: str
    task: str
    kind: str
    method: PluginId
    seed: int
    stand_in: bool  # the task's data were stand-ins of its shapes
    protocol: dict[str, Any]
    hub_config: dict[str, Any]
    complexity: Complexity
    environment: Environment
    timings: dict[str, float] = field(default_factory=dict)
