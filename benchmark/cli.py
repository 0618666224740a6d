"""The `hubbench` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hubbench.benchmark import suites
from hubbench.benchmark.plugins import load_plugin, pick_device
from hubbench.hubs.checkpoints import DownloadFailed, MissingWeights

from hubbench import hubs, methods, rankers, tasks
from hubbench.io import DATA_DIR_ENV
from hubbench.record import RecordError
from hubbench.registry import UnknownName

EPILOG = ("Records go to RESULTS/<suite>/...; caches (hubs, artifacts, checkpoints) go to "
          "$HUBBENCH_CACHE or ~/.cache/hubbench.")


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2, nothing written."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def apply_weights_options(args) -> None:
    """Where real hubs find their checkpoint files, or whether they use random weights; read by
    hubs.zoo through the environment so that worker processes inherit them."""
    if getattr(args, "weights_dir", None):
        if not args.weights_dir.is_dir():
            raise UsageError(f"--weights-dir {args.weights_dir} is not a directory")
        os.environ["HUBBENCH_WEIGHTS_DIR"] = str(args.weights_dir.resolve())
    if getattr(args, "random_weights", False):
        os.environ["HUBBENCH_RANDOM_WEIGHTS"] = "1"
        hubs.get_hub.cache_clear()


def apply_data_dir(args) -> None:
    """Where tasks read real datasets; set in the environment, so that worker processes and jobs inherit it."""
    if args.data_dir:
        if not args.data_dir.is_dir():
            raise UsageError(f"--data-dir {args.data_dir} is not a directory")
        os.environ[DATA_DIR_ENV] = str(args.data_dir.resolve())


def check_data(cells) -> None:
    """Read every selected real dataset now: a missing or malformed one is then one error before
    any cell runs or any hub weights load, not a failed cell per method and seed."""
    for name in dict.fromkeys(cell.task for cell in cells):
        task = tasks.TASKS.get(name)
        if task.external_data:
            task().splits  # noqa: B018 (reading is the check; the splits stay cached for this process)


def runtime_options(args):
    from hubbench.training import Runtime

    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    return Runtime(bf16=bf16, channels_last=args.channels_last, compile=args.compile, deterministic=args.deterministic)


def check_executor_options(args) -> None:
    """Options of another executor than the chosen one are mistakes, not silently ignored."""
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if args.workers is not None and (args.executor != "local" or args.workers < 1):
        raise UsageError("--workers takes a positive number, with --executor local")
    given = [f"--slurm-{k.replace('_', '-')}" for k in suites.SLURM if getattr(args, f"slurm_{k}") is not None]
    if given and args.executor != "slurm":
        raise UsageError(f"{given[0]} applies to --executor slurm")


def make_executor(args, suite: suites.Suite, device):
    """The parallel executor chosen by the options (None: inline, in this process)."""
    if args.executor == "inline":
        return None
    from hubbench.benchmark import executors

    plugins = args.plugins + args.plugin
    if args.executor == "local":
        gpus = executors.visible_gpus() if device.type == "cuda" else []
        workers = args.workers or len(gpus) or max(1, (os.cpu_count() or 1) // args.threads)
        return executors.LocalPool(workers, gpus, plugins)
    overrides = {k: getattr(args, f"slurm_{k}") for k in suites.SLURM}
    per_method = {m: executors.slurm_resources(suite, overrides, args.threads, m) for m in suite.slurm_methods}
    return executors.Submitit(executors.submitit_folder(args.results, suite.name), f"hubbench-{suite.name}",
                              executors.slurm_resources(suite, overrides, args.threads), plugins=plugins,
                              method_resources=per_method)


def dry_run(cells, executor, args) -> int:
    from hubbench.benchmark.executors import Submitit, pending

    todo = pending(cells, args.results, args.force, args.retry_failed)
    print(f"{len(todo)} of {len(cells)} cells would run" + (":" if todo else ""))
    for cell in todo:
        print(f"  {cell.id}")
    if isinstance(executor, Submitit) and todo:
        print(f"sbatch parameters (submitit folder {executor.folder}):")
        print("\n".join(executor.dry_run(todo)))
    return 0


def cmd_run(args) -> int:
    from hubbench.benchmark.runner import check_records, expand, run_cells

    check_executor_options(args)
    apply_weights_options(args)
    apply_data_dir(args)
    suite = suites.Suite.load(args.suite)
    seeds = suites.parse_seeds(",".join(args.seed)) if args.seed else None
    cells = expand(suite, hubs=args.hub, tasks=args.task, methods=args.method, seeds=seeds)
    try:
        check_records(cells, args.results)
    except RecordError as e:
        raise UsageError(f"{e}; move it away to run its cell again") from None
    check_data(cells)
    device = args.device if args.executor == "slurm" else pick_device(args.device)  # jobs pick theirs
    executor = make_executor(args, suite, device)
    if args.dry_run:
        return dry_run(cells, executor, args)
    counts = run_cells(cells, args.results, device, executor=executor, force=args.force,
                       retry_failed=args.retry_failed, threads=args.threads, runtime=runtime_options(args))
    print(f"{suite.name}: {len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if counts["incomplete"]:
        print(f"{counts['incomplete']} cells ended without a record (a process or job died); rerun to resume them")
    print(f"records in {args.results / suite.name}; render them with: hubbench leaderboard --suite {suite.name}")
    return 1 if counts["failed"] or counts["incomplete"] else 0


def cmd_status(args) -> int:
    from hubbench.benchmark.executors import job_states, submitit_folder
    from hubbench.benchmark.runner import expand
    from hubbench.benchmark.status import STATES, report

    from hubbench.io import cache_dir

    suite = suites.Suite.load(args.suite)
    cells = expand(suite)
    jobs = job_states(submitit_folder(args.results, suite.name))
    counts, lines = report(cells, args.results, cache_dir(), jobs)
    print(f"{suite.name}: {len(cells)} cells: " + ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s]))
    print("\n".join(lines))
    return 0


def cmd_list(args) -> int:
    what = args.what
    rows: list[tuple[str, str]] = []
    if what in ("hubs", "all"):
        rows += [(f"hub {n}", hubs.get_hub(n).description) for n in hubs.HUBS]
    if what in ("tasks", "all"):
        rows += [(f"task {n}", tasks.TASKS.get(n).description) for n in tasks.TASKS]
    if what in ("methods", "all"):
        rows += [(f"method {n}", methods.METHODS.get(n).description) for n in methods.METHODS]
    if what in ("rankers", "all"):
        rows += [(f"ranker {n}", rankers.RANKERS.get(n).description) for n in rankers.RANKERS]
    if what in ("suites", "all"):
        rows += [(f"suite {n}", suites.Suite.load(n).description) for n in suites.suite_names()]
    width = max(len(r[0]) for r in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_hub_build(args) -> int:
    apply_weights_options(args)
    hub = hubs.get_hub(args.name)
    hub.build()
    print(f"hub {hub.name}: {len(hub.sources)} models ready ({', '.join(hub.names)})")
    return 0


def cmd_hub_download(args) -> int:
    from hubbench.hubs.zoo import download

    for path in download(args.name, args.dest):
        print(path)
    return 0


def cmd_leaderboard(args) -> int:
    from hubbench.leaderboard.generate import run

    return run(args)


def cmd_profile(args) -> int:
    from hubbench.benchmark.profile_cmd import run

    apply_weights_options(args)
    device = pick_device(args.device)
    return run(args, device, runtime_options(args).resolve(device))


def build_parser() -> argparse.ArgumentParser:
    plugin_help = "a .py file registering extra hubs, tasks, methods or rankers (repeatable)"
    common = Parser(add_help=False)  # --plugin is accepted before and after the command
    common.add_argument("--plugin", action="append", default=[], metavar="FILE", help=plugin_help)
    parser = Parser(prog="hubbench", epilog=EPILOG,
                    description="Benchmark ways of transferring knowledge from a hub of pre-trained models.")
    parser.add_argument("--plugin", action="append", default=[], dest="plugins", metavar="FILE", help=plugin_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runtime = Parser(add_help=False)  # how models run: `hubbench.training.Runtime`
    runtime.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                         help="bf16 autocast for training and inference (CUDA only; default auto: bf16 on CUDA)")
    runtime.add_argument("--channels-last", action="store_true", help="NHWC models and batches (faster convs on GPUs)")
    runtime.add_argument("--compile", metavar="MODE", choices=["default", "reduce-overhead", "max-autotune"],
                         help="torch.compile the training step (and the profiled model) in this mode (default: eager)")
    runtime.add_argument("--deterministic", action="store_true",
                         help="deterministic kernels and no cudnn.benchmark: reproducible GPU results, slower")
    weights = Parser(add_help=False)
    weights.add_argument("--weights-dir", type=Path, metavar="DIR",
                         help="checkpoint files of real hubs (default: $TORCH_HOME/hub/checkpoints)")
    weights.add_argument("--random-weights", action="store_true",
                         help="real hubs' architectures with seeded random weights (profiling, tests)")

    run = sub.add_parser("run", parents=[common, weights, runtime], help="run a suite's cells into records",
                         description="Run every (hub, task, method, seed) cell of a suite; complete cells are skipped.")
    run.add_argument("--suite", required=True, help="suite name (see `hubbench list suites`) or path to a .toml file")
    run.add_argument("--hub", action="append", help="only this hub (repeatable)")
    run.add_argument("--task", action="append", help="only this task (repeatable)")
    run.add_argument("--method", action="append",
                     help="only this method or ranker, by name or id (repeatable; a ranking's id: rank:<ranker>)")
    run.add_argument("--seed", action="append", help="only these seeds, e.g. 0,1 (repeatable)")
    run.add_argument("--results", type=Path, default=Path("results"), help="records directory (default: results)")
    run.add_argument("--data-dir", type=Path, metavar="DIR",
                     help=f"real datasets, one folder per task (default: ${DATA_DIR_ENV} or ~/data)")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default: cuda if available")
    run.add_argument("--force", action="store_true", help="redo cells that already have a record")
    run.add_argument("--retry-failed", action="store_true", help="redo cells whose record is 'failed'")
    run.add_argument("--threads", type=int, default=1,
                     help="CPU threads per cell (default 1: results depend on it, so it is pinned and recorded)")
    run.add_argument("--executor", choices=["inline", "local", "slurm"], default="inline",
                     help="inline: one cell after the other in this process (default); local: a pool of worker "
                          "processes; slurm: a submitit job array. All write the same records")
    run.add_argument("--workers", type=int, metavar="N",
                     help="--executor local: worker processes (default: one per GPU with --device cuda, "
                          "else CPUs / --threads)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells that would run (and, for slurm, the sbatch parameters); run nothing")
    for key, (kind, text) in suites.SLURM.items():
        run.add_argument(f"--slurm-{key.replace('_', '-')}", type=kind, metavar=kind.__name__.upper(),
                         help=f"--executor slurm: {text}; overrides the suite's [slurm] {key}")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", parents=[common], help="show where each cell of a suite stands",
                            description="Count and list a suite's cells: done, failed, n/a (from records), running "
                                        "(its lock is held), interrupted (checkpoints left), missing; with the "
                                        "submitit job of each, when the suite went through --executor slurm.")
    status.add_argument("--suite", required=True, help="suite name or path to a .toml file")
    status.add_argument("--results", type=Path, default=Path("results"), help="records directory (default: results)")
    status.set_defaults(func=cmd_status)

    lst = sub.add_parser("list", parents=[common], help="list hubs, tasks, methods, rankers or suites")
    lst.add_argument("what", nargs="?", default="all", choices=["hubs", "tasks", "methods", "rankers", "suites", "all"])
    lst.set_defaults(func=cmd_list)

    lb = sub.add_parser("leaderboard", parents=[common], help="regenerate leaderboards from records",
                        description="Regenerate leaderboard/<suite>/README.md and results.csv from the records.")
    from hubbench.leaderboard.generate import add_arguments

    add_arguments(lb)
    lb.set_defaults(func=cmd_leaderboard)

    from hubbench.benchmark import profile_cmd

    prof = sub.add_parser("profile", parents=[common, weights, runtime],
                          help="params, FLOPs, memory and speed of one method",
                          description="Build a method on a hub and task with one training step (on stand-in data "
                                      "for tasks read from files, in a temporary cache), then print and record its "
                                      "params, FLOPs, memory and speed.")
    profile_cmd.add_arguments(prof)
    prof.set_defaults(func=cmd_profile)

    hub = sub.add_parser("hub", parents=[common], help="hub operations")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="ACTION")
    build = hub_sub.add_parser("build", parents=[common, weights],
                               help="pre-train the mini hubs into the cache, or load and verify a real hub's files")
    build.add_argument("name", help="hub name (see `hubbench list hubs`)")
    build.set_defaults(func=cmd_hub_build)
    download = hub_sub.add_parser("download", parents=[common],
                                  help="download a real hub's checkpoint files (needs internet)")
    download.add_argument("name", help="resnet50-zoo or hetero-zoo")
    download.add_argument("--dest", type=Path, help="directory (default: $TORCH_HOME/hub/checkpoints)")
    download.set_defaults(func=cmd_hub_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        for plugin in args.plugins + args.plugin:
            load_plugin(plugin)
        return args.func(args)
    except (UsageError, UnknownName, suites.SuiteError, ValueError, MissingWeights, DownloadFailed,
            RecordError) as e:
        print(f"hubbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hubbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
