"""ROC AUC and average precision of one model as parts of the paired comparison.

Each class's rows are ranked by that class's probability (gate.stats.rankmetrics):
under bootstrap weights from one sort kept for every resample, linearised from one
sort at a time. Slices of the linearised comparison reuse those sorts: ROC AUC scores
every slice of a column from the ranking of all rows (gate.stats.rankslices), exactly
as on the slice's rows alone, so a slice column costs no sort of scores.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from gate.errors import InputError
from gate.stats import rankmetrics
from gate.stats import rankslices
from gate.stats.classmetrics import Model, Task, need_proba, show
from gate.stats.parts import RankPart, Slicing

Array = np.ndarray
# (slice codes or None for all rows as one slice, number of slices)
_Cut = tuple[Array | None, int]


def ranked(task: Task, model: Model, name: str) -> RankPart:
    proba = need_proba(model, name)
    k = len(task.classes)
    if k <= 2:
        if not model.known[task.pos]:
            raise InputError(f"{name}: the {model.what} has no probability for the "
                             f"positive class {show(task.classes[task.pos])}")
        classes = [task.pos]
    else:
        classes = [int(c) for c in np.flatnonzero(model.known)]
    value, influence = (rankmetrics.auc, rankmetrics.auc_influence) if name == "roc_auc" \
        else (rankmetrics.average_precision, rankmetrics.average_precision_influence)
    # a slice's own comparison sees the same classes as the whole set's only when this
    # model has a probability for every class (sklearn's label set, the averaging and
    # the positive class then agree); average precision is scored slice by slice
    grouped: Callable[[rankmetrics.Ranking, Array, int], tuple[Array, Array]] | None = \
        rankslices.auc_influence if name == "roc_auc" and model.known.all() else None
    weighted = task.average == "weighted" and len(classes) > 1
    kept: list[rankmetrics.Ranking] = []

    def ranking(c: int) -> rankmetrics.Ranking:
        return rankmetrics.ranking(proba[:, model.column[c]], task.y == c)

    def values(weights: Array) -> Array:
        # sorted on the first block of resamples, reused by every later one
        if not kept:
            kept.extend(ranking(c) for c in classes)
        each = np.column_stack([value(r, weights) for r in kept])
        if not weighted:
            return each.mean(axis=1)
        support = np.column_stack([weights @ (task.y == c) for c in classes])
        return (each * support).sum(axis=1) / support.sum(axis=1)

    def per_slice(cuts: Sequence[_Cut]) -> list[tuple[Array, Array]]:
        """Per cut, each slice's value and every row's influence on its own slice's
        value. One class's sort at a time (the linearised path asks once, on the
        largest sets), shared by every cut."""
        out = [(np.zeros(slices), np.zeros(len(task.y))) for _, slices in cuts]
        mass = [np.zeros(slices) for _, slices in cuts]
        for c in classes:
            r = ranking(c)
            mine = task.y == c
            for (codes, slices), (overall, total), support in zip(cuts, out, mass):
                if codes is None:
                    one, g = influence(r)
                    v = np.array([one])
                else:
                    assert grouped is not None
                    v, g = grouped(r, codes, slices)
                if weighted:
                    # a weight is a class's support, which moves with its rows' weights
                    own = np.array([float(np.count_nonzero(mine))]) if codes is None \
                        else np.bincount(codes, weights=mine, minlength=slices)
                    g *= _spread(own, codes)
                    g += _spread(v, codes) * mine
                    v *= own
                    support += own
                total += g
                overall += v
            del r
        # in place: at ten million rows each total is 80 MB
        if not weighted:
            for _, total in out:
                total /= len(classes)
            return [(overall / len(classes), total) for overall, total in out]
        counted = np.isin(task.y, classes)
        done = []
        for (codes, _), (overall, total), support in zip(cuts, out, mass):
            value_ = overall / support
            total -= _spread(value_, codes) * counted
            total /= _spread(support, codes)
            done.append((value_, total))
        return done

    def influences() -> tuple[float, Array]:
        [(v, g)] = per_slice([(None, 1)])
        return float(v[0]), g

    def sliced(columns: Sequence[Slicing]) -> tuple[tuple[float, Array],
                                                    list[tuple[Array, Array]]]:
        (v, g), *each = per_slice([(None, 1), *columns])
        return (float(v[0]), g), each

    return RankPart(values, influences, sliced if grouped is not None else None)


def _spread(per_slice: Array, codes: Array | None) -> Any:
    """Each row's entry for its slice; for all rows as one slice, that one number."""
    return per_slice[0] if codes is None else np.take(per_slice, codes)
