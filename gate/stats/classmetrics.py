"""Classification metrics of one model as parts of the paired comparison.

Label metrics (accuracy, balanced accuracy, precision, recall, f1) and the per-row
losses (log loss, Brier) are weighted sums of per-row indicator or loss columns, so
they ride the bootstrap's one matrix product; ROC AUC and average precision rank the
rows (gate.stats.rankparts, on the `Task` and `Model` here). Every value equals
scikit-learn's, with `sample_weight` for a resample: a class counts in a model's macro
average when it occurs in y_true or in that model's predictions over the whole eval
set, as sklearn's label set does.

The public builders (`accuracy`, `per_class`, ...) are what the catalogue
(gate.stats.catalogue) names for each classification metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gate.errors import InputError
from gate.stats.parts import Part, SumPart
from gate.stats.specs import AVERAGES, ClassScores, MetricSpec

Array = np.ndarray
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Model:
    """One model's output on the eval rows, as a builder reads it."""

    what: str                   # "champion" | "candidate", for messages
    pred: Array                 # (n,) class codes
    proba: Array | None         # (n, len(classes_)) as the model gave them
    column: Array               # (K,) each class's column in `proba`, -1 where it has none
    width: int                  # len(classes_): sklearn halves Brier below 3 columns

    @property
    def known(self) -> Array:
        return self.column >= 0


@dataclass(frozen=True)
class Task:
    """The eval rows and the averaging one metric rule asks for."""

    y: Array                    # (n,) class codes
    classes: Array              # (K,) all labels seen, sorted
    average: str
    pos: int                    # code of the positive class (binary)


@dataclass(frozen=True)
class Encoded:
    """The eval rows and both models' outputs as class codes, checked once per
    comparison whatever the number of metrics."""

    y: Array
    classes: Array
    champion: Model
    candidate: Model


# A metric's builder: one model's Part on the task, given the metric's catalogue name
# (precision, recall and f1 share one builder).
Builder = Callable[[Task, Model, str], Part]


def encode(y_true: Any, champion: Any, candidate: Any) -> Encoded:
    champ, cand = _scores(champion, "champion"), _scores(candidate, "candidate")
    y, labels, classes = _encode(y_true, champ, cand)
    return Encoded(y, classes, _model(y, classes, labels[0], champ, "champion"),
                   _model(y, classes, labels[1], cand, "candidate"))


def parts_of(spec: MetricSpec, name: str, build: Builder,
             encoded: Encoded) -> tuple[Part, Part]:
    """Both models' parts of metric `name` (its catalogue name), made by `build`."""
    task = _task(spec, encoded.y, encoded.classes)
    return build(task, encoded.champion, name), build(task, encoded.candidate, name)


def _scores(value: Any, what: str) -> ClassScores:
    if isinstance(value, ClassScores):
        return value
    # plain labels serve the label metrics; a probability metric then says what is missing
    return ClassScores(labels=np.asarray(value), proba=None, classes=())


def _labels(values: Any, what: str) -> Array:
    """One column of class labels: numbers (any numeric dtype, kept) or text."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(f"{what} labels must be one column, not shape {array.shape}")
    if array.dtype.kind == "O":
        text = [isinstance(v, str) for v in array]
        if any(text) and not all(text):
            raise InputError(f"{what} labels mix text and numbers")
        try:
            array = array.astype(str if all(text) and len(text) else float)
        except (TypeError, ValueError):
            raise InputError(f"{what} labels are neither numbers nor text") from None
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"{what} has {bad} non-finite label(s) (NaN or inf)")
    elif array.dtype.kind in "US":
        array = array.astype(str, copy=False)
    elif array.dtype.kind not in "biu":
        raise InputError(f"{what} labels are neither numbers nor text ({array.dtype})")
    return array


def show(label: Any) -> str:
    # labels of int and float arrays meet as floats (1 and 1.0 agree); show 1 as 1
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def _encode(y_true: Any, champ: ClassScores,
            cand: ClassScores) -> tuple[Array, list[Array], Array]:
    y = _labels(y_true, "y_true")
    preds = [_labels(s.labels, what) for s, what in ((champ, "champion"), (cand, "candidate"))]
    for pred, what in zip(preds, ("champion", "candidate")):
        if len(pred) != len(y):
            raise InputError(f"{what} has {len(pred)} rows but the target has {len(y)}")
    declared = [_labels(list(s.classes), f"{what} classes") for s, what in
                ((champ, "champion"), (cand, "candidate")) if len(s.classes)]
    everything = [y, *preds, *declared]
    if len({a.dtype.kind == "U" for a in everything}) > 1:
        raise InputError("labels mix text and numbers between y_true and the models' "
                         "predictions or classes")
    # unique per array first: a sort of the few distinct labels, not of 3n rows
    classes = np.unique(np.concatenate([np.unique(a) for a in everything]))
    # small codes: at ten million rows an int64 per row and model is 240 MB
    code = np.int16 if len(classes) < 2 ** 15 else np.int64
    return (np.searchsorted(classes, y).astype(code),
            [np.searchsorted(classes, p).astype(code) for p in preds], classes)


def _task(spec: MetricSpec, y: Array, classes: Array) -> Task:
    average = spec.average or ("binary" if len(classes) <= 2 else "weighted")
    if average not in AVERAGES:
        raise InputError(f"{spec.name}: average must be one of {', '.join(AVERAGES)}, "
                         f"not {average!r}")
    if average == "binary" and len(classes) > 2:
        raise InputError(f"{spec.name}: average 'binary' needs 2 classes, these rows have "
                         f"{len(classes)}: set average = \"macro\" or \"weighted\"")
    pos = len(classes) - 1
    if spec.pos_label is not None:
        wanted = _labels([spec.pos_label], f"{spec.name} pos_label")
        text = wanted.dtype.kind == "U"
        if text != (classes.dtype.kind == "U") or wanted[0] not in classes:
            raise InputError(f"{spec.name}: pos_label {spec.pos_label!r} is not one of the "
                             f"classes ({', '.join(map(show, classes))})")
        pos = int(np.searchsorted(classes, wanted[0]))
    return Task(y, classes, average, pos)


def _model(y: Array, classes: Array, pred: Array, scores: ClassScores,
           what: str) -> Model:
    column = np.full(len(classes), -1)
    if scores.proba is None:
        return Model(what, pred, None, column, 0)
    try:
        proba = np.asarray(scores.proba, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{what} probabilities are not numeric") from None
    declared = _labels(list(scores.classes), f"{what} classes")
    if proba.ndim != 2 or proba.shape != (len(pred), len(declared)):
        raise InputError(f"{what} probabilities have shape {proba.shape}, not "
                         f"({len(pred)}, {len(declared)}) for its {len(declared)} classes")
    if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
        raise InputError(f"{what} probabilities are not all finite and within [0, 1]")
    column[np.searchsorted(classes, declared)] = np.arange(len(declared))
    missing = column[y] < 0
    if missing.any():
        raise InputError(f"y_true has {int(missing.sum())} row(s) of a class the {what} "
                         f"has no probability for ({show(classes[y[missing][0]])})")
    return Model(what, pred, proba, column, len(declared))


def need_proba(model: Model, name: str) -> Array:
    if model.proba is None:
        raise InputError(f"{name} needs class probabilities; the {model.what} has none")
    return model.proba


def _onehot(codes: Array, k: int) -> Array:
    return (codes[:, None] == np.arange(k)).astype(float)


def _safe_ratio(num: Array, den: Array) -> Array:
    # sklearn's zero_division: 0 where the denominator is 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _mean_part(column: Callable[[slice], Array]) -> SumPart:
    return SumPart(lambda rows: column(rows)[:, None],
                   lambda sums, weight: sums[..., 0] / weight, 1)


def accuracy(task: Task, model: Model, name: str) -> Part:
    return _mean_part(lambda rows: (model.pred[rows] == task.y[rows]).astype(float))


def balanced_accuracy(task: Task, model: Model, name: str) -> Part:
    k = len(task.classes)

    def columns(rows: slice) -> Array:
        true = _onehot(task.y[rows], k)
        return np.hstack((true * (model.pred[rows] == task.y[rows])[:, None], true))

    def combine(sums: Array, weight: Array | float) -> Array:
        hits, support = sums[..., :k], sums[..., k:]
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(support > 0, hits / np.where(support > 0, support, 1), np.nan)
        # sklearn drops a class with no true rows (in this resample) from the mean
        return np.nanmean(recall, axis=-1)

    return SumPart(columns, combine, 2 * k)


def per_class(task: Task, model: Model, name: str) -> Part:
    k = len(task.classes)
    binary = task.average == "binary"
    chosen = np.array([task.pos]) if binary else np.arange(k)
    # sklearn's label set: the classes in y_true or in this model's predictions
    present = np.zeros(k, dtype=bool)
    present[task.y] = True
    present[model.pred] = True
    mask = np.ones(1, dtype=bool) if binary else present
    m = len(chosen)

    def columns(rows: slice) -> Array:
        y, pred = task.y[rows], model.pred[rows]
        true = (y[:, None] == chosen).astype(float)
        said = (pred[:, None] == chosen).astype(float)
        return np.hstack((true * said, said, true))

    def combine(sums: Array, weight: Array | float) -> Array:
        tp, said, true = sums[..., :m], sums[..., m:2 * m], sums[..., 2 * m:]
        if name == "precision":
            value = _safe_ratio(tp, said)
        elif name == "recall":
            value = _safe_ratio(tp, true)
        else:
            value = _safe_ratio(2 * tp, said + true)
        if task.average == "weighted":
            support = true[..., mask]
            return _safe_ratio((value[..., mask] * support).sum(axis=-1), support.sum(axis=-1))
        return value[..., mask].mean(axis=-1)

    return SumPart(columns, combine, 3 * m)


def log_loss(task: Task, model: Model, name: str) -> Part:
    proba = need_proba(model, name)
    # sklearn clips to [eps, 1 - eps] so a confident miss costs a large, finite loss
    return _mean_part(lambda rows: -np.log(np.clip(
        proba[rows][np.arange(len(task.y[rows])), model.column[task.y[rows]]], _EPS, 1 - _EPS)))


def brier(task: Task, model: Model, name: str) -> Part:
    proba = need_proba(model, name)
    scale = 0.5 if model.width < 3 else 1.0     # sklearn's scale_by_half="auto"

    def column(rows: slice) -> Array:
        truth = _onehot(model.column[task.y[rows]], model.width)
        return scale * ((truth - proba[rows]) ** 2).sum(axis=1)

    return _mean_part(column)
