"""The paired bootstrap that puts a confidence interval on a worsening.

Pure NumPy: no MLflow, no files. The metrics are the catalogue's (gate.stats.catalogue):
the engine looks each rule up there and scores what the entry gives. Every regression
and label metric is a function of weighted column sums of per-row statistics, so one
evaluation is a plain sum and a batch of bootstrap resamples is one matrix product of
resample counts with those columns; ROC AUC and average precision are scored on the
same resamples from one sort (gate.stats.rankmetrics). Above ANALYTIC_ROWS eval rows
the interval is the linearised one the bootstrap converges to
(gate.stats.resample.linearised_se).
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from gate.stats import catalogue
from gate.stats import classmetrics
from gate.stats import resample
from gate.stats.paired import PairedStat, worsening
from gate.errors import InputError
from gate.stats.catalogue import (ClassScores, Metric, MetricSpec, is_classification,
                                  known_direction, needs_proba, supports)
from gate.stats.parts import Part
from gate.stats.regression import MIN_ROWS, vectors as _vectors

__all__ = ["ClassScores", "MetricSpec", "METRICS", "MIN_ROWS", "Metric", "is_classification",
           "known_direction", "needs_proba", "paired_bootstrap", "paired_bootstraps",
           "score", "evaluate", "supports"]

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
# Resamples with an undefined metric (a constant target for r2, a class missing for
# roc_auc) are dropped; when more than 10 % are, the rest no longer stand for the
# eval set, and the comparison is refused.
_MIN_DEFINED = 0.9

Array = np.ndarray


class _NumericMetrics(Mapping[str, Metric]):
    """The catalogue's metrics of numeric predictions, by every name a gate.toml may
    use; read through, so a metric registered later is here too."""

    def __getitem__(self, name: str) -> Metric:
        metric = catalogue.lookup(name)
        if metric is None or metric.sums is None:
            raise KeyError(name)
        return metric

    def __iter__(self) -> Iterator[str]:
        for name in catalogue.names():
            metric = catalogue.lookup(name)
            if metric is not None and metric.sums is not None:
                yield from (metric.name, *metric.aliases)

    def __len__(self) -> int:
        return sum(1 for _ in self)


# regression metrics (accuracy also takes numeric labels here), for score()
METRICS: Mapping[str, Metric] = _NumericMetrics()


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
    check_options(specs, confidence, resamples)
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


def check_options(specs: Sequence[MetricSpec], confidence: float, resamples: int) -> None:
    """The arguments of a comparison, before any work: known metrics, their directions."""
    for spec in specs:
        _known(spec.name)
    for spec in specs:
        if spec.direction not in ("lower", "higher"):
            raise InputError(f"direction must be 'lower' or 'higher', not {spec.direction!r}")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, not {confidence!r}")
    if resamples < 2:
        raise InputError(f"resamples must be at least 2, not {resamples!r}")


def _job(spec: MetricSpec, y_true: Any, champion: Any, candidate: Any,
         encoded: list[classmetrics.Encoded]) -> _Job:
    metric = _known(spec.name)
    scores = isinstance(champion, ClassScores) or isinstance(candidate, ClassScores)
    if metric.sums is not None and not scores:
        y, champ = _vectors(y_true, champion, "champion")
        y, cand = _vectors(y, candidate, "candidate")
        return _Job(spec.name, spec.direction, metric.sums.part(y, champ),
                    metric.sums.part(y, cand), metric.undefined)
    if metric.builder is None:
        raise InputError(f"{spec.name} compares numeric predictions, but the models gave "
                         "class scores")
    if _rows(y_true) < MIN_ROWS:
        raise InputError(f"{_rows(y_true)} eval rows: at least {MIN_ROWS} are needed to "
                         "compare")
    if not encoded:
        encoded.append(classmetrics.encode(y_true, champion, candidate))
    champ_part, cand_part = classmetrics.parts_of(spec, metric.name, metric.builder,
                                                  encoded[0])
    return _Job(spec.name, spec.direction, champ_part, cand_part, metric.undefined)


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
                      mde=(z(1 - alpha / 2) + z(POWER)) * se, rows=n, se=se)


def _linearised(job: _Job, n: int, confidence: float) -> PairedStat:
    return _linearised_stat(job, n, confidence,
                            *resample.linearised_se(job.champion, job.candidate, n))


def _linearised_stat(job: _Job, n: int, confidence: float, champion: float,
                     candidate: float, se: float) -> PairedStat:
    """The linearised PairedStat from both values and the se of their difference."""
    champion, candidate = _finite(job, champion), _finite(job, candidate)
    worse = worsening(job.direction, champion, candidate)
    z = NormalDist().inv_cdf
    half = z(1 - (1 - confidence) / 2)
    return PairedStat(champion=champion, candidate=candidate, worsening=worse,
                      low=worse - half * se, high=worse + half * se,
                      mde=(half + z(POWER)) * se, rows=n, se=se)


def _finite(job: _Job, value: float) -> float:
    if not np.isfinite(value):
        raise InputError(f"{job.name} is undefined on these rows: {job.why}")
    return value


def _metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise _unknown(name) from None


def _known(name: str) -> Metric:
    metric = catalogue.lookup(name)
    if metric is None:
        raise _unknown(name)
    return metric


def _unknown(name: str) -> InputError:
    known = ", ".join(catalogue.names())
    return InputError(f"no per-row scorer for metric {name!r} (known: {known})")


def classification_parts(spec: MetricSpec, y_true: Any, champion: Any,
                         candidate: Any) -> tuple[Part, Part]:
    """The champion's and the candidate's part for one classification metric."""
    metric = catalogue.lookup(spec.name)
    if metric is None or metric.builder is None:
        raise InputError(f"{spec.name} is not a classification metric")
    return classmetrics.parts_of(spec, metric.name, metric.builder,
                                 classmetrics.encode(y_true, champion, candidate))
