"""Hubs declared in TOML, without Python: each source a torchvision or timm model, with its published weights
or a local checkpoint file.

```toml
[hub.my-hub]
description = "three ImageNet CNNs"
sources = [
  { name = "r18", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" },
  { name = "mnv3", model = "torchvision:mobilenet_v3_small", weights = "DEFAULT" },
  { name = "mine", model = "torchvision:resnet18", checkpoint = "r18-mine.pth", prefix = "module.", sha256 = "ab12" },
  { name = "rn", model = "timm:resnet26d" },   # timm's pretrained weights, from the Hugging Face cache
]
```

torchvision and timm build the models; the backbone is the model up to its last feature map, found
generically: for torchvision, torchvision's feature extraction (`create_feature_extractor`, tracing the model's
children as calls) returns the last node of the traced graph whose output is a [B, C, h, w] map with h, w > 1 on
a 64 px probe (the input of the global pooling; Swin's NHWC stages are followed by torchvision's own permute);
for timm, `forward_features` (NHWC outputs permuted). A timm transformer (ViT, DeiT, the DINOv2 and CLIP image
towers timm builds) gives tokens, not a map: its backbone is its own pooling's features (`forward_head(...,
pre_logits=True)`, a 1 x 1 map: `Pooled`), built to take images of any size (`dynamic_img_size`), and what
decodes a spatial map (a landmark head) or aggregates convolutions (Zoo-Tuning) does not apply to it, saying
why. A source's family is its `model`, so the hub is
homogeneous (Zoo-Tuning, soups) exactly when every source names the same model. A source keeps its model's own
image classifier, what LEEP and NCE read (timm's `forward_head`; for torchvision, the traced graph from the map
to the logits), when its weights hold one: torchvision's and timm's published weights do; a checkpoint file is
taken to hold only a backbone unless the source says `classifier = true` (its head's keys are then required).

Weights are never downloaded here: torchvision's files are looked for where `hubs.checkpoints` looks
(the weights directory of the settings, then $TORCH_HOME/hub/checkpoints), timm's in the Hugging Face cache,
checkpoint files at their path (relative to the declaring file), all loaded with `weights_only=True` after the
hash check. `Hub.check` names every missing file, one line per source, before a run starts, and loads each local
checkpoint to check that its keys fit the architecture. The setting `random_weights` (`--random-weights`) gives
seeded random weights to the sources whose weights are not on this machine (`declared_hub`), and only to them.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn

from hubbench.errors import InputError
from hubbench.hubs import checkpoints
from hubbench.hubs.base import Hub, Source
from hubbench.hubs.checkpoints import BadCheckpoint, MissingWeights, check_match
from hubbench.hubs.zoo import random_mode
from hubbench.registry import check_name
from hubbench.seeding import derive_seed

LIBRARIES = ("torchvision", "timm")
SOURCE_KEYS = {"name", "model", "weights", "checkpoint", "prefix", "key", "sha256", "description", "classifier"}
PROBE = 64  # px: the feature map of a stride-32 net is still 2 x 2


class DeclarationError(InputError):
    """A declaration that cannot be used; the message names the source and what is valid."""


@dataclass(frozen=True)
class Declared:
    """One declared source: `model` is `torchvision:<name>` or `timm:<name>`; its weights are torchvision's
    `weights` entry, timm's pretrained ones, or the local `checkpoint` (tensors under `key` if given, whose
    names start with `prefix`, with a sha256 starting with `sha256` if given)."""

    name: str
    model: str
    weights: str | None = None
    checkpoint: Path | None = None
    prefix: str = ""
    key: str | None = None
    sha256: str | None = None
    description: str = ""
    classifier: bool = True  # the weights hold the model's own image classifier (LEEP and NCE read it)

    @property
    def library(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def arch(self) -> str:
        return self.model.split(":", 1)[1]


# -- building models ----------------------------------------------------------------------------------------
class Trunk(nn.Module):
    """A timm model whose features come channels-last, as a backbone: images -> [B, out_channels, h, w]."""

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body, self.out_channels = body, out_channels

    def forward(self, x):
        return self.body.forward_features(x).permute(0, 3, 1, 2)


class Pooled(nn.Module):
    """A timm model without a spatial map (a vision transformer's tokens), as a backbone: images -> the features its
    own pooling gives its classifier (`forward_head(..., pre_logits=True)`: the class token or the tokens' mean, as
    the model has it), as a [B, out_channels, 1, 1] map. Heads that pool take it as any map; what needs a spatial
    map (a landmark heatmap, K-Flow's stages) does not apply (`pooled`)."""

    pooled = True

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body, self.out_channels = body, out_channels

    def forward(self, x):
        return self.body.forward_head(self.body.forward_features(x), pre_logits=True)[:, :, None, None]


class FeatureGraph(torch.fx.GraphModule):
    """A torchvision model's traced graph up to its last feature map, its modules under the model's names."""

    @property
    def out_channels(self) -> int:
        return self.meta["out_channels"]  # `meta` survives deep copies, unlike other attributes


class TimmHead(nn.Module):
    """A timm model's own classifier on the trunk's map (`forward_head`, NHWC again where timm wants it; on a
    `Pooled` trunk's features, the classifier alone)."""

    def __init__(self, model: nn.Module, form: str):
        super().__init__()
        self.model, self.form = model, form

    def forward(self, fmap):
        if self.form == "tokens":
            return self.model.get_classifier()(fmap.flatten(1))
        return self.model.forward_head(fmap.permute(0, 2, 3, 1) if self.form == "nhwc" else fmap)


def full_model(model: str) -> nn.Module:
    """The whole library model, randomly initialised (weights are loaded afterwards, from files only)."""
    library, arch = model.split(":", 1)
    if library == "timm":
        import timm

        return timm.create_model(arch, pretrained=False, **timm_options(arch))
    import torchvision.models

    return torchvision.models.get_model(arch, weights=None)


def leaves(model: nn.Module) -> dict:
    """Trace the model's children (and modules of their types) as calls, not into them: the stages stay modules
    that run, so hooks on them fire (K-Flow reads `layer<N>`) and the graph's nodes are named by them."""
    return {"leaf_modules": list({type(m) for m in model.children()})}


@cache
def timm_options(arch: str) -> dict[str, Any]:
    """What timm builds `arch` with: a vision transformer takes images of any size (its position embedding
    resampled to them, `dynamic_img_size`), not only its pre-training size; other models take no such option."""
    import timm

    try:
        timm.create_model(arch, pretrained=False, dynamic_img_size=True, num_classes=0)
    except TypeError:
        return {}
    return {"dynamic_img_size": True}


@cache
def layout(model: str) -> tuple[str | None, int, str]:
    """(torchvision feature node, channels, form) of the model's last feature map, found on a probe batch: form
    "map" ([B, C, h, w]), "nhwc" (timm's channels-last stages) or "tokens" (timm's transformers: their pooled
    features stand in for the map, `Pooled`)."""
    full = full_model(model).eval()
    x = torch.zeros(1, 3, PROBE, PROBE)
    with torch.no_grad():
        if model.startswith("timm:"):
            out = full.forward_features(x)
            if out.ndim == 3:
                return None, full.forward_head(out, pre_logits=True).shape[1], "tokens"
            if out.ndim != 4:
                raise DeclarationError(f"{model}: forward_features gives a {out.ndim}-d output, neither a feature map "
                                       "nor tokens")
            nhwc = out.shape[1] != full.num_features and out.shape[-1] == full.num_features
            return None, full.num_features, "nhwc" if nhwc else "map"
        from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

        nodes = get_graph_node_names(full, tracer_kwargs=leaves(full))[1]
        outs = create_feature_extractor(full, return_nodes=nodes, tracer_kwargs=leaves(full))(x)
    maps = [n for n in nodes if isinstance(outs[n], torch.Tensor) and outs[n].ndim == 4 and min(outs[n].shape[2:]) > 1]
    if not maps:
        raise DeclarationError(f"{model}: no [B, C, h, w] feature map in its graph (a torchvision transformer without "
                               "a spatial map: declare timm's, e.g. timm:vit_base_patch16_224, whose pooled features "
                               "hubbench takes)")
    return maps[-1], outs[maps[-1]].shape[1], "map"


def trunk(model: str, full: nn.Module | None = None) -> nn.Module:
    """The backbone of `model` (of `full`, the whole model, when given: it shares its modules), with its
    modules under their names in the model (what checkpoint keys and Zoo-Tuning's stage prefixes name)."""
    full = full if full is not None else full_model(model)
    node, channels, form = layout(model)
    if model.startswith("timm:"):
        full.reset_classifier(0)  # the trunk holds no classifier (the whole model goes to `TimmHead`)
        if form == "tokens":
            return Pooled(full, channels)
        if form == "nhwc":
            return Trunk(full, channels)
        full.forward = full.forward_features  # a bound method: deep copies rebind it to the copy
        full.out_channels = channels
        return full
    from torchvision.models.feature_extraction import create_feature_extractor

    dual = create_feature_extractor(full, return_nodes={node: "map"}, tracer_kwargs=leaves(full))
    graph = dual.eval_graph  # the feature path of classifiers is the same in training
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = (output.args[0]["map"],)  # the map itself, not a dict of it
    body = FeatureGraph(dual, graph)
    body.meta["out_channels"] = channels
    return body


# -- weights ----------------------------------------------------------------------------------------------
def torchvision_weights(source: Declared):
    from torchvision.models import get_model_weights

    return get_model_weights(source.arch)[source.weights] if source.weights != "DEFAULT" else \
        get_model_weights(source.arch).DEFAULT


def timm_file(source: Declared) -> tuple[str, Path | None]:
    """(Hugging Face repo, cached weights file or None) of a timm model's pretrained weights."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    repo = timm.create_model(source.arch, pretrained=False).pretrained_cfg.get("hf_hub_id") or ""
    for file in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, file) if repo else None
        if isinstance(found, str):
            return repo, Path(found)
    return repo, None


def missing(source: Declared) -> str | None:
    """One line naming what to download and where to put it, or None when the source's file is there."""
    if source.checkpoint is not None:
        exists = source.checkpoint.is_file()
        return None if exists else f"source {source.name!r}: checkpoint file {source.checkpoint} does not exist"
    if source.library == "timm":
        from huggingface_hub.constants import HF_HUB_CACHE

        repo, found = timm_file(source)
        return None if found else (f"source {source.name!r}: timm weights of {source.arch} (Hugging Face repo "
                                   f"{repo or '?'}) are not in the Hugging Face cache {HF_HUB_CACHE}: run "
                                   f"`python -c \"import timm; timm.create_model('{source.arch}', pretrained=True)\"` "
                                   "once online, or declare a checkpoint file")
    file = torchvision_weights(source).url.rsplit("/", 1)[-1]
    if checkpoints.find(file):
        return None
    where = " or ".join(str(d) for d in checkpoints.weights_dirs())
    return f"source {source.name!r}: {file} is missing: download {torchvision_weights(source).url} into {where}"


def file_state(source: Declared, full: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's tensors from the source's checkpoint or torchvision file, checked against `full` (the
    backbone's keys must all be there, and the classifier's unless the source declares none; no key may be
    foreign to the model)."""
    if source.checkpoint is not None:
        path = source.checkpoint
    else:
        path = checkpoints.find(torchvision_weights(source).url.rsplit("/", 1)[-1])
    if path is None:
        raise MissingWeights(missing(source))
    if source.sha256:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(source.sha256.lower()):
            raise BadCheckpoint(f"{path}: sha256 {digest} does not start with {source.sha256} as declared for "
                                f"source {source.name!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(path))
    else:
        obj = checkpoints.read(path)
    if source.key is not None:
        obj = obj.get(source.key) if isinstance(obj, Mapping) else None
    if not isinstance(obj, Mapping):
        raise BadCheckpoint(f"{path}: no state dict {'under key ' + repr(source.key) if source.key else 'at the top'}")
    state = {k[len(source.prefix):]: v for k, v in obj.items() if k.startswith(source.prefix)}
    reference = full.state_dict()
    with torch.device("meta"):  # keys without the cost of initialising
        body = {k.removeprefix("body.") for k in trunk(source.model).state_dict()}  # `Trunk`, `Pooled` hold it so
    needed = {k: v for k, v in reference.items() if k in body or source.classifier}
    check_match({k: v for k, v in state.items() if k in needed or k not in reference}, needed,
                f"{path} (source {source.name!r}, keys under {source.prefix!r}"
                f"{', classifier included' if source.classifier else ''})")
    return state


def loaded(source: Declared, random: bool) -> nn.Module:
    """The whole model with seeded random weights (a placeholder: see `declared_hub`) or the file's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("random-weights", source.model, source.name))
        full = full_model(source.model)
    if random:
        return full
    if source.library == "timm" and source.checkpoint is None:  # timm's loader, with its key remapping per model
        import timm

        path = timm_file(source)[1]
        if path is None:
            raise MissingWeights(missing(source))
        return timm.create_model(source.arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)},
                                 **timm_options(source.arch))
    full.load_state_dict(file_state(source, full), strict=False)  # checked there: only the head may be absent
    return full


def weights(source: Declared, random: bool) -> dict[str, torch.Tensor]:
    return trunk(source.model, loaded(source, random)).state_dict()


def classifier(source: Declared, random: bool) -> nn.Module:
    """The source's image classifier on the trunk's map: timm's `forward_head`, or torchvision's graph from the
    feature map to the logits."""
    full = loaded(source, random)
    if source.library == "timm":
        return TimmHead(full, layout(source.model)[2]).eval()
    return torchvision_head(full, source.model).eval()


def torchvision_head(full: nn.Module, model: str) -> nn.Module:
    """The nodes of `full`'s traced graph that follow its feature map up to its logits, as a module of the map.
    (Every classifier torchvision lists reaches its logits from the map alone: pooling, flattening, its head.)"""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    node, last = layout(model)[0], get_graph_node_names(full, tracer_kwargs=leaves(full))[1][-1]
    dual = create_feature_extractor(full, return_nodes={node: "map", last: "logits"}, tracer_kwargs=leaves(full))
    outputs = next(n for n in dual.eval_graph.nodes if n.op == "output").args[0]
    head = torch.fx.Graph()
    env = {outputs["map"]: head.placeholder("fmap")}
    for n in dual.eval_graph.nodes:
        if n.op != "output" and n not in env and n.all_input_nodes and all(a in env for a in n.all_input_nodes):
            env[n] = head.node_copy(n, env.__getitem__)
    head.output(env[outputs["logits"]])
    return torch.fx.GraphModule(dual, head)


def check(hub: str, sources: tuple[Declared, ...]) -> None:
    """Before a run: one line per source whose weights are missing (as `zoo` lists a hub's missing files), then
    every local checkpoint's keys."""
    lines = [line for s in sources if (line := missing(s))]
    if lines:
        raise MissingWeights(f"hub {hub!r} lacks the weights of {len(lines)} of its {len(sources)} sources:\n"
                             + "\n".join(f"  {line}" for line in lines))
    for s in sources:
        if s.checkpoint is not None:
            file_state(s, full_model(s.model))


# -- declarations -----------------------------------------------------------------------------------------
def known_models(library: str) -> list[str]:
    if library == "timm":
        import timm

        return timm.list_models()
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def parse_source(entry: Any, hub: str, base: Path) -> Declared:
    """One entry of a hub's `sources`, checked: names, the library and its model name, the weights."""
    where = f"hub {hub!r}"
    if not isinstance(entry, dict):
        raise DeclarationError(f"{where}: each source is a table {{ name = ..., model = ... }}, got {entry!r}")
    unknown = set(entry) - SOURCE_KEYS
    if unknown:
        raise DeclarationError(f"{where}: unknown source key(s) {', '.join(sorted(unknown))} "
                               f"(choose from: {', '.join(sorted(SOURCE_KEYS))})")
    name = check_name("source", entry.get("name"))
    model = entry.get("model")
    library, _, arch = str(model).partition(":")
    if not isinstance(model, str) or library not in LIBRARIES or not arch:
        raise DeclarationError(f"{where}, source {name!r}: model must be 'torchvision:<name>' or 'timm:<name>', "
                               f"got {model!r}")
    if library == "timm":
        try:
            import timm  # noqa: F401
        except ImportError:
            raise DeclarationError(f"{where}, source {name!r}: {model} needs timm: pip install hubbench[timm]") \
                from None
    choices = known_models(library)
    if arch not in choices:
        close = difflib.get_close_matches(arch, choices, n=5)
        raise DeclarationError(f"{where}, source {name!r}: unknown {library} model {arch!r}"
                               + (f" (close: {', '.join(close)})" if close else ""))
    checkpoint = entry.get("checkpoint")
    head = entry.get("classifier", checkpoint is None)
    if type(head) is not bool:
        raise DeclarationError(f"{where}, source {name!r}: classifier must be true or false, got {head!r}")
    source = Declared(name, model, entry.get("weights"), (base / checkpoint).resolve() if checkpoint else None,
                      entry.get("prefix", ""), entry.get("key"), entry.get("sha256"), entry.get("description", ""),
                      head)
    if library == "torchvision" and checkpoint is None:
        if source.weights is None:
            raise DeclarationError(f"{where}, source {name!r}: say which weights (weights = \"DEFAULT\" or an entry "
                                   "such as \"IMAGENET1K_V1\"), or give a checkpoint file")
        from torchvision.models import get_model_weights

        entries = [w.name for w in get_model_weights(arch)]
        if source.weights != "DEFAULT" and source.weights not in entries:
            raise DeclarationError(f"{where}, source {name!r}: {arch} has no weights {source.weights!r} (choose "
                                   f"from: DEFAULT, {', '.join(entries)})")
    elif source.weights is not None:
        raise DeclarationError(f"{where}, source {name!r}: 'weights' names torchvision weights; a {library} source "
                               "with a checkpoint file takes none")
    return source


def parse_hub(name: str, table: Any, base: Path) -> Hub:
    """The hub a `[hub.<name>]` table declares (paths relative to `base`); made again whenever asked for, so
    that `--random-weights` set after the declaration is read still applies."""
    if not isinstance(table, dict) or set(table) - {"description", "sources"}:
        raise DeclarationError(f"hub {name!r}: a table of 'description' and 'sources'")
    entries = table.get("sources")
    if not isinstance(entries, list) or not entries:
        raise DeclarationError(f"hub {name!r}: 'sources' must be a non-empty list of tables")
    sources = tuple(parse_source(e, name, base) for e in entries)
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DeclarationError(f"hub {name!r} declares source {twice[0]!r} twice; each source needs its own name")
    for s in sources:
        layout(s.model)  # a model without a feature map is refused now
    return declared_hub(name, str(table.get("description", "declared hub")), sources)


def versions(sources: tuple[Declared, ...]) -> dict[str, str]:
    """The versions of the libraries that build the models (the backbones, their keys and artifacts depend on them)."""
    from importlib.metadata import version

    return {lib: version(lib) for lib in sorted({s.library for s in sources})}


def declared_hub(name: str, description: str, sources: tuple[Declared, ...]) -> Hub:
    """The hub of `sources`; under the setting `random_weights` (`--random-weights`) a source whose weights are not
    on this machine gets seeded random ones, and one whose weights are keeps them: placeholders mix with real
    checkpoints, and the record's `weights` says which each source had."""
    placeholder = {s.name for s in sources if random_mode() and missing(s)}
    built = tuple(Source(s.name, s.model, s.description or s.model, partial(trunk, s.model),
                         partial(weights, s, s.name in placeholder),
                         partial(classifier, s, s.name in placeholder) if s.classifier else None,
                         pooled=layout(s.model)[2] == "tokens")
                  for s in sources)
    config = {"declared": {s.name: {"model": s.model, "weights": s.weights, "prefix": s.prefix,
                                    "checkpoint": str(s.checkpoint) if s.checkpoint else None, "sha256": s.sha256}
                           for s in sources},
              "weights": {s.name: "random" if s.name in placeholder else "pretrained" for s in sources},
              "libraries": versions(sources)}
    real = tuple(s for s in sources if s.name not in placeholder)
    return Hub(name, description, built, config, check=partial(check, name, real))
