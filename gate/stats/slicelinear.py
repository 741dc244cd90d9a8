"""The linearised interval of a metric on every slice of one column at once.

Above ANALYTIC_ROWS the aggregate's interval is the infinitesimal jackknife
(gate.stats.resample.linearised_se); a slice's is the same on its rows. For a metric of
column sums it is computed for all slices in a few passes over the rows: per-slice
totals by bincount, each slice's gradient of its combine, each row's influence under
its slice's gradient, and per-slice sums of squares by bincount again, with no loop
over slices in Python: fifty slices of a million rows cost about what the aggregate
does. Values equal the engine's on each slice's rows up to rounding (r2's columns
are centred on the whole set's mean, which its total sum of squares does not see).
A rank metric's per-row influences come from its part (RankPart.sliced, from the
sorts of all rows) with values exactly the engine's; only its se is summed here.
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

from gate.stats.paired import PairedStat, worsening
from gate.stats.parts import SumPart
from gate.stats.regression import MIN_ROWS

Array = np.ndarray
_STEP = 1e-6        # relative step of the numerical gradient, as resample._gradient's


def grouped(job: Any, codes: Array, sizes: Array, confidence: float,
            power: float) -> list[PairedStat | None]:
    """The job's PairedStat on each slice (index = code); None where it is undefined
    or the slice has fewer than MIN_ROWS rows."""
    champion, candidate = job.champion, job.candidate
    assert isinstance(champion, SumPart) and isinstance(candidate, SumPart)
    weight = sizes.astype(float)
    influence = np.zeros(len(codes))
    values = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for part, sign in ((champion, -1.0), (candidate, 1.0)):
            columns = part.columns(slice(None))
            totals = np.stack([np.bincount(codes, weights=columns[:, k], minlength=len(sizes))
                               for k in range(part.width)], axis=1)
            values.append(np.asarray(part.combine(totals, weight), dtype=float))
            gradient = _gradient(part, totals, weight)
            means = totals / np.maximum(weight, 1.0)[:, None]
            # sum_k g_k (x_k - mean_k) = sum_k g_k x_k - (g . mean): one gather per
            # column from a table of `slices` entries, no (rows, width) temporaries
            for k in range(part.width):
                influence += np.take(sign * gradient[:, k], codes) * columns[:, k]
            influence -= np.take(sign * (gradient * means).sum(axis=1), codes)
    se = np.sqrt(np.bincount(codes, weights=influence * influence, minlength=len(sizes)))
    return _stats(job.direction, values[0], values[1], se, sizes, confidence, power)


def ranked(job: Any, codes: Array, sizes: Array, champion: tuple[Array, Array],
           candidate: tuple[Array, Array], confidence: float,
           power: float) -> list[PairedStat | None]:
    """grouped() for a rank metric, from each model's per-slice values and each row's
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
