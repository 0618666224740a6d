"""The `mini-hetero` hub: the papers' heterogeneous hub in miniature, pre-trained like `mini`.

The papers' hub is Mask R-CNN R50 (COCO detection) plus ImageNet-supervised MobileNetV3,
EfficientNet-B3, Swin-T and ConvNeXt-T. Here: the `mini` hub's detection MiniResNet (same key,
so the same weights) plus three architecture families supervised on the `supervised` source
task (ImageNet-like). EfficientNet is left out: on the CPU its MBConv blocks cost several
MiniResNets to pre-train, and MobileNetV3 already stands for the inverted-residual family.
"""

from __future__ import annotations

import dataclasses

from hubbench.hubs.archs import MOBILENET_BLOCKS, MiniConvNeXt, MiniMobileNet, MiniSwin
from hubbench.hubs.base import HUBS, Hub
from hubbench.hubs.mini import HUB_VERSION, IMAGE_SIZE, MINI_RESNET, Arch, Pretrained, Pretraining, self_built_hub
from hubbench.hubs.sources import Detection, Supervised

MOBILENET = Arch.of("mobilenet", MiniMobileNet, 1, blocks=MOBILENET_BLOCKS, out_channels=128)
CONVNEXT = Arch.of("convnext", MiniConvNeXt, 1, dims=(64, 128), depths=(1, 2))
SWIN = Arch.of("swin", MiniSwin, 1, dims=(48, 96), depths=(2, 2), heads=(2, 4))

# (source name, architecture, source task, description)
SOURCES = (
    ("detection", MINI_RESNET, Detection(), "MiniResNet (Mask R-CNN R50-like): "),
    ("mobilenet", MOBILENET, Supervised(), "MobileNetV3-like: "),
    ("convnext", CONVNEXT, Supervised(), "ConvNeXt-like: "),
    ("swin", SWIN, Supervised(), "Swin-like: "),
)


def mini_hetero_hub(name: str = "mini-hetero", cfg: Pretraining | None = None) -> Hub:
    cfg = cfg or Pretraining()
    sources = tuple((Pretrained(source, task, arch, cfg, name), prefix + task.description)
                    for source, arch, task, prefix in SOURCES)
    return self_built_hub(name, "four architecture families (ResNet, MobileNet, ConvNeXt, Swin) pre-trained by "
                                "hubbench", sources,
                          {"version": HUB_VERSION, "image_size": IMAGE_SIZE,
                           "archs": {source: arch.key for source, arch, _, _ in SOURCES},
                           "pretraining": dataclasses.asdict(cfg)})


HUBS.register("mini-hetero")(mini_hetero_hub)
