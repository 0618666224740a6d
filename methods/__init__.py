"""Methods: HOW knowledge is transferred.

Importing this package registers every module of it and every method an installed package
declares under the `hubbench.methods` entry point group.
"""

from hubbench.discovery import import_submodules, load_entry_points
from methods.base import METHODS, FinetunedSource, Method, TaskModel, parse_spec, register, task_model

import_submodules(__name__, __path__)
load_entry_points("hubbench.methods")  # methods of installed packages

__all__ = ["METHODS", "FinetunedSource", "Method", "TaskModel", "parse_spec", "register", "task_model"]
