"""Target tasks: what knowledge is transferred TO. Importing this package registers them."""

from tasks import digits, synthetic  # noqa: F401  (registration)
from tasks.base import TASKS, ClassificationTask, Protocol, Split, Task

__all__ = ["TASKS", "ClassificationTask", "Protocol", "Split", "Task"]
