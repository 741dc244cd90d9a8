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
           power: float) -> tuple[list[Array], list[list[PairedStat | None]]]:
    """A sum metric on every slice of each column (a (codes, sizes) pair): the job's
    PairedStat on each slice (index = code), None where it is undefined or the slice
    has fewer than MIN_ROWS rows; and each model's column totals on all rows, added up
    as resample.linearised_se does, for the aggregate (resample.sum_se).

    Two passes over the rows chunk by chunk, each chunk's columns made once a pass
    while they are in cache: totals (the aggregate's and every slice's), then each
    row's influence. np.add.at adds in row order, as bincount does, so every slice's
    sums are bit for bit those of a bincount over all rows. No BLAS here: OpenBLAS's
    threads spin on the other core for a while after each call, so the aggregate's
    calls are best made together (sum_se), not chunk by chunk between these."""
    parts = (job.champion, job.candidate)
    assert isinstance(parts[0], SumPart) and isinstance(parts[1], SumPart)
    totals = [np.zeros(part.width) for part in parts]
    # per column of slices and model: (width, slices), a row of totals per column
    sliced = [[np.zeros((part.width, len(sizes))) for part in parts] for _, sizes in cuts]
    for rows in resample.row_chunks(n):
        for i, part in enumerate(parts):
            columns = part.columns(rows)
            totals[i] += columns.sum(axis=0)
            for (codes, _), per_model in zip(cuts, sliced):
                for k in range(part.width):
                    np.add.at(per_model[i][k], codes[rows], columns[:, k])
    # per column of slices: each model's _tables, the champion's negated
    tables = [[_tables(part, np.ascontiguousarray(per_model[i].T), sizes, sign)
               for i, (part, sign) in enumerate(zip(parts, (-1.0, 1.0)))]
              for (_, sizes), per_model in zip(cuts, sliced)]
    squares = [np.zeros(len(sizes)) for _, sizes in cuts]
    for rows in resample.row_chunks(n):
        columns = [part.columns(rows) for part in parts]
        for (codes, _), model_tables, square in zip(cuts, tables, squares):
            influence = _influence(codes[rows], columns, model_tables)
            np.add.at(square, codes[rows], influence * influence)
    return totals, [_stats(job.direction, champ[0], cand[0], np.sqrt(square), sizes,
                           confidence, power)
                    for (_, sizes), (champ, cand), square in zip(cuts, tables, squares)]


def _tables(part: SumPart, totals: Array, sizes: Array,
            sign: float) -> tuple[Array, list[Array], Array]:
    """A model's value on each slice from its (slices, width) totals; `sign` times its
    gradient there, a table per column; and `sign` times each slice's gradient . mean."""
    weight = sizes.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.asarray(part.combine(totals, weight), dtype=float)
        gradient = _gradient(part, totals, weight)
        means = totals / np.maximum(weight, 1.0)[:, None]
    return value, [sign * gradient[:, k] for k in range(part.width)], \
        sign * (gradient * means).sum(axis=1)


def _influence(codes: Array, columns: Sequence[Array],
               tables: Sequence[tuple[Array, list[Array], Array]]) -> Array:
    """Each row's influence on its slice's candidate - champion, for a chunk of rows:
    sum_k g_k (x_k - mean_k) = sum_k g_k x_k - (g . mean) per model, one gather per
    column from a table of `slices` entries into one buffer (mode="clip": every code
    is below the tables' length, and "raise" would buffer `out` again)."""
    influence, gathered = np.zeros(len(codes)), np.empty(len(codes))
    for columns_of, (_, gradient, centre) in zip(columns, tables):
        for k, table in enumerate(gradient):
            np.take(table, codes, out=gathered, mode="clip")
            influence += np.multiply(gathered, columns_of[:, k], out=gathered)
        influence -= np.take(centre, codes, out=gathered, mode="clip")
    return influence


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
