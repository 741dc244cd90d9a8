"""The two shapes a metric of one model takes in the paired comparison.

A `SumPart` is a function of weighted column sums of per-row statistics (a mean, a
ratio of sums): a batch of bootstrap resamples is one matrix product. A `RankPart`
depends on the order of the rows by score (ROC AUC, average precision) and is scored
under each resample's weights directly; one that can also score every slice of a
column from the sorts of all rows says so with `sliced`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Array = np.ndarray
# One column of slices as a part takes it: each row's slice code, and how many slices.
Slicing = tuple[Array, int]


@dataclass(frozen=True)
class SumPart:
    columns: Callable[[slice], Array]       # per-row statistics of rows[slice], (m, width)
    combine: Callable[[Array, Array | float], Array]    # (..., width) sums, total weight
    width: int


@dataclass(frozen=True)
class RankPart:
    values: Callable[[Array], Array]        # row weights (b, n) -> (b,) metric values
    # the value at unit weights, and d value / d row weight there, (n,)
    influence: Callable[[], tuple[float, Array]]
    # influence(), and from the same sorts for each column of slices: every slice's value
    # (slices,) and each row's influence on its own slice's value (n,), all equal to
    # the part's on the slice's rows alone. None: slices are scored on their own rows
    sliced: Callable[[Sequence[Slicing]], tuple[tuple[float, Array],
                                                list[tuple[Array, Array]]]] | None = None


Part = SumPart | RankPart
