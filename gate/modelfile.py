"""Load a logged scikit-learn model safely: skops only, with our own trusted types.

MLflow's loader would trust the list of types stored inside the model, which the
model's author controls; here the list is the gate's, and anything else is refused
before a single object of the file is built.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gate.errors import InputError


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    input_columns: tuple[str, ...]   # from the signature; empty when none was logged


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    import yaml

    try:
        return yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{model_dir}: unreadable MLmodel file ({type(exc).__name__})") \
            from None


def input_columns(mlmodel: dict[str, Any]) -> tuple[str, ...]:
    raw = (mlmodel.get("signature") or {}).get("inputs")
    if not raw:
        return ()
    try:
        spec = json.loads(raw)
    except ValueError:
        return ()
    return tuple(col["name"] for col in spec if isinstance(col, dict) and "name" in col)


def untrusted_types(model_file: Path, trusted: Iterable[str]) -> list[str]:
    import skops.io

    found = skops.io.get_untrusted_types(file=str(model_file))
    allowed = set(trusted)
    return sorted(t for t in found if t not in allowed)


def vet(model_dir: Path, trusted: Iterable[str], label: str) -> tuple[Path, dict[str, Any]]:
    """The model file and MLmodel, if it is a skops file asking only for trusted types."""
    mlmodel = read_mlmodel(model_dir)
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise InputError(f"{label}: saved as {fmt or 'an unknown format'!s}, not skops; "
                         "the gate loads only skops models (pickle can run arbitrary code)")
    model_file = model_dir / flavor.get("pickled_model", "model.skops")
    try:
        refused = untrusted_types(model_file, trusted)
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    if refused:
        raise InputError(f"{label}: needs untrusted types {', '.join(refused)}; refusing to "
                         "load it (add them to [model] trusted_types only if you trust them)")
    return model_file, mlmodel


def load(model_dir: Path, trusted: Iterable[str], label: str) -> LoadedModel:
    """The estimator and its input columns; InputError if it is not a safe skops file."""
    import skops.io

    trusted = list(trusted)
    model_file, mlmodel = vet(model_dir, trusted, label)
    estimator = skops.io.load(str(model_file), trusted=trusted)
    return LoadedModel(estimator, input_columns(mlmodel))
