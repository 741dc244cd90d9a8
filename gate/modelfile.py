"""Load a logged scikit-learn model safely: skops only, with our own trusted types.

MLflow's loader would trust the list of types stored inside the model, which the
model's author controls; here the list is the gate's, and anything else is refused
before a single object of the file is built.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from gate.errors import InputError


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    input_columns: tuple[str, ...]   # from the signature; empty when none was logged


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    import yaml

    # libyaml's safe loader when built in: ten times faster than the pure-Python one
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load((model_dir / "MLmodel").read_text(), Loader=loader) or {}
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


def skops_file(mlmodel: dict[str, Any], label: str) -> str:
    """The model file MLmodel names, relative to the model folder, if it is skops."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise InputError(f"{label}: saved as {fmt or 'an unknown format'!s}, not skops; "
                         "the gate loads only skops models (pickle can run arbitrary code)")
    name = flavor.get("pickled_model", "model.skops")
    # the name is the model author's: it must stay inside the model folder
    parts = PurePosixPath(str(name)).parts
    if not isinstance(name, str) or not parts or parts[0] == "/" or ".." in parts:
        raise InputError(f"{label}: MLmodel names {str(name)[:100]!r} as its model file, "
                         "which is not a path inside the model folder")
    return name


def vet(model_dir: Path, trusted: Iterable[str], label: str) -> tuple[Path, dict[str, Any]]:
    """The model file and MLmodel, if it is a skops file asking only for trusted types."""
    mlmodel = read_mlmodel(model_dir)
    model_file = model_dir / skops_file(mlmodel, label)
    try:
        refused = untrusted_types(model_file, trusted)
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    if refused:
        raise _refusal(label, refused)
    return model_file, mlmodel


def load(model_dir: Path, trusted: Iterable[str], label: str) -> LoadedModel:
    """The estimator and its input columns; InputError if it is not a safe skops file.

    skops.io.load audits the file's types against `trusted` before it builds anything,
    so the file is parsed once; only a refusal parses it again, to name the types.
    """
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    trusted = list(trusted)
    mlmodel = read_mlmodel(model_dir)
    model_file = model_dir / skops_file(mlmodel, label)
    try:
        estimator = skops.io.load(str(model_file), trusted=trusted)
    except UntrustedTypesFoundException:
        raise _refusal(label, untrusted_types(model_file, trusted)) from None
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    return LoadedModel(estimator, input_columns(mlmodel))


def _refusal(label: str, refused: list[str]) -> InputError:
    return InputError(f"{label}: needs untrusted types {', '.join(refused)}; refusing to "
                      "load it (add them to [model] trusted_types only if you trust them)")
