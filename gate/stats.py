"""Per-row metrics and the paired bootstrap that puts a confidence interval on a worsening.

Pure NumPy: no MLflow, no files. Every metric is a function of weighted column sums
of per-row statistics, so one evaluation is a plain sum and a batch of bootstrap
resamples is one matrix product of resample counts with those columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

from gate.decide import PairedStat, worsening
from gate.errors import InputError

MIN_ROWS = 10
# Power of the minimum detectable worsening. With the two-sided interval at the
# configured confidence, mde = (z_{1-alpha/2} + z_{POWER}) * se is the true worsening
# that the `significant` test (low > 0) catches POWER of the time: the textbook MDE
# (Bloom 1995), 2.8 se at 95 % confidence; DESIGN's "about 2.5" is its one-sided form.
POWER = 0.8
# Resample-by-row count cells per chunk: bounds memory to one array of this many
# 8-byte cells (16 MB) whatever the rows x resamples product.
CHUNK_CELLS = 1 << 21
# Row indices drawn per call (a block of resamples): 65,536 keeps a block in cache.
DRAW_CELLS = 1 << 16
# A weighted r2 whose total sum of squares is below this fraction of its raw sum of
# squares has a constant target in that resample (cancellation noise, not spread).
_CONSTANT = 1e-10
# Resamples with a constant target have no r2 and are dropped; when more than 10 %
# are (one or two rows carry all the target's spread) the rest no longer stand for
# the eval set, and the comparison is refused.
_MIN_DEFINED = 0.9

Array = np.ndarray


@dataclass(frozen=True)
class ClassScores:
    """A classifier's output on the eval rows."""

    labels: Array               # (n,) predicted labels
    proba: Array | None         # (n, k) class probabilities in `classes` order, or None
    classes: tuple[Any, ...]


# metrics of class labels; the others compare numbers
CLASSIFICATION = frozenset({"accuracy", "accuracy_score"})


def is_classification(metric: str) -> bool:
    return metric in CLASSIFICATION


def _labels_as_numbers(y_true: Any, *preds: Any) -> list[Any]:
    """Class labels (any type) as codes of one shared map, for the numeric engine."""
    arrays = [np.asarray(y_true)] + [np.asarray(p.labels if isinstance(p, ClassScores) else p)
                                     for p in preds]
    if all(a.dtype.kind in "biuf" for a in arrays):
        return arrays
    codes = {v: i for i, v in enumerate(sorted({str(x) for a in arrays for x in a.tolist()}))}
    return [np.array([codes[str(x)] for x in a.tolist()], dtype=float) for a in arrays]


@dataclass(frozen=True)
class Metric:
    """A metric as weighted sums: `columns` gives per-row statistics (n, k) and
    `combine` turns their weighted sums (..., k) and the total weight into values."""

    name: str
    direction: str
    columns: Callable[[Array, Array], Array]
    combine: Callable[[Array, Array | float], Array]

    def __call__(self, y_true: Any, pred: Any) -> float:
        """The metric on one (y, pred) pair."""
        y, p = _vectors(y_true, pred)
        return float(self.combine(self.columns(y, p).sum(axis=0), float(len(y))))

    def batch(self, y_true: Any, pred: Any, weights: Any) -> Array:
        """The metric under each row of `weights` (resamples x rows, e.g. bootstrap counts)."""
        y, p = _vectors(y_true, pred)
        w = np.asarray(weights, dtype=float)
        return self.combine(w @ self.columns(y, p), w.sum(axis=1))


def _squared(y: Array, p: Array) -> Array:
    return ((p - y) ** 2)[:, None]


def _absolute(y: Array, p: Array) -> Array:
    return np.abs(p - y)[:, None]


def _absolute_pct(y: Array, p: Array) -> Array:
    # sklearn's floor on |y|, so a zero target gives a huge, finite term
    return (np.abs(p - y) / np.maximum(np.abs(y), np.finfo(float).eps))[:, None]


def _correct(y: Array, p: Array) -> Array:
    return (p == y).astype(float)[:, None]


def _r2_columns(y: Array, p: Array) -> Array:
    # centred on the full-set mean: the total sum of squares is shift invariant, and
    # centring keeps sum(w*y^2) - sum(w*y)^2/W from cancelling away its digits
    centred = y - y.mean()
    return np.column_stack(((p - y) ** 2, centred, centred ** 2))


def _mean(sums: Array, weight: Array | float) -> Array:
    return sums[..., 0] / weight


def _root_mean(sums: Array, weight: Array | float) -> Array:
    return np.sqrt(sums[..., 0] / weight)


def _r2(sums: Array, weight: Array | float) -> Array:
    residual, linear, square = sums[..., 0], sums[..., 1], sums[..., 2]
    total = square - linear ** 2 / weight
    constant = total <= _CONSTANT * square
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(constant, np.nan, 1.0 - residual / np.where(constant, 1.0, total))


_METRICS = (
    Metric("mse", "lower", _squared, _mean),
    Metric("rmse", "lower", _squared, _root_mean),
    Metric("mae", "lower", _absolute, _mean),
    Metric("r2", "higher", _r2_columns, _r2),
    Metric("mape", "lower", _absolute_pct, _mean),
    Metric("accuracy", "higher", _correct, _mean),
)
# mlflow.models.evaluate and sklearn spell them out; a gate.toml may use either name.
_ALIASES = {
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
    "mean_absolute_error": "mae",
    "r2_score": "r2",
    "mean_absolute_percentage_error": "mape",
    "accuracy_score": "accuracy",
}
METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}
METRICS.update({alias: METRICS[name] for alias, name in _ALIASES.items()})


def supports(metric: str) -> bool:
    """Whether `metric` can be re-scored per row (else compare the logged values)."""
    return metric in METRICS


def score(metric: str, y_true: Any, pred: Any) -> float:
    """One plain evaluation of `metric` on all rows."""
    if is_classification(metric) or isinstance(pred, ClassScores):
        y_true, pred = _labels_as_numbers(y_true, pred)
    value = _metric(metric)(y_true, pred)
    if not np.isfinite(value):
        raise InputError(f"{metric} is undefined on these rows: the target is constant")
    return value


def paired_bootstrap(metric: str, direction: str, y_true: Any, champion_pred: Any,
                     candidate_pred: Any, *, confidence: float, resamples: int, seed: int,
                     chunk: int | None = None) -> PairedStat:
    """Both models' `metric` on the same rows, and a paired bootstrap of the worsening.

    Each resample draws rows with replacement and scores BOTH models on those rows,
    so the noise shared by the rows cancels from the difference. `chunk` (resamples
    per batch) only bounds memory: the result does not depend on it.
    """
    return paired_bootstraps([(metric, direction)], y_true, champion_pred, candidate_pred,
                             confidence=confidence, resamples=resamples, seed=seed,
                             chunk=chunk)[metric]


def paired_bootstraps(rules: Sequence[tuple[str, str]], y_true: Any, champion_pred: Any,
                      candidate_pred: Any, *, confidence: float, resamples: int, seed: int,
                      chunk: int | None = None) -> dict[str, PairedStat]:
    """`paired_bootstrap` of several (metric, direction) pairs on one set of resamples.

    Drawing the resamples is most of the cost, and every metric of a seed would draw
    the same ones: each metric's result is the one `paired_bootstrap` gives alone.
    """
    scorers = [(metric, _metric(metric), direction) for metric, direction in rules]
    for _, _, direction in scorers:
        if direction not in ("lower", "higher"):
            raise InputError(f"direction must be 'lower' or 'higher', not {direction!r}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, not {confidence!r}")
    if resamples < 2:
        raise InputError(f"resamples must be at least 2, not {resamples!r}")
    if isinstance(champion_pred, ClassScores) or isinstance(candidate_pred, ClassScores):
        y_true, champion_pred, candidate_pred = _labels_as_numbers(
            y_true, champion_pred, candidate_pred)
    y, champ = _vectors(y_true, champion_pred, "champion")
    y, cand = _vectors(y, candidate_pred, "candidate")
    blocks = [np.hstack((scorer.columns(y, champ), scorer.columns(y, cand)))
              for _, scorer, _ in scorers]
    sums = _resample_sums(np.hstack(blocks), resamples, seed, chunk)
    results, start = {}, 0
    for (metric, scorer, direction), block in zip(scorers, blocks):
        width = block.shape[1]
        draws = _worsening(scorer, direction, sums[:, start:start + width], width // 2,
                           len(y))
        start += width
        results[metric] = _summary(metric, direction, y, champ, cand, draws, confidence,
                                   resamples)
    return results


def _summary(metric: str, direction: str, y: Array, champ: Array, cand: Array,
             draws: Array, confidence: float, resamples: int) -> PairedStat:
    champion, candidate = score(metric, y, champ), score(metric, y, cand)
    defined = draws[np.isfinite(draws)]
    if len(defined) < _MIN_DEFINED * resamples:
        raise InputError(f"{metric} is undefined in {resamples - len(defined)} of {resamples} "
                         f"bootstrap resamples (constant target): {len(y)} eval rows are too "
                         "few or too uniform")
    alpha = 1.0 - confidence
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(defined, ddof=1))
    z = NormalDist().inv_cdf
    return PairedStat(champion=champion, candidate=candidate,
                      worsening=worsening(direction, champion, candidate),
                      low=float(low), high=float(high),
                      mde=(z(1 - alpha / 2) + z(POWER)) * se, rows=len(y))


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(m.name for m in _METRICS)
        raise InputError(f"no per-row scorer for metric {name!r} (known: {known})") from None


def _vectors(y_true: Any, pred: Any, what: str = "predictions") -> tuple[Array, Array]:
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


def _resample_sums(columns: Array, resamples: int, seed: int, chunk: int | None) -> Array:
    """Column sums under each bootstrap resample, (resamples, k), in bounded memory.

    A resample's n row indices become row counts (bincount), and counts @ columns gives
    every sum of every resample in the chunk in one BLAS call; only the chunk's counts
    are held. The resamples' indices come one after another from one Generator, so the
    stream, and the result, are the same whatever the chunk size.
    """
    n = columns.shape[0]
    rng = np.random.default_rng(seed)
    step = max(1, min(resamples, chunk or CHUNK_CELLS // n))
    # resamples drawn per call: one call per resample costs more in Python than the
    # draw itself on small eval sets; a block this size still stays in cache
    block = max(1, min(step, DRAW_CELLS // n))
    offsets = (np.arange(block, dtype=np.intp) * n)[:, None]
    counts = np.empty((step, n))
    sums = np.empty((resamples, columns.shape[1]))
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        for row in range(0, size, block):
            rows = min(block, size - row)
            # uint32 draws take half the time of int64 ones, and bincount wants intp;
            # each row's indices are offset by its row so one bincount counts them all
            draw = rng.integers(0, n, (rows, n), dtype=np.uint32).astype(np.intp)
            draw += offsets[:rows]
            counts[row:row + rows] = np.bincount(
                draw.ravel(), minlength=rows * n).reshape(rows, n)
        sums[start:start + size] = counts[:size] @ columns
    return sums


def _worsening(scorer: Metric, direction: str, sums: Array, k: int, n: int) -> Array:
    champion = scorer.combine(sums[:, :k], float(n))
    candidate = scorer.combine(sums[:, k:], float(n))
    return candidate - champion if direction == "lower" else champion - candidate
