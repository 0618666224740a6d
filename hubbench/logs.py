"""Where hubbench's messages go. The library logs them (`logging`, under the `hubbench` logger): a cell's start and
end and its training's progress lines when they go to a log file (`hubbench.progress`), jobs submitted or requeued,
a checkpoint that does not load, a record file skipped. Whoever runs the library decides where they go: the command
line, its worker processes and its cluster jobs write each one as a plain line on stderr (`to_stderr`), as hubbench
always showed them; a Python program configures `logging` as it likes (level INFO shows the progress lines).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER = "hubbench"


class Stderr(logging.StreamHandler):
    """Writes each record to `sys.stderr` as it is when the record comes (a redirection, pytest's capture), as
    `logging.lastResort` does."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


@contextlib.contextmanager
def to_stderr() -> Iterator[None]:
    """Within the block, each message of level INFO or above is a plain line on stderr (once, in nested blocks)."""
    logger = logging.getLogger(LOGGER)
    if any(isinstance(h, Stderr) for h in logger.handlers):
        yield
        return
    handler, level = Stderr(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
