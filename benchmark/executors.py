"""Parallel executors of a suite's cells: a pool of worker processes on this machine (`local`) and
submitit job arrays (`slurm`; submitit's `local` cluster runs the same jobs as subprocesses). `executor_for`
chooses one, with its defaults.

Each runs `CellJob`, a picklable call of `runner.run_cell`, so every executor writes the records
the in-process loop writes. None needs a scheduler of its own: cells that share an artifact
coordinate through its file lock (one trains it, the others wait, then load it), and the cells
that train one artifact each are submitted before those that need several, so waits are short.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.core.utils import FailedJobError
from submitit.helpers import DelayedSubmission

from hubbench import record as records
from hubbench.benchmark.cells import Cell, plugin_of
from hubbench.benchmark.jobs import ACTIVE, QUEUED, job_ids, last_jobs, starts, submitit_folder
from hubbench.benchmark.plugins import load_plugins, pick_device, started_as
from hubbench.benchmark.runner import Redo, run_cell
from hubbench.benchmark.suites import Suite, check_slurm
from hubbench.errors import InputError
from hubbench.hubs.base import get_hub
from hubbench.io import read_json, write_json
from hubbench.progress import interval, relay
from hubbench.settings import Settings, current
from hubbench.stopping import deferred
from hubbench.training import Runtime

log = logging.getLogger(__name__)
Outcome = tuple[Cell, str, str, float]  # cell, status, detail (Record.summary or why it ended), seconds


@dataclass(frozen=True)
class CellJob:
    """One cell as a picklable callable, for a worker process or a cluster job. It names its method or ranker
    by the cell's entry rather than holding it, so a fresh process re-creates the cell after loading the plugin
    files that may define its hub, task or method; it carries the settings of the process that made it, under
    which it runs wherever it runs (not the environment there)."""

    suite: Suite
    hub: str
    task: str
    entry: str  # `Cell.entry`
    seed: int
    results: Path
    device: str  # "auto" is resolved where the job runs
    plugins: tuple[str, ...] = ()
    redo: Redo = Redo()
    threads: int = 1
    runtime: Runtime = Runtime()  # its device-dependent defaults are decided where the job runs
    trial: tuple = ()  # a search trial's (subject id, setting, rung); `entry` is then the method that needs it
    settings: Settings = field(default_factory=current)

    @classmethod
    def of(cls, cell: Cell, results: Path, device, plugins: Sequence[str] = (), **options) -> CellJob:
        entry, trial = cell.entry, ()
        if cell.trial:
            trial = (cell.plugin.subject.id, cell.plugin.setting, cell.plugin.rung)
            entry = records.Record.entry(cell.plugin.owner.id)
        return cls(cell.suite, cell.hub, cell.task, entry, cell.seed, Path(results).resolve(), str(device),
                   tuple(str(Path(p).resolve()) for p in plugins), trial=trial, **options)

    def cell(self) -> Cell:
        load_plugins(self.plugins)
        cell = Cell(self.suite, self.hub, self.task, plugin_of(self.entry), self.seed)
        if self.trial:
            from hubbench.benchmark.tuning import trial_cell

            return trial_cell(cell, *self.trial)
        return cell

    def __call__(self) -> tuple[str, str, float]:
        """Run the cell under its settings, its log on stderr: (status, detail, seconds), as `runner.run_cell`
        (status 'skipped' included)."""
        start = time.perf_counter()
        with started_as(self.settings), deferred(signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]):
            status, record = run_cell(self.cell(), self.results, pick_device(self.device), redo=self.redo,
                                      threads=self.threads, runtime=self.runtime)  # requeued after a checkpoint
        return status, record.summary(), time.perf_counter() - start

    def checkpoint(self) -> DelayedSubmission:
        """submitit calls this when the job is pre-empted or reaches its time limit (once a running training
        loop has saved its checkpoint, see `hubbench.stopping`): the requeued job is this same call, which
        resumes from the stage checkpoints the stopped one left on disk."""
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
    the number of artifacts they need (a stable sort), search trials before cells: the cells that train one
    artifact each start before those that need several, which then mostly find them trained."""
    todo = [c for c in cells if redo(c, records.read(c.path(results), c.record_type))]
    return sorted(todo, key=lambda c: (len(c.plugin.needs(get_hub(c.hub), c.make_task())), not c.trial))


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
                yield todo[i], "incomplete", why_ended(result), 0.0
            else:
                yield todo[i], *result

    def submit(self, cells: list[Cell], jobs: list[CellJob]) -> Iterator[tuple[int, Any]]:
        """Run `jobs`, yielding (index, what the job returned or the exception that ended it) as each ends."""
        raise NotImplementedError


def why_ended(error: BaseException) -> str:
    """Why a cell's process or job ended without a record, in one line: the error raised inside the job where
    submitit reports one (the last line of the traceback between its dashed lines, such as `UncompletedJobError:
    Job not requeued because: timed-out too many times.`), else the last line of `error`'s message."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    dashes = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    if len(dashes) >= 2 and dashes[1] > dashes[0] + 1:
        name, _, message = lines[dashes[1] - 1].partition(": ")
        return f"{name.rsplit('.', 1)[-1]}: {message}"
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


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


def slurm_resources(suite: Suite, overrides: dict, threads: int, method: str | None = None) -> dict:
    """Job resources: defaults (60 min, one CPU per cell thread), then the suite's [slurm] table, then
    its [slurm.methods.<method>] table, then the command line's overrides (None: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return check_slurm({"time_min": 60, "cpus": threads, **suite.slurm, **suite.slurm_methods.get(method, {}), **given})


class SubmissionError(InputError):
    """The scheduler refused the jobs (unknown partition, too many resources, controller down): one line."""


def signal_delay_s(time_min: int) -> int:
    """Seconds before its time limit at which a job gets the signal to requeue (submitit's USR2): a tenth of
    the limit, at most submitit's 90 s. A fixed 90 s would come within seconds of the start of a short job,
    which would then never progress past its first checkpoint."""
    return min(90, time_min * 6)


def scheduler_error(stderr: str) -> str:
    """The informative lines of sbatch's complaint (its 'error:' and 'fatal:' lines name the cause), as one."""
    lines = [re.split(r"(?:error|fatal):", line, maxsplit=1)[1].strip() for line in stderr.splitlines()
             if re.search(r"(?:error|fatal):", line)]
    return "; ".join(dict.fromkeys(lines)) or stderr.strip() or "no reason given"


def cause(stderr: str) -> str:
    """Why sbatch failed, from its complaint: 'unreachable' (no controller answers), 'unconfigured' (no SLURM
    configuration here), 'refused' (the scheduler answered no: partition, resources, limits) or 'failed'."""
    text = stderr.lower()
    if "contact slurm controller" in text:
        return "unreachable"
    if "submission failed" in text or "allocation failure" in text:  # sbatch, sbatch --test-only
        return "refused"
    if "configuration" in text or "slurm.conf" in text:  # no SLURM_CONF, /etc/slurm/slurm.conf or DNS SRV record
        return "unconfigured"
    return "failed"


FAILURES = {  # what each cause means, and what to do
    "refused": "SLURM refuses the jobs of {methods}",
    "unreachable": "the SLURM controller does not answer (is slurmctld running? `scontrol ping` asks it)",
    "unconfigured": "SLURM has no configuration on this machine (set SLURM_CONF to the cluster's slurm.conf, or "
                    "submit from a login node)",
    "failed": "sbatch failed",
}


def failure(stderr: str, methods: Sequence[str]) -> str:
    """One line: what sbatch's failure means (by its `cause`), and its own words."""
    return f"{FAILURES[cause(stderr)].format(methods=', '.join(methods))}: {scheduler_error(stderr)}"


def refused(stderr: str) -> bool:
    """Whether sbatch's complaint is the scheduler refusing the jobs (unknown partition, resources it lacks), not
    its absence (no configuration, a controller that does not answer)."""
    return cause(stderr) == "refused"


class Submitit(Executor):
    """One submitit job per cell, submitted as one job array per set of resources (the suite's, or a
    method's own): on SLURM (`cluster="slurm"`) or as subprocesses of this machine (`cluster="local"`).
    A pre-empted or timed-out job is requeued and resumes (`CellJob.checkpoint`). Every job id of a cell is
    kept in `folder/jobs.json` (for `hubbench status` and `hubbench cancel`); a cell whose last job is still
    queued or running is not submitted again. `cancel` is the command that stops the jobs, said on Ctrl-C."""

    def __init__(self, folder: Path, name: str, resources: dict, cluster: str = "slurm",
                 plugins: Sequence[str] = (), poll_s: float | None = None,
                 method_resources: dict[str, dict] | None = None, cells_per_job: int = 1, cancel: str = ""):
        super().__init__(plugins)
        self.folder, self.name, self.resources, self.cluster = Path(folder), name, resources, cluster
        self.cells_per_job, self.cancel = cells_per_job, cancel
        self.method_resources = method_resources or {}
        # the client looks at its SLURM jobs at each progress interval (`hubbench.settings`, default 30 s)
        self.poll_s = poll_s if poll_s is not None else (1.0 if cluster == "local" else max(1.0, interval()))

    def arrays(self, cells: list[Cell]) -> list[tuple[dict, list[list[int]]]]:
        """The job arrays: (resources, the indices of each job's cells), in order of first appearance; a job
        holds `cells_per_job` cells of one set of resources."""
        groups: dict[str, tuple[dict, list[int]]] = {}
        for i, cell in enumerate(cells):
            resources = self.method_resources.get(cell.plugin.name, self.resources)
            groups.setdefault(json.dumps(resources, sort_keys=True), (resources, []))[1].append(i)
        n = self.cells_per_job
        return [(resources, [indices[j : j + n] for j in range(0, len(indices), n)])
                for resources, indices in groups.values()]

    def sbatch(self, resources: dict) -> dict:
        """The resources under submitit's SLURM names (a GPU count of 0 is left out)."""
        params = {SBATCH[k]: v for k, v in resources.items() if not (k == "gpus" and v == 0)}
        if "mem" in params:
            params["mem"] = f"{params['mem']}GB"
        return {"job_name": self.name, "signal_delay_s": signal_delay_s(resources["time_min"]), **params}

    def scripts(self, cells: list[Cell]) -> list[tuple[list[str], str]]:
        """Each job array's methods and the sbatch script submitit would submit for it."""
        from submitit.slurm.slurm import _make_sbatch_string  # renders exactly what submitit submits

        return [(sorted({cells[i].plugin.name for job in jobs for i in job}),
                 _make_sbatch_string(command="true", folder=self.folder, map_count=len(jobs) if len(jobs) > 1
                                     else None, **self.sbatch(resources)))
                for resources, jobs in self.arrays(cells)]

    def dry_run(self, cells: list[Cell]) -> list[str]:
        """The #SBATCH lines of each job array that submitting `cells` would make."""
        lines = []
        for (methods, text), (_, jobs) in zip(self.scripts(cells), self.arrays(cells), strict=True):
            per_job = f", {self.cells_per_job} per job" if self.cells_per_job > 1 else ""
            lines.append(f"# {sum(map(len, jobs))} cells{per_job} ({', '.join(methods)})")
            lines += [line for line in text.splitlines() if line.startswith("#SBATCH")]
        return lines

    def check(self, cells: list[Cell], *, reachable_only: bool = False) -> str:
        """Ask SLURM whether it would take each job array (`sbatch --test-only`: partition, resources, limits),
        submitting nothing; raise `SubmissionError` if not, naming the cause (`complaints`). With
        `reachable_only`, a scheduler that is absent or does not answer is not an error: the answer says it was
        not asked."""
        if self.cluster != "slurm":
            return "not checked (no scheduler)"
        for why, refusal in self.complaints(cells):
            if reachable_only and not refusal:
                return f"not checked with the scheduler: {why}"
            raise SubmissionError(why)
        return "accepted by the scheduler (sbatch --test-only)"

    def complaints(self, cells: list[Cell]) -> Iterator[tuple[str, bool]]:
        """What keeps SLURM from taking the jobs of `cells`, each (one line, whether it is the scheduler's refusal):
        no sbatch here, no configuration (a `SLURM_CONF` that is no file: sbatch would retry reading it for a
        minute), then sbatch's own complaint, by its `cause`."""
        conf = os.environ.get("SLURM_CONF")
        if shutil.which("sbatch") is None:
            yield ("--executor slurm: SLURM's sbatch is not on this machine's PATH (submit from a login node, or run "
                   "here with --executor local)"), False
        elif conf and not Path(conf).is_file():
            yield f"{FAILURES['unconfigured']}: SLURM_CONF={conf} is not a file", False
        else:
            for methods, text in self.scripts(cells):
                done = subprocess.run(["sbatch", "--test-only"], input=text, capture_output=True, text=True)
                if done.returncode:
                    yield failure(done.stderr, methods), refused(done.stderr)

    def submit(self, cells, jobs):
        known = last_jobs(self.folder, self.cluster)
        active = {i: known[cell.id] for i, cell in enumerate(cells)
                  if cell.id in known and known[cell.id][1].split()[0] in ACTIVE}
        for i, (job, state) in active.items():  # its job will write the record: another would only wait on its lock
            kind = "queued" if state.split()[0] in QUEUED else "running"
            yield i, (kind, f"job {job.job_id} is {state.lower()}: not submitted again", 0.0)
        todo = [i for i in range(len(cells)) if i not in active]
        if not todo:
            return
        submitted = self.submit_arrays([cells[i] for i in todo], [jobs[i] for i in todo])
        index = {job.job_id: [todo[i] for i in group] for job, group in submitted}
        log.info(f"submitted {len(submitted)} jobs ({', '.join(index)}); their logs are in {self.folder}")
        waiting = [job for job, _ in submitted]
        try:
            for job in self.wait(waiting):
                try:
                    results = job.result()
                except Exception as e:  # the job ended without returning (killed, cancelled, failed to start)
                    results = [e] * len(index[job.job_id])
                yield from zip(index[job.job_id], results, strict=True)
        except KeyboardInterrupt:
            self.say_what_goes_on(waiting)
            raise

    def wait(self, waiting: list) -> Iterator:
        """Yield each job of `waiting` as it ends (and drop it from the list). Meanwhile relay the progress lines of
        its cells from its log, with its id, at each look (every progress interval on SLURM, as a local run says
        them), and say when it has started again: requeued (pre-empted, at its time limit, `scontrol requeue`),
        it resumes from its checkpoints."""
        seen: dict[str, int] = {}
        logs = {job.job_id: JobLog(job) for job in waiting}
        while waiting:
            for job in list(waiting):
                done = job.done()
                logs[job.job_id].relay()  # after `done`: an ended job's last lines too
                if done:
                    waiting.remove(job)
                    yield job
                elif (n := starts(job)) > seen.get(job.job_id, 1):
                    seen[job.job_id] = n
                    log.info(f"requeued: job {job.job_id} started again (attempt {n}); it resumes from its checkpoints")
            if waiting:
                time.sleep(self.poll_s)

    def submit_arrays(self, cells: list[Cell], jobs: list[CellJob]) -> list:
        """Submit the arrays of `cells`: [(job, indices of its cells)]; their ids are saved. If the scheduler
        refuses one, the files of the refused submission are removed and `SubmissionError` says why."""
        before = set(self.folder.rglob("*")) if self.folder.exists() else set()
        made = [d for d in (self.folder, *self.folder.parents) if not d.exists()]  # deepest first
        submitted: list = []
        try:
            for resources, groups in self.arrays(cells):
                executor = submitit.AutoExecutor(self.folder, cluster=self.cluster)
                # SLURM reads its own names; the local cluster reads only the generic time limit
                executor.update_parameters(timeout_min=resources["time_min"],
                                           **{f"slurm_{k}": v for k, v in self.sbatch(resources).items()})
                with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # sbatch's complaint: below
                    array = [(executor.submit(CellGroup(tuple(jobs[i] for i in group))), group) for group in groups]
                submitted += array
        except FailedJobError as e:
            kept = {p for job, _ in submitted for p in self.folder.glob(f"{job.job_id.split('_')[0]}_*")}
            for path in sorted(set(self.folder.rglob("*")) - before - kept, reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            for folder in made:
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
            going = f" (jobs {', '.join(j.job_id for j, _ in submitted)} were submitted before it)" if submitted else ""
            methods = sorted({cell.plugin.name for cell in cells})
            raise SubmissionError(failure(str(e), methods) + going) from None
        finally:
            self.save_job_ids({cells[i].id: job.job_id for job, group in submitted for i in group})
        return submitted

    def say_what_goes_on(self, jobs: list) -> None:
        """On Ctrl-C: the jobs run on without this client; a rerun does not submit them again."""
        if not jobs:
            return
        ids = " ".join(job.job_id for job in jobs)
        scancel = f", or: scancel {ids}" if self.cluster == "slurm" else ""
        log.warning(f"hubbench: {len(jobs)} jobs go on without this client ({ids}); a rerun does not submit them "
                    f"again; stop them with: {self.cancel}{scancel}")

    def save_job_ids(self, ids: dict[str, str]) -> None:
        """Append each cell's new job to its list in `jobs.json` (the last is its current one)."""
        if not ids:
            return
        path = self.folder / "jobs.json"
        kept = job_ids(self.folder) if path.exists() and read_json(path).get("cluster") == self.cluster else {}
        for cell, job in ids.items():
            kept[cell] = [*kept.get(cell, []), job]
        write_json(path, {"cluster": self.cluster, "jobs": kept})


def cells_device(kind: str, device: str) -> torch.device | str:
    """The device (auto, cpu or cuda) the cells of executor `kind` run on: picked here, but by each job where it
    runs for a cluster's (`slurm`)."""
    return device if kind == "slurm" else pick_device(device)


def cells_per_gpu(device: str, given: int | None, cells: list[Cell], results: Path, redo: Redo, runtime: Runtime,
                  measure: bool) -> int:
    """`given`, else on a GPU the default of `benchmark.packing` for the cells that would run (logged)."""
    picked = pick_device(device)
    if given is not None or picked.type != "cuda":
        return given or 1
    from hubbench.benchmark.packing import default_cells_per_gpu

    n, why = default_cells_per_gpu(pending(cells, results, redo), picked, runtime, measure)
    log.info(f"cells per GPU: {n} ({why})")
    return n


def executor_for(kind: str, suite: Suite, results: Path, device: str, cells: list[Cell], *, redo: Redo,
                 runtime: Runtime, threads: int = 1, workers: int | None = None, per_gpu: int | None = None,
                 slurm: dict[str, Any] | None = None, plugins: Sequence[str] = (), measure: bool = False,
                 cancel: str = "") -> Executor | None:
    """The executor of `kind` for `cells` (None for 'inline': this process runs them one after the other), with
    its defaults where an option is None: `per_gpu` cells at once on each GPU (`cells_per_gpu`; `measure`: measure
    the step times missing), `workers` as many as the GPUs take, else one per `threads` CPUs; a cluster job's
    resources from the suite's [slurm] tables under the `slurm` overrides. `cancel` is the command that stops the
    cluster jobs, said on Ctrl-C."""
    if kind == "inline":
        return None
    per_gpu = cells_per_gpu(device, per_gpu, cells, results, redo, runtime, measure)
    if kind == "local":
        gpus = visible_gpus() if pick_device(device).type == "cuda" else []
        workers = workers or len(gpus) * per_gpu or max(1, (os.cpu_count() or 1) // threads)
        return LocalPool(workers, gpus, plugins)
    overrides = slurm or {}
    per_method = {m: slurm_resources(suite, overrides, threads, m) for m in suite.slurm_methods}
    return Submitit(submitit_folder(results, suite.name), f"hubbench-{suite.name}",
                    slurm_resources(suite, overrides, threads), plugins=plugins, method_resources=per_method,
                    cells_per_job=per_gpu, cancel=cancel)


NOTE = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (.*)$")  # a line of `hubbench.progress`, as a job's log has it


class JobLog:
    """The progress lines a job's log (its stderr) gained since the last look; every attempt of a requeued job
    appends to the same log."""

    def __init__(self, job):
        self.job, self.offset = job, 0

    def relay(self) -> None:
        """Say its new progress lines in this process, each with its own time and the job's id."""
        try:
            with open(self.job.paths.stderr, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:  # not started yet
            return
        whole = data[: data.rfind(b"\n") + 1]  # a line being written is relayed at the next look
        self.offset += len(whole)
        for line in whole.decode(errors="replace").splitlines():
            if m := NOTE.match(line):
                relay(f"[{m[1]}] job {self.job.job_id}: {m[2]}")

