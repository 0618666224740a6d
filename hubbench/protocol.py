"""A task's training protocol: how every method is trained and tested on it.

Its own module, without torch, so that suites, `--set` overrides and `hubbench status` check and compare
protocols without importing a task's code (`hubbench.tasks.base.Protocol` is this one)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hubbench.errors import InputError
from hubbench.schedule import Schedule

VIEWS = (1, 2, 5, 10)  # the test views a protocol may ask for (see `hubbench.tasks.crops.views`)


@dataclass(frozen=True, kw_only=True)
class Protocol(Schedule):
    """How every method is trained and tested on a task (the papers' recipe, scaled down): how the model is
    optimised (`hubbench.schedule.Schedule`'s fields, SGD with step decay by default), and the data's side.

    `resize`, `random_resized_crop` and `test_views` are the papers' ImageNet-style pipeline, used by
    tasks that decode image files per batch (`tasks.files`): squash to `resize` x `resize`, train
    on crops of random area and aspect (else the centre) at `image_size`, test on `test_views`
    crops (1: the centre; 2: and its mirror; 5: the centre and four corners; 10: and their mirrors)
    whose outputs are summed. Every field is checked for its type and range, so suites, `--set` overrides
    and tasks' own protocols are all refused before any training, with the field's name and what it must be.
    """

    image_size: int
    crop_padding: int = 0
    flip: bool = False
    resize: int = 0  # 0: no squash before cropping, images come at `image_size`
    random_resized_crop: bool = False
    test_views: int = 1
    eval_every: int = 0
    eval_batch_size: int = 256
    checkpoint_every: int = 50

    LIMITS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {**Schedule.LIMITS,
        "image_size": (lambda v: v >= 1, "at least 1"),
        "crop_padding": (lambda v: v >= 0, "at least 0"),
        "resize": (lambda v: v >= 0, "0 or at least image_size"),
        "test_views": (lambda v: v in VIEWS, f"one of {VIEWS}"),
        "eval_every": (lambda v: v >= 0, "at least 0 (0: no evaluation during training)"),
        "eval_batch_size": (lambda v: v >= 1, "at least 1"),
        "checkpoint_every": (lambda v: v >= 1, "at least 1"),
    }

    def __post_init__(self):
        super().__post_init__()
        if 0 < self.resize < self.image_size:
            raise InputError(f"protocol field 'resize' must be 0 or at least image_size ({self.image_size}), "
                             f"got {self.resize}")

    def replace(self, **overrides: Any) -> Protocol:
        """A copy with `overrides` applied; unknown fields, wrong types and values out of range are errors."""
        if not overrides:
            return self
        names = [f.name for f in dataclasses.fields(self)]
        for key in overrides:
            if key not in names:
                raise InputError(f"unknown protocol field {key!r} (choose from: {', '.join(names)})")
        return dataclasses.replace(self, **overrides)
