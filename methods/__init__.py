"""Methods: HOW knowledge is transferred. Importing this package registers every method module."""

from hubbench.discovery import import_submodules
from methods.base import METHODS, FinetunedSource, Method, TaskModel, parse_spec, register, task_model

import_submodules(__name__, __path__)

__all__ = ["METHODS", "FinetunedSource", "Method", "TaskModel", "parse_spec", "register", "task_model"]
