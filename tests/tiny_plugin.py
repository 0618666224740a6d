"""Loaded like a user's `--plugin`: the tiny hubs of hubbench.testing (the mini hubs with seconds of pre-training)."""

from hubbench.testing import register_tiny_hubs

register_tiny_hubs()
