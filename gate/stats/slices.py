"""The paired comparison per slice, on the aggregate's own resamples.

A slice is the rows of one value of one column. Its comparison is the engine's on
those rows, with the bootstrap's weights restricted to them: each resample's counts of
the slice's rows, so every slice and the aggregate are scored on one draw of counts
(gate.stats.resample.bootstrap_grouped: per column of slices, one gather of the counts
and one product per slice of its rows' columns, as much arithmetic as the aggregate).
Above the engine's ANALYTIC_ROWS the aggregate is linearised, and so is every slice:
sum metrics for all slices of a column in a few passes (gate.stats.slicelinear), ROC
AUC from the aggregate's own sort of the scores (gate.stats.rankslices).

A slice's point values are exactly the engine's on its rows alone; only the resamples
differ (restricted, not drawn afresh), so its interval agrees up to bootstrap noise.
A metric undefined on a slice (too few rows, a constant target, a class missing) is
left out of that slice: slices are evidence, and the rule in gate.core.slicerules
judges what is there.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gate.errors import InputError
from gate.stats import engine
from gate.stats import classmetrics
from gate.stats import resample
from gate.stats import slicelinear
from gate.stats.catalogue import ClassScores, MetricSpec
from gate.stats.paired import PairedStat, SliceStat
from gate.stats.parts import Part, RankPart, SumPart
from gate.stats.regression import MIN_ROWS

Array = np.ndarray


@dataclass(frozen=True)
class SliceColumn:
    """One column cut into slices: each row's slice, and each slice's name."""

    column: str
    labels: tuple[str, ...]     # slice k's value as the report shows it
    codes: Array                # (n,) each row's slice, 0 <= code < len(labels)


@dataclass(frozen=True)
class _Slice:
    column: str
    value: str
    code: int
    rows: Array                     # the slice's row indices, ascending
    jobs: tuple[Any, ...]           # engine jobs built on those rows (the defined ones)


def paired_sliced(rules: Sequence[MetricSpec | tuple[str, str]], y_true: Any, champion: Any,
                  candidate: Any, columns: Sequence[SliceColumn], *, confidence: float,
                  resamples: int, seed: int, chunk: int | None = None,
                  analytic_rows: int = engine.ANALYTIC_ROWS
                  ) -> tuple[dict[str, PairedStat], tuple[SliceStat, ...]]:
    """The engine's `paired_bootstraps` on all rows (unchanged), and the same per slice
    of each of `columns`, every one on the same resamples."""
    specs = [rule if isinstance(rule, MetricSpec) else MetricSpec(*rule) for rule in rules]
    n = engine._rows(y_true)
    if not columns:
        return engine.paired_bootstraps(specs, y_true, champion, candidate,
                                        confidence=confidence, resamples=resamples,
                                        seed=seed, chunk=chunk,
                                        analytic_rows=analytic_rows), ()
    engine.check_options(specs, confidence, resamples)
    encoded: list[classmetrics.Encoded] = []
    jobs = [engine._job(spec, y_true, champion, candidate, encoded) for spec in specs]
    if n > analytic_rows:       # the engine's own linearised aggregate, on the same jobs
        return _linearised_all(specs, jobs, y_true, champion, candidate, columns, n,
                               confidence)
    groups, sliced = [], []
    for column in columns:
        slices = _slices(specs, y_true, champion, candidate, column)
        order = np.concatenate([s.rows for s in slices]) if slices else \
            np.empty(0, dtype=np.intp)
        ends = np.cumsum([len(s.rows) for s in slices])
        bounds = tuple(zip((0, *ends[:-1].tolist()), ends.tolist()))
        groups.append(resample.Groups(order, bounds, tuple(_parts(s.jobs) for s in slices)))
        sliced.append(slices)
    values, grouped = resample.bootstrap_grouped(_parts(jobs), groups, n, resamples, seed,
                                                 chunk)
    whole = {job.name: stat for job, stat in
             zip(jobs, _summaries(jobs, n, values, confidence, resamples, strict=True))
             if stat is not None}
    stats = [_stat(s, dict(zip((job.name for job in s.jobs),
                               _summaries(s.jobs, len(s.rows), vals, confidence, resamples,
                                          strict=False))))
             for slices, per_slice in zip(sliced, grouped)
             for s, vals in zip(slices, per_slice)]
    return whole, tuple(stats)


def _linearised_all(specs: Sequence[MetricSpec], jobs: Sequence[Any], y_true: Any,
                    champion: Any, candidate: Any, columns: Sequence[SliceColumn], n: int,
                    confidence: float) -> tuple[dict[str, PairedStat], tuple[SliceStat, ...]]:
    """The aggregate and every slice of `columns` linearised, each equal to the engine's.
    A sum metric sums each model's columns once for its aggregate and every slice
    (gate.stats.slicelinear.summed); a rank metric whose parts score slices from the
    sorts of all rows (RankPart.sliced) gets its aggregate and every column from one sort
    per class and model."""
    cuts = [(_codes(column, n), len(column.labels)) for column in columns]
    sizes = [np.bincount(codes, minlength=slices) for codes, slices in cuts]
    whole: dict[str, PairedStat] = {}
    ready: list[dict[str, list[PairedStat | None]]] = [{} for _ in columns]
    aggregates: list[tuple[Any, list[Array]]] = []
    for job in jobs:
        champ, cand = job.champion, job.candidate
        if isinstance(champ, SumPart) and isinstance(cand, SumPart):
            totals, per_column = slicelinear.summed(
                job, n, [(codes, size) for (codes, _), size in zip(cuts, sizes)],
                confidence, engine.POWER)
            aggregates.append((job, totals))
            for i, column_stats in enumerate(per_column):
                ready[i][job.name] = column_stats
            continue
        if not (isinstance(champ, RankPart) and isinstance(cand, RankPart) and
                champ.sliced is not None and cand.sliced is not None):
            whole[job.name] = engine._linearised(job, n, confidence)
            continue
        # one model's influences at a time on top of the other's: each is (columns + 1)
        # arrays of a float per row, dropped once this job's stats are made
        (champ_whole, champ_cols), (cand_whole, cand_cols) = champ.sliced(cuts), \
            cand.sliced(cuts)
        whole[job.name] = engine._linearised_stat(
            job, n, confidence, *resample.influence_se(champ_whole, cand_whole))
        for i, (codes, _) in enumerate(cuts):
            ready[i][job.name] = slicelinear.ranked(job, codes, sizes[i], champ_cols[i],
                                                    cand_cols[i], confidence, engine.POWER)
        del champ_whole, champ_cols, cand_whole, cand_cols
    # the sum metrics' aggregates last, their BLAS calls together (slicelinear.summed)
    for job, totals in aggregates:
        whole[job.name] = engine._linearised_stat(
            job, n, confidence, *resample.sum_se(job.champion, job.candidate, n, totals))
    whole = {job.name: whole[job.name] for job in jobs}
    stats = []
    for column, size, done in zip(columns, sizes, ready):
        stats += _linearised_column(specs, y_true, champion, candidate, column, size, done,
                                    confidence)
    return whole, tuple(stats)


def _linearised_column(specs: Sequence[MetricSpec], y_true: Any, champion: Any,
                       candidate: Any, column: SliceColumn, sizes: Array,
                       ready: dict[str, list[PairedStat | None]],
                       confidence: float) -> list[SliceStat]:
    """Every slice of `column` linearised: the `ready` metrics as given (all slices at
    once), the rest slice by slice on their rows."""
    alone_specs = [spec for spec in specs if spec.name not in ready]
    if not alone_specs:     # no slice's rows needed: no sort of the codes
        return [SliceStat(column.column, column.labels[code], rows,
                          {spec.name: stat for spec in specs
                           if (stat := ready[spec.name][code]) is not None})
                for code, rows in enumerate(sizes.tolist()) if rows]
    out = []
    for s in _slices(alone_specs, y_true, champion, candidate, column):
        alone = {job.name: _linearised(job, len(s.rows), confidence) for job in s.jobs}
        paired = {spec.name: ready[spec.name][s.code] if spec.name in ready
                  else alone.get(spec.name) for spec in specs}
        out.append(_stat(s, paired))
    return out


def _codes(column: SliceColumn, n: int) -> Array:
    codes = np.asarray(column.codes)
    if codes.shape != (n,):
        raise InputError(f"slice column {column.column!r} has {codes.shape[0]} values for "
                         f"{n} eval rows")
    return codes


def _slices(specs: Sequence[MetricSpec], y_true: Any, champion: Any, candidate: Any,
            column: SliceColumn) -> list[_Slice]:
    """The column's slices that have rows, with the metrics defined on each."""
    codes = _codes(column, engine._rows(y_true))
    # small codes sort as int16: numpy's radix sort, several times faster on a million
    order = np.argsort(codes.astype(np.int16) if len(column.labels) < 2 ** 15 else codes,
                       kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(column.labels)))
    out = []
    for code, (start, end) in enumerate(zip((0, *ends[:-1].tolist()), ends.tolist())):
        if end > start:
            rows = order[start:end]
            out.append(_Slice(column.column, column.labels[code], code, rows,
                              _jobs(specs, y_true, champion, candidate, rows)))
    return out


def _jobs(specs: Sequence[MetricSpec], y_true: Any, champion: Any, candidate: Any,
          rows: Array) -> tuple[Any, ...]:
    if len(rows) < MIN_ROWS or not specs:
        return ()
    y, champ, cand = (_take(v, rows) for v in (y_true, champion, candidate))
    encoded: list[classmetrics.Encoded] = []
    jobs = []
    for spec in specs:
        try:
            jobs.append(engine._job(spec, y, champ, cand, encoded))
        except InputError:
            continue        # undefined on this slice (one class only, ...): left out
    return tuple(jobs)


def _take(values: Any, rows: Array) -> Any:
    if isinstance(values, ClassScores):
        return ClassScores(np.asarray(values.labels)[rows],
                           None if values.proba is None else np.asarray(values.proba)[rows],
                           values.classes)
    return np.asarray(values)[rows]


def _parts(jobs: Sequence[Any]) -> tuple[Part, ...]:
    return tuple(part for job in jobs for part in (job.champion, job.candidate))


def _summaries(jobs: Sequence[Any], n: int, values: Sequence[Array], confidence: float,
               resamples: int, strict: bool) -> list[PairedStat | None]:
    out: list[PairedStat | None] = []
    for i, job in enumerate(jobs):
        champ, cand = values[2 * i], values[2 * i + 1]
        draws = cand - champ if job.direction == "lower" else champ - cand
        try:
            out.append(engine._summary(job, n, draws, confidence, resamples))
        except InputError:
            if strict:
                raise
            out.append(None)    # undefined in too many of the slice's resamples
    return out


def _linearised(job: Any, n: int, confidence: float) -> PairedStat | None:
    try:
        return engine._linearised(job, n, confidence)
    except InputError:
        return None


def _stat(s: _Slice, paired: dict[str, PairedStat | None]) -> SliceStat:
    return SliceStat(s.column, s.value, len(s.rows),
                     {name: stat for name, stat in paired.items() if stat is not None})
