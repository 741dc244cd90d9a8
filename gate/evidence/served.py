"""What serving loads must be what the report names: the `python_function` block of
MLmodel (the entry point of `mlflow.pyfunc.load_model` and `mlflow models serve`) and
the flavor block the gate describes must name the same model file, and no path in
MLmodel may leave the model's folder. Read from MLmodel's text only: nothing of the
model is parsed here.
"""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Iterator

from gate.errors import InputError
from gate.evidence import flavors

PYFUNC = "python_function"
# the keys of a flavor or pyfunc block that name files or folders of the model
PATH_KEYS = ("pickled_model", "data", "model_path", "python_model", "code", "model_code_path")


def check(mlmodel: dict[str, Any], label: str) -> None:
    """InputError (exit 2, one line) when a path leaves the folder, or the described
    flavor's file is not the one the python_function block loads."""
    blocks: dict[str, dict[str, Any]] = mlmodel["flavors"]
    for flavor, block in blocks.items():
        for key, path in _paths(block):
            if not _inside(path):
                raise InputError(f"{label}: MLmodel's {_name(flavor)} block names "
                                 f"{path[:100]!r} ({key}), which is not a path inside the "
                                 "model folder")
    pyfunc = blocks.get(PYFUNC)
    claimed = flavors.claiming(blocks)
    if pyfunc is None or claimed is None:
        return
    own = claimed.describe(blocks[claimed.key], label).data
    served = pyfunc.get("model_path", pyfunc.get("data"))
    loader = pyfunc.get("loader_module")
    if loader != f"mlflow.{claimed.key}":
        raise InputError(f"{label}: MLmodel's {PYFUNC} block loads {_text(loader)} "
                         f"({_text(served)}), not mlflow.{claimed.key} ({own!r}): what "
                         "serving loads is not the model the gate would describe")
    if served is not None and _norm(str(served)) != _norm(own):
        raise InputError(f"{label}: MLmodel's {claimed.key} block names {own!r} but its "
                         f"{PYFUNC} block (what serving loads) names {_text(served)}")


def _paths(block: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key in PATH_KEYS:
        value = block.get(key)
        if isinstance(value, str) and value:
            yield key, value
        elif isinstance(value, list):
            yield from ((key, str(v)) for v in value)
    artifacts = block.get("artifacts")
    if isinstance(artifacts, dict):
        for name, spec in artifacts.items():
            path = spec.get("path") if isinstance(spec, dict) else None
            if isinstance(path, str):
                yield f"artifacts.{_name(name)}", path


def _inside(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return bool(parts) and parts[0] != "/" and ".." not in parts and "\\" not in path \
        and ":" not in parts[0]


def _norm(path: str) -> str:
    return PurePosixPath(path).as_posix().removeprefix("./")


def _name(value: Any) -> str:
    return flavors.base.word(value, 60)


def _text(value: Any) -> str:
    return repr(str(value)[:100]) if value is not None else "nothing"
