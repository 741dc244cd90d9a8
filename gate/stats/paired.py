"""One metric of two models compared on the same rows: the result the engine hands the
verdict, and the one definition of "worse" both use."""
from __future__ import annotations

from dataclasses import dataclass


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


def worsening(direction: str, champion: float, candidate: float) -> float:
    """How much worse the candidate is (negative when better)."""
    return candidate - champion if direction == "lower" else champion - candidate
