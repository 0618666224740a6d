"""Loaded like a user's `--plugin`: a `tiny` hub (the mini hub's code, seconds of pre-training)."""

from hubs.base import HUBS
from hubs.mini import Pretraining, mini_hub
from hubs.mini_hetero import mini_hetero_hub

if "tiny" not in HUBS:
    HUBS.register("tiny")(lambda: mini_hub("tiny", Pretraining(images=64, iterations=4, batch_size=16)))

if "tiny-hetero" not in HUBS:  # the mini-hetero hub's code, the tiny hub's pre-training
    HUBS.register("tiny-hetero")(
        lambda: mini_hetero_hub("tiny-hetero", Pretraining(images=64, iterations=4, batch_size=16)))
