"""The slice rule: a slice blocks only when its worsening is confidently beyond its
allowance, at a confidence corrected for the number of slices gated. Pure; no I/O.

Each gated (slice, metric) pair is a one-sided test of "worsening <= allowance"; its
p-value is 1 - Phi((worsening - allowance) / se), with se the standard error of the
slice's paired bootstrap (or of its linearised interval above ANALYTIC_ROWS rows). The
normal tail, not the share of resamples below the allowance: Holm's smallest threshold
over 50 slices and 3 metrics is 0.025 / 150, finer than 1 / 2,000 resamples can say.

Holm's step-down (Holm 1979) over all of them keeps the family-wise rate of a false
block at alpha = (1 - confidence) / 2, whatever the dependence between the tests: the
one-sided level of the aggregate's own `CI low > 0` at that confidence. Slices below
`min_rows` are reported but not tested, so they do not dilute the correction. The
rule is the same under every [compare] policy; the aggregate rule is unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Sequence

from gate.core.config import MetricRule
from gate.core.sliceconfig import SlicesConfig
from gate.stats.paired import PairedStat, SliceStat


class SliceStatus(StrEnum):
    FAILED = "failed"               # confidently beyond the allowance, after Holm
    WITHIN_NOISE = "within_noise"   # beyond the allowance, not confidently
    PASSED = "passed"
    NOT_GATED = "not_gated"         # fewer rows than [slices] min_rows


@dataclass(frozen=True)
class SliceMetric:
    name: str
    direction: str
    status: str
    champion: float
    candidate: float
    worsening: float
    allowance: float
    low: float
    high: float
    p_value: float | None       # None when not gated

    @property
    def delta_rel(self) -> float | None:
        if not self.champion:
            return None
        return (self.candidate - self.champion) / abs(self.champion)

    @property
    def excess(self) -> float:
        """How far beyond its allowance, relative to Production: what sorts the worst."""
        return (self.worsening - self.allowance) / max(abs(self.champion), 1e-12)


@dataclass(frozen=True)
class SliceResult:
    column: str
    value: str
    rows: int
    gated: bool
    metrics: tuple[SliceMetric, ...]

    @property
    def status(self) -> str:
        for status in (SliceStatus.FAILED, SliceStatus.WITHIN_NOISE):
            if any(m.status == status for m in self.metrics):
                return status
        return SliceStatus.PASSED if self.gated else SliceStatus.NOT_GATED

    @property
    def failed(self) -> tuple[SliceMetric, ...]:
        return tuple(m for m in self.metrics if m.status == SliceStatus.FAILED)

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


def judge(config: SlicesConfig, rules: Sequence[MetricRule], stats: Sequence[SliceStat],
          confidence: float) -> tuple[SliceResult, ...]:
    """Every slice's result, in the order of `stats`."""
    alpha = (1.0 - confidence) / 2
    tests: list[tuple[int, str, PairedStat, float, float]] = []
    by_name = {rule.name: rule for rule in rules}
    for index, stat in enumerate(stats):
        gated = stat.rows >= config.min_rows
        for name, paired in stat.paired.items():
            rule = by_name.get(name)
            if rule is None:
                continue
            allowance = config.allowance(name, rule.tolerance, rule.tolerance_rel,
                                         paired.champion)
            p = p_value(paired, allowance) if gated else math.nan
            tests.append((index, name, paired, allowance, p))
    gated_p = [t[4] for t in tests if not math.isnan(t[4])]
    rejected = iter(holm(gated_p, alpha))
    decided = {}
    for index, name, paired, allowance, p in tests:
        reject = next(rejected) if not math.isnan(p) else False
        decided[(index, name)] = _metric(by_name[name], paired, allowance, p, reject)
    return tuple(SliceResult(stat.column, stat.value, stat.rows,
                             stat.rows >= config.min_rows,
                             tuple(decided[(index, name)] for name in stat.paired
                                   if (index, name) in decided))
                 for index, stat in enumerate(stats))


def p_value(paired: PairedStat, allowance: float) -> float:
    """One-sided p-value of "worsening <= allowance" from the comparison's se."""
    excess = paired.worsening - allowance
    slack = 1e-9 * max(1.0, abs(paired.champion))
    if not math.isfinite(paired.se) or paired.se <= 0:
        return 0.0 if excess > slack else 1.0
    if excess <= slack:
        return max(0.5, 1.0 - NormalDist().cdf(excess / paired.se))
    return 1.0 - NormalDist().cdf(excess / paired.se)


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down: which hypotheses are rejected at family-wise level alpha."""
    m = len(p_values)
    rejected = [False] * m
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def _metric(rule: MetricRule, paired: PairedStat, allowance: float, p: float,
            reject: bool) -> SliceMetric:
    slack = 1e-9 * max(1.0, abs(paired.champion))
    if math.isnan(p):
        status = SliceStatus.NOT_GATED
    elif reject:
        status = SliceStatus.FAILED
    elif paired.worsening > allowance + slack:
        status = SliceStatus.WITHIN_NOISE
    else:
        status = SliceStatus.PASSED
    return SliceMetric(name=rule.name, direction=rule.direction, status=status,
                       champion=paired.champion, candidate=paired.candidate,
                       worsening=paired.worsening, allowance=allowance, low=paired.low,
                       high=paired.high, p_value=None if math.isnan(p) else p)
