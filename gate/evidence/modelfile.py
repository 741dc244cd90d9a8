"""What a logged model is, read from its MLmodel file without loading anything of it.

The flavor and serialization format decide whether the gate can compute the model's
predictions itself (a flavor module of gate.evidence.flavors with a safe loader) or must
use what the run logged. No flavor is refused here; a model file name that leaves the
model folder is.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.errors import InputError
from gate.evidence import flavors
from gate.evidence.flavors import other
from gate.evidence.flavors.base import ModelFile

__all__ = ["MAX_MLMODEL_BYTES", "ModelFile", "describe", "input_columns", "read_mlmodel"]

MAX_MLMODEL_BYTES = 1024 * 1024


def read_mlmodel(model_dir: Path, label: str = "model") -> dict[str, Any]:
    import yaml

    path = model_dir / "MLmodel"
    try:
        if path.stat().st_size > MAX_MLMODEL_BYTES:
            raise InputError(f"{label}: MLmodel file over {MAX_MLMODEL_BYTES} bytes")
        # libyaml's safe loader when built in: ten times faster than the pure-Python one
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except InputError:
        raise
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise InputError(f"{label}: unreadable MLmodel file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{label}: MLmodel file is not a mapping")
    if not isinstance(data.get("flavors"), dict) or not data["flavors"]:
        raise InputError(f"{label}: MLmodel file has no 'flavors' mapping")
    if not all(isinstance(v, dict) for v in data["flavors"].values()):
        raise InputError(f"{label}: MLmodel file has a flavor that is not a mapping")
    return data


def describe(mlmodel: dict[str, Any], label: str) -> ModelFile:
    blocks: dict[str, dict[str, Any]] = mlmodel["flavors"]
    columns = input_columns(mlmodel)
    flavor = flavors.claiming(blocks)
    if flavor is None:
        name, fmt = other.describe(blocks)
        return ModelFile(name, fmt, None, None, columns)
    found = flavor.describe(blocks[flavor.key], label)
    return ModelFile(flavor.key, found.format, flavor.key if found.safe else None, found.data,
                     columns, found.model_class)


def input_columns(mlmodel: dict[str, Any]) -> tuple[str, ...]:
    signature = mlmodel.get("signature")
    raw = signature.get("inputs") if isinstance(signature, dict) else None
    if not isinstance(raw, str) or not raw:
        return ()
    try:
        spec = json.loads(raw)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(spec, list):
        return ()
    return tuple(str(col["name"]) for col in spec if isinstance(col, dict) and "name" in col)
