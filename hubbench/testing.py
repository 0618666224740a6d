"""The common checks every method and every ranker must pass, public so that a plugin's own tests run them too.

Modelled on scikit-learn's `parametrize_with_checks`: named checks, each a callable taking the method,
generated for every task kind the method is checked on, with a way to declare the checks a method is
known to fail. In a plugin's test file:

    from hubbench.testing import parametrize_with_checks
    from my_package.linear_probe import LinearProbe

    @parametrize_with_checks([LinearProbe(), LinearProbe(model=2)])
    def test_hubbench_checks(method, check):
        check(method)

The checks run on the `tiny` hub (the mini hub's five MiniResNets after seconds of pre-training,
cached in the cache directory like every hub) and, per task kind, a tiny task (`CHECK_TASKS`: an
embedded task with a few dozen images per split), trained for a few iterations (`PROTOCOL`). Each
method goes through the runner and the profiler as a benchmark cell does, under each setting of
`RUNTIMES` (on the CPU, where every runtime option acts, so that the GPU's code paths are checked
without a GPU).

A ranker is checked the same way, by `parametrize_with_ranker_checks` (test arguments `ranker, check`):
it describes itself, scores the check hub's sources from their features, and runs as a ranking cell.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path

import torch

from hubbench import record as records
from hubbench.benchmark.cells import Cell
from hubbench.benchmark.runner import run_cell
from hubbench.benchmark.suites import Suite
from hubbench.context import Context
from hubbench.features import source_features
from hubbench.hubs.base import HUBS, Hub, get_hub
from hubbench.hubs.mini import Pretraining, mini_hub
from hubbench.hubs.mini_hetero import mini_hetero_hub
from hubbench.io import cache_dir
from hubbench.methods.base import METHODS, Method
from hubbench.models import task_model
from hubbench.params import Plugin
from hubbench.rankers.base import RANKERS, NotScored, Ranker, Score
from hubbench.tasks.base import TASKS, Task, register
from hubbench.tasks.faces import Faces
from hubbench.tasks.synthetic import Scenes
from hubbench.training import Runtime

TINY = Pretraining(images=64, iterations=4, batch_size=16)  # seconds of pre-training: a hub to test with
CHECK_HUB = "tiny"
CHECK_TASKS = {"classification": "tiny-scenes", "landmarks": "tiny-faces"}  # task kind -> the task its checks run on
# The checks test code paths, not accuracy: 32 training, 16 val and 32 test images (the full splits made
# one bf16 cell take minutes on a CPU without bfloat16 units, where every bf16 convolution is emulated).
TINY_TASKS = ((Scenes, {"per_class": (4, 2, 4)}), (Faces, {"sizes": (32, 16, 32)}))
PROTOCOL = {"iterations": 4, "eval_every": 4, "checkpoint_every": 2, "batch_size": 8}  # every stage of a cell
RUNTIMES = {"fp32": Runtime(bf16=False), "bf16": Runtime(bf16=True),
            "bf16-channels_last": Runtime(bf16=True, channels_last=True)}
CPU = torch.device("cpu")


def register_tiny_hubs() -> None:
    """Register `tiny` and `tiny-hetero`: the mini hubs' code with seconds of pre-training (idempotent)."""
    for name, make in (("tiny", mini_hub), ("tiny-hetero", mini_hetero_hub)):
        if name not in HUBS:
            HUBS.register(name)(partial(make, name, TINY))


def register_tiny_tasks() -> None:
    """Register `tiny-scenes` and `tiny-faces` (`TINY_TASKS`): embedded tasks with small splits (idempotent)."""
    for base, sizes in TINY_TASKS:
        name = f"tiny-{base.name}"
        if name not in TASKS:
            doc = f"`{base.name}` with {sizes}."
            register(type(f"Tiny{base.__name__}", (base,), {"name": name, "__doc__": doc, **sizes}))


def check_hub() -> Hub:
    register_tiny_hubs()
    return get_hub(CHECK_HUB)


def check_suite(name: str, task: str, methods: tuple[str, ...] = (), rankers: tuple[str, ...] = ()) -> Suite:
    """The suite of a check's cells: the check hub, `task`, seed 0 and the checks' `PROTOCOL`."""
    return Suite(name, "", (CHECK_HUB,), (task,), methods, (0,), PROTOCOL, rankers=rankers)


def check_task(name: str) -> Task:
    register_tiny_tasks()
    return TASKS.get(name)(check_suite("checks", name).protocol_for(name))


def registered_methods() -> list[Method]:
    """Every registered method, with the parameters of its first variant on the check hub."""
    hub = check_hub()
    return [cls(**cls.variants(hub)[0]) for cls in map(METHODS.get, METHODS.names())]


def registered_rankers() -> list[Ranker]:
    """Every registered ranker, with its default parameters."""
    return [RANKERS.get(name)() for name in RANKERS.names()]


# -- the checks -------------------------------------------------------------------------------------
def check_describes_itself(plugin: Plugin) -> None:
    """A method or ranker: a registered name, a one-line description, an id that starts with the name,
    JSON parameters."""
    cls = type(plugin)
    assert cls.REGISTRY.get(cls.name) is cls, f"{cls.__name__} is not registered under its name {cls.name!r}"
    assert cls.description and "\n" not in cls.description, "the description must be one line"
    assert plugin.id.startswith(cls.name)
    assert json.loads(json.dumps(plugin.params)) == plugin.params, "parameters must be JSON values"


def applies(plugin: Plugin, hub: Hub, task: Task) -> bool:
    """Whether `plugin` applies to the hub and task; one that does not must say why, in words."""
    ok, reason = plugin.applicable(hub, task)
    assert ok or (isinstance(reason, str) and reason), f"a {plugin.REGISTRY.kind} that is not applicable must say why"
    return ok


def check_fit_predicts_task_outputs(method: Method, task: str) -> None:
    """`fit` returns a predictor whose outputs have the task's shape and are finite; a method that is
    not applicable says why in words."""
    hub, task_ = check_hub(), check_task(task)
    if not applies(method, hub, task_):
        return
    ctx = Context(hub, task_, 0, scope=f"checks/fit/{method.id}/{task}", cache=cache_dir(), device=CPU,
                  runtime=RUNTIMES["fp32"])
    try:
        model = method.fit(ctx)
    finally:
        ctx.clear_checkpoints()
    x = next(task_.eval_batches("test"))[:5]
    reference = task_model(hub.sources[0].backbone(pretrained=False), task_).eval()
    with torch.no_grad():
        out, expected = model.eval()(x), reference(x)
    assert out.shape == expected.shape, f"outputs of shape {tuple(out.shape)}, not the task's {tuple(expected.shape)}"
    assert torch.isfinite(out).all(), "non-finite outputs"


def check_needs(method: Method, task: str) -> None:
    """What `fit` reuses through its context (the fine-tuned sources of `ctx.artifact`, the rankings and other
    artifacts it counts with `ctx.use`) is among what `needs` declares, which the executors order cells by and
    `--retrain-artifacts` trains again."""
    hub, task_ = check_hub(), check_task(task)
    if not applies(method, hub, task_):
        return
    ctx = Context(hub, task_, 0, scope=f"checks/needs/{method.id}/{task}", cache=cache_dir(), device=CPU,
                  runtime=RUNTIMES["fp32"])
    try:
        method.fit(ctx)
    finally:
        ctx.clear_checkpoints()
    undeclared = sorted(set(ctx.used) - {a.id for a in method.needs(hub, task_)})
    assert not undeclared, f"fit reused {', '.join(undeclared)}, which needs() does not declare"


def check_cell(method: Method, task: str, runtime: str) -> None:
    """Run as a benchmark cell (runner and profiler) under `RUNTIMES[runtime]`: an `ok` record (or an
    `inapplicable` one that says why) with finite metrics and complexity figures, which a rerun keeps."""
    task_, rt = check_task(task), RUNTIMES[runtime]
    run_as_cell(check_suite(f"checks-{runtime}", task, methods=(method.name,)), method,
                partial(check_record, task=task_, runtime=rt), rt)


def run_as_cell(suite: Suite, plugin: Plugin, check: Callable[[records.CellRecord], None],
                runtime: Runtime | None = None) -> None:
    """Run `plugin`'s cell of the one-cell `suite` through the runner. The record it stores names the plugin; it is
    `inapplicable` and says why where the plugin does not apply, else `ok` and passes `check`; it is the one
    returned, and a rerun keeps it."""
    cell = Cell(suite, CHECK_HUB, suite.tasks[0], plugin, 0)
    applicable = plugin.applicable(check_hub(), check_task(cell.task))[0]
    with tempfile.TemporaryDirectory(prefix="hubbench-checks-") as results:
        returned = run_cell(cell, Path(results), CPU, runtime=runtime)[1]
        stored = records.read(cell.path(Path(results)), cell.record_type)
        assert stored.plugin == records.PluginId.of(plugin)
        if not applicable:
            assert stored.status == records.INAPPLICABLE and stored.reason, \
                f"a {plugin.REGISTRY.kind} that is not applicable must say why"
        else:
            assert stored.status == records.OK, f"{stored.reason}\n{stored.traceback or ''}"
            check(stored)
        assert records.to_json(stored) == json.loads(json.dumps(records.to_json(returned))), \
            "the stored record differs from the one returned"
        assert run_cell(cell, Path(results), CPU, runtime=runtime)[0] == "skipped", "a rerun must keep the record"


def check_record(record: records.Record, task: Task, runtime: Runtime) -> None:
    """What an ok cell's record must hold (the checks of `check_cell`)."""
    assert record.metric.name == task.metric and math.isfinite(record.metric.value)
    for split, metrics in record.metrics.items():
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        assert not bad, f"non-finite {split} metrics: {bad}"
    ran = record.config.runtime
    assert ran["bf16"] is runtime.bf16 and ran["channels_last"] is runtime.channels_last, f"the record says {ran}"
    complexity = record.complexity
    assert 0 < complexity.params.active <= complexity.params.total
    assert complexity.flops.fvcore_gflops > 0 and complexity.flops.flop_counter_gflops > 0
    assert complexity.memory.train_mb > 0 and complexity.memory.infer_mb > 0
    speed = complexity.speed
    assert speed.infer_samples_s > 0 and speed.train_samples_s > 0
    assert speed.precision == ("bf16" if runtime.bf16 else "fp32")
    assert speed.memory_format == ("channels_last" if runtime.channels_last else "contiguous")
    assert record.cost.total_s >= 0


def check_scores_sources(ranker: Ranker, task: str) -> None:
    """`score` gives each source of the check hub a finite `Score`, the same one for the same features, or
    raises `NotScored` saying why; it scores at least one source (or `applicable` says why not)."""
    hub, task_ = check_hub(), check_task(task)
    if not applies(ranker, hub, task_):
        return
    targets = task_.ranking_targets(task_.splits["train"].targets)
    scored = []
    for source in hub.names:
        features = source_features(hub, task_, source, cache=cache_dir(), device=CPU)
        try:
            score = ranker.score(features, targets)
        except NotScored as e:
            assert str(e), f"a source it cannot score ({source}) must say why"
            continue
        assert isinstance(score, Score), f"score returned {type(score).__name__}, not a Score"
        assert math.isfinite(score.value), f"non-finite score of {source}: {score.value}"
        assert score.weights is None or isinstance(score.weights, torch.Tensor), "weights must be a tensor or None"
        assert ranker.score(features, targets).value == score.value, f"{source} scored twice differs"
        scored.append(source)
    assert scored, "an applicable ranker must score at least one source"


def check_ranking_cell(ranker: Ranker, task: str) -> None:
    """Run as a ranking cell through the runner: an `ok` record (or an `inapplicable` one that says why),
    which a rerun keeps."""
    run_as_cell(check_suite("checks-rank", task, rankers=(ranker.name,)), ranker,
                partial(check_ranking_record, hub=check_hub()))


def check_ranking_record(record: records.RankingRecord, hub: Hub) -> None:
    """What an ok ranking cell's record must hold: a score or a reason for each source, the sources ranked by
    score, the features' cost (the checks of `check_ranking_cell`)."""
    assert set(record.scores) | set(record.reasons) == set(hub.names), "each source needs a score or a reason"
    assert not set(record.scores) & set(record.reasons), "a source with both a score and a reason"
    bad = {s: v for s, v in record.scores.items() if not math.isfinite(v)}
    assert not bad, f"non-finite scores: {bad}"
    assert record.order == sorted(record.scores, key=lambda s: -record.scores[s]), "sources not ranked by score"
    assert record.cost.features_s > 0 and record.cost.total_s >= record.cost.features_s


# -- selecting and parametrising --------------------------------------------------------------------
def method_checks(tasks: Mapping[str, str] = CHECK_TASKS) -> Iterator[tuple[str, Callable[[Method], None]]]:
    """(name, check) of every check, for the task of each kind in `tasks` (kind -> task name); a name is
    `check_<what>` or `check_<what>[<kind>-<runtime>]`."""
    yield "check_describes_itself", check_describes_itself
    for kind, task in tasks.items():
        yield f"check_fit_predicts_task_outputs[{kind}]", partial(check_fit_predicts_task_outputs, task=task)
        yield f"check_needs[{kind}]", partial(check_needs, task=task)
        for runtime in RUNTIMES:
            yield f"check_cell[{kind}-{runtime}]", partial(check_cell, task=task, runtime=runtime)


def ranker_checks(tasks: Mapping[str, str] = CHECK_TASKS) -> Iterator[tuple[str, Callable[[Ranker], None]]]:
    """(name, check) of every ranker check, for the task of each kind in `tasks`; a name is `check_<what>` or
    `check_<what>[<kind>]`."""
    yield "check_describes_itself", check_describes_itself
    for kind, task in tasks.items():
        yield f"check_scores_sources[{kind}]", partial(check_scores_sources, task=task)
        yield f"check_ranking_cell[{kind}]", partial(check_ranking_cell, task=task)


def parametrize_with_checks(methods: Iterable[Method], *, tasks: Mapping[str, str] = CHECK_TASKS,
                            expected_failed_checks: Callable[[Method], Mapping[str, str]] | None = None):
    """A `pytest.mark.parametrize` over (method, check) for every method and check, test ids
    `<method id>-<check name>`. `tasks` selects the task kinds (kind -> task name; default both kinds).
    `expected_failed_checks(method)` returns {check name: reason} for the checks the method is known to
    fail, marked strict xfail (so one that starts passing is reported); a bare name (`check_cell`) covers
    every kind and runtime of that check."""
    return parametrized("method", methods, list(method_checks(tasks)), expected_failed_checks)


def parametrize_with_ranker_checks(rankers: Iterable[Ranker], *, tasks: Mapping[str, str] = CHECK_TASKS,
                                   expected_failed_checks: Callable[[Ranker], Mapping[str, str]] | None = None):
    """`parametrize_with_checks` for rankers: a `pytest.mark.parametrize` over (ranker, check), with the
    checks of `ranker_checks`."""
    return parametrized("ranker", rankers, list(ranker_checks(tasks)), expected_failed_checks)


def parametrized(argname: str, plugins: Iterable, checks: list[tuple[str, Callable]],
                 expected_failed_checks: Callable | None):
    import pytest

    params = []
    for plugin in plugins:
        expected = dict(expected_failed_checks(plugin)) if expected_failed_checks else {}
        for name, check in checks:
            reason = expected.get(name) or expected.get(name.split("[")[0])
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            params.append(pytest.param(plugin, check, id=f"{plugin.id}-{name}", marks=marks))
    return pytest.mark.parametrize(f"{argname}, check", params)
