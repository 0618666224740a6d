"""hubbench: a benchmark harness for transferring knowledge from a hub of pre-trained models.

This package holds the layer-neutral pieces every other package builds on: registries,
atomic file I/O, the record format (`hubbench.record`), the figure kit (`hubbench.figures`), seeding,
the one training loop, and the synthetic image world that both the mini hub's source tasks and the
synthetic target tasks are drawn from.
"""

__version__ = "0.1.0"
