"""Target tasks: what knowledge is transferred TO. Importing this package registers every task module."""

from hubbench.tasks.base import TASKS, ClassificationTask, Protocol, Split, Task

from hubbench.discovery import import_submodules

import_submodules(__name__, __path__)

__all__ = ["TASKS", "ClassificationTask", "Protocol", "Split", "Task"]
