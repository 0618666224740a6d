"""Hubs: what knowledge is transferred FROM. Importing this package registers every hub module."""

from hubbench.discovery import import_submodules
from hubbench.hubs.base import HUBS, Hub, Source, get_hub

import_submodules(__name__, __path__)

__all__ = ["HUBS", "Hub", "Source", "get_hub"]
