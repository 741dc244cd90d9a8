"""What a logged model is, read from its MLmodel file without loading anything of it.

The flavor and serialization format decide whether the gate can compute the model's
predictions itself (a safe loader in `gate.loaders`) or must use what the run logged.
No flavor is refused here; a model file name that leaves the model folder is.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gate.errors import InputError

MAX_MLMODEL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ModelFile:
    flavor: str                     # sklearn, lightgbm, xgboost, python_function, pytorch...
    format: str                     # skops, lgb, ubj, json, cloudpickle, pickle, unknown
    loader: str | None              # the key of a safe loader in gate.loaders, else None
    data: str | None                # the file that loader reads, inside the model folder
    input_columns: tuple[str, ...]  # from the signature; empty when none was logged
    model_class: str = ""

    @property
    def key(self) -> str:
        """`flavor:format`, what `[model] allowed_flavors` matches."""
        return f"{self.flavor}:{self.format}"

    @property
    def description(self) -> str:
        return f"{self.flavor} / {self.format}"


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
    flavors: dict[str, dict[str, Any]] = mlmodel["flavors"]
    columns = input_columns(mlmodel)
    if "sklearn" in flavors:
        conf = flavors["sklearn"]
        fmt = _text(conf.get("serialization_format"), "pickle")
        data = _inside(conf.get("pickled_model", "model.skops"), label)
        return ModelFile("sklearn", fmt, "sklearn" if fmt == "skops" else None, data, columns)
    if "lightgbm" in flavors:
        conf = flavors["lightgbm"]
        data = _inside(conf.get("data", "model.lgb"), label)
        fmt = "lgb" if data.endswith(".lgb") else ("skops" if data.endswith(".skops")
                                                   else "pickle")
        return ModelFile("lightgbm", fmt, None if fmt == "pickle" else "lightgbm", data,
                         columns, _text(conf.get("model_class"), ""))
    if "xgboost" in flavors:
        conf = flavors["xgboost"]
        fmt = _text(conf.get("model_format"), "xgb")
        data = _inside(conf.get("data", f"model.{fmt}"), label)
        safe = fmt in ("json", "ubj", "xgb", "deprecated")
        return ModelFile("xgboost", fmt, "xgboost" if safe else None, data, columns,
                         _text(conf.get("model_class"), "xgboost.core.Booster"))
    named = [name for name in flavors if name != "python_function"]
    flavor = named[0] if named else "python_function"
    conf = flavors[flavor]
    fmt = _text(conf.get("serialization_format") or conf.get("pickle_module_name"), "")
    if not fmt:
        fmt = "cloudpickle" if "python_model" in flavors.get("python_function", {}) or \
            "cloudpickle_version" in conf else "unknown"
    return ModelFile(_word(flavor, 60), _word(fmt, 40), None, None, columns)


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


def _text(value: Any, default: str) -> str:
    return _word(value, 40) if isinstance(value, str) and value else default


def _word(value: Any, limit: int) -> str:
    """A flavor or format name as the model's author wrote it, reduced to characters that
    mean nothing in markdown or a terminal: it is shown in reports and verdict lines."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))[:limit] or "unknown"


def _inside(name: Any, label: str) -> str:
    """The model file MLmodel names: the model's author chose it, so it must stay inside
    the model folder."""
    parts = PurePosixPath(str(name)).parts if isinstance(name, str) else ()
    if not parts or parts[0] == "/" or ".." in parts or "\\" in str(name):
        raise InputError(f"{label}: MLmodel names {str(name)[:100]!r} as its model file, "
                         "which is not a path inside the model folder")
    return str(name)
