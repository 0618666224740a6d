"""Suites: TOML files naming the grid (hubs x tasks x methods x seeds), protocol overrides and, for
`--executor slurm`, the resources of each cell's job."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubbench.hubs.base import HUBS
from hubbench.methods.base import parse_spec
from hubbench.rankers.base import parse_spec as parse_ranker
from hubbench.tasks.base import TASKS

from hubbench.registry import UnknownName, check_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITES_DIR = Path(__file__).parent / "suites"
KEYS = {"description", "hubs", "tasks", "methods", "rankers", "seeds", "protocol", "slurm"}
SLURM = {  # the optional [slurm] table: key -> (type, help); `hubbench run --slurm-<key>` overrides it
    "partition": (str, "SLURM partition"),
    "gpus": (int, "GPUs per cell's job (default 0)"),
    "cpus": (int, "CPUs per cell's job (default: --threads)"),
    "mem_gb": (int, "memory per cell's job, in GB (default: the partition's)"),
    "time_min": (int, "time limit per cell's job, in minutes (default 60); a job stopped at its limit "
                      "or pre-empted is requeued and resumes from its checkpoint"),
    "max_parallel": (int, "most jobs of the array running at once (default: submitit's)"),
}


class SuiteError(ValueError):
    """A suite that cannot be run; the message says what is wrong and what is valid."""


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    hubs: tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    protocol: dict[str, Any] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    slurm_methods: dict[str, dict[str, Any]] = field(default_factory=dict)  # [slurm.methods.<name>]
    rankers: tuple[str, ...] = ()  # one ranking cell per (hub, task, ranker, seed)

    @classmethod
    def load(cls, name_or_path: str) -> Suite:
        """A suite by name (from the bundled suites) or by path to a .toml file."""
        if name_or_path.endswith(".toml") or "/" in name_or_path:
            path = Path(name_or_path)
            if not path.is_file():
                raise SuiteError(f"suite file {name_or_path} does not exist")
        else:
            path = SUITES_DIR / f"{name_or_path}.toml"
            if not path.is_file():
                raise SuiteError(str(UnknownName("suite", name_or_path, suite_names())))
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SuiteError(f"malformed suite file {path}: {e}") from None
        try:
            return cls.from_dict(check_name("suite", path.stem), data)
        except (ValueError, LookupError) as e:
            raise SuiteError(f"invalid suite file {path}: {e}") from None

    @classmethod
    def from_dict(cls, name: str, data: dict) -> Suite:
        unknown = set(data) - KEYS
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))} (choose from: {', '.join(sorted(KEYS))})")
        lists = {}
        for key in ("hubs", "tasks", "methods"):
            value = data.get(key)
            if not value or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key!r} must be a non-empty list of names")
            lists[key] = tuple(dict.fromkeys(value))
        for hub in lists["hubs"]:
            HUBS.get(hub)
        for task in lists["tasks"]:
            TASKS.get(task)
        for spec in lists["methods"]:
            parse_spec(spec)
        rankers = data.get("rankers", [])
        if not isinstance(rankers, list) or not all(isinstance(v, str) for v in rankers):
            raise ValueError("'rankers' must be a list of names")
        rankers = tuple(dict.fromkeys(rankers))
        method_names = {parse_spec(spec)[0].name for spec in lists["methods"]}
        clash = {parse_ranker(spec)[0].name for spec in rankers} & method_names
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))}: both a method and a ranker of this suite")
        seeds = parse_seeds(data.get("seeds", [0]))
        protocol = data.get("protocol", {})
        if not isinstance(protocol, dict):
            raise ValueError("'protocol' must be a table of overrides")
        for task in lists["tasks"]:
            TASKS.get(task).protocol.replace(**protocol)
        slurm = data.get("slurm", {})
        per_method = slurm.get("methods", {}) if isinstance(slurm, dict) else {}
        if not isinstance(per_method, dict) or not all(isinstance(t, dict) for t in per_method.values()):
            raise ValueError("'slurm.methods' must hold one table of job resources per method name")
        names = sorted({parse_spec(spec)[0].name for spec in lists["methods"]})
        for method in per_method:
            if method not in names:
                choices = ", ".join(names)
                raise ValueError(f"slurm.methods.{method}: not a method of this suite (choose from: {choices})")
        base = {k: v for k, v in slurm.items() if k != "methods"} if isinstance(slurm, dict) else slurm
        return cls(name, str(data.get("description", "")), lists["hubs"], lists["tasks"], lists["methods"], seeds,
                   protocol, check_slurm(base), {m: check_slurm(t) for m, t in per_method.items()}, rankers)


def check_slurm(table: Any) -> dict[str, Any]:
    """A valid [slurm] table (also of the merged command-line overrides): known keys, a partition
    name, whole numbers (at least 1, or 0 for gpus)."""
    if not isinstance(table, dict):
        raise ValueError("'slurm' must be a table of job resources")
    unknown = set(table) - set(SLURM)
    if unknown:
        raise ValueError(f"unknown slurm key(s) {', '.join(sorted(unknown))} (choose from: {', '.join(SLURM)})")
    for key, value in table.items():
        if SLURM[key][0] is str:
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"slurm.{key} must be a name, got {value!r}")
        elif type(value) is not int or value < (0 if key == "gpus" else 1):
            raise ValueError(f"slurm.{key} must be an integer of at least {0 if key == 'gpus' else 1}, got {value!r}")
    return dict(table)


def parse_seeds(seeds: Any) -> tuple[int, ...]:
    """A non-empty list of distinct non-negative integers (also from '0,1,2')."""
    if isinstance(seeds, str):
        try:
            seeds = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ValueError(f"bad seed list {seeds!r}: expected integers like 0,1,2") from None
    if (not isinstance(seeds, list) or not seeds
            or not all(type(s) is int and s >= 0 for s in seeds) or len(set(seeds)) != len(seeds)):
        raise ValueError(f"bad seed list {seeds!r}: expected distinct non-negative integers")
    return tuple(seeds)
