"""Every metric the gate compares row by row, one entry each: its name and the other
names a gate.toml may use (mlflow's and sklearn's long ones), which way is better,
whether it scores classes and needs their probabilities, and how it is computed.

Adding a metric is one `Metric` entry below, or `register(Metric(...))` from outside
(a plugin, a test), plus its function when it is new math: a `regression.RowSums` for
numeric predictions, a `classmetrics` (or `rankparts`) builder for class labels or
probabilities.
Config validation asks this module for directions; the engine asks it for the
implementation. Imports NumPy (through the implementations), never the engine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.stats import classmetrics
from gate.stats import rankparts
from gate.stats import regression as rg
from gate.stats.specs import AVERAGES, DIRECTIONS, ClassScores, MetricSpec

__all__ = ["AVERAGES", "ClassScores", "Metric", "MetricSpec", "canonical", "is_classification",
           "known_direction", "lookup", "names", "needs_proba", "register", "supports",
           "unregister"]

FINITE = "a value is not finite"


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str                          # "lower" | "higher"
    aliases: tuple[str, ...] = ()           # other names a gate.toml may use
    sums: rg.RowSums | None = None          # on numeric predictions (or labels as numbers)
    builder: classmetrics.Builder | None = None     # on class labels and probabilities
    needs_proba: bool = False
    undefined: str = FINITE                 # why a value can be undefined, for the error

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction must be 'lower' or 'higher', "
                             f"not {self.direction!r}")
        if self.sums is None and self.builder is None:
            raise ValueError(f"metric {self.name}: give its sums or its builder")

    @property
    def classification(self) -> bool:
        return self.builder is not None

    def __call__(self, y_true: Any, pred: Any) -> float:
        """The metric on numeric (y, pred), all rows."""
        return self._sums()(y_true, pred)

    def batch(self, y_true: Any, pred: Any, weights: Any) -> Any:
        """The metric under each row of `weights` (resamples x rows)."""
        return self._sums().batch(y_true, pred, weights)

    def _sums(self) -> rg.RowSums:
        if self.sums is None:
            raise TypeError(f"{self.name} is scored on class labels, not numbers")
        return self.sums


_ENTRIES = (
    Metric("mse", "lower", ("mean_squared_error",), sums=rg.RowSums(rg.squared, rg.mean)),
    Metric("rmse", "lower", ("root_mean_squared_error",),
           sums=rg.RowSums(rg.squared, rg.root_mean)),
    Metric("mae", "lower", ("mean_absolute_error",), sums=rg.RowSums(rg.absolute, rg.mean)),
    Metric("r2", "higher", ("r2_score",), sums=rg.RowSums(rg.r2_columns, rg.r2),
           undefined="the target is constant"),
    Metric("mape", "lower", ("mean_absolute_percentage_error",),
           sums=rg.RowSums(rg.absolute_pct, rg.mean)),
    # numeric labels also score as plain numbers (regression-style predictions)
    Metric("accuracy", "higher", ("accuracy_score",), sums=rg.RowSums(rg.correct, rg.mean),
           builder=classmetrics.accuracy),
    Metric("balanced_accuracy", "higher", ("balanced_accuracy_score",),
           builder=classmetrics.balanced_accuracy),
    Metric("precision", "higher", ("precision_score",), builder=classmetrics.per_class),
    Metric("recall", "higher", ("recall_score",), builder=classmetrics.per_class),
    Metric("f1", "higher", ("f1_score",), builder=classmetrics.per_class),
    Metric("log_loss", "lower", builder=classmetrics.log_loss, needs_proba=True),
    Metric("brier", "lower", ("brier_score_loss",), builder=classmetrics.brier,
           needs_proba=True),
    Metric("roc_auc", "higher", ("roc_auc_score",), builder=rankparts.ranked,
           needs_proba=True, undefined="a class has no rows, or only one class occurs"),
    Metric("average_precision", "higher", ("average_precision_score",),
           builder=rankparts.ranked, needs_proba=True,
           undefined="a class has no rows, or only one class occurs"),
)
_CATALOGUE: dict[str, Metric] = {}
_NAMES: dict[str, str] = {}         # every name and alias -> the catalogue name


def register(metric: Metric) -> Metric:
    """Add `metric` to the catalogue: the config accepts it and the engine scores it."""
    taken = [n for n in (metric.name, *metric.aliases) if n in _NAMES]
    if taken:
        raise ValueError(f"metric {metric.name}: {', '.join(taken)} already named")
    _CATALOGUE[metric.name] = metric
    _NAMES.update({n: metric.name for n in (metric.name, *metric.aliases)})
    return metric


def unregister(name: str) -> None:
    """Remove the metric called `name` (or an alias of it) and all its names."""
    metric = _CATALOGUE.pop(_NAMES[name])
    for n in (metric.name, *metric.aliases):
        del _NAMES[n]


for _entry in _ENTRIES:
    register(_entry)


def lookup(metric: str) -> Metric | None:
    """The catalogue entry of `metric` (a name or an alias), or None when unknown."""
    name = _NAMES.get(metric)
    return _CATALOGUE[name] if name is not None else None


def names() -> tuple[str, ...]:
    return tuple(_CATALOGUE)


def canonical(metric: str) -> str | None:
    """The catalogue name of `metric` (resolving aliases), or None when unknown."""
    return _NAMES.get(metric)


def supports(metric: str) -> bool:
    """Whether `metric` has a paired per-row path (regression or classification)."""
    return metric in _NAMES


def known_direction(metric: str) -> str | None:
    entry = lookup(metric)
    return entry.direction if entry else None


def needs_proba(metric: str) -> bool:
    entry = lookup(metric)
    return entry is not None and entry.needs_proba


def is_classification(metric: str) -> bool:
    entry = lookup(metric)
    return entry is not None and entry.classification
