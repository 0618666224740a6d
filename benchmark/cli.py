"""The `hubbench` command line.

Every check of the input (options, paths, suite, protocol, datasets, hub weights, the scheduler) runs
before any cell starts; a failure is one line on stderr, exit code 2, and nothing written. Modules that
import torch are imported by the commands that use them, so `hubbench --help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import uuid
from pathlib import Path

import hubbench
from hubbench import logs
from hubbench.benchmark import suites
from hubbench.benchmark.plugins import load_plugin, pick_device
from hubbench.errors import InputError
from hubbench.io import RESULTS, cache_dir, check_output_dir
from hubbench.progress import working
from hubbench.registry import UnknownName
from hubbench.settings import VARIABLES, Settings, using

EPILOG = ("Records go to RESULTS/<suite>/...; caches (hubs, artifacts, checkpoints) go to "
          f"${VARIABLES['cache']} or ~/.cache/hubbench.")


class UsageError(InputError):
    """Bad input: reported as one line, exit code 2, nothing written."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def settings_of(args) -> Settings:
    """The settings of the command (`hubbench.settings`): the environment's, under the options given for where
    real hubs find their checkpoint files (or whether they get random weights) and tasks their datasets."""
    options = {}
    for option, setting in (("weights_dir", "weights"), ("data_dir", "data")):
        if (folder := getattr(args, option, None)) is not None:
            if not folder.is_dir():
                raise UsageError(f"--{option.replace('_', '-')} {folder} is not a directory")
            options[setting] = folder.resolve()
    if getattr(args, "random_weights", False):
        options["random_weights"] = True
    return Settings.from_environment().replace(**options)


def load_suite(args) -> suites.Suite:
    """The suite of `--suite` (a name or a .toml path) with the `--set` overrides of its protocol."""
    return suites.Suite.load(args.suite).overridden(suites.parse_overrides(args.set))


def with_trials(suite: suites.Suite, cells: list, known_in: Path | None = None) -> list:
    """The trials of the cells' searches, then the cells: those of the first rung (what `run` submits), or every
    trial that the records under `known_in` decide so far (`status`)."""
    if not suite.spaces:
        return cells
    from hubbench.benchmark import tuning

    return (tuning.known_trials(cells, known_in) if known_in else tuning.first_trials(cells)) + cells


def runtime_options(args):
    from hubbench.training import Runtime

    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    return Runtime(bf16=bf16, channels_last=args.channels_last, compile=args.compile, deterministic=args.deterministic)


def redo_options(args):
    """Which cells with a record a run redoes (--retrain-artifacts makes every selected cell's record stale, and
    names the run whose cells train their artifacts again)."""
    from hubbench.benchmark.runner import Redo

    return Redo(all=args.force or args.retrain_artifacts, failed=args.retry_failed, stale=args.rerun_stale,
                artifacts=uuid.uuid4().hex if args.retrain_artifacts else "")


def check_executor_options(args) -> None:
    """Options of another executor than the chosen one are mistakes, not silently ignored."""
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.workers is not None and (args.executor != "local" or args.workers < 1):
        raise UsageError("--workers takes a positive number, with --executor local")
    if args.cells_per_gpu is not None and (args.executor == "inline" or args.cells_per_gpu < 1 or args.device == "cpu"):
        raise UsageError("--cells-per-gpu takes a positive number, with --executor local or slurm on CUDA")
    given = [f"--slurm-{k.replace('_', '-')}" for k in suites.SLURM if getattr(args, f"slurm_{k}") is not None]
    if given and args.executor != "slurm":
        raise UsageError(f"{given[0]} applies to --executor slurm")


def cancel_command(args) -> str:
    """The command that cancels the cluster jobs of this run's cells."""
    return " ".join(shlex.quote(a) for a in ["hubbench", "cancel", "--suite", args.suite, "--results",
                                             str(args.results), *(f"--set={item}" for item in args.set or [])])


def dry_run(args, cells, executor, redo, runtime) -> int:
    from hubbench.benchmark.executors import Submitit, pending

    todo = pending(cells, args.results, redo)
    print(f"{len(todo)} of {len(cells)} cells would run" + (":" if todo else ""))
    for cell in todo:
        print(f"  {cell.id}")
    if isinstance(executor, Submitit) and todo:
        print(f"sbatch parameters (submitit folder {executor.folder}):")
        print("\n".join(executor.dry_run(todo)))
        print(f"the jobs: {executor.check(todo, reachable_only=True)}")
    if todo:
        print("(a dry run reads no dataset: the estimate comes from the tasks' declared sizes and shapes)")
        trials = sum(c.trial for c in todo)
        if trials:
            print(f"(the estimate leaves out the {trials} search trials of the first rung, and the later rungs the "
                  "searches decide: see docs/suites.md for what a search costs)")
        print_estimate(args, [c for c in todo if not c.trial], runtime)
    return 0


def print_estimate(args, cells, runtime) -> None:
    """The estimated device-hours of `cells`, measuring the missing step times first with --estimate."""
    from hubbench.benchmark import estimate

    found = estimate.grid(cells, pick_device(args.device), runtime, measure=args.estimate, threads=args.threads)
    print("\n".join(estimate.report(found)), flush=True)


def cmd_run(args) -> int:
    from hubbench.benchmark import executors
    from hubbench.benchmark.cells import expand
    from hubbench.benchmark.preflight import review_protocols
    from hubbench.benchmark.runner import StaleRecords, check_run, run_cells
    from hubbench.record import RecordError

    check_executor_options(args)
    check_output_dir(args.results, "--results")
    suite = load_suite(args)
    seeds = suites.parse_seeds(",".join(args.seed)) if args.seed else None
    cells = expand(suite, hubs=args.hub, tasks=args.task, methods=args.method, seeds=seeds)
    cells = with_trials(suite, cells)  # the searches' first trials run as cells do, before the cells they tune
    reviewed = review_protocols(cells)
    runtime, redo = runtime_options(args), redo_options(args)
    try:  # a dry run estimates from the tasks' declared sizes: the data need not be there yet
        check_run(cells, args.results, redo, data=not args.dry_run)
    except RecordError as e:
        raise UsageError(f"{e}; move it away to run its cell again") from None
    except StaleRecords as e:
        raise UsageError(f"{e}: --rerun-stale redoes such records, or run into another --results") from None
    device = executors.cells_device(args.executor, args.device)
    executor = executors.executor_for(
        args.executor, suite, args.results, args.device, cells, redo=redo, runtime=runtime, threads=args.threads,
        workers=args.workers, per_gpu=args.cells_per_gpu,
        slurm={k: getattr(args, f"slurm_{k}") for k in suites.SLURM}, plugins=args.plugins + args.plugin,
        measure=args.estimate, cancel=cancel_command(args))
    if args.executor == "slurm" and not args.dry_run:
        executor.check(executors.pending(cells, args.results, redo))  # the scheduler's refusal, before any job
    for line in reviewed:  # after every check: bad input stays one line
        print(line, file=sys.stderr)
    if args.dry_run:
        return dry_run(args, cells, executor, redo, runtime)
    if args.estimate and (todo := executors.pending(cells, args.results, redo)):
        print_estimate(args, todo, runtime)
    counts = run_cells(cells, args.results, device, executor=executor, checked=True, redo=redo,
                       threads=args.threads, runtime=runtime)
    print(f"{suite.name}: {len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if counts["incomplete"]:
        print(f"{counts['incomplete']} cells ended without a record (a process or job died); rerun to resume them")
    if counts["queued"] or counts["running"]:
        print(f"{counts['queued'] + counts['running']} cells have jobs of an earlier run still queued or running, "
              "which write their records: not submitted again (`hubbench status --suite ...` follows them)")
    print(f"records in {args.results / suite.name}; render them with: hubbench leaderboard {finding_options(args)}")
    return 1 if counts["failed"] or counts["incomplete"] else 0


def finding_options(args) -> str:
    """The options, as given, that another command needs to find a run's records (and load their plugins)."""
    options = [*(f"--plugin={p}" for p in args.plugins + args.plugin), "--suite", args.suite,
               *(f"--set={item}" for item in args.set or [])]
    if args.results != RESULTS:
        options += ["--results", str(args.results)]
    return " ".join(shlex.quote(o) for o in options)


def cmd_status(args) -> int:
    from hubbench.benchmark.cells import expand
    from hubbench.benchmark.jobs import job_states, submitit_folder
    from hubbench.benchmark.status import STATES, listing, states, summary

    for state in args.state or []:
        if state not in STATES:
            raise UnknownName("state", state, list(STATES))
    suite = load_suite(args)
    seeds = suites.parse_seeds(",".join(args.seed)) if args.seed else None
    cells = expand(suite, hubs=args.hub, tasks=args.task, methods=args.method, seeds=seeds)
    cells = with_trials(suite, cells, known_in=args.results)
    rows = states(cells, args.results, cache_dir(), job_states(submitit_folder(args.results, suite.name)))
    rows = [row for row in rows if not args.state or row.state in args.state]
    counts = {s: sum(row.state == s for row in rows) for s in STATES}
    print(f"{suite.name}: {len(rows)} cells: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
    print("\n".join(listing(rows) if args.list else summary(rows)))
    return 0


def cmd_cancel(args) -> int:
    from hubbench.benchmark.cancel import cancel
    from hubbench.benchmark.cells import expand
    from hubbench.benchmark.jobs import submitit_folder

    suite = load_suite(args)
    seeds = suites.parse_seeds(",".join(args.seed)) if args.seed else None
    cells = expand(suite, hubs=args.hub, tasks=args.task, methods=args.method, seeds=seeds)
    cells = with_trials(suite, cells)  # and the search trials submitted with them
    ids = cancel(submitit_folder(args.results, suite.name), {cell.id for cell in cells})
    print(f"{suite.name}: cancelled {len(ids)} jobs" + (f": {' '.join(ids)}" if ids else
                                                        " (none of its cells has a job queued or running)"))
    return 0


def cmd_list(args) -> int:
    from hubbench.benchmark.catalogue import KINDS, catalogue

    found = catalogue(plugins=bool(args.plugins + args.plugin))
    rows = [(f"{kind[:-1]} {name}", text) for kind in KINDS if args.what in (kind, "all")
            for name, text in sorted(found[kind].items())]
    if args.what in ("suites", "all"):
        rows += [(f"suite {n}", suites.bundled_description(n)) for n in suites.suite_names()]
    width = max(len(r[0]) for r in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_hub_build(args) -> int:
    from hubbench.benchmark.hub_build import build

    if args.ship and not args.from_scratch:
        raise UsageError("--ship goes with --from-scratch")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.from_scratch:
        check_output_dir(cache_dir(), f"the cache directory (${VARIABLES['cache']})")
    print("\n".join(build(args.name, args.from_scratch, args.workers, args.plugins + args.plugin, args.ship)))
    return 0


def cmd_hub_download(args) -> int:
    from hubbench.hubs.zoo import download

    for path in download(args.name, args.dest):
        print(path)
    return 0


def cmd_leaderboard(args) -> int:
    """As `run`, `--suite` takes a suite name or file, and `--set` names a variant; the leaderboard itself
    knows only the folders of the records."""
    from hubbench.leaderboard.generate import run

    overrides = suites.parse_overrides(args.set)
    if overrides and not args.suite:
        raise UsageError("--set names a variant of the suites given with --suite")
    names = [suites.Suite.load(s).overridden(overrides).name if overrides or suites.is_path(s) else s
             for s in args.suite or []]
    return run(names, args.results, args.out)


def cmd_compare(args) -> int:
    """A suite file stands for its records' folder under RESULTS, as in `run` and `leaderboard`."""
    from hubbench.leaderboard.compare import run

    a, b = (suites.Suite.load(s).name if s.endswith(".toml") else s for s in (args.a, args.b))
    return run(a, b, args.results, args.html, args.force)


def cmd_export(args) -> int:
    from hubbench.leaderboard.export import run

    return run(args.suite, args.results, args.tensorboard)


def cmd_profile(args) -> int:
    from hubbench.benchmark.declarations import declare_files
    from hubbench.benchmark.profile_cmd import run

    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory, not a file")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    check_output_dir(args.out.parent if args.out else RESULTS / "profile", "--out")
    declare_files(args.declare)
    device = pick_device(args.device)
    return run(args.hub, args.task, args.method, device, runtime_options(args).resolve(device), batch=args.batch,
               seed=args.seed, out=args.out)


def cmd_rank(args) -> int:
    from hubbench.benchmark.preflight import check_data, check_weights
    from hubbench.benchmark.rank_cmd import run

    results = args.results or cache_dir() / "records"  # not the working directory: a checkout's results/ is a suite's
    check_output_dir(results, "--results")
    check_output_dir(cache_dir(), f"the cache directory (${VARIABLES['cache']})")
    return run(args.hub, args.task, results, pick_device(args.device),
               lambda cells: (check_data(cells), check_weights(cells)), rankers=args.ranker or (), by=args.by,
               tune=args.tune, seed=args.seed, overrides=suites.parse_overrides(args.set), declare=args.declare,
               as_json=args.json, boards=args.boards, force=args.force)


def cmd_data_prepare(args) -> int:
    """Decode (or crop) every image of the suite's real datasets into the cache now, not in the first cell."""
    from hubbench.tasks.base import TASKS

    suite = suites.Suite.load(args.suite)
    for name in suite.tasks:
        cls = TASKS.get(name)
        if not cls.external_data:
            continue
        task = cls(suite.protocol_for(name))
        for split in task.splits:
            images = task.pixels(split)
            print(f"{name}/{split}: {len(images)} images of {images.shape[-1]} px in the cache", flush=True)
    return 0


def cmd_data_synth(args) -> int:
    from hubbench.tasks.synth_data import synthesise

    if args.dir.exists() and not args.dir.is_dir():
        raise UsageError(f"{args.dir} is not a directory")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    folders = synthesise(args.dir, args.seed, *([args.datasets] if args.datasets else []))
    print(f"wrote {len(folders)} synthetic datasets (seed {args.seed}) under {args.dir}: "
          f"{', '.join(f.name for f in folders)}; for rehearsals only: "
          f"hubbench run --suite paper-rehearsal --random-weights --data-dir {args.dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    plugin_help = "a .py file registering extra hubs, tasks, methods or rankers (repeatable)"
    common = Parser(add_help=False)  # --plugin is accepted before and after the command
    common.add_argument("--plugin", action="append", default=[], metavar="FILE", help=plugin_help)
    parser = Parser(prog="hubbench", epilog=EPILOG,
                    description="Benchmark ways of transferring knowledge from a hub of pre-trained models.")
    parser.add_argument("--plugin", action="append", default=[], dest="plugins", metavar="FILE", help=plugin_help)
    parser.add_argument("--version", action="version", version=f"hubbench {hubbench.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runtime = Parser(add_help=False)  # how models run: `hubbench.training.Runtime`
    runtime.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                         help="bf16 autocast for training and inference, on CUDA and on the CPU alike (default auto: "
                              "bf16 on CUDA, fp32 on the CPU)")
    runtime.add_argument("--channels-last", action="store_true", help="NHWC models and batches (faster convs on GPUs)")
    runtime.add_argument("--compile", metavar="MODE", choices=["default", "reduce-overhead", "max-autotune"],
                         help="torch.compile the training step (and the profiled model) in this mode (default: eager)")
    runtime.add_argument("--deterministic", action="store_true",
                         help="deterministic kernels and no cudnn.benchmark: reproducible GPU results, slower")
    weights = Parser(add_help=False)
    weights.add_argument("--weights-dir", type=Path, metavar="DIR",
                         help="checkpoint files of real hubs (default: $TORCH_HOME/hub/checkpoints)")
    weights.add_argument("--random-weights", action="store_true",
                         help="real hubs' architectures with seeded random weights (profiling, tests); in a declared "
                              "hub, only the sources whose weights are not on this machine (the records say which)")

    records = Parser(add_help=False)  # where records are read and written
    records.add_argument("--results", type=Path, default=RESULTS, help="records directory (default: results)")
    grid = Parser(add_help=False, parents=[records])  # which cells: a suite, a variant of it, a part of it
    grid.add_argument("--suite", required=True, help="suite name (see `hubbench list suites`) or path to a .toml file")
    grid.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a protocol field of every task (repeatable), in TOML syntax as in a suite's "
                           "[protocol] table: --set iterations=20 --set milestones=[0.5]. The cells form a variant "
                           "of the suite, with records of their own under RESULTS/<suite>@iterations=20,.../")
    grid.add_argument("--hub", action="append", help="only this hub (repeatable)")
    grid.add_argument("--task", action="append", help="only this task (repeatable)")
    grid.add_argument("--method", action="append",
                      help="only this method or ranker, by name or id (repeatable; a ranking's id: rank:<ranker>)")
    grid.add_argument("--seed", action="append", help="only these seeds, e.g. 0,1 (repeatable)")

    run = sub.add_parser("run", parents=[common, grid, weights, runtime], help="run a suite's cells into records",
                         description="Run every (hub, task, method, seed) cell of a suite; complete cells are skipped. "
                                     "Progress goes to stderr: bars in a terminal, else a line per cell start and "
                                     f"end and a progress line every ${VARIABLES['progress_s']} seconds (default 30).")
    run.add_argument("--data-dir", type=Path, metavar="DIR",
                     help=f"real datasets, one folder per task (default: ${VARIABLES['data']} or ~/data)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if available")
    run.add_argument("--force", action="store_true", help="redo cells that already have a record")
    run.add_argument("--retry-failed", action="store_true", help="redo cells whose record is 'failed'")
    run.add_argument("--rerun-stale", action="store_true",
                     help="redo cells whose record was made under another configuration: another version or "
                          "weights of the hub, or another protocol for the task (for a ranking, what its features "
                          "see of it: image_size, resize) (a run refuses to start while such "
                          "records are kept; `hubbench status` marks them 'stale')")
    run.add_argument("--retrain-artifacts", action="store_true",
                     help="redo the selected cells (implies --force), each training again the cached fine-tuned "
                          "sources it reuses, where no cell of this run has yet; those no cell uses stay cached")
    run.add_argument("--threads", type=int, default=1,
                     help="CPU threads per cell (default 1: results depend on it, so it is pinned and recorded)")
    run.add_argument("--executor", choices=["inline", "local", "slurm"], default="inline",
                     help="inline: one cell after the other in this process (default); local: a pool of worker "
                          "processes; slurm: a submitit job array. All write the same records")
    run.add_argument("--workers", type=int, metavar="N",
                     help="--executor local: worker processes (default: one per GPU with --device cuda, "
                          "else CPUs / --threads)")
    run.add_argument("--cells-per-gpu", type=int, metavar="N",
                     help="cells trained at once on each GPU, each in its own process (--executor local: N workers "
                          "per GPU; slurm: N cells per job of one GPU). Default: as many as the GPU's free memory "
                          "holds at the cells' measured peak and measurably pay (see --estimate), else 1")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells that would run (and, for slurm, the sbatch parameters) and their estimated "
                          "device-hours per method, from the step times cached by --estimate; run nothing")
    run.add_argument("--estimate", action="store_true",
                     help="measure the step times missing from the cache on this machine's device and --threads (a "
                          "one-step build of each method, then a few seconds of each of its training stages; it says "
                          "first how long), cache them and print the estimated device-hours; then run the cells, or "
                          "with --dry-run nothing")
    for key, (kind, text) in suites.SLURM.items():
        run.add_argument(f"--slurm-{key.replace('_', '-')}", type=kind, metavar=kind.__name__.upper(),
                         help=f"--executor slurm: {text}; overrides the suite's [slurm] {key}")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", parents=[common, grid], help="show where each cell of a suite stands",
                            description="Count a suite's cells by state: done, failed, n/a (from records), stale (a "
                                        "record made under another hub version or protocol), queued (its SLURM "
                                        "job waits), running (its lock is held, or its job runs), interrupted "
                                        "(checkpoints left), missing; per method id, or with "
                                        "--list one line per cell, with its detail and, when the suite went through "
                                        "--executor slurm, its submitit job.")
    status.add_argument("--state", action="append", help="only cells in this state (repeatable)")
    status.add_argument("--list", action="store_true", help="one line per cell instead of the summary")
    status.set_defaults(func=cmd_status)

    cancel = sub.add_parser("cancel", parents=[common, grid], help="cancel a suite's queued or running cluster jobs",
                            description="Cancel the last job of each selected cell that is still queued or running "
                                        "(as `hubbench status` shows them), e.g. after the client that submitted them "
                                        "was interrupted: its jobs go on without it. Records written are kept; a "
                                        "rerun resumes the cancelled cells from their checkpoints.")
    cancel.set_defaults(func=cmd_cancel)

    lst = sub.add_parser("list", parents=[common], help="list hubs, tasks, methods, rankers or suites")
    lst.add_argument("what", nargs="?", default="all", choices=["hubs", "tasks", "methods", "rankers", "suites", "all"])
    lst.set_defaults(func=cmd_list)

    from hubbench.leaderboard.generate import DESCRIPTION, add_arguments

    lb = sub.add_parser("leaderboard", parents=[common], help="regenerate leaderboards from records",
                        description=DESCRIPTION)
    add_arguments(lb)
    lb.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="render the variant of each --suite that `run --set` made with these overrides")
    lb.set_defaults(func=cmd_leaderboard)

    cmp = sub.add_parser("compare", parents=[common, records],
                         help="compare the cells two suites, variants or results share",
                         description="Print a table of the (hub, task, method) cells that A and B both have ok "
                                     "records for: the mean test metric in each, B - A, and B - A paired over the "
                                     "seeds both have with its 95% interval; then the hub, protocol and runtime "
                                     "settings and the commits in which the two runs differ.")
    cmp.add_argument("a", metavar="A", help="a suite or variant under RESULTS (e.g. mini, mini@iterations=20), a "
                                            "suite file (my-suite.toml), or a folder of a suite's records (e.g. "
                                            "../main/results/mini)")
    cmp.add_argument("b", metavar="B", help="the other, as A")
    cmp.add_argument("--html", type=Path, metavar="FILE", help="also write the comparison as a page")
    cmp.add_argument("--force", action="store_true", help="replace an existing --html file")
    cmp.set_defaults(func=cmd_compare)

    export = sub.add_parser("export", parents=[common, records], help="export records to TensorBoard",
                            description="Write every ok record as a TensorBoard run, one per cell, in "
                                        "DIR/<suite>/<hub>/<task>/<method id>/seed<N>/: its curves over training "
                                        "iterations, its final metrics and its hyper-parameters (HParams). Offline; "
                                        "view with `tensorboard --logdir DIR`.")
    export.add_argument("--tensorboard", type=Path, metavar="DIR", required=True,
                        help="where to write the runs (a run folder that exists is refused)")
    export.add_argument("--suite", action="append",
                        help="suite or variant folder under RESULTS, repeatable (default: every one with records)")
    export.set_defaults(func=cmd_export)

    prof = sub.add_parser("profile", parents=[common, weights, runtime],
                          help="params, FLOPs, memory and speed of one method",
                          description="Build a method on a hub and task with one training step (on stand-in data "
                                      "for tasks read from files, in a temporary cache), then print and record its "
                                      "params, FLOPs, memory and speed.")
    prof.add_argument("--hub", required=True, help="hub name (see `hubbench list hubs`)")
    prof.add_argument("--declare", action="append", default=[], metavar="FILE",
                      help="a TOML file of [hub.<name>] and [task.<name>] declarations (repeatable)")
    prof.add_argument("--task", required=True, help="task name; a task read from files is profiled on stand-in "
                                                    "data of its shapes, so its data need not be there")
    prof.add_argument("--method", required=True,
                      help="method name or id, e.g. finetune[model=selfsup]; a bare name profiles its first "
                           "variant (finetune: the hub's first model; soup: the greedy recipe)")
    prof.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if available")
    prof.add_argument("--batch", type=int,
                      help="samples per measured batch (default: the task's training batch on CUDA, as runs measure, "
                           "and 2 on the CPU, to be quick): memory and speed depend on it")
    prof.add_argument("--seed", type=int, default=0, help="seed of the one-step build (default 0)")
    prof.add_argument("--out", type=Path, metavar="FILE",
                      help="the JSON written (default: results/profile/<hub>/<task>/<method id>.json)")
    prof.set_defaults(func=cmd_profile)

    rank = sub.add_parser("rank", parents=[common, weights],
                          help="which hub model for a task: every ranker's scores",
                          description="Score every source of a hub for a task with every applicable ranker (LogME, "
                                      "LEEP, NCE, H-score) and print a table of scores, each ranker's pick (ties "
                                      "as ties), the seconds its scoring took (the features' are said once) and, "
                                      "where suites under --boards hold this hub's fine-tunes and rankings, how well "
                                      "each ranker matched them there (weighted Kendall τ); the ranking records go "
                                      "under the cache, or --results, as a suite's would "
                                      "(RESULTS/rank/<hub>/<task>/rank/...), and are reused by the next run. Hubs and "
                                      "tasks are built-in or declared in TOML files given with --declare (see "
                                      "docs/own-data.md); a declared task's protocol is sized to its data.")
    rank.add_argument("--results", type=Path,
                      help="records directory (default: records/ under the cache, not the working directory)")
    rank.add_argument("--boards", type=Path, default=RESULTS, metavar="RESULTS",
                      help="suites' records to measure each ranker on this hub by (default: results, where `hubbench "
                           "run` writes)")
    rank.add_argument("--force", action="store_true", help="rank again where records of an earlier run exist")
    rank.add_argument("--hub", required=True, help="hub name (built-in, or declared in a --declare file)")
    rank.add_argument("--task", required=True, help="task name (built-in, or declared in a --declare file)")
    rank.add_argument("--declare", action="append", default=[], metavar="FILE",
                      help="a TOML file of [hub.<name>] and [task.<name>] declarations (repeatable)")
    rank.add_argument("--ranker", action="append", help="only this ranker (repeatable; default: all)")
    rank.add_argument("--tune", nargs="?", const="", metavar="METHOD",
                      help="then train and report its test metric: fine-tune the pick (no METHOD), or METHOD: a "
                           "single-source method (by its role) tunes the pick, any other runs as it is (b_tuning "
                           "picks its sources itself)")
    rank.add_argument("--by", metavar="RANKER", help="whose pick --tune fine-tunes (default: the first that scored)")
    rank.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    rank.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="override a protocol field of the task (repeatable), as `hubbench run --set`")
    rank.add_argument("--seed", type=int, default=0, help="seed of the ranking and tuning cells (default 0)")
    rank.add_argument("--data-dir", type=Path, metavar="DIR",
                      help=f"real datasets, one folder per task (default: ${VARIABLES['data']} or ~/data)")
    rank.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if available")
    rank.set_defaults(func=cmd_rank)

    data = sub.add_parser("data", parents=[common], help="dataset operations")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    prepare = data_sub.add_parser("prepare", parents=[common], help="decode a suite's datasets into the cache",
                                  description="Decode and squash every image of the suite's real datasets (crop the "
                                              "faces of landmark datasets) into memory-mapped files under "
                                              f"${VARIABLES['cache']}/, which runs then read instead of the image "
                                              "files.")
    prepare.add_argument("--suite", required=True, help="suite name or path to a .toml file")
    prepare.add_argument("--data-dir", type=Path, metavar="DIR",
                         help=f"real datasets, one folder per task (default: ${VARIABLES['data']} or ~/data)")
    prepare.set_defaults(func=cmd_data_prepare)

    hub = sub.add_parser("hub", parents=[common], help="hub operations")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="ACTION")
    build = hub_sub.add_parser("build", parents=[common, weights],
                               help="verify a hub's weights and load them (the mini hubs' ship with hubbench), or "
                                    "pre-train a mini hub again from scratch",
                               description="Verify and load every source's weights: the files hubbench ships for "
                                           "the hubs it pre-trains itself, a real hub's checkpoint files. With "
                                           "--from-scratch, pre-train a self-built hub's sources again into the "
                                           "cache, independent ones at the same time, and report file by file "
                                           "whether they equal the shipped weights (bit for bit on the torch and "
                                           "CPU kind the manifest names).")
    build.add_argument("name", help="hub name (see `hubbench list hubs`)")
    build.add_argument("--from-scratch", action="store_true",
                       help="pre-train the sources again, ignoring the shipped weights, and compare with them")
    build.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                       help="--from-scratch: sources pre-trained at the same time, one process each "
                            "(default: the CPU count)")
    build.add_argument("--ship", action="store_true",
                       help="--from-scratch: make what was trained the shipped files, listed in hubs/pretrained/"
                            "manifest.json (maintainers, after a hub version bump)")
    build.set_defaults(func=cmd_hub_build)
    download = hub_sub.add_parser("download", parents=[common],
                                  help="download a real hub's checkpoint files (needs internet)")
    download.add_argument("name", help="resnet50-zoo or hetero-zoo")
    download.add_argument("--dest", type=Path, help="directory (default: $TORCH_HOME/hub/checkpoints)")
    download.set_defaults(func=cmd_hub_download)

    synth = data_sub.add_parser(
        "synth", parents=[common], help="write synthetic stand-ins of the paper datasets (rehearsals only)",
        description="Write every paper dataset (each paper task's synthetic stand-in) under "
                    "DIR/<task>/ in its exact distributed layout, with the real class counts and image sizes, a few "
                    "images per class, deterministic for the seed. A rehearsal tool: the files look real to the "
                    "loaders and their content means nothing (random pixels, labels and landmarks), so that a paper "
                    "suite can run end to end (e.g. `hubbench run --suite paper-rehearsal --random-weights "
                    "--data-dir DIR`) before the real data are there; no number measured on them means anything. "
                    "A folder that synth did not write is never replaced.")
    synth.add_argument("dir", type=Path, metavar="DIR", help="the data directory to write (created if missing)")
    synth.add_argument("--seed", type=int, default=0, help="the data are a function of it (default 0)")
    synth.add_argument("--datasets", nargs="+", metavar="NAME",
                       help="only these, by the paper task's name, e.g. cifar100 or 300w (default: all; an unknown "
                            "name is refused with the list of choices)")
    synth.set_defaults(func=cmd_data_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command under its settings (`hubbench.settings`), its log shown on stderr (`hubbench.logs`). Bad input
    (`hubbench.errors.InputError`) is one line and exit code 2; any other exception keeps its traceback."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        with using(settings_of(args)), logs.to_stderr():
            for plugin in args.plugins + args.plugin:
                load_plugin(plugin)
            with working(f"hubbench {args.command}"):  # says so when a stretch is silent for a progress interval
                code = args.func(args)
        sys.stdout.flush()  # a reader that left shows here, not as an ignored exception at exit
        return code
    except BrokenPipeError:  # the reader left (`hubbench status | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # as a process killed by SIGPIPE
    except KeyboardInterrupt:
        print("hubbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except InputError as e:
        print(f"hubbench: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the environment failed a running command: a full disk, a vanished file
        running = getattr(args, "command", "") == "run"
        resume = "; the records written before it are intact, rerun to resume" if running else ""
        print(f"hubbench: error: {e}{resume}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
