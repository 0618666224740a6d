"""Hubs: what knowledge is transferred FROM. Importing this package registers them."""

from hubs import mini  # noqa: F401  (registration)
from hubs.base import HUBS, Hub, Source, get_hub

__all__ = ["HUBS", "Hub", "Source", "get_hub"]
