"""The one profiler every record goes through: params, FLOPs, memory and speed of a trained predictor.

Everything is measured on the deployed model as `fit` returned it and on real task batches, so
data-dependent routing (Hub-Pathway) and folded kernels (Zoo-Tuning-L) are counted as they run.
Conventions:
- params: `total` and `trainable` count unique tensors; `active` is the mean number of parameters a
  test sample actually goes through: each module's own parameters, weighted by the share of the
  batch its forward saw (so a model that sees half the samples counts half).
- FLOPs per sample at inference on one test batch: fvcore (one multiply-add = one flop, as the papers
  report) and `torch.utils.flop_counter.FlopCounterMode` (two per multiply-add); fvcore's unsupported
  operators are listed, never silently zero. A multi-view test batch is profiled on its first view.
- memory: peak tensor memory of one training step and of inference, weights included. On CUDA the
  allocator's `max_memory_allocated`, reset in between. On CPU the allocator keeps no such count and RSS
  does not grow once a process's heap is warm, so a dispatch mode traces it: the peak total size of the
  distinct storages alive that the block's operators read or make (weights, batch, activations,
  gradients, optimiser state); scratch space inside one kernel, and torch.compile'd graphs, are not seen.
- speed: samples/s at the stated batch, precision and memory format; warm-up steps first, the device
  synchronised around every timed step, the median of the repeats (the timm benchmark's method).
  Memory and speed are measured with the device to this process alone (`hubbench.exclusive`): cells
  packed onto the same GPU pause at their next step until the measurement ends.
  Training memory and speed are those of the method's own training step: what `Context.train` was given for
  the last stage trained in the cell's own scope, its loss (teachers' forwards, a distillation's terms, K-Flow's
  mixed stages) and its parameters, stepped as the training loop steps them, right after that stage trained
  (`StageTimer`, an `on_stage` hook), while all of it is as trained (K-Flow folds its mixed stages away once
  trained). A method that trains nothing in its cell (a fine-tune, whose source is a shared artifact; an
  ensemble or a soup of fine-tunes) is timed by an SGD step of its deployed model on the task loss, which for a
  fine-tune is its training step. The record says which (`Speed.train_step`). The learning rate is 0 and the
  buffers (BatchNorm's statistics) are put back, so the measured model is left as it was.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from hubbench.environment import cpu_name
from hubbench.exclusive import exclusive
from hubbench.record import Complexity, Flops, Memory, Params, Speed
from hubbench.seeding import generator
from hubbench.tasks.base import Task
from hubbench.tasks.crops import first_view
from hubbench.training import Runtime, batch_indices, shape_stable


@dataclass(frozen=True)
class Settings:
    """How speed and memory are measured: with the run's `Runtime` (precision, memory format, compile mode,
    resolved for the device), at `batch`; stored in every record next to the figures."""

    runtime: Runtime = Runtime()
    batch: int | None = None  # default: the task protocol's training batch
    warmup: int = 2
    repeats: int = 5


def count_params(model: nn.Module) -> dict[str, int]:
    params = {id(p): p for p in model.parameters()}.values()
    return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}


def test_batch(task: Task, size: int) -> torch.Tensor:
    batches = task.eval_batches("test")
    x = first_view(next(batches))
    while len(x) < size and (more := next(batches, None)) is not None:
        x = torch.cat([x, first_view(more)])
    return x[:size].clone()  # a batch of its own, not a view that keeps the whole eval batch alive


def train_batch(task: Task, size: int):
    return task.train_batch(batch_indices(len(task.splits["train"]), size, 0, 0), generator(0, "profile"))


Loss = Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]
OWN_STEP = "the method's own training step (its last stage's loss and parameters, teachers included)"
DEPLOYED_STEP = "an SGD step of the deployed model on the task loss (no training stage of the method's own)"


def task_loss(task: Task) -> Loss:
    return lambda model, x, y: task.loss(model(x), y)


def training_step(model: nn.Module, loss: Loss, params: list | None, x: torch.Tensor, y,
                  runtime: Runtime = Runtime(), lr: float = 0.0) -> Callable[[], None]:
    """One SGD step of `loss(model, x, y)` over `params` (parameters or param groups; default: every parameter of
    `model` that requires grad), as the training loop takes it: the unit of training speed and memory, here and in
    tests/perf. The optimiser is made once, so repeated calls time the step alone; at learning rate 0 (every
    group's) no parameter moves, though buffers do (see `stepped`); a model without trainable parameters steps
    through its forward and loss only."""
    groups = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9) if groups else None
    for group in optimizer.param_groups if optimizer else ():
        group["lr"] = lr  # a group's own learning rate too
    step_model = runtime.compiled(model)  # as `hubbench.training.train` calls the loss

    def step():
        with runtime.autocast(x.device):
            value = loss(step_model, x, y)
        if optimizer:
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

    return step


def sgd_step(model: nn.Module, task: Task, x: torch.Tensor, y, runtime: Runtime = Runtime()) -> Callable[[], None]:
    """One SGD step of `model` (which it trains) on the task loss of the batch (x, y) (`training_step`)."""
    return training_step(model, task_loss(task), None, x, y, runtime, lr=1e-4)


@contextlib.contextmanager
def stepped(model: nn.Module):
    """`model` in training mode for the block, then its buffers (BatchNorm's running statistics) and its mode as they
    were before, and no gradients: steps at learning rate 0 leave it as it came."""
    buffers, mode = [(b, b.clone()) for b in model.buffers()], model.training
    model.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        model.train(mode)
        for p in model.parameters():
            p.grad = None


@dataclass(frozen=True)
class Trained:
    """One training step measured: its peak memory (MB), samples/s, whether the device was this process's alone
    (`hubbench.exclusive`), and what was stepped (`OWN_STEP` or `DEPLOYED_STEP`)."""

    train_mb: float
    samples_s: float
    alone: bool
    step: str


def time_training(model: nn.Module, loss: Loss, params: list | None, task: Task, device: torch.device,
                  settings: Settings, step: str) -> Trained:
    """Memory and speed of a training step of `loss(model, x, y)` over `params` on a real training batch, `model`
    left as it was (`stepped`)."""
    s, rt = settings, settings.runtime.resolve(device)
    batch = s.batch or task.protocol.batch_size
    x, y = rt.batch(train_batch(task, batch), device)
    memory: dict = {}
    with exclusive(device) as alone, shape_stable(model), stepped(model):  # cells sharing the device pause meanwhile
        train_step = training_step(model, loss, params, x, y, rt)
        with peak_memory(device, memory, "train_mb"):
            train_step()
        rate = median_rate(train_step, batch, device, s)
    return Trained(memory["train_mb"], rate, alone, step)


class StageTimer:
    """An `on_stage` hook (`hubbench.context.Context`) timing the training step of each stage trained in one scope,
    a cell's own (not those of the fine-tuned sources it trains on its way: artifacts, which later cells reuse
    instead), as soon as the stage is trained, with `settings`; `last` is the last stage's, which `profile`
    records."""

    def __init__(self, scope: str, settings: Settings = Settings()):
        self.scope, self.settings, self.last = scope, settings, None

    def __call__(self, ctx, model: nn.Module, loss: Loss, params: list | None, key: str) -> None:
        if ctx.scope == self.scope:
            self.last = time_training(model, loss, params, ctx.task, ctx.device, self.settings, OWN_STEP)


@torch.no_grad()
def active_params(model: nn.Module, x: torch.Tensor) -> float:
    """Mean parameters per sample: each module's own parameters times the share of the batch it saw."""
    seen: dict[nn.Module, int] = {}

    def hook(module, args):
        t = next((a for a in args if isinstance(a, torch.Tensor)), None)
        seen[module] = seen.get(module, 0) + (len(t) if t is not None and t.dim() else len(x))

    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    handles = [m.register_forward_pre_hook(hook) for m in owners]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    counted: set[int] = set()
    total = 0.0
    for m, n in seen.items():
        own = [p for p in m.parameters(recurse=False) if id(p) not in counted]
        counted.update(id(p) for p in own)
        total += sum(p.numel() for p in own) * min(1.0, n / len(x))
    return total


def sdpa_flop_jit(inputs, outputs) -> int:
    """fvcore has no handle for `scaled_dot_product_attention`: count it as its two matmuls, q·kᵀ and
    attention·v (multiply-adds; softmax and scaling are left out, as fvcore leaves out elementwise ops)."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = math.prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


@torch.no_grad()
def flops(model: nn.Module, x: torch.Tensor) -> dict:
    """GFLOPs per sample by fvcore (1 per multiply-add) and by FlopCounterMode (2 per multiply-add)."""
    with warnings.catch_warnings():  # fvcore's import uses the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    out: dict = {"batch": len(x)}
    with FlopCounterMode(display=False) as counter:
        model(x)
    out["flop_counter_gflops"] = counter.get_total_flops() / len(x) / 1e9
    with warnings.catch_warnings():  # tracing warns about data-dependent shapes: that is the point
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
        try:
            out["fvcore_gflops"] = analysis.total() / len(x) / 1e9
            out["fvcore_unsupported"] = dict(sorted(analysis.unsupported_ops().items()))
        except Exception as e:  # an untraceable model is a fact of the record, not a failed cell
            out["fvcore_gflops"], out["fvcore_error"] = None, f"{type(e).__name__}: {e}"
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class LiveTensorBytes(TorchDispatchMode):
    """The peak total size of the distinct tensor storages alive while the block runs, counting each
    storage from the first operator that reads or makes it until it is freed. PyTorch keeps a storage's
    Python object as long as the storage, so a finalizer on it reports the free: an operator costs its
    own tensors, not a scan of every live storage (which made a traced five-ResNet-50 training step
    take ten times an untraced one)."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, weakref.finalize] = {}  # data_ptr -> the finalizer of its storage
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                storage = t.untyped_storage()
                ptr, size = storage.data_ptr(), storage.nbytes()
                if size and ptr not in self.live:
                    self.live[ptr] = weakref.finalize(storage, self._freed, ptr, size)
                    self.current += size
        self.peak = max(self.peak, self.current)
        return out

    def _freed(self, ptr: int, size: int) -> None:
        del self.live[ptr]
        self.current -= size

    def __exit__(self, *exc):
        for finalizer in self.live.values():  # storages that outlive the block stop reporting to it
            finalizer.detach()
        self.live.clear()
        return super().__exit__(*exc)


MEMORY_MEASURE = {"cuda": "torch.cuda.max_memory_allocated", "cpu": "peak live tensor storage (dispatch-traced)"}


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict, key: str):
    """Store in out[key] the peak tensor memory (MB) of the block, as `MEMORY_MEASURE[device.type]` says."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield
        _sync(device)
        out[key] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    with LiveTensorBytes() as trace:
        yield
    out[key] = trace.peak / 2**20


def median_rate(step, batch: int, device: torch.device, s: Settings) -> float:
    """Samples/s: the median over `s.repeats` synchronised steps, after `s.warmup` untimed ones."""
    for _ in range(s.warmup):
        step()
    times = []
    for _ in range(s.repeats):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def profile(model: nn.Module, task: Task, device: torch.device, settings: Settings = Settings(),
            trained: Trained | None = None, *, cache: Path | None = None,
            what: str = "profiling a model") -> Complexity:
    """The record's `complexity`: params, FLOPs, memory and speed of `model` (left unchanged), measured with the
    device to itself among the processes of `cache` (`hubbench.exclusive`), `what` it does said to them; training
    memory and speed are `trained`, the method's own training step (`StageTimer.last`), else an SGD step of `model`
    on the task loss."""
    s, rt = settings, settings.runtime.resolve(device)
    batch = s.batch or task.protocol.batch_size
    model = rt.model(model, device).eval()
    x = rt.batch(test_batch(task, batch), device)
    params = Params(**count_params(model), active=active_params(model, x))
    flop_counts = Flops(**flops(model, x))

    infer_model = rt.compiled(model)

    def infer():
        with torch.no_grad(), rt.autocast(device):
            infer_model(x)

    memory = {"device": device.type, "measure": MEMORY_MEASURE[device.type]}
    with exclusive(device, cache, what) as alone, shape_stable(model):  # cells sharing the device pause meanwhile
        with peak_memory(device, memory, "infer_mb"):
            infer()
        infer_rate = median_rate(infer, batch, device, s)
    trained = trained or time_training(model, task_loss(task), None, task, device, s, DEPLOYED_STEP)
    speed = Speed(infer_samples_s=infer_rate, train_samples_s=trained.samples_s, train_step=trained.step,
                  exclusive=alone and trained.alone, batch=batch, precision="bf16" if rt.bf16 else "fp32",
                  memory_format="channels_last" if rt.channels_last else "contiguous",
                  compile=rt.compile, warmup=s.warmup, repeats=s.repeats,
                  device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
                  torch=torch.__version__, cuda=torch.version.cuda)
    return Complexity(params, flop_counts, Memory(**memory, train_mb=trained.train_mb), speed)
