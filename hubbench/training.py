"""The one training loop every hub pre-training and every method goes through.

Randomness is a pure function of (seed, iteration): the batch order comes from per-epoch
permutations and the global RNG is re-seeded before every step. A checkpoint therefore only
needs the weights, the optimiser state and the iteration, and a resumed run is bit-identical
to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hubbench.exclusive import sharing
from hubbench.io import load_torch, read_json, save_torch, write_json
from hubbench.progress import progress
from hubbench.schedule import Schedule
from hubbench.seeding import derive_seed
from hubbench.staging import prefetching
from hubbench.stopping import requested, stop, training_loop

log = logging.getLogger(__name__)
LossFn = Callable[[nn.Module, Any, Any], torch.Tensor]
Curves = dict[str, list[list[float]]]


def batch_indices(n: int, batch_size: int, iteration: int, seed: int) -> torch.Tensor:
    """Indices of batch `iteration`: epochs are seeded permutations, the last partial batch dropped."""
    per_epoch = max(1, n // batch_size)
    epoch, j = divmod(iteration, per_epoch)
    g = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    return torch.randperm(n, generator=g)[j * batch_size : (j + 1) * batch_size]


@dataclass(frozen=True)
class Runtime:
    """The throughput options of a run, recorded with its results. Each acts on every device (bf16
    autocasts on the CPU too), so that CI on the CPU runs the code paths a GPU run takes; only the
    default precision depends on the device."""

    bf16: bool | None = None  # autocast to bfloat16; None: on CUDA, not on the CPU (see `resolve`)
    channels_last: bool = False  # NHWC models and image batches
    compile: str | None = None  # a torch.compile mode for the training step
    deterministic: bool = False  # deterministic kernels, no cudnn.benchmark: reproducible, slower

    def resolve(self, device: torch.device) -> Runtime:
        """These options with the defaults that depend on the device decided (what a record stores)."""
        return dataclasses.replace(self, bf16=device.type == "cuda" if self.bf16 is None else self.bf16)

    def apply(self, device: torch.device) -> None:
        """Set this process's global switches (each cell sets all of them, so none leaks to the next)."""
        if self.deterministic and device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' condition for determinism
        torch.use_deterministic_algorithms(self.deterministic)
        torch.backends.cudnn.benchmark = device.type == "cuda" and not self.deterministic

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def model(self, model: nn.Module, device: torch.device) -> nn.Module:
        """`model` on `device`, its rank-4 tensors (convolution kernels) NHWC if `channels_last`. Only those:
        `Module.to(memory_format=...)` refuses a model with tensors of rank 5, such as Zoo-Tuning's stacked
        source kernels."""
        model.to(device)
        if self.channels_last:
            for t in itertools.chain(model.parameters(), model.buffers()):
                if t.dim() == 4:
                    t.data = t.data.contiguous(memory_format=torch.channels_last)
        return model

    def batch(self, obj: Any, device: torch.device) -> Any:
        """`obj`'s tensors on `device`: through pinned memory and without blocking on CUDA, image
        batches in the model's memory format."""
        if isinstance(obj, torch.Tensor):
            if device.type == "cuda" and not obj.is_cuda:
                obj = obj.pin_memory()
            obj = obj.to(device, non_blocking=True)
            if self.channels_last and obj.dim() == 4 and obj.is_floating_point():
                obj = obj.contiguous(memory_format=torch.channels_last)
            return obj
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.batch(o, device) for o in obj)
        if isinstance(obj, dict):
            return {k: self.batch(v, device) for k, v in obj.items()}
        return obj

    def compiled(self, model: nn.Module) -> nn.Module:
        return torch.compile(model, mode=self.compile) if self.compile else model


@contextlib.contextmanager
def shape_stable(model: nn.Module):
    """Run a block without cuDNN autotuning if a module of `model` declares `dynamic_shapes` (routed batches
    whose size changes every step: the autotuner would time every algorithm again for each new size, in the
    forward and in the backward, which runs after the loss function has returned)."""
    if not any(getattr(m, "dynamic_shapes", False) for m in model.modules()):
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class Losses:
    """The training losses since they were last read, kept on the device: reading them is the loop's only
    wait for the device, so it happens at log points and checkpoints, not at every step. A non-finite
    loss is an error when read, naming the step it occurred at (counted from 1, as the progress and the
    curves count) and the step where the loss broke: a diverging loss grows for a few steps before it
    overflows (0.99, 1 787, 5e8, 3e25, nan), and the first of the run of losses above `BROKE` times the
    lowest before them is where the learning rate gave out."""

    BROKE = 10.0

    def __init__(self, start: int):
        self.pending: list[torch.Tensor] = []
        self.next = start  # iteration of pending[0]
        self.lowest = math.inf  # the lowest loss read so far
        self.broke: tuple[int, float, float] | None = None  # (step, loss, lowest before) opening the run above

    def append(self, loss: torch.Tensor) -> None:
        self.pending.append(loss.detach())

    def read(self) -> list[float]:
        """The pending losses as floats (each as `.item()` gives it), emptied."""
        if not self.pending:
            return []
        values = torch.stack([v.double() for v in self.pending]).tolist()
        for step, v in enumerate(values, self.next + 1):
            if not math.isfinite(v):
                raise FloatingPointError(f"training loss became {v} at step {step}" + (
                    f"; it broke at step {self.broke[0]}, rising to {self.broke[1]:.3g} from a lowest of "
                    f"{self.broke[2]:.3g}, and grew from there: lower the learning rate" if self.broke else ""))
            if 0 < self.lowest < v / self.BROKE:
                self.broke = self.broke or (step, v, self.lowest)
            else:
                self.broke = None
            self.lowest = min(self.lowest, v)
        self.next += len(values)
        self.pending.clear()
        return values


class Checkpoint:
    """Training state saved atomically every `every` iterations, at the end, and when a stop signal comes
    (`hubbench.stopping`), so a killed run resumes and a finished stage of a multi-stage method is not
    trained again.

    A stage's training seconds add up all its attempts, the work an attempt did after its last checkpoint
    (and that the next one does again) included. The state carries the seconds spent up to it; beside it,
    `<name>.seconds.json` carries the seconds spent up to the latest moment: the loop writes it every
    `count_every_s` seconds (default 5) and when it ends, however it ends (an error, an interrupt, the
    `SystemExit` of submitit's requeue at SLURM's warning signal). An attempt killed outright (SIGKILL: a lost
    node, a `scancel` after its grace period) leaves at most `count_every_s` seconds uncounted. `carried_s` is
    the seconds of the earlier attempts, the larger of the two figures (0 when starting afresh); `seconds`,
    those and this attempt's, counted from `load`."""

    def __init__(self, path: str | Path, every: int, count_every_s: float = 5.0):
        self.path, self.every = Path(path), max(1, int(every))
        self.spent = self.path.with_suffix(".seconds.json")
        self.count_every_s = count_every_s
        self.carried_s = 0.0
        self.started = self.counted = time.perf_counter()

    def load(self) -> dict | None:
        """The saved state; None when there is none, or when it does not load: checkpoints are written
        atomically, so that is a damaged disk or a foreign file, and the stage starts afresh (with a warning).
        This attempt's clock starts here."""
        self.started = self.counted = time.perf_counter()
        state = None
        if self.path.exists():
            try:
                state = load_torch(self.path)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
                log.warning(f"hubbench: warning: checkpoint {self.path} does not load ({type(e).__name__}); its stage "
                            "starts afresh")
        self.carried_s = max(float(state.get("seconds", 0.0)) if state else 0.0, self.counted_before())
        return state

    def counted_before(self) -> float:
        """The seconds the earlier attempts counted beside the state (0 if none; it is written atomically, so an
        unreadable one is a foreign file)."""
        try:
            return float(read_json(self.spent)["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    @property
    def seconds(self) -> float:
        return self.carried_s + time.perf_counter() - self.started

    def count(self, force: bool = False) -> None:
        """Write `seconds` beside the state, if `count_every_s` have passed since the last time (or `force`)."""
        now = time.perf_counter()
        if force or now - self.counted >= self.count_every_s:
            write_json(self.spent, {"seconds": self.seconds})
            self.counted = now

    def save(self, state: dict) -> None:
        save_torch(self.path, {**state, "seconds": self.seconds})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        self.spent.unlink(missing_ok=True)


@contextlib.contextmanager
def attempt(checkpoint: Checkpoint | None):
    """The block is an attempt at a stage saved in `checkpoint`: a stop signal held for it (`hubbench.stopping`)
    waits for its next checkpoint, and its training seconds are counted when it ends, however it ends (a full
    disk's error is the one to show)."""
    if checkpoint is None:
        yield
        return
    with training_loop():
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                checkpoint.count(force=True)


def train(
    model: nn.Module,
    loss_fn: LossFn,
    batch_at: Callable[[int], tuple[Any, Any]],
    schedule: Schedule,
    *,
    seed: int,
    params: Iterable | None = None,
    device: torch.device | str = "cpu",
    runtime: Runtime = Runtime(),
    checkpoint: Checkpoint | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str = "train",
    cache: Path | None = None,
    until: int | None = None,
) -> Curves:
    """Train `model` in place for `schedule.iterations` steps (or up to step `until` of them, checkpointed there:
    a later call with a larger `until` continues the same schedule); return the logged curves.

    `loss_fn(model, x, y)` returns the scalar loss of one batch, `batch_at(i)` returns batch i.
    `params` restricts what is optimised (parameters or param groups, optionally with an
    `lr_mult` key); by default every parameter that requires grad. Curves hold the mean train
    loss and every metric `evaluate` returns, logged each `eval_every` iterations and at the end.
    `batch_at(i)` may return a `hubbench.staging.Staged` batch: batch i+1 is read and moved while
    step i runs (`prefetched`), and the loop waits for the device only at log points and checkpoints.
    Between steps it pauses while another process of `cache` (default: the settings' cache) measures on the device
    (`hubbench.exclusive`); a stop requested meanwhile ends the pause, and the loop saves and stops.
    """
    state = checkpoint.load() if checkpoint else None  # this attempt's clock starts
    device = torch.device(device)
    runtime.model(model, device)
    step_model = runtime.compiled(model)  # the loss calls this one; checkpoints hold `model`'s own state
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    opt = schedule.build_optimizer(params)
    start, curves, window = 0, {"train_loss": []}, []  # window: losses since the last log
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, curves, window = state["iteration"], state["curves"], state["window"]
    log_every = eval_every or max(1, schedule.iterations // 10)
    end = schedule.iterations if until is None else min(until, schedule.iterations)
    bar = progress(range(start, end), initial=start, total=schedule.iterations, desc=desc)
    model.train()
    losses = Losses(start)
    stages = (batch_at(it) for it in range(start, end))
    with (attempt(checkpoint), sharing(device, cache) as share, shape_stable(model),
          prefetching(stages, device, runtime) as batches):
        for it, (x, y) in zip(bar, batches, strict=True):
            torch.manual_seed(derive_seed(seed, "step", it))
            for group in opt.param_groups:
                group["lr"] = schedule.lr_at(it) * group.get("lr_mult", 1.0)
            with runtime.autocast(device):
                loss = loss_fn(step_model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss)
            done = it + 1
            if done % log_every == 0 or done == schedule.iterations:
                window += losses.read()
                curves["train_loss"].append([done, sum(window) / len(window)])
                window.clear()
                bar.set_postfix(loss=f"{curves['train_loss'][-1][1]:.3f}", refresh=False)
                if evaluate is not None:
                    model.eval()
                    for name, value in evaluate(model).items():
                        curves.setdefault(name, []).append([done, float(value)])
                    model.train()
            share.pause_point()  # a neighbour's measurement has the device to itself
            if checkpoint:
                stopping = requested()
                if done % checkpoint.every == 0 or done == end or stopping:
                    window += losses.read()
                    checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                     "iteration": done, "curves": curves, "window": window})
                checkpoint.count()
                if stopping:
                    stop()  # the held signal's handler: submitit's requeues the job and exits
    bar.close()
    model.eval()
    return curves


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    device: torch.device | str = "cpu",
    runtime: Runtime = Runtime(),
    cache: Path | None = None,
) -> torch.Tensor:
    """Concatenated eval-mode outputs of `model` over `batches` (outputs returned as float32 on CPU).

    A batch of several test views per image, [B, V, C, H, W], runs as one batch of B * V images
    and each image's output is the sum over its views (the papers' ten-crop test). Between batches it pauses
    for the measurements of `cache`'s processes, as `train`.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    outs = []
    with sharing(device, cache) as share, shape_stable(model), prefetching(batches, device, runtime) as ready:
        for x in ready:
            share.pause_point()
            shape, views = x.shape[:2], x.dim() == 5
            x = runtime.batch(x.flatten(0, 1) if views else x, device)
            with runtime.autocast(device):
                out = model(x).float().cpu()
            outs.append(out.unflatten(0, shape).sum(1) if views else out)
    model.train(was_training)
    return torch.cat(outs)
