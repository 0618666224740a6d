"""The common checks every registered method must pass (the scikit-learn estimator-checks idea)."""

import json
import math

import pytest
import torch
from helpers import make_ctx, make_task, one_task_per_kind
from hubbench.benchmark.runner import Cell, run_cell
from hubbench.benchmark.suites import Suite
from hubbench.methods import METHODS, task_model

from hubbench import record as records

SMALL = {"iterations": 4, "eval_every": 2, "checkpoint_every": 2}


@pytest.mark.parametrize("task_name", one_task_per_kind())
@pytest.mark.parametrize("method_name", METHODS.names())
def test_common_checks(method_name, task_name, tiny_hub, tmp_path):
    cls = METHODS.get(method_name)
    method = cls(**cls.variants(tiny_hub)[0])
    assert cls.description and method.id.startswith(method_name)
    ok, reason = method.applicable(tiny_hub, make_task(task_name))
    if not ok:
        assert isinstance(reason, str) and reason
        return
    # builds, trains a few steps and predicts the task's output shape
    ctx = make_ctx(tiny_hub, task_name, scope=f"common/{method.id}/{task_name}")
    model = method.fit(ctx)
    x = next(ctx.task.eval_batches("test"))[:5]
    reference = task_model(tiny_hub.sources[0].backbone(pretrained=False), ctx.task).eval()
    with torch.no_grad():
        out = model.eval()(x)
        assert out.shape == reference(x).shape and torch.isfinite(out).all()
    # writes a valid record, and a rerun skips it
    suite = Suite("common", "", ("tiny",), (task_name,), (method_name,), (0,), SMALL)
    cell = Cell(suite, "tiny", task_name, method, 0)
    status, record = run_cell(cell, tmp_path, torch.device("cpu"))
    assert status == "ok", record.traceback
    stored = records.read(cell.path(tmp_path))
    assert records.to_json(stored) == json.loads(json.dumps(records.to_json(record)))
    assert stored.method == records.MethodId(method.id, method_name, method.params)
    assert math.isfinite(stored.metric.value) and stored.metric.name == ctx.task.metric
    assert stored.cost.total_s >= 0
    complexity = stored.complexity  # the one profiler measured it, whatever the method
    assert 0 < complexity.params.active <= complexity.params.total
    assert complexity.flops.fvcore_gflops > 0 and complexity.flops.flop_counter_gflops > 0
    assert complexity.speed.infer_samples_s > 0 and complexity.speed.train_samples_s > 0
    memory = complexity.memory
    assert None not in (memory.device, memory.measure, memory.train_mb, memory.infer_mb)
    assert (stored.examples is not None) == (ctx.task.kind == "landmarks")
    assert stored.environment.git.commit and stored.environment.torch == torch.__version__
    assert run_cell(cell, tmp_path, torch.device("cpu"))[0] == "skipped"
