"""ROC AUC and its influences on every slice of one column, from the ranking of all rows.

A slice's rows taken in the order of the whole set's ranking (gate.stats.rankmetrics:
a stable sort by descending score) are in the order of the slice's own ranking, since
a stable sort restricted to some rows is the stable sort of those rows. One stable sort
of the ranked positions by slice code (small integers: a radix sort) therefore lays
every slice's ranking out side by side with no sort of scores, and a run of tied
scores within a slice is a run of the whole set's cut at the slice's borders.

Every count, cumulative count and count of pairs is a whole number (or a half), exact
in floats whatever the order of summation, and the two rounded steps (divide by the
pairs, subtract value / count) are the ones rankmetrics.auc_influence takes: each
slice's value and each row's influence are bit for bit those of that function on the
slice's rows alone.
"""
from __future__ import annotations

import numpy as np

from gate.stats.rankmetrics import Ranking

Array = np.ndarray


def auc_influence(r: Ranking, codes: Array, slices: int) -> tuple[Array, Array]:
    """Each slice's AUC, (slices,) (NaN where a class is missing from it), and
    d AUC of its slice / d w_j for every row j at unit weights, (n,) in row order."""
    n = len(r.order)
    small = codes.astype(np.int16) if slices < 2 ** 15 else codes
    by_slice = np.argsort(small[r.order], kind="stable")   # ranked positions, slice by slice
    del small
    if n < 2 ** 31:
        by_slice = by_slice.astype(np.int32)
    sizes = np.bincount(codes, minlength=slices)
    positive = r.positive[by_slice]
    if len(r.starts) == n:      # no ties: every position is a run of its own
        new = None
        runs = sizes
        pos = positive.astype(float)
        neg = 1.0 - pos
    else:
        group = r.group[by_slice]
        new = np.empty(n, dtype=bool)
        new[:1] = True
        np.not_equal(group[1:], group[:-1], out=new[1:])
        del group
        first = (np.cumsum(sizes) - sizes)[sizes > 0]   # where each slice's positions begin
        new[first] = True                               # a run never crosses a slice border
        runs = np.zeros(slices, dtype=np.intp)
        runs[sizes > 0] = np.add.reduceat(new, first, dtype=np.intp)
        starts = np.flatnonzero(new)
        pos = np.add.reduceat(positive, starts, dtype=float)
        neg = np.diff(np.r_[starts, n]).astype(float)
        neg -= pos
        del starts
    # runs are laid out slice by slice: a slice's entry spreads over its runs by repeat,
    # and a slice's sum is one segment of reduceat (no index of a slice per run)
    full = runs > 0
    begin = (np.cumsum(runs) - runs)[full]

    def spread(per_slice: Array) -> Array:
        return np.repeat(per_slice, runs)

    def total(per_run: Array) -> Array:
        out = np.zeros(slices)
        out[full] = np.add.reduceat(per_run, begin)
        return out

    n_pos, n_neg = total(pos), total(neg)
    pairs = n_pos * n_neg
    # a negative row adds the positives ranked above it within its slice (ties half); a
    # positive, the negatives below: the same whole numbers as rankmetrics.auc_influence's
    as_negative = np.cumsum(pos)
    as_negative -= spread(np.cumsum(n_pos) - n_pos)     # less the slices before
    pos *= 0.5
    as_negative -= pos
    del pos
    with np.errstate(divide="ignore", invalid="ignore"):
        value = total(neg * as_negative) / pairs
        as_negative /= spread(pairs)
        as_negative -= spread(value / n_neg)
        below = np.cumsum(neg)
        below -= spread(np.cumsum(n_neg) - n_neg)
        as_positive = spread(n_neg)
        as_positive -= below
        del below
        neg *= 0.5
        as_positive += neg
        del neg
        as_positive /= spread(pairs)
        as_positive -= spread(value / n_pos)
    if new is not None:     # ties: each position takes its run's values
        run = np.cumsum(new, dtype=by_slice.dtype)
        run -= 1
        as_positive, as_negative = as_positive[run], as_negative[run]
    np.copyto(as_negative, as_positive, where=positive)
    out = np.empty(n)
    out[r.order[by_slice]] = as_negative
    return value, out
