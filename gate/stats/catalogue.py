"""What the gate knows about a metric by name, and the inputs a classification metric takes.

A leaf module (no NumPy at import) so that config validation can ask "is `log_loss`
higher-is-better?" without loading the statistics engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

AVERAGES = ("binary", "macro", "weighted")

# name -> (direction, needs class probabilities, classification)
_CATALOGUE: dict[str, tuple[str, bool, bool]] = {
    "mse": ("lower", False, False),
    "rmse": ("lower", False, False),
    "mae": ("lower", False, False),
    "r2": ("higher", False, False),
    "mape": ("lower", False, False),
    "accuracy": ("higher", False, True),
    "balanced_accuracy": ("higher", False, True),
    "precision": ("higher", False, True),
    "recall": ("higher", False, True),
    "f1": ("higher", False, True),
    "log_loss": ("lower", True, True),
    "brier": ("lower", True, True),
    "roc_auc": ("higher", True, True),
    "average_precision": ("higher", True, True),
}
# mlflow.models.evaluate and sklearn spell them out; a gate.toml may use either name.
ALIASES = {
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
    "mean_absolute_error": "mae",
    "r2_score": "r2",
    "mean_absolute_percentage_error": "mape",
    "accuracy_score": "accuracy",
    "balanced_accuracy_score": "balanced_accuracy",
    "precision_score": "precision",
    "recall_score": "recall",
    "f1_score": "f1",
    "brier_score_loss": "brier",
    "roc_auc_score": "roc_auc",
    "average_precision_score": "average_precision",
}
NAMES = tuple(_CATALOGUE)


@dataclass(frozen=True)
class ClassScores:
    """One model's output on the eval rows."""

    labels: "np.ndarray"            # (n,) predicted labels, same kind as y_true
    proba: "np.ndarray | None"      # (n, k) class probabilities in `classes` order
    classes: tuple[Any, ...]        # the k class labels (the model's classes_)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str                  # "lower" | "higher"
    average: str | None = None      # binary (2 classes) | macro | weighted (MLflow's default)
    pos_label: Any = None           # binary positive class; default: the larger class


def canonical(metric: str) -> str | None:
    """The catalogue name of `metric` (resolving aliases), or None when unknown."""
    name = ALIASES.get(metric, metric)
    return name if name in _CATALOGUE else None


def supports(metric: str) -> bool:
    """Whether `metric` has a paired per-row path (regression or classification)."""
    return canonical(metric) is not None


def known_direction(metric: str) -> str | None:
    name = canonical(metric)
    return _CATALOGUE[name][0] if name else None


def needs_proba(metric: str) -> bool:
    name = canonical(metric)
    return name is not None and _CATALOGUE[name][1]


def is_classification(metric: str) -> bool:
    name = canonical(metric)
    return name is not None and _CATALOGUE[name][2]
