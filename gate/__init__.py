"""Model gate: a CI quality gate for models tracked in MLflow.

`gate.log_evaluation(...)` is the public helper a trainer calls to log what the
gate's paired comparison needs (see `gate.contract` and README "Bring your own trainer").
"""
from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = ["log_evaluation"]


def log_evaluation(*args: Any, **kwargs: Any) -> Any:
    # imported on call: `python -m gate` must not pay for pandas and MLflow's fluent API
    from gate.evaluation_logging import log_evaluation as log

    return log(*args, **kwargs)


log_evaluation.__doc__ = "See gate.evaluation_logging.log_evaluation."
