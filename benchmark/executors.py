"""Parallel executors of a suite's cells: a pool of worker processes on this machine (`local`) and
submitit job arrays (`slurm`; submitit's `local` cluster runs the same jobs as subprocesses).

Each runs `CellJob`, a picklable call of `runner.run_cell`, so every executor writes the records
the in-process loop writes. None needs a scheduler of its own: cells that share an artifact
coordinate through its file lock (one trains it, the others wait, then load it), and the cells
that train one artifact each are submitted before those that need several, so waits are short.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.helpers import DelayedSubmission

from hubbench import record as records
from hubbench.benchmark.plugins import load_plugins, pick_device
from hubbench.benchmark.runner import Cell, Redo, run_cell
from hubbench.benchmark.suites import Suite, check_slurm
from hubbench.hubs.base import get_hub
from hubbench.io import read_json, write_json
from hubbench.methods.base import parse_spec
from hubbench.rankers.base import parse_spec as parse_ranker
from hubbench.training import Runtime

Outcome = tuple[Cell, str, str, float]  # cell, status, detail (Record.summary or why it ended), seconds


@dataclass(frozen=True)
class CellJob:
    """One cell as a picklable callable, for a worker process or a cluster job. It names its method
    by id rather than holding it, so a fresh process re-creates the cell after loading the plugin
    files that may define its hub, task or method."""

    suite: Suite
    hub: str
    task: str
    method: str  # a method's id, or `rank:<ranker id>`
    seed: int
    results: Path
    device: str  # "auto" is resolved where the job runs
    plugins: tuple[str, ...] = ()
    redo: Redo = Redo()
    threads: int = 1
    runtime: Runtime = Runtime()  # its device-dependent defaults are decided where the job runs

    @classmethod
    def of(cls, cell: Cell, results: Path, device, plugins: Sequence[str] = (), **options) -> CellJob:
        return cls(cell.suite, cell.hub, cell.task, cell.entry, cell.seed, Path(results).resolve(), str(device),
                   tuple(str(Path(p).resolve()) for p in plugins), **options)

    def cell(self) -> Cell:
        load_plugins(self.plugins)
        ranker = self.method.startswith("rank:")
        cls, params = parse_ranker(self.method[len("rank:"):]) if ranker else parse_spec(self.method)
        return Cell(self.suite, self.hub, self.task, cls(**params), self.seed)

    def __call__(self) -> tuple[str, str, float]:
        """Run the cell: (status, detail, seconds), as `runner.run_cell` (status 'skipped' included)."""
        start = time.perf_counter()
        status, record = run_cell(self.cell(), self.results, pick_device(self.device), redo=self.redo,
                                  threads=self.threads, runtime=self.runtime)
        return status, record.summary(), time.perf_counter() - start

    def checkpoint(self) -> DelayedSubmission:
        """submitit calls this when the job is pre-empted or reaches its time limit: the requeued job
        is this same call, which resumes from the stage checkpoints the stopped one left on disk."""
        return DelayedSubmission(self)


@dataclass(frozen=True)
class CellGroup:
    """Cells that share one job and its GPU (`--cells-per-gpu`): each in a process of its own, all at once.
    Returns what each `CellJob` returned, or the exception that ended it, in order."""

    jobs: tuple[CellJob, ...]

    def __call__(self) -> list:
        if len(self.jobs) == 1:
            return [self.jobs[0]()]
        pool = ProcessPoolExecutor(len(self.jobs), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker)
        with pool:
            futures = [pool.submit(job) for job in self.jobs]
            return [f.exception() or f.result() for f in futures]

    def checkpoint(self) -> DelayedSubmission:
        """Requeued whole on pre-emption: each cell resumes from its checkpoints (or is skipped, if done)."""
        return DelayedSubmission(self)


def pending(cells: list[Cell], results: Path, redo: Redo = Redo()) -> list[Cell]:
    """The cells to submit: those without a record or whose record `redo` redoes, ordered by
    the number of artifacts they need (a stable sort): the cells that train one artifact each start
    before those that need several, which then mostly find them trained."""
    todo = [c for c in cells if redo(c, records.read(c.path(results), c.record_type))]
    return sorted(todo, key=lambda c: len(c.method.needs(get_hub(c.hub), c.make_task())))


class Executor:
    """Runs the pending cells as `CellJob`s; subclasses say how (`submit`)."""

    def __init__(self, plugins: Sequence[str] = ()):
        self.plugins = tuple(plugins)

    def run(self, cells: list[Cell], results: Path, device, *, redo: Redo = Redo(), threads: int = 1,
            runtime: Runtime = Runtime()) -> Iterator[Outcome]:
        """Yield each cell's outcome as it ends; 'incomplete' when its process or job ended without a
        record (killed, out of memory, cancelled): a rerun resumes it."""
        todo = pending(cells, results, redo)
        for cell in cells:
            if cell not in todo:
                yield cell, "skipped", "", 0.0
        if not todo:
            return
        jobs = [CellJob.of(c, results, device, self.plugins, redo=redo, threads=threads, runtime=runtime) for c in todo]
        for i, result in self.submit(todo, jobs):
            if isinstance(result, BaseException):
                lines = str(result).strip().splitlines()
                yield todo[i], "incomplete", f"{type(result).__name__}: {lines[-1] if lines else ''}", 0.0
            else:
                yield todo[i], *result

    def submit(self, cells: list[Cell], jobs: list[CellJob]) -> Iterator[tuple[int, Any]]:
        """Run `jobs`, yielding (index, what the job returned or the exception that ended it) as each ends."""
        raise NotImplementedError


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _start_worker(queue=None) -> None:
    """Pool initializer. The worker ends when the process that started it is gone (killed, so that its pool
    could not stop it): no cell goes on unseen after `hubbench run` is, and a rerun resumes it from its
    checkpoints (records and checkpoints are written atomically, so ending anywhere is safe). With a
    `queue` of GPUs, the worker sees the next one (set before CUDA starts)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()
    if queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = queue.get()


class LocalPool(Executor):
    """`workers` processes on this machine, one cell each at a time; with several `gpus`, each worker
    sees one of them (round robin). Workers are spawned, not forked: a fork of a process that has
    started CUDA or torch's thread pools is unsafe."""

    def __init__(self, workers: int, gpus: Sequence[str] = (), plugins: Sequence[str] = ()):
        super().__init__(plugins)
        self.workers, self.gpus = workers, list(gpus)

    def submit(self, cells, jobs):
        context = multiprocessing.get_context("spawn")
        queue = None
        if len(self.gpus) > 1:
            queue = context.SimpleQueue()
            for i in range(self.workers):
                queue.put(self.gpus[i % len(self.gpus)])
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker, initargs=(queue,))
        try:
            futures = {pool.submit(job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                yield futures[future], future.exception() or future.result()
        finally:  # on an interrupt, start nothing more
            pool.shutdown(wait=True, cancel_futures=True)


SBATCH = {"partition": "partition", "gpus": "gpus_per_node", "cpus": "cpus_per_task", "mem_gb": "mem",
          "time_min": "time", "max_parallel": "array_parallelism"}  # suite [slurm] key -> submitit's SLURM name
JOB_CLASSES = {"slurm": submitit.SlurmJob, "local": submitit.LocalJob}


def submitit_folder(results: Path, suite: str) -> Path:
    """Where submitit keeps a suite's job scripts, pickles and logs, and `jobs.json`."""
    return results / suite / ".submitit"


def slurm_resources(suite: Suite, overrides: dict, threads: int, method: str | None = None) -> dict:
    """Job resources: defaults (60 min, one CPU per cell thread), then the suite's [slurm] table, then
    its [slurm.methods.<method>] table, then the command line's overrides (None: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return check_slurm({"time_min": 60, "cpus": threads, **suite.slurm, **suite.slurm_methods.get(method, {}), **given})


class Submitit(Executor):
    """One submitit job per cell, submitted as one job array per set of resources (the suite's, or a
    method's own): on SLURM (`cluster="slurm"`) or as subprocesses of this machine (`cluster="local"`).
    A pre-empted or timed-out job is requeued and resumes (`CellJob.checkpoint`). Job ids are kept in
    `folder/jobs.json` for `hubbench status`."""

    def __init__(self, folder: Path, name: str, resources: dict, cluster: str = "slurm",
                 plugins: Sequence[str] = (), poll_s: float | None = None,
                 method_resources: dict[str, dict] | None = None, cells_per_job: int = 1):
        super().__init__(plugins)
        self.folder, self.name, self.resources, self.cluster = Path(folder), name, resources, cluster
        self.cells_per_job = cells_per_job
        self.method_resources = method_resources or {}
        self.poll_s = poll_s if poll_s is not None else (1.0 if cluster == "local" else 30.0)

    def arrays(self, cells: list[Cell]) -> list[tuple[dict, list[list[int]]]]:
        """The job arrays: (resources, the indices of each job's cells), in order of first appearance; a job
        holds `cells_per_job` cells of one set of resources."""
        groups: dict[str, tuple[dict, list[int]]] = {}
        for i, cell in enumerate(cells):
            resources = self.method_resources.get(cell.method.name, self.resources)
            groups.setdefault(json.dumps(resources, sort_keys=True), (resources, []))[1].append(i)
        n = self.cells_per_job
        return [(resources, [indices[j : j + n] for j in range(0, len(indices), n)])
                for resources, indices in groups.values()]

    def sbatch(self, resources: dict) -> dict:
        """The resources under submitit's SLURM names (a GPU count of 0 is left out)."""
        params = {SBATCH[k]: v for k, v in resources.items() if not (k == "gpus" and v == 0)}
        if "mem" in params:
            params["mem"] = f"{params['mem']}GB"
        return {"job_name": self.name, **params}

    def dry_run(self, cells: list[Cell]) -> list[str]:
        """The #SBATCH lines of each job array that submitting `cells` would make."""
        from submitit.slurm.slurm import _make_sbatch_string  # renders exactly what submitit submits

        lines = []
        for resources, jobs in self.arrays(cells):
            methods = sorted({cells[i].method.name for job in jobs for i in job})
            text = _make_sbatch_string(command="", folder=self.folder, map_count=len(jobs) if len(jobs) > 1
                                       else None, **self.sbatch(resources))
            per_job = f", {self.cells_per_job} per job" if self.cells_per_job > 1 else ""
            lines.append(f"# {sum(map(len, jobs))} cells{per_job} ({', '.join(methods)})")
            lines += [line for line in text.splitlines() if line.startswith("#SBATCH")]
        return lines

    def submit(self, cells, jobs):
        submitted: list = []  # (job, indices of its cells)
        for resources, groups in self.arrays(cells):
            executor = submitit.AutoExecutor(self.folder, cluster=self.cluster)
            # SLURM reads its own names; the local cluster reads only the generic time limit
            executor.update_parameters(timeout_min=resources["time_min"],
                                       **{f"slurm_{k}": v for k, v in self.sbatch(resources).items()})
            with executor.batch():
                for group in groups:
                    submitted.append((executor.submit(CellGroup(tuple(jobs[i] for i in group))), group))
        self.save_job_ids({cells[i].id: job.job_id for job, group in submitted for i in group})
        index = {job.job_id: group for job, group in submitted}
        for job in submitit.helpers.as_completed([job for job, _ in submitted], poll_frequency=self.poll_s):
            try:
                results = job.result()
            except Exception as e:  # the job ended without returning (killed, cancelled, failed to start)
                results = [e] * len(index[job.job_id])
            yield from zip(index[job.job_id], results, strict=True)

    def save_job_ids(self, ids: dict[str, str]) -> None:
        path = self.folder / "jobs.json"
        old = read_json(path) if path.exists() else {}
        kept = old.get("jobs", {}) if old.get("cluster") == self.cluster else {}
        write_json(path, {"cluster": self.cluster, "jobs": {**kept, **ids}})


def job_states(folder: Path) -> dict[str, str]:
    """'<job id> <state>' of each cell submitted through submitit from `folder` (none if never)."""
    path = folder / "jobs.json"
    if not path.exists():
        return {}
    index = read_json(path)
    jobs = {cell: JOB_CLASSES[index["cluster"]](folder, job_id) for cell, job_id in index["jobs"].items()}
    return {cell: f"{job.job_id} {job.state}" for cell, job in jobs.items()}  # one sacct call for all
