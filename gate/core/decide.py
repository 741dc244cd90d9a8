"""The verdict: a pure function of the config and the evidence. No I/O here."""
from __future__ import annotations

import math
from enum import StrEnum
from dataclasses import dataclass, field
from typing import Any, Mapping

from gate.core import slicerules
from gate.core.config import Config, MetricRule, Policy
from gate.core.slicerules import SliceResult
from gate.stats.paired import PairedStat, SliceStat, worsening


class Status(StrEnum):
    """One metric's result. A StrEnum: it compares, hashes and serialises as its value."""

    PASSED = "passed"
    WITHIN_NOISE = "within_noise"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class VerdictStatus(StrEnum):
    PASSED = "passed"
    BLOCKED = "blocked"
    FIRST_MODEL = "first_model"
    ERROR = "error"


@dataclass(frozen=True)
class Evidence:
    candidate_run_id: str
    candidate_metrics: Mapping[str, float]
    champion_version: str | None = None
    champion_metrics: Mapping[str, float] = field(default_factory=dict)
    paired: Mapping[str, PairedStat] = field(default_factory=dict)
    fallback_reason: str | None = None
    # the candidate's metrics as the gate computed them on the eval rows (no champion)
    candidate_computed: Mapping[str, float] = field(default_factory=dict)
    # whether the gate computed each model's predictions itself (None: no such model)
    candidate_verified: bool = False
    champion_verified: bool | None = None
    candidate_flavor: str = ""          # flavor:format of the candidate's model, "" if none
    champion_missing: str | None = None     # no champion, but there was one: why
    slices: tuple[SliceStat, ...] = ()      # the paired comparison per slice ([slices])
    promoting: bool = False     # the verdict decides a promotion (check --promote, promote)


@dataclass(frozen=True)
class MetricResult:
    name: str
    direction: str
    status: str             # passed | within_noise | failed | error | skipped
    reason: str             # the rule that decided, in words
    candidate: float | None = None
    champion: float | None = None
    delta: float | None = None          # candidate - champion, raw
    worsening: float | None = None      # direction-adjusted, > 0 is worse
    allowance: float | None = None
    low: float | None = None
    high: float | None = None
    mde: float | None = None
    paired: bool = False

    @property
    def delta_rel(self) -> float | None:
        if self.delta is None or not self.champion:
            return None
        return self.delta / abs(self.champion)

    @property
    def underpowered(self) -> bool:
        """The eval set cannot detect a worsening the size of the allowance."""
        return self.mde is not None and self.allowance is not None and \
            self.mde > self.allowance


@dataclass(frozen=True)
class Verdict:
    candidate_run_id: str
    champion_version: str | None
    policy: str
    metrics: tuple[MetricResult, ...]
    fallback_reason: str | None = None
    blocked_by: tuple[str, ...] = ()     # rules about the whole run, not one metric
    candidate_verified: bool = False
    champion_verified: bool | None = None
    slices: tuple[SliceResult, ...] = ()

    @property
    def failed_slices(self) -> tuple[SliceResult, ...]:
        """Slices confidently worse than their allowance (Holm-corrected)."""
        return tuple(s for s in self.slices if s.failed)

    @property
    def blocked_reason(self) -> str | None:
        """Why the run is blocked whatever its metrics say, if it is."""
        return self.blocked_by[0] if self.blocked_by else None

    @property
    def failed(self) -> tuple[MetricResult, ...]:
        return tuple(m for m in self.metrics if m.status == Status.FAILED)

    @property
    def errors(self) -> tuple[MetricResult, ...]:
        return tuple(m for m in self.metrics if m.status == Status.ERROR)

    @property
    def status(self) -> str:
        if self.errors:
            return VerdictStatus.ERROR
        if self.failed or self.blocked_by or self.failed_slices:
            return VerdictStatus.BLOCKED
        if self.champion_version is None:
            return VerdictStatus.FIRST_MODEL
        return VerdictStatus.PASSED

    @property
    def passed(self) -> bool:
        return self.status in (VerdictStatus.PASSED, VerdictStatus.FIRST_MODEL)

    @property
    def paired(self) -> bool:
        return any(m.paired for m in self.metrics)


def decide(config: Config, evidence: Evidence) -> Verdict:
    """Apply every configured metric rule to the evidence, and the slice rule to the
    slices' evidence (gate.core.slicerules)."""
    policy = config.compare.policy
    results = tuple(_judge(rule, evidence, policy) for rule in config.metrics)
    slices = slicerules.judge(config.slices, config.metrics, evidence.slices,
                              config.compare.confidence) \
        if evidence.slices and evidence.champion_version is not None else ()
    return Verdict(candidate_run_id=evidence.candidate_run_id,
                   champion_version=evidence.champion_version,
                   policy=policy, metrics=results,
                   fallback_reason=evidence.fallback_reason,
                   blocked_by=_run_rules(config, evidence),
                   candidate_verified=evidence.candidate_verified,
                   champion_verified=evidence.champion_verified, slices=slices)


def _run_rules(config: Config, evidence: Evidence) -> tuple[str, ...]:
    """Rules about the run as a whole: whose numbers they are, and what it is."""
    reasons = []
    if evidence.champion_version is None and evidence.champion_missing and \
            config.model.on_missing_champion == "block":
        reasons.append(evidence.champion_missing)
    flavor = evidence.candidate_flavor
    if flavor and not config.model.allows(flavor):
        reasons.append(f"the candidate's model is {flavor}, which is not in [model] "
                       f"allowed_flavors ({', '.join(config.model.allowed_flavors)})")
    required = config.compare.require_verified
    if required or (required is None and evidence.promoting):
        why = "[compare] require_verified is true" if required else \
            "[compare] require_verified is true when promoting unless set to false"
        if not evidence.candidate_verified:
            reasons.append("the candidate's numbers are its own claims (the gate could not "
                           f"compute its predictions) and {why}")
        if evidence.champion_version is not None and evidence.champion_verified is False:
            reasons.append("Production's predictions are logged claims, not computed by the "
                           f"gate, and {why}")
    return tuple(reasons)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _judge(rule: MetricRule, evidence: Evidence, policy: str) -> MetricResult:
    paired = evidence.paired.get(rule.name)
    logged = evidence.candidate_metrics.get(rule.name)
    base: dict[str, Any] = {"name": rule.name, "direction": rule.direction}

    # the run's own value must be there whatever the gate computes: a trainer that
    # logs NaN is broken, and the rule says so before any comparison
    if logged is None or not math.isfinite(logged):
        what = "missing from" if logged is None else f"not finite ({logged}) in"
        if rule.required:
            return MetricResult(status=Status.ERROR, candidate=logged,
                                reason=f"required metric {what} the candidate run", **base)
        # an optional metric the gate scored itself is still judged
        if paired is None and rule.name not in evidence.candidate_computed:
            return MetricResult(status=Status.SKIPPED, candidate=logged,
                                reason=f"optional metric {what} the candidate run", **base)
    candidate: float = paired.candidate if paired else \
        evidence.candidate_computed.get(rule.name, logged if logged is not None else math.nan)

    bound = _bound_failure(rule, candidate)
    champion = paired.champion if paired else evidence.champion_metrics.get(rule.name)
    if evidence.champion_version is None or not _finite(champion):
        why = "no Production version" if evidence.champion_version is None \
            else "Production has no finite value"
        return MetricResult(status=Status.FAILED if bound else Status.PASSED, candidate=candidate,
                            reason=bound or f"absolute bound only ({why})", **base)

    assert champion is not None  # for the type checker: _finite checked it
    worse = worsening(rule.direction, champion, candidate)
    # a hair of slack so equality at the boundary survives float rounding (55 * 1.02)
    allowance = rule.allowance(champion)
    slack = 1e-9 * max(1.0, abs(champion))
    stats: dict[str, Any] = {"candidate": candidate, "champion": champion,
                             "delta": candidate - champion, "worsening": worse,
                             "allowance": allowance, "paired": paired is not None}
    if paired is not None:
        stats.update(low=paired.low, high=paired.high, mde=paired.mde)
    if bound:
        return MetricResult(status=Status.FAILED, reason=bound, **base, **stats)

    effective = policy if paired is not None else Policy.POINT
    by = f"worse by {worse:.4g}"
    if effective == Policy.SIGNIFICANT:
        assert paired is not None   # effective is "point" without a pairing
        failed = worse > allowance + slack and paired.low > 0
        why_failed = f"{by} > allowance {allowance:.4g}, confidently (CI low > 0)"
        why_noise = f"{by} > allowance {allowance:.4g}, but within noise (CI includes 0)"
    elif effective == Policy.NON_INFERIORITY:
        assert paired is not None
        failed = paired.high > allowance + slack
        why_failed = f"CI high {paired.high:.4g} > allowance {allowance:.4g}: " \
            "not shown non-inferior"
        why_noise = ""
    else:
        failed = worse > allowance + slack
        why_failed = f"{by} > allowance {allowance:.4g}"
        why_noise = ""
    if failed:
        status, reason = Status.FAILED, why_failed
    elif worse > allowance + slack:
        status, reason = Status.WITHIN_NOISE, why_noise
    elif worse > 0:
        status, reason = Status.PASSED, f"{by}, within allowance {allowance:.4g}"
    else:
        status, reason = Status.PASSED, f"not worse (allowance {allowance:.4g})"
    return MetricResult(status=status, reason=reason, **base, **stats)


def _bound_failure(rule: MetricRule, candidate: float) -> str:
    if rule.max is not None and candidate > rule.max:
        return f"above the absolute max {rule.max:g}"
    if rule.min is not None and candidate < rule.min:
        return f"below the absolute min {rule.min:g}"
    return ""
