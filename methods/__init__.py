"""Methods: HOW knowledge is transferred. Importing this package registers them."""

from methods import ensemble_i, finetune, scratch  # noqa: F401  (registration)
from methods.base import METHODS, FinetunedSource, Method, TaskModel, parse_spec, register, task_model

__all__ = ["METHODS", "FinetunedSource", "Method", "TaskModel", "parse_spec", "register", "task_model"]
