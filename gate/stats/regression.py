"""Metrics of numeric predictions as weighted sums of per-row statistics.

A `RowSums` is a metric given as `columns` (per-row statistics, (n, k), about
`centre`, the target's mean, where that matters) and `combine` (their weighted sums
(..., k) and the total weight -> values): one evaluation is a plain sum, a batch of
bootstrap resamples one matrix product of resample counts with the columns. The
catalogue (gate.stats.catalogue) names each one; a new metric of this kind is a
columns function, perhaps a combine, and one catalogue entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gate.errors import InputError
from gate.stats.parts import SumPart

Array = np.ndarray
Columns = Callable[[Array, Array, float], Array]
Combine = Callable[[Array, Array | float], Array]

MIN_ROWS = 10
# A weighted r2 whose total sum of squares is below this fraction of its raw sum of
# squares has a constant target in that resample (cancellation noise, not spread).
_CONSTANT = 1e-10


@dataclass(frozen=True)
class RowSums:
    columns: Columns
    combine: Combine

    def __call__(self, y_true: Any, pred: Any) -> float:
        """The metric on one (y, pred) pair."""
        y, p = vectors(y_true, pred)
        return float(self.combine(self.columns(y, p, y.mean()).sum(axis=0), float(len(y))))

    def batch(self, y_true: Any, pred: Any, weights: Any) -> Array:
        """The metric under each row of `weights` (resamples x rows, e.g. bootstrap counts)."""
        y, p = vectors(y_true, pred)
        w = np.asarray(weights, dtype=float)
        return self.combine(w @ self.columns(y, p, y.mean()), w.sum(axis=1))

    def part(self, y: Array, p: Array) -> SumPart:
        centre = float(y.mean())
        width = self.columns(y[:1], p[:1], centre).shape[1]
        return SumPart(lambda rows: self.columns(y[rows], p[rows], centre), self.combine,
                       width)


def squared(y: Array, p: Array, centre: float) -> Array:
    return ((p - y) ** 2)[:, None]


def absolute(y: Array, p: Array, centre: float) -> Array:
    return np.abs(p - y)[:, None]


def absolute_pct(y: Array, p: Array, centre: float) -> Array:
    # sklearn's floor on |y|, so a zero target gives a huge, finite term
    return (np.abs(p - y) / np.maximum(np.abs(y), np.finfo(float).eps))[:, None]


def correct(y: Array, p: Array, centre: float) -> Array:
    return (p == y).astype(float)[:, None]


def r2_columns(y: Array, p: Array, centre: float) -> Array:
    # centred on the full-set mean (also when `y` is a chunk of the rows): the total
    # sum of squares is shift invariant, and centring keeps sum(w*y^2) - sum(w*y)^2/W
    # from cancelling away its digits
    centred = y - centre
    return np.column_stack(((p - y) ** 2, centred, centred ** 2))


def mean(sums: Array, weight: Array | float) -> Array:
    return sums[..., 0] / weight


def root_mean(sums: Array, weight: Array | float) -> Array:
    return np.sqrt(sums[..., 0] / weight)


def r2(sums: Array, weight: Array | float) -> Array:
    residual, linear, square = sums[..., 0], sums[..., 1], sums[..., 2]
    total = square - linear ** 2 / weight
    constant = total <= _CONSTANT * square
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(constant, np.nan, 1.0 - residual / np.where(constant, 1.0, total))


def vectors(y_true: Any, pred: Any, what: str = "predictions") -> tuple[Array, Array]:
    y, p = _vector(y_true, "y_true"), _vector(pred, what)
    if len(y) != len(p):
        raise InputError(f"{what} has {len(p)} rows but the target has {len(y)}")
    if len(y) < MIN_ROWS:
        raise InputError(f"{len(y)} eval rows: at least {MIN_ROWS} are needed to compare")
    return y, p


def _vector(values: Any, what: str) -> Array:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what} is not numeric") from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{what} must be one column, not shape {array.shape}")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise InputError(f"{what} has {bad} non-finite value(s) (NaN or inf)")
    return array
