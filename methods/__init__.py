"""Methods: HOW knowledge is transferred, and the API a plugin method is written against.

Importing this package registers every module of it and every method an installed package
declares under the `hubbench.methods` entry point group.
"""

from hubbench.context import Context, FinetunedSource, TaskModel, task_model
from hubbench.discovery import import_submodules, load_entry_points
from hubbench.methods.base import METHODS, Method, parse_spec, register

import_submodules(__name__, __path__)
load_entry_points("hubbench.methods")  # methods of installed packages

__all__ = ["METHODS", "Context", "FinetunedSource", "Method", "TaskModel", "parse_spec", "register", "task_model"]
