"""Per-row metrics and the paired bootstrap that puts a confidence interval on a worsening.

Pure NumPy: no MLflow, no files. Every regression and label metric is a function of
weighted column sums of per-row statistics, so one evaluation is a plain sum and a
batch of bootstrap resamples is one matrix product of resample counts with those
columns; ROC AUC and average precision are scored on the same resamples from one sort
(gate.rankmetrics). Above ANALYTIC_ROWS eval rows the interval is the linearised
one the bootstrap converges to (gate.resample.linearised_se).
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

from gate.stats import classmetrics
from gate.stats import resample
from gate.stats.paired import PairedStat, worsening
from gate.errors import InputError
from gate.stats.catalogue import (ALIASES, NAMES, ClassScores, MetricSpec, canonical,
                                  is_classification, known_direction, needs_proba, supports)
from gate.stats.parts import Part, SumPart

__all__ = ["ClassScores", "MetricSpec", "METRICS", "Metric", "is_classification",
           "known_direction", "needs_proba", "paired_bootstrap", "paired_bootstraps",
           "score", "evaluate", "supports"]

MIN_ROWS = 10
# Power of the minimum detectable worsening. With the two-sided interval at the
# configured confidence, mde = (z_{1-alpha/2} + z_{POWER}) * se is the true worsening
# that the `significant` test (low > 0) catches POWER of the time: the textbook MDE
# (Bloom 1995), 2.8 se at 95 % confidence; DESIGN's "about 2.5" is its one-sided form.
POWER = 0.8
# Above this many eval rows the interval is the linearised (normal) one: 2,000
# resamples of a million rows cost about a minute on two cores, and at that size the
# bootstrap distribution is normal and its se the linearised one (bench/large_eval.py
# checks both, and the interval's coverage, by simulation).
ANALYTIC_ROWS = 100_000
# A weighted r2 whose total sum of squares is below this fraction of its raw sum of
# squares has a constant target in that resample (cancellation noise, not spread).
_CONSTANT = 1e-10
# Resamples with an undefined metric (a constant target for r2, a class missing for
# roc_auc) are dropped; when more than 10 % are, the rest no longer stand for the
# eval set, and the comparison is refused.
_MIN_DEFINED = 0.9

Array = np.ndarray


@dataclass(frozen=True)
class Metric:
    """A regression metric as weighted sums: `columns` gives per-row statistics (n, k)
    (about `centre`, the target's mean, where that matters) and `combine` turns their
    weighted sums (..., k) and the total weight into values."""

    name: str
    direction: str
    columns: Callable[[Array, Array, float], Array]
    combine: Callable[[Array, Array | float], Array]

    def __call__(self, y_true: Any, pred: Any) -> float:
        """The metric on one (y, pred) pair."""
        y, p = _vectors(y_true, pred)
        return float(self.combine(self.columns(y, p, y.mean()).sum(axis=0), float(len(y))))

    def batch(self, y_true: Any, pred: Any, weights: Any) -> Array:
        """The metric under each row of `weights` (resamples x rows, e.g. bootstrap counts)."""
        y, p = _vectors(y_true, pred)
        w = np.asarray(weights, dtype=float)
        return self.combine(w @ self.columns(y, p, y.mean()), w.sum(axis=1))

    def part(self, y: Array, p: Array) -> SumPart:
        centre = float(y.mean())
        width = self.columns(y[:1], p[:1], centre).shape[1]
        return SumPart(lambda rows: self.columns(y[rows], p[rows], centre), self.combine,
                       width)


def _squared(y: Array, p: Array, centre: float) -> Array:
    return ((p - y) ** 2)[:, None]


def _absolute(y: Array, p: Array, centre: float) -> Array:
    return np.abs(p - y)[:, None]


def _absolute_pct(y: Array, p: Array, centre: float) -> Array:
    # sklearn's floor on |y|, so a zero target gives a huge, finite term
    return (np.abs(p - y) / np.maximum(np.abs(y), np.finfo(float).eps))[:, None]


def _correct(y: Array, p: Array, centre: float) -> Array:
    return (p == y).astype(float)[:, None]


def _r2_columns(y: Array, p: Array, centre: float) -> Array:
    # centred on the full-set mean (also when `y` is a chunk of the rows): the total
    # sum of squares is shift invariant, and centring keeps sum(w*y^2) - sum(w*y)^2/W
    # from cancelling away its digits
    centred = y - centre
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
# the regression engine's metrics, by every name a gate.toml may use (mlflow's and
# sklearn's long names too); accuracy also takes numeric labels here
METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}
METRICS.update({alias: METRICS[name] for alias, name in ALIASES.items() if name in METRICS})


def score(metric: str, y_true: Any, pred: Any) -> float:
    """One plain evaluation of a regression `metric` on all rows."""
    value = _metric(metric)(y_true, pred)
    if not np.isfinite(value):
        raise InputError(f"{metric} is undefined on these rows: the target is constant")
    return value


def evaluate(rule: MetricSpec | tuple[str, str], y_true: Any, pred: Any) -> float:
    """One model's `rule` metric on all rows: regression values or ClassScores."""
    spec = rule if isinstance(rule, MetricSpec) else MetricSpec(*rule)
    job = _job(spec, y_true, pred, pred, [])
    return _finite(job, resample.point(job.candidate, _rows(y_true)))


def paired_bootstrap(metric: str, direction: str, y_true: Any, champion_pred: Any,
                     candidate_pred: Any, *, confidence: float, resamples: int, seed: int,
                     chunk: int | None = None, analytic_rows: int = ANALYTIC_ROWS
                     ) -> PairedStat:
    """Both models' `metric` on the same rows, and a paired bootstrap of the worsening.

    Each resample draws rows with replacement and scores BOTH models on those rows,
    so the noise shared by the rows cancels from the difference. `chunk` (resamples
    per batch) only bounds memory: the result does not depend on it.
    """
    return paired_bootstraps([(metric, direction)], y_true, champion_pred, candidate_pred,
                             confidence=confidence, resamples=resamples, seed=seed,
                             chunk=chunk, analytic_rows=analytic_rows)[metric]


@dataclass(frozen=True)
class _Job:
    name: str
    direction: str
    champion: Part
    candidate: Part
    why: str            # what makes this metric undefined, for the error


def paired_bootstraps(rules: Sequence[MetricSpec | tuple[str, str]], y_true: Any,
                      champion: Any, candidate: Any, *, confidence: float, resamples: int,
                      seed: int, chunk: int | None = None,
                      analytic_rows: int = ANALYTIC_ROWS) -> dict[str, PairedStat]:
    """`paired_bootstrap` of several metrics on one set of resamples, keyed by name.

    `champion` and `candidate` are 1-D predictions for regression metrics, ClassScores
    (or plain labels, for the label metrics) for classification ones. Drawing the
    resamples is most of the cost, and every metric of a seed would draw the same ones:
    each metric's result is the one `paired_bootstrap` gives alone. Above
    `analytic_rows` rows the interval is the linearised one instead of resampled.
    """
    specs = [rule if isinstance(rule, MetricSpec) else MetricSpec(*rule) for rule in rules]
    for spec in specs:
        if not supports(spec.name):
            _metric(spec.name)
    for spec in specs:
        if spec.direction not in ("lower", "higher"):
            raise InputError(f"direction must be 'lower' or 'higher', not {spec.direction!r}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, not {confidence!r}")
    if resamples < 2:
        raise InputError(f"resamples must be at least 2, not {resamples!r}")
    encoded: list[classmetrics.Encoded] = []     # labels coded once for every metric
    jobs = [_job(spec, y_true, champion, candidate, encoded) for spec in specs]
    n = _rows(y_true)
    if n > analytic_rows:
        return {job.name: _linearised(job, n, confidence) for job in jobs}
    parts = [part for job in jobs for part in (job.champion, job.candidate)]
    values = resample.bootstrap(parts, n, resamples, seed, chunk)
    results = {}
    for index, job in enumerate(jobs):
        champ, cand = values[2 * index], values[2 * index + 1]
        draws = cand - champ if job.direction == "lower" else champ - cand
        results[job.name] = _summary(job, n, draws, confidence, resamples)
    return results


def _job(spec: MetricSpec, y_true: Any, champion: Any, candidate: Any,
         encoded: list[classmetrics.Encoded]) -> _Job:
    name = canonical(spec.name) or spec.name
    scores = isinstance(champion, ClassScores) or isinstance(candidate, ClassScores)
    if name in METRICS and not scores:
        metric = METRICS[name]
        y, champ = _vectors(y_true, champion, "champion")
        y, cand = _vectors(y, candidate, "candidate")
        why = "the target is constant" if name == "r2" else "a value is not finite"
        return _Job(spec.name, spec.direction, metric.part(y, champ), metric.part(y, cand),
                    why)
    if not is_classification(name):
        raise InputError(f"{spec.name} compares numeric predictions, but the models gave "
                         "class scores")
    if _rows(y_true) < MIN_ROWS:
        raise InputError(f"{_rows(y_true)} eval rows: at least {MIN_ROWS} are needed to "
                         "compare")
    if not encoded:
        encoded.append(classmetrics.encode(y_true, champion, candidate))
    champ_part, cand_part = classmetrics.parts_of(spec, encoded[0])
    why = "a class has no rows, or only one class occurs" \
        if name in ("roc_auc", "average_precision") else "a value is not finite"
    return _Job(spec.name, spec.direction, champ_part, cand_part, why)


def _rows(y_true: Any) -> int:
    shape = np.shape(y_true)
    return shape[0] if shape else 0


def _summary(job: _Job, n: int, draws: Array, confidence: float,
             resamples: int) -> PairedStat:
    champion, candidate = (_finite(job, resample.point(part, n))
                           for part in (job.champion, job.candidate))
    defined = draws[np.isfinite(draws)]
    if len(defined) < _MIN_DEFINED * resamples:
        what = "constant target" if job.why == "the target is constant" else job.why
        raise InputError(f"{job.name} is undefined in {resamples - len(defined)} of "
                         f"{resamples} bootstrap resamples ({what}): {n} eval rows are too "
                         "few or too uniform")
    alpha = 1.0 - confidence
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    se = float(np.std(defined, ddof=1))
    z = NormalDist().inv_cdf
    return PairedStat(champion=champion, candidate=candidate,
                      worsening=worsening(job.direction, champion, candidate),
                      low=float(low), high=float(high),
                      mde=(z(1 - alpha / 2) + z(POWER)) * se, rows=n)


def _linearised(job: _Job, n: int, confidence: float) -> PairedStat:
    champion, candidate, se = resample.linearised_se(job.champion, job.candidate, n)
    champion, candidate = _finite(job, champion), _finite(job, candidate)
    worse = worsening(job.direction, champion, candidate)
    z = NormalDist().inv_cdf
    half = z(1 - (1 - confidence) / 2)
    return PairedStat(champion=champion, candidate=candidate, worsening=worse,
                      low=worse - half * se, high=worse + half * se,
                      mde=(half + z(POWER)) * se, rows=n)


def _finite(job: _Job, value: float) -> float:
    if not np.isfinite(value):
        raise InputError(f"{job.name} is undefined on these rows: {job.why}")
    return value


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        known = ", ".join(NAMES)
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
