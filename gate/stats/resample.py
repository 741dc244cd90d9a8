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

    A Groups' sum columns are laid side by side in one sparse (n, total width) matrix,
    each group's rows in its own block of columns with one more column of ones (its
    weight): a block of resamples times that matrix is every group's sums and weight in
    one product, the arithmetic of the aggregate's (one nonzero per row and column of a
    part). Rank parts see the counts gathered into the group's rows.
    """
    whole = _Scores(parts, n, resamples, float(n))
    laid = [_Layout.of(g, resamples) for g in groups]
    for start, counts in count_blocks(n, resamples, seed, chunk):
        whole.add(start, counts)
        for layout in laid:
            layout.add(start, counts)
    return whole.values(), [[score.values() for score in layout.scores] for layout in laid]


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
        """Score a block of resamples' counts of these parts' rows."""
        if self.columns.shape[1]:
            self.sums[start:start + len(counts)] = counts @ self.columns
        if self.weight is not None:
            self.weight[start:start + len(counts)] = counts.sum(axis=1)
        self.add_ranked(start, counts)

    def add_ranked(self, start: int, counts: Array) -> None:
        for p in self.parts:
            if not isinstance(p, SumPart):
                self.ranked[id(p)][start:start + len(counts)] = p.values(counts)

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


class _Layout:
    """One Groups' sparse matrix of sum columns, and each group's running scores."""

    def __init__(self, groups: Groups, matrix: object, offsets: list[int],
                 scores: list[_Scores]) -> None:
        self.groups = groups
        self.matrix = matrix
        self.offsets = offsets
        self.scores = scores
        self.ranked = any(score.ranked for score in scores)

    @classmethod
    def of(cls, groups: Groups, resamples: int) -> "_Layout":
        from scipy import sparse

        scores, offsets, rows, cols, vals = [], [], [], [], []
        at = 0
        for (low, high), parts in zip(groups.bounds, groups.parts):
            score = _Scores(parts, high - low, resamples, None)
            block = np.hstack((score.columns, np.ones((high - low, 1))))
            index = groups.order[low:high]
            rows.append(np.repeat(index, block.shape[1]))
            cols.append(np.tile(np.arange(at, at + block.shape[1]), high - low))
            vals.append(block.ravel())
            scores.append(score)
            offsets.append(at)
            at += block.shape[1]
        n = len(groups.order)
        matrix = sparse.csr_matrix(
            (np.concatenate(vals) if vals else np.empty(0),
             (np.concatenate(rows) if rows else np.empty(0, dtype=np.intp),
              np.concatenate(cols) if cols else np.empty(0, dtype=np.intp))),
            shape=(n, at))
        return cls(groups, matrix, offsets, scores)

    def add(self, start: int, counts: Array) -> None:
        if counts.shape[1] != self.matrix.shape[0]:     # type: ignore[attr-defined]
            raise ValueError("the groups do not cover the rows")
        sums = np.asarray(counts @ self.matrix)
        end = start + len(counts)
        for offset, score in zip(self.offsets, self.scores):
            width = score.columns.shape[1]
            score.sums[start:end] = sums[:, offset:offset + width]
            assert score.weight is not None
            score.weight[start:end] = sums[:, offset + width]
        if self.ranked:
            ordered = np.take(counts, self.groups.order, axis=1)
            for (low, high), score in zip(self.groups.bounds, self.scores):
                score.add_ranked(start, ordered[:, low:high])


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
    return influence_se(champion.influence(), candidate.influence())


def influence_se(champion: tuple[float, Array],
                 candidate: tuple[float, Array]) -> tuple[float, float, float]:
    """linearised_se from each model's (value, influence of each row); overwrites the
    champion's influences."""
    (champion_value, d), (candidate_value, influence) = champion, candidate
    np.subtract(influence, d, out=d)
    del influence
    d -= d.mean()
    return champion_value, candidate_value, float(np.sqrt(d @ d))


def _sum_se(champion: SumPart, candidate: SumPart, n: int) -> tuple[float, float, float]:
    totals = [np.zeros(p.width) for p in (champion, candidate)]
    for rows in row_chunks(n):
        for total, p in zip(totals, (champion, candidate)):
            total += p.columns(rows).sum(axis=0)
    return sum_se(champion, candidate, n, totals)


def sum_se(champion: SumPart, candidate: SumPart, n: int,
           totals: Sequence[Array]) -> tuple[float, float, float]:
    """linearised_se of two sum parts from both parts' column totals on all rows, added
    up as linearised_se does (`total += part.columns(rows).sum(axis=0)` over row_chunks):
    bit for bit its result, for a caller that sums the columns for more than this."""
    grads = [_gradient(p, total, n) for p, total in zip((champion, candidate), totals)]
    means = [total / n for total in totals]
    square = 0.0
    for rows in row_chunks(n):
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


def row_chunks(n: int) -> Iterator[slice]:
    """The chunks of ROW_CHUNK rows the linearised pass takes, in order."""
    for start in range(0, n, ROW_CHUNK):
        yield slice(start, min(n, start + ROW_CHUNK))
