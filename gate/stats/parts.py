"""The two shapes a metric of one model takes in the paired comparison.

A `SumPart` is a function of weighted column sums of per-row statistics (a mean, a
ratio of sums): a batch of bootstrap resamples is one matrix product. A `RankPart`
depends on the order of the rows by score (ROC AUC, average precision) and is scored
under each resample's weights directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Array = np.ndarray


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


Part = SumPart | RankPart
