"""Model gate: a CI quality gate for models tracked in MLflow.

The public API is what `__all__` lists. `gate.log_evaluation(...)` is the helper a
trainer calls to log what the gate's paired comparison needs (see `gate.contract`, the
artifact names and tags it writes, and README "Bring your own trainer"). Everything
else is internal and may change between minor versions; the command line, its exit
codes, `gate.toml` and the verdict JSON are the stable surface.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The release, semantic: the package metadata reads it (pyproject.toml)
__version__ = "0.3.0"
__all__ = ["__version__", "contract", "log_evaluation"]

if TYPE_CHECKING:   # type checkers and IDEs see the real signature
    from gate import contract
    from gate.evaluation_logging import log_evaluation


def __getattr__(name: str) -> Any:
    # imported on first use: `python -m gate` must not pay for what a trainer needs
    if name == "log_evaluation":
        from gate.evaluation_logging import log_evaluation

        return log_evaluation
    if name == "contract":
        import importlib

        return importlib.import_module("gate.contract")
    raise AttributeError(f"module 'gate' has no attribute {name!r}")
