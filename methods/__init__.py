"""Methods: HOW knowledge is transferred, and the API a plugin method is written against.

Importing this package registers every module of it (the methods' declarations, which import no torch) and
every method an installed package declares under the `hubbench.methods` entry point group. What a method's
`fit` builds with (`Context`, `TaskModel`, `task_model`, `Ensemble`) imports torch, so it loads when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hubbench.artifacts import FinetunedSource
from hubbench.discovery import import_submodules, load_entry_points
from hubbench.methods.base import METHODS, Method, parse_spec, register

if TYPE_CHECKING:
    from hubbench.context import Context
    from hubbench.models import Ensemble, TaskModel, task_model

import_submodules(__name__, __path__)
load_entry_points("hubbench.methods")  # methods of installed packages

LAZY = {"Context": "hubbench.context", "Ensemble": "hubbench.models", "TaskModel": "hubbench.models",
        "task_model": "hubbench.models"}  # name -> the module (it imports torch) that defines it

__all__ = ["METHODS", "Context", "Ensemble", "FinetunedSource", "Method", "TaskModel", "parse_spec", "register",
           "task_model"]


def __getattr__(name: str) -> Any:
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
