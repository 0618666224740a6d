"""hubbench: a benchmark harness for transferring knowledge from a hub of pre-trained models.

This package holds the layer-neutral pieces every other package builds on: registries,
atomic file I/O, seeding, the one training loop, and the synthetic image world that both the
mini hub's source tasks and the synthetic target tasks are drawn from.
"""

__version__ = "0.1.0"

# The record format: the contract between the runner that writes records and the leaderboard that reads them.
RECORD_SCHEMA = "hubbench.record/1"
