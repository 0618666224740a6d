"""What a method's `fit` is given and builds on: the context (hub, task, the shared training loop, the
artifacts cache), the task model (a backbone and a task head, `hubbench.models`) and the fine-tuned source
artifact (`hubbench.artifacts`).

A context's random streams are of two kinds. The *data* stream (batch order, augmentation draws) is keyed by
(task, seed) alone, so every method, suite and `--set` variant at that (task, seed) trains on the same batches:
paired comparisons are common random numbers. A *model* stream (initialisation, then each step's dropout and
routing noise) is keyed by (hub, task, method or artifact, seed, stage): `Context.fit` seeds it, the one place
where a model's initialisation is seeded. Neither depends on the suite's name, the scope (which names
checkpoints and locks) or a search trial's setting.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hubbench.artifacts import FinetunedSource, artifact_stem, checkpoint_stem
from hubbench.hubs.base import Hub
from hubbench.io import load_torch, read_json, save_torch, write_json
from hubbench.locks import build_once, locked
from hubbench.seeding import derive_seed, digest, generator, preserved_rng, seed_everything
from hubbench.staging import Staged
from hubbench.tasks.base import Task
from hubbench.training import Checkpoint, Runtime, batch_indices, predict, train


@dataclass(frozen=True)
class Phase:
    """Which splits a context's trainings read and how far they go. A trial of a search fits on train, sees the
    validation split only, and stops at a rung (`until`: a fraction of each stage's iterations); a final run fits
    on train (or on train and validation) and is the only reader of the test split. `curves`: the splits
    evaluated over training (every `eval_every` iterations)."""

    fit_on: tuple[str, ...] = ("train",)
    curves: tuple[str, ...] = ("val", "test")
    until: float = 1.0


@dataclass(frozen=True)
class Tuned:
    """A training that a search tuned (`hubbench.benchmark.tuning`): the protocol fields it selected, the scope of
    the trial that trained that setting on the train split (a final run on train resumes its checkpoints at their
    end: the same bits as training it again), and what the records state of the search (`search`, as
    `hubbench.record.Search` holds it; `cost_s`: the training seconds of all its trials)."""

    setting: dict[str, Any]
    scope: str
    search: dict = field(compare=False)
    cost_s: float = 0.0


Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
StageHook = Callable[["Context", nn.Module, Loss, "list | None", str], None]  # (ctx, model, loss, params, key)


class Context:
    """One cell's (or one artifact's, or one search trial's) view of the harness.

    `scope` names its checkpoints; `stream` its model streams (default: the scope), see the module's docstring.
    Every stream is derived from its key and the iteration, so a stage resumed from its checkpoint continues
    exactly as if it had never stopped. `phase`: the splits its trainings read; `tuned`: the artifacts a search
    tuned, by artifact id (trained at their selected setting).
    """

    def __init__(self, hub: Hub, task: Task, seed: int, *, scope: str, cache: Path,
                 device: torch.device, runtime: Runtime = Runtime(), on_stage: StageHook | None = None,
                 retrain: str = "", stream: str | None = None, phase: Phase = Phase(),
                 tuned: Mapping[str, Tuned] | None = None):
        self.hub, self.task, self.seed, self.scope = hub, task, seed, scope
        self.cache, self.device, self.runtime = cache, device, runtime
        self.stream, self.phase, self.tuned = stream or scope, phase, dict(tuned or {})
        self.retrain = retrain  # a run that trains again the cached artifacts none of its cells has (its token)
        self.on_stage = on_stage  # told of every training stage once trained (the cost estimator times them)
        self.curves: dict[str, list[list[float]]] = {}
        self.diagnostics: dict = {}
        self.search: dict | None = None  # the search that tuned what it trains (`hubbench.record.Search` as JSON)
        self.train_seconds = 0.0
        self.carried_seconds = 0.0  # those of `train_seconds` that earlier attempts (or a search trial) spent
        self.used: dict[str, dict] = {}  # artifact id -> info (key, train_s, curves)
        self.checkpoints: list[Checkpoint] = []

    # -- random streams and training ------------------------------------------------------------
    def fit(self, plugin) -> nn.Module:
        """`plugin.fit(self)` (a method's, or an artifact's) with its model stream seeded first: the one place
        where a model's initialisation is seeded."""
        seed_everything(self.model_seed("init"))
        return plugin.fit(self)

    def model_seed(self, key: str) -> int:
        """The seed of model stream `key` (a training stage's name, or 'init')."""
        return derive_seed("model", self.stream, self.seed, key)

    @property
    def data_seed(self) -> int:
        """The seed of the data stream: (task, seed) alone."""
        return derive_seed("data", self.task.name, self.seed)

    def batch(self, it: int) -> Staged:
        """Training batch `it` of the data stream, of the splits the context fits on (`Task.stage_train`)."""
        n = sum(len(self.task.splits[s]) for s in self.phase.fit_on)
        indices = batch_indices(n, self.task.protocol.batch_size, it, self.data_seed)
        return self.task.stage_train(indices, generator(self.data_seed, "aug", it), self.phase.fit_on)

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
            """The curves of the primary metric on the phase's splits; test too outside a search, for the papers'
            test-metric-over-training figures (nothing is selected on it)."""
            return {f"{split}_{task.metric}": self.evaluate(m, split)[task.metric] for split in self.phase.curves}

        stem = checkpoint_stem(self.scope, self.seed, proto)
        checkpoint = Checkpoint(self.cache / "checkpoints" / f"{stem}-{key}.ckpt", proto.checkpoint_every)
        self.checkpoints.append(checkpoint)
        start = time.perf_counter()
        curves = train(
            model,
            loss,
            self.batch,
            proto,
            seed=self.model_seed(key),
            params=params,
            device=self.device,
            runtime=self.runtime,
            checkpoint=checkpoint,
            evaluate=evaluate if proto.eval_every else None,
            eval_every=proto.eval_every,
            desc=f"{self.scope} {key}",
            cache=self.cache,
            until=None if self.phase.until == 1 else max(1, round(self.phase.until * proto.iterations)),
        )
        self.train_seconds += checkpoint.carried_s + time.perf_counter() - start  # + seconds before a restart
        self.carried_seconds += checkpoint.carried_s
        prefix = "" if key == "model" else f"{key}/"
        self.curves.update({prefix + k: v for k, v in curves.items()})
        if self.on_stage is not None:
            self.on_stage(self, model, loss, params, key)
        return model

    def predict(self, model: nn.Module, split: str) -> torch.Tensor:
        self.runtime.model(model, self.device)
        return predict(model, self.task.stage_eval(split), self.device, self.runtime, self.cache)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return self.task.evaluate(self.predict(model, split), self.task.splits[split].targets)

    def clear_checkpoints(self) -> None:
        for c in self.checkpoints:
            c.clear()

    # -- artifacts ----------------------------------------------------------------------------
    def artifact_context(self, artifact: FinetunedSource) -> Context:
        """Where `artifact` trains: at its tuned setting if a search tuned it, on the splits and with the curves of
        this context's phase (so a trial builds on sources trained on train, a final run on train and validation
        on sources trained on both), in its own model stream."""
        tuned = self.tuned.get(artifact.id)
        task = self.task if tuned is None else type(self.task)(self.task.protocol.replace(**tuned.setting))
        scope = f"{self.hub.name}/{self.task.name}/{artifact.id}"
        on_train = self.phase.fit_on == ("train",)
        return Context(self.hub, task, self.seed, scope=tuned.scope if tuned and on_train else scope,
                       stream=scope, cache=self.cache, device=self.device, runtime=self.runtime,
                       on_stage=self.on_stage, retrain=self.retrain, phase=dataclasses.replace(self.phase, until=1.0))

    def artifact_key(self, artifact: FinetunedSource) -> str:
        sub, tuned = self.artifact_context(artifact), self.tuned.get(artifact.id)
        return digest({"artifact": artifact.id, "hub": self.hub.describe(), "task": sub.task.config(),
                       "seed": self.seed, "torch": torch.__version__, "device": self.device.type,
                       "runtime": dataclasses.asdict(self.runtime), "threads": torch.get_num_threads(),
                       "phase": dataclasses.asdict(sub.phase), "search": tuned and tuned.search.get("space")})

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
        """Train `artifact` (resumably) and cache it: weights first, then the metadata that marks it complete. A
        tuned one trained on train is its search's selected trial, resumed at its end: its `train_s` is its search's
        cost (every trial's seconds, the selected one's once) and what it spent beyond it."""
        sub, tuned = self.artifact_context(artifact), self.tuned.get(artifact.id)
        model = sub.fit(artifact)
        meta = {"id": artifact.id, "key": self.artifact_key(artifact), "train_s": sub.train_seconds,
                "curves": sub.curves, "val": sub.evaluate(model, "val")}
        if tuned is not None:  # its own seconds beyond the selected trial's, which the search's cost holds
            own = sub.train_seconds - (sub.carried_seconds if sub.scope == tuned.scope else 0.0)
            meta.update(train_s=own + tuned.cost_s, search=tuned.search)
        if self.retrain:
            meta["retrain"] = self.retrain  # made by this retraining run (`_outdate`)
        save_torch(path, model.state_dict())
        write_json(meta_path, meta)
        sub.clear_checkpoints()
        self.used[artifact.id] = meta
        return self.runtime.model(model, self.device).eval()

    def artifact_info(self, artifact: FinetunedSource) -> dict:
        return self.used[artifact.id]

    def adopt(self, artifact: FinetunedSource) -> None:
        """Report `artifact` (loaded) as what this context trained: its curves, and the search that tuned it."""
        info = self.artifact_info(artifact)
        self.curves.update(info["curves"])
        self.search = info.get("search")

    def use(self, artifact_id: str, key: str, seconds: float) -> None:
        """Count an artifact cached by another layer (a ranking) in this cell's cost, as a trained one."""
        self.used[artifact_id] = {"id": artifact_id, "key": key, "train_s": seconds, "curves": {}}
