"""What every flavor module shares: the `Flavor` it defines, the `ModelFile` the gate
reads from an MLmodel file, and the `Outputs` a loaded model gives on the eval rows.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Protocol

from gate.errors import InputError


@dataclass(frozen=True)
class ModelFile:
    flavor: str                     # sklearn, lightgbm, xgboost, python_function, pytorch...
    format: str                     # skops, lgb, ubj, json, cloudpickle, pickle, unknown
    loader: str | None              # the flavor whose safe loader reads it, else None
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


@dataclass(frozen=True)
class Found:
    """What a flavor reads from its own MLmodel block."""

    format: str
    data: str                       # its model file, checked to stay in the model folder
    safe: bool                      # whether the flavor's loader reads this format
    model_class: str = ""


@dataclass(frozen=True)
class Outputs:
    """A model's output on the eval rows."""

    values: Any             # (n,) regression values or predicted class labels
    proba: Any | None       # (n, k) class probabilities, or None
    classes: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.values)


class Loaded(Protocol):
    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def outputs(self, features: Any) -> Outputs: ...


@dataclass(frozen=True)
class Flavor:
    """A model flavor the gate loads itself, without running code from the model file.

    A module of gate.evidence.flavors that defines `FLAVOR = Flavor(...)` is found by
    the registry; `gate.evidence.flavors.register` adds one from elsewhere.
    """

    key: str                # the MLmodel `flavors` key it claims
    priority: int           # when a model has several flavors, the lowest claims it
    # its MLmodel block and the model's label (for errors) -> format, file, safe or not
    describe: Callable[[dict[str, Any], str], Found]
    # the Python module its loader imports for this model (is the loader usable here?)
    needs: Callable[[ModelFile], str]
    # model folder, model, trusted skops types, label -> the loaded model
    load: Callable[[Path, ModelFile, Iterable[str], str], Loaded]


def text(value: Any, default: str) -> str:
    return word(value, 40) if isinstance(value, str) and value else default


def word(value: Any, limit: int) -> str:
    """A flavor or format name as the model's author wrote it, reduced to characters that
    mean nothing in markdown or a terminal: it is shown in reports and verdict lines."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))[:limit] or "unknown"


def inside(name: Any, label: str) -> str:
    """The model file MLmodel names: the model's author chose it, so it must stay inside
    the model folder."""
    parts = PurePosixPath(str(name)).parts if isinstance(name, str) else ()
    if not parts or parts[0] == "/" or ".." in parts or "\\" in str(name):
        raise InputError(f"{label}: MLmodel names {str(name)[:100]!r} as its model file, "
                         "which is not a path inside the model folder")
    return str(name)


def data_path(model_dir: Path, model: ModelFile) -> Path:
    # a flavor's loader runs only on a model its describe gave a data file
    assert model.data is not None
    return model_dir / model.data


def optional(module: str, label: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{label}: {module} is not installed beside the gate") from None


def probabilities(raw: Any, binary: bool) -> Outputs:
    """A booster's raw output: regression values, P(class 1), or (n, k) probabilities."""
    import numpy as np

    if raw.ndim == 2 and raw.shape[1] > 1:
        return Outputs(raw.argmax(axis=1), raw, tuple(range(raw.shape[1])))
    raw = raw.reshape(-1)
    if not binary:
        return Outputs(raw, None, ())
    proba = np.column_stack((1.0 - raw, raw))
    return Outputs((raw > 0.5).astype(int), proba, (0, 1))
