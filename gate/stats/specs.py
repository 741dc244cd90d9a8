"""What a comparison is asked to score: a metric rule, and one classifier's output.

A leaf (no NumPy at import): the config, the catalogue and the metric implementations
all speak these types, so none of them has to import another for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

AVERAGES = ("binary", "macro", "weighted")
DIRECTIONS = ("lower", "higher")


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
