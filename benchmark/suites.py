"""Suites: TOML files naming the grid (hubs x tasks x methods x seeds), protocol overrides and, for
`--executor slurm`, the resources of each cell's job.

The registries are imported where a suite is checked, not with this module: the CLI builds its
options from `SLURM` without importing torch.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubbench.benchmark.declarations import read_toml
from hubbench.errors import InputError
from hubbench.registry import UnknownName, check_name

if TYPE_CHECKING:
    from hubbench.protocol import Protocol
    from hubbench.search import Space

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).parent / "suites"
KEYS = {"description", "hubs", "tasks", "methods", "rankers", "seeds", "protocol", "slurm", "include", "hub", "task"}
SLURM = {  # the optional [slurm] table: key -> (type, help); `hubbench run --slurm-<key>` overrides it
    "partition": (str, "SLURM partition"),
    "gpus": (int, "GPUs per cell's job (default 0)"),
    "cpus": (int, "CPUs per cell's job (default: --threads)"),
    "mem_gb": (int, "memory per cell's job, in GB (default: the partition's)"),
    "time_min": (int, "time limit per cell's job, in minutes (default 60); a job stopped at its limit "
                      "or pre-empted is requeued and resumes from its checkpoint"),
    "max_parallel": (int, "most jobs of the array running at once (default: submitit's)"),
}


class SuiteError(InputError):
    """A suite that cannot be run; the message says what is wrong and what is valid."""


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def bundled_description(name: str) -> str:
    """A bundled suite's description, read without checking its names (which would import every registry)."""
    return str(tomllib.loads((SUITES_DIR / f"{name}.toml").read_text()).get("description", ""))


def is_path(name_or_path: str) -> bool:
    """Whether `--suite` names a file (`my.toml`, `dir/suite`) rather than a bundled suite."""
    return name_or_path.endswith(".toml") or "/" in name_or_path


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    hubs: tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: dict[str, Any] = field(default_factory=dict)  # [protocol]'s fields: overrides of every task's protocol
    slurm: dict[str, Any] = field(default_factory=dict)
    slurm_methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # [slurm.methods.<name>]
    rankers: tuple[str, ...] = ()  # one ranking cell per (hub, task, ranker, seed)
    declared: dict = field(default_factory=dict)  # its declared hubs and tasks (`benchmark.declarations`)
    per_task: dict[str, dict[str, Any]] = field(default_factory=dict)  # [protocol.<task or task kind>] tables
    search: dict[str, Any] | None = None  # [protocol.search] as written
    spaces: dict[str, Space] = field(default_factory=dict)  # each task's search, checked (none: not searched)

    def __setstate__(self, state: dict) -> None:
        """A suite unpickled in a worker process or a cluster job declares its hubs and tasks there too."""
        from hubbench.benchmark.declarations import declare

        self.__dict__.update(state)
        declare(self.declared)

    @classmethod
    def load(cls, name_or_path: str) -> Suite:
        """A suite by name (from the bundled suites) or by path to a .toml file."""
        if is_path(name_or_path):
            path = Path(name_or_path)
            if path.is_dir():
                raise SuiteError(f"suite file {name_or_path} is a directory, not a .toml file")
            if not path.is_file():
                raise SuiteError(f"suite file {name_or_path} does not exist")
        else:
            path = SUITES_DIR / f"{name_or_path}.toml"
            if not path.is_file():
                raise SuiteError(str(UnknownName("suite", name_or_path, suite_names())))
        try:
            data = read_toml(path, "suite file")
        except InputError as e:
            raise SuiteError(str(e)) from None
        try:
            return cls.from_dict(check_name("suite", path.stem), data, path.parent)
        except InputError as e:
            raise SuiteError(f"invalid suite file {path}: {e}") from None

    @classmethod
    def from_dict(cls, name: str, data: dict, base: Path = Path(".")) -> Suite:
        from hubbench.benchmark import catalogue
        from hubbench.benchmark.declarations import declare, gather
        from hubbench.methods.base import parse_spec
        from hubbench.rankers.base import parse_spec as parse_ranker

        unknown = set(data) - KEYS
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(sorted(unknown))} (choose from: {', '.join(sorted(KEYS))})")
        declared = gather(data, base)
        declare(declared)
        lists = {}
        for key in ("hubs", "tasks", "methods"):
            value = data.get(key)
            if not value or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{key!r} must be a non-empty list of names")
            lists[key] = tuple(dict.fromkeys(value))
        for kind in ("hubs", "tasks"):
            for found in lists[kind]:
                catalogue.known(kind, found)
        for spec in lists["methods"]:
            parse_spec(spec)
        rankers = data.get("rankers", [])
        if not isinstance(rankers, list) or not all(isinstance(v, str) for v in rankers):
            raise InputError("'rankers' must be a list of names")
        rankers = tuple(dict.fromkeys(rankers))
        method_names = {parse_spec(spec)[0].name for spec in lists["methods"]}
        clash = {parse_ranker(spec)[0].name for spec in rankers} & method_names
        if clash:
            raise InputError(f"{', '.join(sorted(clash))}: both a method and a ranker of this suite")
        seeds = parse_seeds(data.get("seeds", [0]))
        protocol = data.get("protocol", {})
        if not isinstance(protocol, dict):
            raise InputError("'protocol' must be a table of overrides")
        tables = {k: v for k, v in protocol.items() if isinstance(v, dict)}
        protocol = {k: v for k, v in protocol.items() if k not in tables}
        search, per_task = tables.pop("search", None), check_tables(lists["tasks"], tables)
        check_protocol(lists["tasks"], protocol)
        slurm = data.get("slurm", {})
        per_method = slurm.get("methods", {}) if isinstance(slurm, dict) else {}
        if not isinstance(per_method, dict) or not all(isinstance(t, dict) for t in per_method.values()):
            raise InputError("'slurm.methods' must hold one table of job resources per method name")
        names = sorted({parse_spec(spec)[0].name for spec in lists["methods"]})
        for method in per_method:
            if method not in names:
                choices = ", ".join(names)
                raise InputError(f"slurm.methods.{method}: not a method of this suite (choose from: {choices})")
        slurm_base = {k: v for k, v in slurm.items() if k != "methods"} if isinstance(slurm, dict) else slurm
        suite = cls(name, str(data.get("description", "")), lists["hubs"], lists["tasks"], lists["methods"], seeds,
                    protocol, check_slurm(slurm_base), {m: check_slurm(t) for m, t in per_method.items()}, rankers,
                    declared, per_task, search)
        suite.check_tables()
        return dataclasses.replace(suite, spaces=suite.check_searches())

    def tables_for(self, task: str) -> list[tuple[str, dict[str, Any]]]:
        """The [protocol.<key>] tables that apply to `task`, by key: its kind's, then its own (which wins)."""
        from hubbench.benchmark import catalogue

        return [(key, self.per_task[key]) for key in (catalogue.kind(task), task) if key in self.per_task]

    def overrides_for(self, task: str) -> dict[str, Any]:
        """The suite's protocol fields for `task`: [protocol], then [protocol.<its kind>], then [protocol.<task>]."""
        return {**self.protocol, **{k: v for _, table in self.tables_for(task) for k, v in table.items()
                                    if k != "search"}}

    def search_for(self, task: str) -> tuple[str, dict[str, Any]] | None:
        """Where `task`'s search is declared and its table: [protocol.<task>.search], else [protocol.<kind>.search],
        else [protocol.search]; None when the task is not searched."""
        found = [(f"protocol.{key}.search", t["search"]) for key, t in self.tables_for(task) if "search" in t]
        return found[-1] if found else None if self.search is None else ("protocol.search", self.search)

    def recorded(self, task: str) -> dict[str, Any]:
        """What the records of `task`'s cells state of this suite's protocol: its fields for the task and its search."""
        search = self.search_for(task)
        return {**self.overrides_for(task), **({"search": search[1]} if search else {})}

    def protocol_for(self, task: str) -> Protocol:
        """The protocol of `task` in this suite: the task's own under the suite's overrides (`overrides_for`)."""
        return task_protocol(task, self.overrides_for(task))

    def check_tables(self) -> None:
        """Each [protocol.<key>] table makes a valid protocol of every task it applies to (`InputError` naming it)."""
        for task in self.tasks:
            for key, _ in self.tables_for(task):
                try:
                    self.protocol_for(task)
                except InputError as e:
                    raise InputError(f"protocol.{key}: {e}") from None

    def check_searches(self) -> dict[str, Space]:
        """Each task's search, checked (`hubbench.search.Space.parse`)."""
        from hubbench.methods.base import parse_spec
        from hubbench.search import Space

        methods = {cls.name: cls for cls in (parse_spec(spec)[0] for spec in self.methods)}
        return {task: Space.parse(table, where, methods) for task in self.tasks
                if (found := self.search_for(task)) for where, table in [found]}

    def overridden(self, overrides: dict[str, Any]) -> Suite:
        """This suite with `overrides` (`hubbench run --set`) over its [protocol] table and every [protocol.<key>]
        table (the command line has the last word), named for them (`variant_name`): records, checkpoints and
        locks of the variant never meet those of the suite."""
        if not overrides:
            return self
        per_task = {key: {k: v for k, v in table.items() if k not in overrides} for key, table in self.per_task.items()}
        try:
            typed = check_protocol(self.tasks, {**self.protocol, **overrides})
            suite = dataclasses.replace(self, per_task=per_task)
            suite.check_tables()
        except InputError as e:
            raise SuiteError(f"--set: {e}") from None
        overrides = {k: typed[k] for k in overrides}  # as the protocol holds them: lr=1 and lr=1.0 are one variant
        return dataclasses.replace(suite, name=variant_name(self.name, overrides), protocol={**self.protocol,
                                                                                              **overrides})


def task_protocol(task: str, overrides: dict[str, Any]) -> Protocol:
    """The protocol of `task` under a suite's [protocol] `overrides` (known without the task's data)."""
    from hubbench.benchmark import catalogue

    return catalogue.protocol(task).replace(**overrides)


def check_tables(tasks: tuple[str, ...], tables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The [protocol.<key>] tables of a suite, each for one of its tasks or task kinds: fields, and an optional
    `search` table of their own."""
    from hubbench.benchmark import catalogue

    keys = [*tasks, *dict.fromkeys(catalogue.kind(t) for t in tasks)]
    for key, table in tables.items():
        if key not in keys:
            raise InputError(f"protocol.{key}: not a task or task kind of this suite, nor 'search' "
                             f"(choose from: {', '.join(['search', *keys])})")
        nested = [k for k, v in table.items() if isinstance(v, dict) and k != "search"]
        if nested:
            raise InputError(f"protocol.{key}.{nested[0]}: a task's table holds protocol fields and its 'search'")
    return tables


def check_protocol(tasks: tuple[str, ...], protocol: dict[str, Any]) -> dict[str, Any]:
    """`protocol` overrides as a task's protocol holds them, if they make a valid protocol of every task
    (`tasks.Protocol` checks each field's type and range); `InputError` otherwise."""
    protocols = [task_protocol(task, protocol) for task in tasks]
    return {k: getattr(protocols[0], k) for k in protocol}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """`key=value` strings into protocol overrides, each value in TOML syntax as in a suite's [protocol]
    table (`iterations=20`, `lr=0.1`, `flip=false`, `milestones=[0.5, 0.9]`); the last of a key wins."""
    overrides = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SuiteError(f"--set {item!r}: expected KEY=VALUE, e.g. iterations=20")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            raise SuiteError(f"--set {item!r}: {text.strip()!r} is not a value (numbers, true/false, [lists], "
                             "\"quoted strings\")") from None
        overrides[key.strip()] = value
    return overrides


def variant_name(suite: str, overrides: dict[str, Any]) -> str:
    """`suite@k=v,...` with the overrides sorted by key (lists joined by '+'): the suite variant's name, and
    its folder under the results and the leaderboard."""
    def text(value: Any) -> str:
        if isinstance(value, list | tuple):
            return "+".join(text(v) for v in value)
        return str(value).lower() if isinstance(value, bool) else str(value)

    if not overrides:
        return suite
    return f"{suite}@" + ",".join(f"{k}={text(v)}" for k, v in sorted(overrides.items()))


def check_slurm(table: Any) -> dict[str, Any]:
    """A valid [slurm] table (also of the merged command-line overrides): known keys, a partition
    name, whole numbers (at least 1, or 0 for gpus)."""
    if not isinstance(table, dict):
        raise InputError("'slurm' must be a table of job resources")
    unknown = set(table) - set(SLURM)
    if unknown:
        raise InputError(f"unknown slurm key(s) {', '.join(sorted(unknown))} (choose from: {', '.join(SLURM)})")
    for key, value in table.items():
        if SLURM[key][0] is str:
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"slurm.{key} must be a name, got {value!r}")
        elif type(value) is not int or value < (0 if key == "gpus" else 1):
            raise InputError(f"slurm.{key} must be an integer of at least {0 if key == 'gpus' else 1}, got {value!r}")
    return dict(table)


def parse_seeds(seeds: Any) -> tuple[int, ...]:
    """A non-empty list of distinct non-negative integers (also from '0,1,2')."""
    if isinstance(seeds, str):
        try:
            seeds = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise InputError(f"bad seed list {seeds!r}: expected integers like 0,1,2") from None
    if (not isinstance(seeds, list) or not seeds
            or not all(type(s) is int and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds)):
        raise InputError(f"bad seed list {seeds!r}: expected distinct non-negative integers")
    return tuple(seeds)
