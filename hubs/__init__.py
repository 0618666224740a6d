"""Hubs: what knowledge is transferred FROM. The registry `HUBS` imports every hub module when first used."""

from hubbench.hubs.base import HUBS, Hub, Source, get_hub

__all__ = ["HUBS", "Hub", "Source", "get_hub"]
