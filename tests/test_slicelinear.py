"""Linearised regression slices (issue #25) summed chunk by chunk with the aggregate's
totals: the same results as before, against a copy of the code they replace (the
engine's aggregate, then every slice's sums by bincount over all rows again)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gate.stats import engine, resample, slicelinear
from gate.stats.catalogue import MetricSpec
from gate.stats.paired import PairedStat
from gate.stats.parts import SumPart
from gate.stats.slices import SliceColumn, paired_sliced

RULES = [("rmse", "lower"), ("mae", "lower"), ("r2", "higher")]
FIELDS = ("champion", "candidate", "worsening", "low", "high", "mde", "se", "rows")


def reference_grouped(job: Any, codes: np.ndarray, sizes: np.ndarray,
                      confidence: float) -> list[PairedStat | None]:
    """slicelinear.grouped as it was before summed() replaced it, verbatim."""
    champion, candidate = job.champion, job.candidate
    weight = sizes.astype(float)
    influence = np.zeros(len(codes))
    values = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for part, sign in ((champion, -1.0), (candidate, 1.0)):
            columns = part.columns(slice(None))
            totals = np.stack([np.bincount(codes, weights=columns[:, k], minlength=len(sizes))
                               for k in range(part.width)], axis=1)
            values.append(np.asarray(part.combine(totals, weight), dtype=float))
            gradient = slicelinear._gradient(part, totals, weight)
            means = totals / np.maximum(weight, 1.0)[:, None]
            for k in range(part.width):
                influence += np.take(sign * gradient[:, k], codes) * columns[:, k]
            influence -= np.take(sign * (gradient * means).sum(axis=1), codes)
    se = np.sqrt(np.bincount(codes, weights=influence * influence, minlength=len(sizes)))
    return slicelinear._stats(job.direction, values[0], values[1], se, sizes, confidence,
                              engine.POWER)


def rows(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Regression rows and two slice columns: 12 slices of unequal sizes, one of 4 rows
    (below MIN_ROWS), one of a single row, one with a constant target (r2 undefined),
    one with no rows; and a column of two slices."""
    rng = np.random.default_rng(seed)
    codes = rng.choice(12, n, p=np.linspace(1.0, 3.0, 12) / np.linspace(1.0, 3.0, 12).sum())
    codes[:4], codes[7] = 12, 13
    y = np.where(codes == 5, 2.5, rng.normal(0.0, 3.0, n))
    champion = y + rng.normal(0.0, 1.0, n)
    candidate = y + rng.normal(0.0, 1.0, n) * np.where(codes == 3, 1.3, 1.0)
    return y, champion, candidate, codes, (rng.random(n) < 0.3).astype(np.int64)


def assert_same(got: PairedStat, want: PairedStat) -> None:
    for field in FIELDS:
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-12,
                                                    abs=0.0), field


@pytest.mark.parametrize("n, seed", [(3_000, 0), (140_000, 1)], ids=["small", "chunked"])
def test_linearised_regression_slices_are_unchanged(n: int, seed: int) -> None:
    y, champion, candidate, codes, halves = rows(n, seed)
    columns = [SliceColumn("segment", tuple(f"s{k}" for k in range(15)), codes),
               SliceColumn("half", ("a", "b"), halves)]
    options: dict[str, Any] = {"confidence": 0.9, "resamples": 50, "seed": 0,
                               "analytic_rows": 0}
    whole, stats = paired_sliced(RULES, y, champion, candidate, columns, **options)
    # the aggregate bit for bit the engine's
    assert whole == engine.paired_bootstraps(RULES, y, champion, candidate, **options)
    jobs = [engine._job(MetricSpec(*rule), y, champion, candidate, []) for rule in RULES]
    want: list[tuple[str, str, int, dict[str, PairedStat]]] = []
    for column in columns:
        sizes = np.bincount(column.codes, minlength=len(column.labels))
        per_job = {job.name: reference_grouped(job, column.codes, sizes, 0.9)
                   for job in jobs}
        want += [(column.column, column.labels[code], size,
                  {name: s[code] for name, s in per_job.items() if s[code] is not None})
                 for code, size in enumerate(sizes.tolist()) if size]
    assert [(s.column, s.value, s.rows, sorted(s.paired)) for s in stats] == \
        [(c, v, size, sorted(paired)) for c, v, size, paired in want]
    for stat, (_, _, _, paired) in zip(stats, want):
        for name, expected in paired.items():
            assert_same(stat.paired[name], expected)
    by_value = {s.value: s for s in stats}
    # the tiny and the one-row slice are listed with no metrics; r2 left out where the
    # target is constant, rmse and mae kept; the empty slice is not listed
    assert (by_value["s12"].rows, by_value["s12"].paired) == (4, {})
    assert (by_value["s13"].rows, by_value["s13"].paired) == (1, {})
    assert sorted(by_value["s5"].paired) == ["mae", "rmse"]
    assert "s14" not in by_value
    # a worsened slice is caught, as before
    assert by_value["s3"].paired["rmse"].low > 0


def test_the_aggregate_from_the_slices_totals_is_the_engines() -> None:
    y, champion, candidate, codes, _ = rows(140_000, 2)
    sizes = np.bincount(codes, minlength=15)
    for rule in RULES:
        job = engine._job(MetricSpec(*rule), y, champion, candidate, [])
        assert isinstance(job.champion, SumPart) and isinstance(job.candidate, SumPart)
        totals, _ = slicelinear.summed(job, len(y), [(codes, sizes)], 0.95, engine.POWER)
        assert resample.sum_se(job.champion, job.candidate, len(y), totals) == \
            resample.linearised_se(job.champion, job.candidate, len(y))
