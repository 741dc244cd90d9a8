"""Safe model loaders: load a model file without running code from it, so the gate can
compute predictions itself. Each flavor's loader is in its module of
gate.evidence.flavors (sklearn: skops against the gate's trusted types; lightgbm: the
native text model or the skops-saved wrapper; xgboost: native JSON/UBJSON); this module
dispatches to the one a ModelFile names. Nothing here unpickles.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Iterable

from gate.errors import InputError
from gate.evidence import flavors
from gate.evidence.flavors.base import Loaded, ModelFile, Outputs

__all__ = ["TRUSTED_TYPES", "Loaded", "Outputs", "available", "load"]

# Skops refuses anything not on this list; mlflow's own loader would trust the list
# stored inside the model, which the model's author controls.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


def load(model_dir: Path, model: ModelFile, trusted: Iterable[str], label: str) -> Loaded:
    flavor = flavors.get(model.loader)
    if flavor is None:
        raise InputError(f"{label}: no safe loader for {model.description}")
    return flavor.load(model_dir, model, trusted, label)


def available(model: ModelFile) -> bool:
    """Whether a safe loader for `model` exists and its library is installed here."""
    flavor = flavors.get(model.loader)
    return flavor is not None and importlib.util.find_spec(flavor.needs(model)) is not None
