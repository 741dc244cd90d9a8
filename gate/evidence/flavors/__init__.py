"""The model flavors the gate loads itself, one module each.

Every module of this package that defines `FLAVOR = Flavor(...)` (gate.evidence.flavors
.base) is found at import: adding a flavor is adding its module. `register` adds one
defined elsewhere. A model with several flavors is claimed by the registered flavor of
lowest priority among them (sklearn, then lightgbm, then xgboost); a model no flavor
claims is described by `other` and never loaded.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from gate.evidence.flavors.base import Flavor

__all__ = ["Flavor", "claiming", "get", "register", "registered", "unregister"]

_FLAVORS: dict[str, Flavor] = {}


def register(flavor: Flavor) -> Flavor:
    if flavor.key in _FLAVORS:
        raise ValueError(f"flavor {flavor.key!r} is already registered")
    _FLAVORS[flavor.key] = flavor
    return flavor


def unregister(key: str) -> None:
    del _FLAVORS[key]


def registered() -> tuple[Flavor, ...]:
    """The flavors in the order they claim a model: by priority, then key."""
    return tuple(sorted(_FLAVORS.values(), key=lambda f: (f.priority, f.key)))


def get(key: str | None) -> Flavor | None:
    return _FLAVORS.get(key) if key is not None else None


def claiming(blocks: Mapping[str, Any]) -> Flavor | None:
    """The flavor that describes and loads a model with these MLmodel flavor blocks."""
    return next((f for f in registered() if f.key in blocks), None)


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        flavor = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FLAVOR", None)
        if isinstance(flavor, Flavor):
            register(flavor)


_discover()
