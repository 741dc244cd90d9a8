"""The two ways the paired comparison puts an interval on a worsening.

`bootstrap` draws resamples of the rows (counts per row, in blocks of bounded size)
and scores every part under each; `linearised_se` is the standard error that the
bootstrap converges to, from each row's influence on the metric, in one pass over
the rows in chunks: for eval sets so large that resampling them would be all cost
and no information (the bootstrap distribution is normal there to many digits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from gate.stats.parts import Part, SumPart

Array = np.ndarray
# Resample-by-row count cells per chunk: bounds memory to one array of this many
# 8-byte cells (16 MB) whatever the rows x resamples product.
CHUNK_CELLS = 1 << 21
# Row indices drawn per call (a block of resamples): 65,536 keeps a block in cache.
DRAW_CELLS = 1 << 16
# Rows per chunk of the linearised pass: a few MB per column.
ROW_CHUNK = 1 << 16
# Relative step of the numerical gradient of a combine: its truncation error (h^2)
# and rounding error (eps / h) both stay near 1e-10 of the value.
_STEP = 1e-6


def count_blocks(n: int, resamples: int, seed: int,
                 chunk: int | None) -> Iterator[tuple[int, Array]]:
    """Bootstrap row counts, (resamples in the block, n), block after block.

    A resample's n row indices become row counts (bincount). The resamples' indices
    come one after another from one Generator, so the stream, and every result, are
    the same whatever the chunk size.
    """
    rng = np.random.default_rng(seed)
    step = max(1, min(resamples, chunk or CHUNK_CELLS // n))
    # resamples drawn per call: one call per resample costs more in Python than the
    # draw itself on small eval sets; a block this size still stays in cache
    block = max(1, min(step, DRAW_CELLS // n))
    offsets = (np.arange(block, dtype=np.intp) * n)[:, None]
    counts = np.empty((step, n))
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
        yield start, counts[:size]


@dataclass(frozen=True)
class Groups:
    """The rows cut into groups (the slices of one column), each with its own parts.

    `order` lists the row indices group after group (ascending within a group), and
    group g holds order[bounds[g][0]:bounds[g][1]]; its parts are built on those rows
    in that order. Under a resample a group's parts see the resample's counts of its
    rows only: the bootstrap's weights restricted to the group.
    """

    order: Array
    bounds: tuple[tuple[int, int], ...]
    parts: tuple[tuple[Part, ...], ...]


def bootstrap(parts: Sequence[Part], n: int, resamples: int, seed: int,
              chunk: int | None) -> list[Array]:
    """Each part's value under each resample, (resamples,) per part, on one draw.

    All sum parts' columns are stacked so a block of resamples is one BLAS product;
    rank parts are scored on the same counts.
    """
    return bootstrap_grouped(parts, (), n, resamples, seed, chunk)[0]


def bootstrap_grouped(parts: Sequence[Part], groups: Sequence[Groups], n: int,
                      resamples: int, seed: int, chunk: int | None
                      ) -> tuple[list[Array], list[list[list[Array]]]]:
    """`bootstrap` of `parts` on all rows and, on the very same resamples, of each
    group's parts on its rows: (values of `parts`, [per Groups [per group [per part]]]).

    Per block of counts, a Groups costs one gather of the counts into its row order and
    one product per group of a contiguous piece of it with that group's columns: as
    much arithmetic as the aggregate product, whatever the number of groups.
    """
    whole = _Scores(parts, n, resamples, float(n))
    pieces = [[_Scores(group, end - start, resamples, None)
               for (start, end), group in zip(g.bounds, g.parts)] for g in groups]
    for start, counts in count_blocks(n, resamples, seed, chunk):
        whole.add(start, counts)
        for g, scores in zip(groups, pieces):
            ordered = np.take(counts, g.order, axis=1)
            for (low, high), score in zip(g.bounds, scores):
                score.add(start, ordered[:, low:high])
    return whole.values(), [[score.values() for score in scores] for scores in pieces]


class _Scores:
    """The running sums (and rank values) of a set of parts over blocks of resamples."""

    def __init__(self, parts: Sequence[Part], n: int, resamples: int,
                 total: float | None) -> None:
        self.parts = tuple(parts)
        sums_parts = [p for p in parts if isinstance(p, SumPart)]
        self.columns = np.hstack([p.columns(slice(None)) for p in sums_parts]) \
            if sums_parts else np.empty((n, 0))
        self.sums = np.empty((resamples, self.columns.shape[1]))
        # the aggregate's weight is n in every resample; a group's is its rows' counts
        self.total = total
        self.weight = np.empty(resamples) if total is None else None
        self.ranked = {id(p): np.empty(resamples) for p in parts
                       if not isinstance(p, SumPart)}

    def add(self, start: int, counts: Array) -> None:
        end = start + len(counts)
        if self.columns.shape[1]:
            self.sums[start:end] = counts @ self.columns
        if self.weight is not None:
            self.weight[start:end] = counts.sum(axis=1)
        for p in self.parts:
            if not isinstance(p, SumPart):
                self.ranked[id(p)][start:end] = p.values(counts)

    def values(self) -> list[Array]:
        weight: Array | float = self.weight if self.weight is not None else \
            float(self.total or 0.0)
        out, at = [], 0
        for p in self.parts:
            if isinstance(p, SumPart):
                # a group can draw none of its rows in a resample: its value is then
                # undefined (NaN), which the summary counts as such
                with np.errstate(divide="ignore" if self.weight is not None else "warn",
                                 invalid="ignore" if self.weight is not None else "warn"):
                    out.append(p.combine(self.sums[:, at:at + p.width], weight))
                at += p.width
            else:
                out.append(self.ranked[id(p)])
        return out


def point(part: Part, n: int) -> float:
    """The part's value with every row weighing one."""
    if isinstance(part, SumPart):
        return float(part.combine(part.columns(slice(None)).sum(axis=0), float(n)))
    return float(part.values(np.ones((1, n)))[0])


def linearised_se(champion: Part, candidate: Part, n: int) -> tuple[float, float, float]:
    """(champion, candidate, se of candidate - champion) without resampling.

    T(w) ~ T(1) + sum_j g_j (w_j - 1) with g_j = dT/dw_j, and the bootstrap's counts
    have covariance I - 11'/n, so var = sum_j (g_j - mean g)^2: the infinitesimal
    jackknife (Efron 1982), the variance the bootstrap estimates.
    """
    if isinstance(champion, SumPart) and isinstance(candidate, SumPart):
        return _sum_se(champion, candidate, n)
    assert not isinstance(champion, SumPart) and not isinstance(candidate, SumPart)
    champion_value, d = champion.influence()
    candidate_value, influence = candidate.influence()
    np.subtract(influence, d, out=d)
    del influence
    d -= d.mean()
    return champion_value, candidate_value, float(np.sqrt(d @ d))


def _sum_se(champion: SumPart, candidate: SumPart, n: int) -> tuple[float, float, float]:
    totals = [np.zeros(p.width) for p in (champion, candidate)]
    for rows in _row_chunks(n):
        for total, p in zip(totals, (champion, candidate)):
            total += p.columns(rows).sum(axis=0)
    grads = [_gradient(p, total, n) for p, total in zip((champion, candidate), totals)]
    means = [total / n for total in totals]
    square = 0.0
    for rows in _row_chunks(n):
        d = (candidate.columns(rows) - means[1]) @ grads[1] \
            - (champion.columns(rows) - means[0]) @ grads[0]
        square += float(d @ d)
    values = [float(p.combine(total, float(n))) for p, total in
              zip((champion, candidate), totals)]
    return values[0], values[1], float(np.sqrt(square))


def _gradient(part: SumPart, sums: Array, n: int) -> Array:
    """d combine / d sums at `sums`, by central differences (one batched call)."""
    step = _STEP * np.maximum(np.abs(sums), 1.0)
    shifts = np.diag(step)
    values = part.combine(np.vstack((sums + shifts, sums - shifts)), float(n))
    k = len(sums)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num((values[:k] - values[k:]) / (2 * step))


def _row_chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, ROW_CHUNK):
        yield slice(start, min(n, start + ROW_CHUNK))
