"""What a method's `fit` is given and builds on: the context (hub, task, the shared training loop, the
artifacts cache), the task model (a backbone and a task head, `hubbench.models`) and the fine-tuned source
artifact (`hubbench.artifacts`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hubbench.artifacts import FinetunedSource, artifact_stem, checkpoint_stem
from hubbench.hubs.base import Hub
from hubbench.io import load_torch, read_json, save_torch, write_json
from hubbench.locks import build_once, locked
from hubbench.seeding import derive_seed, digest, generator, preserved_rng, seed_everything
from hubbench.tasks.base import Task
from hubbench.training import Checkpoint, Runtime, batch_indices, predict, train

Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
StageHook = Callable[["Context", nn.Module, Loss, "list | None", str], None]  # (ctx, model, loss, params, key)


class Context:
    """One cell's (or one artifact's) view of the harness.

    Every random stream is derived from (seed, scope, key), so a stage resumed from its
    checkpoint continues exactly as if it had never stopped.
    """

    def __init__(self, hub: Hub, task: Task, seed: int, *, scope: str, cache: Path,
                 device: torch.device, runtime: Runtime = Runtime(), on_stage: StageHook | None = None,
                 retrain: str = ""):
        self.hub, self.task, self.seed, self.scope = hub, task, seed, scope
        self.cache, self.device, self.runtime = cache, device, runtime
        self.retrain = retrain  # a run that trains again the cached artifacts none of its cells has (its token)
        self.on_stage = on_stage  # told of every training stage once trained (the cost estimator times them)
        self.curves: dict[str, list[list[float]]] = {}
        self.diagnostics: dict = {}
        self.train_seconds = 0.0
        self.used: dict[str, dict] = {}  # artifact id -> info (key, train_s, curves)
        self.checkpoints: list[Checkpoint] = []

    # -- training -----------------------------------------------------------------------------
    def train(self, model: nn.Module, loss: Loss | None = None, params: Iterable | None = None,
              key: str = "model") -> nn.Module:
        """Train `model` with the task's protocol (default loss: the task loss of `model(x)`).

        `params` restricts what is optimised: parameters, or param groups as `torch.optim` takes them, where a
        group's `lr_mult` key scales the protocol's learning rate (and its schedule) for that group, e.g.
        `[{"params": backbone.parameters()}, {"params": gate.parameters(), "lr_mult": 10.0}]`; default: every
        parameter that requires grad. `key` names the stage: its checkpoint, its curves (prefixed unless
        'model') and its random streams. Returns the trained model, in eval mode, on the context's device.
        """
        task, proto = self.task, self.task.protocol
        params = None if params is None else list(params)  # iterated once by the optimiser, again by `on_stage`
        loss = loss or (lambda m, x, y: task.loss(m(x), y))

        def evaluate(m: nn.Module) -> dict[str, float]:
            """The curves of the primary metric; test too, for the papers' test-metric-over-training figures
            (nothing is selected on it)."""
            return {f"{split}_{task.metric}": self.evaluate(m, split)[task.metric] for split in ("val", "test")}

        stem = checkpoint_stem(self.scope, self.seed, proto)
        checkpoint = Checkpoint(self.cache / "checkpoints" / f"{stem}-{key}.ckpt", proto.checkpoint_every)
        self.checkpoints.append(checkpoint)
        start = time.perf_counter()
        curves = train(
            model,
            loss,
            self.batches(key),
            proto.schedule(),
            seed=derive_seed(self.seed, self.scope, key),
            params=params,
            device=self.device,
            runtime=self.runtime,
            checkpoint=checkpoint,
            evaluate=evaluate if proto.eval_every else None,
            eval_every=proto.eval_every,
            desc=f"{self.scope} {key}",
            cache=self.cache,
        )
        self.train_seconds += checkpoint.carried_s + time.perf_counter() - start  # + seconds before a restart
        prefix = "" if key == "model" else f"{key}/"
        self.curves.update({prefix + k: v for k, v in curves.items()})
        if self.on_stage is not None:
            self.on_stage(self, model, loss, params, key)
        return model

    def batches(self, key: str) -> Callable[[int], Any]:
        """Batch i of stage `key`'s training (its own permutations and augmentations), staged for the loop."""
        task, seed = self.task, derive_seed(self.seed, self.scope, key)
        n, size = len(task.splits["train"]), task.protocol.batch_size
        return lambda it: task.stage_train(batch_indices(n, size, it, seed), generator(seed, "aug", it))

    def predict(self, model: nn.Module, split: str) -> torch.Tensor:
        self.runtime.model(model, self.device)
        return predict(model, self.task.stage_eval(split), self.device, self.runtime, self.cache)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return self.task.evaluate(self.predict(model, split), self.task.splits[split].targets)

    def clear_checkpoints(self) -> None:
        for c in self.checkpoints:
            c.clear()

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_key(self, artifact: FinetunedSource) -> str:
        return digest({"artifact": artifact.id, "hub": self.hub.describe(), "task": self.task.config(),
                       "seed": self.seed, "torch": torch.__version__, "device": self.device.type,
                       "runtime": dataclasses.asdict(self.runtime),
                       "threads": torch.get_num_threads()})

    def artifact_path(self, artifact: FinetunedSource) -> Path:
        stem = artifact_stem(self.cache, self.hub.name, self.task.name, artifact, self.seed)
        return stem.with_name(f"{stem.name}-{self.artifact_key(artifact)}.pt")

    def artifact(self, artifact: FinetunedSource) -> nn.Module:
        """The trained artifact: loaded from the cache, or trained now (resumably) and cached.

        Either way the caller's random streams are left as they were, so what a method builds
        next does not depend on the state of the cache. Processes that need a missing artifact at
        the same time wait on its lock while one of them trains it, then load it.
        """
        with preserved_rng():
            return self._artifact(artifact)

    def _artifact(self, artifact: FinetunedSource) -> nn.Module:
        path = self.artifact_path(artifact)
        meta_path = path.with_suffix(".json")
        if self.retrain:
            self._outdate(path, meta_path)
        trained = build_once((path, meta_path), lambda: self._train_artifact(artifact, path, meta_path))
        if trained is not None:
            return trained
        model = artifact.build(self, pretrained=False)
        model.load_state_dict(load_torch(path))
        self.used[artifact.id] = read_json(meta_path)
        return self.runtime.model(model, self.device).eval()

    def _outdate(self, path: Path, meta_path: Path) -> None:
        """Delete the cached artifact unless a cell of this context's retraining run trained it (under its lock, as
        `build_once`: a cell of the run may be training it now, and one that waited finds it trained)."""
        def ours() -> bool:
            return not meta_path.exists() or read_json(meta_path).get("retrain") == self.retrain

        if not ours():
            with locked(str(path)):
                if not ours():
                    meta_path.unlink()  # first: what marks it complete
                    path.unlink(missing_ok=True)

    def _train_artifact(self, artifact: FinetunedSource, path: Path, meta_path: Path) -> nn.Module:
        """Train `artifact` (resumably) and cache it: weights first, then the metadata that marks it complete."""
        sub = Context(self.hub, self.task, self.seed, scope=f"{self.hub.name}/{self.task.name}/{artifact.id}",
                      cache=self.cache, device=self.device, runtime=self.runtime, on_stage=self.on_stage,
                      retrain=self.retrain)
        seed_everything(derive_seed(self.seed, sub.scope, "init"))
        model = artifact.build(sub, pretrained=True)
        artifact.train(sub, model)
        meta = {"id": artifact.id, "key": self.artifact_key(artifact), "train_s": sub.train_seconds,
                "curves": sub.curves, "val": sub.evaluate(model, "val")}
        if self.retrain:
            meta["retrain"] = self.retrain  # made by this retraining run (`_outdate`)
        save_torch(path, model.state_dict())
        write_json(meta_path, meta)
        sub.clear_checkpoints()
        self.used[artifact.id] = meta
        return self.runtime.model(model, self.device).eval()

    def artifact_info(self, artifact: FinetunedSource) -> dict:
        return self.used[artifact.id]

    def use(self, artifact_id: str, key: str, seconds: float) -> None:
        """Count an artifact cached by another layer (a ranking) in this cell's cost, as a trained one."""
        self.used[artifact_id] = {"id": artifact_id, "key": key, "train_s": seconds, "curves": {}}
