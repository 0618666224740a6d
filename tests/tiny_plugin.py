"""Loaded like a user's `--plugin`: the mini hubs' code with seconds of pre-training."""

from hubbench.hubs.base import HUBS
from hubbench.hubs.mini import Pretraining, mini_hub
from hubbench.hubs.mini_hetero import mini_hetero_hub

TINY = Pretraining(images=64, iterations=4, batch_size=16)

if "tiny" not in HUBS:
    HUBS.register("tiny")(lambda: mini_hub("tiny", TINY))

if "tiny-hetero" not in HUBS:
    HUBS.register("tiny-hetero")(lambda: mini_hetero_hub("tiny-hetero", TINY))
