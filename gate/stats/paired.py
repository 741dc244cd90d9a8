"""One metric of two models compared on the same rows: the result the engine hands the
verdict, and the one definition of "worse" both use."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class PairedStat:
    """One metric of both models scored on the same rows, with bootstrap bounds.

    `worsening` is direction-adjusted (positive = candidate worse); `low`/`high`
    bound it at the configured confidence; `mde` is the smallest worsening this
    eval set can detect.
    """

    champion: float
    candidate: float
    worsening: float
    low: float
    high: float
    mde: float
    rows: int
    # the standard error of `worsening` (the bootstrap's, or the linearised one): what
    # a test at another confidence than the interval's needs (the slices' Holm step)
    se: float = math.nan


def worsening(direction: str, champion: float, candidate: float) -> float:
    """How much worse the candidate is (negative when better)."""
    return candidate - champion if direction == "lower" else champion - candidate


@dataclass(frozen=True)
class SliceStat:
    """The paired comparison on the rows of one slice (one value of one column).

    `paired` holds the metrics defined on those rows (a slice too small or too uniform
    for a metric leaves it out); a slice below the engine's minimum has none.
    """

    column: str
    value: str
    rows: int
    paired: Mapping[str, PairedStat] = field(default_factory=dict)
