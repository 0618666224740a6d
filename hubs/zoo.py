"""The real hubs: torchvision architectures holding the weights of published checkpoint files.

`resnet50-zoo` is Zoo-Tuning's hub: five ResNet-50s trained supervised on ImageNet, by MoCo v1
(self-supervised), and as the bodies of Mask R-CNN, DeepLabV3 and Keypoint R-CNN on COCO. All
five are standard ResNet-50s (output stride 32), as in Zoo-Tuning's official code: DeepLabV3
trained its body with layer3 and layer4 dilated instead of strided, but aggregating kernels layer
by layer needs one architecture, so here its weights run at the standard strides (same tensors,
a 4x coarser feature map than DeepLab's own). `hetero-zoo` mixes five families, for methods that
do not need one architecture.

Weights come from files found by `hubs.checkpoints` (`download` fetches them when online); under the setting
`random_weights` (`hubbench.settings`, `--random-weights`) the same architectures get seeded random weights
instead (profiling, tests), which `Hub.config["weights"]` records. The mode is read when the Hub object is made
(`get_hub` keeps one per mode); the directories are read when a file is loaded.
torchvision is imported only when a model is built: importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from hubbench.hubs import checkpoints
from hubbench.hubs.base import HUBS, Hub, Source
from hubbench.hubs.checkpoints import Checkpoint
from hubbench.registry import UnknownName
from hubbench.seeding import derive_seed
from hubbench.settings import current

MOCO_URL = "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v1_200ep/moco_v1_200ep_pretrain.pth.tar"
# The file Zoo-Tuning loads; torchvision's enum now names the same weights re-saved (resnet50-0676ba61.pth).
RESNET50_URL = "https://download.pytorch.org/models/resnet50-19c8e357.pth"


class Trunk(nn.Sequential):
    """A torchvision classifier's children up to its last feature map, under their own names so that
    checkpoint keys map one to one: images -> [B, out_channels, h, w]."""

    def __init__(self, model: nn.Module, children: tuple[str, ...], out_channels: int):
        super().__init__(OrderedDict((name, getattr(model, name)) for name in children))
        self.out_channels = out_channels


def trunk(builder: str, children: tuple[str, ...], out_channels: int) -> Trunk:
    import torchvision.models

    return Trunk(getattr(torchvision.models, builder)(weights=None), children, out_channels)


RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
RESNET50 = partial(trunk, "resnet50", RESNET_STAGES, 2048)
RESNET18 = partial(trunk, "resnet18", RESNET_STAGES, 512)


@dataclass(frozen=True)
class ImageNetHead:
    """A torchvision classifier's own head, after global average pooling of the trunk's map: the
    module `child` of `builder`'s model (also its key prefix in the file). ConvNeXt's starts with a
    norm of the [B, C, 1, 1] pooled map and flattens it itself (`flatten=False`)."""

    builder: str
    child: str
    flatten: bool = True

    def build(self) -> nn.Sequential:
        import torchvision.models

        module = getattr(getattr(torchvision.models, self.builder)(weights=None), self.child)
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), *([nn.Flatten()] if self.flatten else []), module)


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str
    description: str
    arch: Callable[[], Trunk]
    checkpoint: Checkpoint
    head: ImageNetHead | None = None  # the file's image classifier, if it has one (not MoCo's, not COCO bodies')


DETECTION = ZooModel("detection", "resnet50", "Mask R-CNN (COCO) ResNet-50 body", RESNET50,
                     Checkpoint("MaskRCNN_ResNet50_FPN_Weights.COCO_V1", prefix="backbone.body."))

RESNET50_ZOO = (
    ZooModel("supervised", "resnet50", "ImageNet supervised ResNet-50", RESNET50,
             Checkpoint(RESNET50_URL, drop=("fc.",)), ImageNetHead("resnet50", "fc")),
    ZooModel("selfsup", "resnet50", "MoCo v1 (ImageNet, 200 epochs) ResNet-50 query encoder", RESNET50,
             Checkpoint(MOCO_URL, prefix="module.encoder_q.", drop=("fc.",), unwrap="state_dict")),
    ZooModel("segmentation", "resnet50", "DeepLabV3 (COCO) ResNet-50 body, run at standard strides", RESNET50,
             Checkpoint("DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1", prefix="backbone.")),
    DETECTION,
    ZooModel("keypoints", "resnet50", "Keypoint R-CNN (COCO person keypoints) ResNet-50 body", RESNET50,
             Checkpoint("KeypointRCNN_ResNet50_FPN_Weights.COCO_V1", prefix="backbone.body.")),
)

HETERO_ZOO = (
    DETECTION,
    ZooModel("mobilenet_v3_large", "mobilenet_v3", "ImageNet MobileNetV3-Large features",
             partial(trunk, "mobilenet_v3_large", ("features",), 960),
             Checkpoint("MobileNet_V3_Large_Weights.IMAGENET1K_V1", drop=("classifier.",)),
             ImageNetHead("mobilenet_v3_large", "classifier")),
    ZooModel("efficientnet_b3", "efficientnet", "ImageNet EfficientNet-B3 features",
             partial(trunk, "efficientnet_b3", ("features",), 1536),
             Checkpoint("EfficientNet_B3_Weights.IMAGENET1K_V1", drop=("classifier.",)),
             ImageNetHead("efficientnet_b3", "classifier")),
    # Swin's stages are channels-last; its final norm acts per position, so it stays with the map.
    ZooModel("swin_t", "swin", "ImageNet Swin-T features and final norm",
             partial(trunk, "swin_t", ("features", "norm", "permute"), 768),
             Checkpoint("Swin_T_Weights.IMAGENET1K_V1", drop=("head.",)), ImageNetHead("swin_t", "head")),
    # ConvNeXt's classifier starts with a norm of the *pooled* vector: it goes with the head.
    ZooModel("convnext_tiny", "convnext", "ImageNet ConvNeXt-T features",
             partial(trunk, "convnext_tiny", ("features",), 768),
             Checkpoint("ConvNeXt_Tiny_Weights.IMAGENET1K_V1", drop=("classifier.",)),
             ImageNetHead("convnext_tiny", "classifier", flatten=False)),
)

ZOOS = {
    "resnet50-zoo": ("Zoo-Tuning's five ResNet-50s: ImageNet, MoCo, Mask R-CNN, DeepLabV3, Keypoint R-CNN",
                     RESNET50_ZOO),
    "hetero-zoo": ("five families: Mask R-CNN ResNet-50, MobileNetV3-L, EfficientNet-B3, Swin-T, ConvNeXt-T",
                   HETERO_ZOO),
}


def random_mode() -> bool:
    return current().random_weights


def random_weights(model: ZooModel) -> dict[str, torch.Tensor]:
    """Seeded by the checkpoint they stand in for, so a model in two hubs gets the same weights in both;
    the caller's random stream is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("random-weights", model.checkpoint.weights))
        return model.arch().state_dict()


def pretrained_weights(hub: str, models: tuple[ZooModel, ...], model: ZooModel) -> dict[str, torch.Tensor]:
    path = checkpoints.find(model.checkpoint.file)
    if path is None:
        raise checkpoints.missing_weights(hub, files(models))
    with torch.device("meta"):  # keys and shapes without the cost of initialising
        reference = model.arch().state_dict()
    return model.checkpoint.backbone_state(checkpoints.read(path), reference)


def classifier(hub: str, models: tuple[ZooModel, ...], model: ZooModel, random: bool) -> nn.Module:
    """The model's ImageNet classifier (pooling included), with the file's weights or seeded random ones."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed("random-weights", model.checkpoint.weights, "head"))
        head = model.head.build()
    if not random:
        path = checkpoints.find(model.checkpoint.file)
        if path is None:
            raise checkpoints.missing_weights(hub, files(models))
        head[-1].load_state_dict(model.checkpoint.head_state(checkpoints.read(path), model.head.child,
                                                             head[-1].state_dict()))
    return head.eval()


def files(models: tuple[ZooModel, ...]) -> list[str]:
    return [m.checkpoint.file for m in models]


def zoo_hub(name: str, description: str, models: tuple[ZooModel, ...]) -> Hub:
    random = random_mode()
    weights = random_weights if random else partial(pretrained_weights, name, models)
    sources = tuple(Source(m.name, m.family, m.description, m.arch, partial(weights, m),
                           m.head and partial(classifier, name, models, m, random)) for m in models)
    return Hub(name, description, sources,
               config={"weights": "random" if random else "pretrained",
                       "checkpoints": {m.name: m.checkpoint.weights for m in models}},
               **({} if random else {"check": partial(require_weights, name, models)}))


def zoo_models(hub_name: str) -> tuple[ZooModel, ...]:
    if hub_name not in ZOOS:
        raise UnknownName("hub with checkpoint files", hub_name, sorted(ZOOS))
    return ZOOS[hub_name][1]


def require_weights(hub_name: str, models: tuple[ZooModel, ...]) -> None:
    """The check before a run: raise one `MissingWeights` naming every absent file of the hub, else
    `BadCheckpoint` for the first file that does not match its hash, load with `weights_only=True` or fit its
    architecture (its backbone and, where the hub uses it, its ImageNet head). A file that passed is not read
    again while its path, size and modification time stay the same."""
    error = checkpoints.missing_weights(hub_name, files(models))
    if error is not None:
        raise error
    for model in models:
        path = checkpoints.find(model.checkpoint.file)
        checkpoints.verified_once(path, {"prefix": model.checkpoint.prefix, "head": bool(model.head)},
                                  partial(check_model, hub_name, models, model))


def check_model(hub_name: str, models: tuple[ZooModel, ...], model: ZooModel) -> None:
    pretrained_weights(hub_name, models, model)
    if model.head:
        classifier(hub_name, models, model, random=False)


def download(hub_name: str, dest: str | os.PathLike | None = None) -> list[Path]:
    """Fetch the hub's checkpoint files into `dest` (default: the first weights directory); raises
    `DownloadFailed` when offline."""
    target = Path(dest) if dest is not None else checkpoints.weights_dirs()[0]
    return checkpoints.download([m.checkpoint for m in zoo_models(hub_name)], target)


for _name, (_description, _models) in ZOOS.items():
    HUBS.register(_name)(partial(zoo_hub, _name, _description, _models))
