"""The linearised interval of a metric on every slice of one column at once.

Above ANALYTIC_ROWS the aggregate's interval is the infinitesimal jackknife
(gate.stats.resample.linearised_se); a slice's is the same on its rows. For a metric of
column sums it is computed for all slices in a few passes over the rows: per-slice
totals by bincount, each slice's gradient of its combine, each row's influence under
its slice's gradient, and per-slice sums of squares by bincount again, with no loop
over slices in Python: fifty slices of a million rows cost about what the aggregate
does. Each model's columns are made once for its aggregate and all its slices (the
engine's aggregate, which bounds its memory, makes them chunk by chunk, twice).
Values equal the engine's on each slice's rows up to rounding (r2's columns are
centred on the whole set's mean, which its total sum of squares does not see).
A rank metric's per-row influences come from its part (RankPart.sliced, from the
sorts of all rows) with values exactly the engine's; only its se is summed here.
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from gate.stats import resample
from gate.stats.paired import PairedStat, worsening
from gate.stats.parts import SumPart
from gate.stats.regression import MIN_ROWS

Array = np.ndarray
_STEP = 1e-6        # relative step of the numerical gradient, as resample._gradient's


def summed(job: Any, n: int, cuts: Sequence[tuple[Array, Array]], confidence: float,
           power: float) -> tuple[tuple[float, float, float], list[list[PairedStat | None]]]:
    """A sum metric on all rows and on every slice of each column: the aggregate's
    (champion, candidate, se), bit for bit resample.linearised_se's, and per column (a
    (codes, sizes) pair) the job's PairedStat on each slice (index = code); None where it
    is undefined or the slice has fewer than MIN_ROWS rows. Each model's columns are
    made once, for the aggregate and every slice."""
    champion, candidate = job.champion, job.candidate
    assert isinstance(champion, SumPart) and isinstance(candidate, SumPart)
    influences = [np.zeros(n) for _ in cuts]
    values: list[list[Array]] = [[] for _ in cuts]
    whole = []
    scratch = np.empty(n)
    for part, sign in ((champion, -1.0), (candidate, 1.0)):
        columns = part.columns(slice(None))
        whole.append(resample.sum_influence(part, n, columns))
        for (codes, sizes), influence, value in zip(cuts, influences, values):
            value.append(_add_influence(part, columns, codes, sizes, sign, influence,
                                        scratch))
        del columns
    (champ, champ_terms), (cand, cand_terms) = whole
    aggregate = (champ, cand, resample.paired_se(champ_terms, cand_terms, n))
    del champ_terms, cand_terms, scratch
    out = []
    for (codes, sizes), influence, (champ_values, cand_values) in zip(cuts, influences,
                                                                      values):
        np.multiply(influence, influence, out=influence)
        se = np.sqrt(np.bincount(codes, weights=influence, minlength=len(sizes)))
        out.append(_stats(job.direction, champ_values, cand_values, se, sizes, confidence,
                          power))
    return aggregate, out


def _add_influence(part: SumPart, columns: Array, codes: Array, sizes: Array, sign: float,
                   influence: Array, scratch: Array) -> Array:
    """Add `sign` times each row's influence on its slice's value to `influence`; the
    part's value on each slice. Per-slice totals by bincount, each slice's gradient of
    its combine, then sum_k g_k (x_k - mean_k) = sum_k g_k x_k - (g . mean): one gather
    per column from a table of `slices` entries into `scratch`, no (rows, width)
    temporaries."""
    weight = sizes.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        totals = np.stack([np.bincount(codes, weights=columns[:, k], minlength=len(sizes))
                           for k in range(part.width)], axis=1)
        value = np.asarray(part.combine(totals, weight), dtype=float)
        gradient = _gradient(part, totals, weight)
        means = totals / np.maximum(weight, 1.0)[:, None]
        # mode="clip" (every code is below len(sizes)): "raise" buffers `out` again
        for k in range(part.width):
            np.take(sign * gradient[:, k], codes, out=scratch, mode="clip")
            np.multiply(scratch, columns[:, k], out=scratch)
            influence += scratch
        influence -= np.take(sign * (gradient * means).sum(axis=1), codes, out=scratch,
                             mode="clip")
    return value


def ranked(job: Any, codes: Array, sizes: Array, champion: tuple[Array, Array],
           candidate: tuple[Array, Array], confidence: float,
           power: float) -> list[PairedStat | None]:
    """summed()'s slices for a rank metric, from each model's per-slice values and each row's
    influence on its own slice's value (RankPart.sliced): the engine's interval on
    each slice's rows, its se summed per slice by bincount instead of slice by slice.
    Overwrites the champion's influences."""
    (champ_values, d), (cand_values, influence) = champion, candidate
    np.subtract(influence, d, out=d)
    with np.errstate(divide="ignore", invalid="ignore"):
        d -= np.take(np.bincount(codes, weights=d, minlength=len(sizes)) / sizes, codes)
    se = np.sqrt(np.bincount(codes, weights=d * d, minlength=len(sizes)))
    return _stats(job.direction, champ_values, cand_values, se, sizes, confidence, power)


def _stats(direction: str, champion: Array, candidate: Array, se: Array, sizes: Array,
           confidence: float, power: float) -> list[PairedStat | None]:
    z = NormalDist().inv_cdf
    half = z(1 - (1 - confidence) / 2)
    out: list[PairedStat | None] = []
    for k, rows in enumerate(sizes.tolist()):
        champ, cand, spread = float(champion[k]), float(candidate[k]), float(se[k])
        if rows < MIN_ROWS or not all(np.isfinite((champ, cand, spread))):
            out.append(None)
            continue
        worse = worsening(direction, champ, cand)
        out.append(PairedStat(champion=champ, candidate=cand, worsening=worse,
                              low=worse - half * spread, high=worse + half * spread,
                              mde=(half + z(power)) * spread, rows=rows, se=spread))
    return out


def _gradient(part: SumPart, totals: Array, weight: Array) -> Array:
    """d combine / d totals per slice, (slices, width), by central differences."""
    step = _STEP * np.maximum(np.abs(totals), 1.0)
    gradient = np.empty_like(totals)
    for k in range(part.width):
        shift = np.zeros_like(totals)
        shift[:, k] = step[:, k]
        up = np.asarray(part.combine(totals + shift, weight), dtype=float)
        down = np.asarray(part.combine(totals - shift, weight), dtype=float)
        gradient[:, k] = (up - down) / (2 * step[:, k])
    return np.nan_to_num(gradient)
