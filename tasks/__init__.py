"""Target tasks: what knowledge is transferred TO. Importing this package registers every task module."""

from hubbench.discovery import import_submodules
from hubbench.tasks.base import TASKS, ClassificationTask, Protocol, Split, Task

import_submodules(__name__, __path__)

__all__ = ["TASKS", "ClassificationTask", "Protocol", "Split", "Task"]
