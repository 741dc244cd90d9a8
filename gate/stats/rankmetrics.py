"""ROC AUC and average precision under row weights, for one ranking of the rows.

The rows are sorted once by score. Under any row weights (bootstrap counts) both
metrics are then sums over runs of tied scores of weighted positive and negative
counts and their cumulative sums: exactly sklearn's values with `sample_weight`,
O(n) per resample with no re-sort. `*_influence` gives the derivative of the metric
with respect to each row's weight at weight 1, for the linearised interval.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Ranking:
    order: Array        # row indices by descending score (stable)
    starts: Array       # sorted position where each run of tied scores begins
    positive: Array     # (n,) bool, in sorted order
    group: Array        # (n,) run index of each sorted position


def ranking(score: Array, positive: Array) -> Ranking:
    order = np.argsort(-score, kind="stable")
    # int32 indices halve what a ranking holds (ten million rows: 120 MB, not 240)
    if len(order) < 2 ** 31:
        order = order.astype(np.int32)
    ranked = score[order]
    new = np.empty(len(ranked), dtype=bool)
    new[:1] = True
    np.not_equal(ranked[1:], ranked[:-1], out=new[1:])
    del ranked
    group = np.cumsum(new, dtype=order.dtype)
    group -= 1
    return Ranking(order, np.flatnonzero(new).astype(order.dtype), positive[order].astype(bool),
                   group)


def _runs(r: Ranking, weights: Array) -> tuple[Array, Array, Array, Array]:
    """Per run of ties, (b, runs) each: weighted positives and all rows, and both
    summed over this run and every run ranked above it.

    Cumulative sums along the rows, read at each run's end (reduceat along an axis is
    several times slower); without ties every row is its own run and nothing is read
    back. Counts are whole numbers, so every sum here is exact.
    """
    total = np.take(weights, r.order, axis=1)   # C order, unlike weights[:, order]
    pos = total * r.positive
    cum_total, cum_pos = np.cumsum(total, axis=1), np.cumsum(pos, axis=1)
    if len(r.starts) == len(r.order):
        return pos, total, cum_pos, cum_total
    ends = np.r_[r.starts[1:], len(r.order)] - 1
    cum_total, cum_pos = cum_total[:, ends], cum_pos[:, ends]
    return (np.diff(cum_pos, axis=1, prepend=0.0), np.diff(cum_total, axis=1, prepend=0.0),
            cum_pos, cum_total)


def auc(r: Ranking, weights: Array) -> Array:
    """ROC AUC under each row of `weights` (b, n); NaN where a class has no weight."""
    pos, total, cum_pos, cum_total = _runs(r, weights)
    total -= pos        # now the negatives
    # a tie counts half, as the trapezoid of sklearn's ROC curve does
    pos *= 0.5
    np.subtract(cum_pos, pos, out=pos)
    pairs = np.einsum("ij,ij->i", total, pos)
    n_pos = cum_pos[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return pairs / (n_pos * (cum_total[:, -1] - n_pos))


def average_precision(r: Ranking, weights: Array) -> Array:
    """sklearn's average precision (no interpolation) under each row of `weights`."""
    pos, _, cum_pos, cum_total = _runs(r, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        # a run that no weight reaches yet has 0/0; its positives are 0 too
        precision = np.divide(cum_pos, cum_total, out=np.zeros_like(cum_pos),
                              where=cum_total > 0)
        return np.einsum("ij,ij->i", pos, precision) / cum_pos[:, -1]


def _per_row(r: Ranking, as_positive: Array, as_negative: Array) -> Array:
    """Per-run values for positive and negative rows, spread to the rows, row order."""
    if len(r.starts) < len(r.order):
        as_positive, as_negative = as_positive[r.group], as_negative[r.group]
    np.copyto(as_negative, as_positive, where=r.positive)
    out = np.empty(len(r.order))
    out[r.order] = as_negative
    return out


def _counts(r: Ranking) -> tuple[Array, Array]:
    pos = np.add.reduceat(r.positive, r.starts, dtype=float)
    return pos, np.diff(np.r_[r.starts, len(r.order)]).astype(float) - pos


def auc_influence(r: Ranking) -> tuple[float, Array]:
    """AUC, and d AUC / d w_j at unit weights, (n,) in row order."""
    pos, neg = _counts(r)
    n_pos, n_neg = pos.sum(), neg.sum()
    pairs = n_pos * n_neg
    # a negative row adds the positives ranked above it (ties half); a positive, the
    # negatives below. In place: at ten million rows each array here is 80 MB
    pos *= 0.5
    as_negative = np.cumsum(pos)
    as_negative *= 2
    as_negative -= pos
    value = float(neg @ as_negative) / pairs
    as_negative /= pairs
    as_negative -= value / n_neg
    neg *= 0.5
    as_positive = np.cumsum(neg)
    as_positive *= -2
    as_positive += neg
    as_positive += n_neg
    as_positive /= pairs
    as_positive -= value / n_pos
    del pos, neg
    return value, _per_row(r, as_positive, as_negative)


def average_precision_influence(r: Ranking) -> tuple[float, Array]:
    """AP, and d AP / d w_j at unit weights, (n,) in row order."""
    pos, neg = _counts(r)
    cum_pos, cum_all = np.cumsum(pos), np.cumsum(pos + neg)
    precision = cum_pos / cum_all
    n_pos = pos.sum()
    value = float(np.dot(pos, precision)) / n_pos
    # a row in run h changes that run's precision and every later run's denominator
    later_pos = np.cumsum((pos / cum_all)[::-1])[::-1]
    later_prec = np.cumsum((pos * precision / cum_all)[::-1])[::-1]
    as_positive = (precision + later_pos - later_prec - value) / n_pos
    as_negative = -later_prec / n_pos
    return value, _per_row(r, as_positive, as_negative)
