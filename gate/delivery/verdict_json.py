"""The verdict document `--json` writes, built in one place from typed inputs.

Every exit of `check` and `promote` writes one, errors included (exit 2 and 3), so a
workflow reading it finds the gate's own word instead of a missing key. The JSON Schema
is docs/verdict.schema.json; the tests validate real documents against it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from gate.core.decide import MetricResult, Verdict
from gate.core.slicerules import SliceMetric, SliceResult


@dataclass(frozen=True)
class Facts:
    """What the command knows besides the verdict."""

    model_name: str | None
    exit_code: int
    error: str | None = None            # the one-line error, redacted; None: no error
    candidate_run_id: str | None = None     # when there is no verdict to name it
    candidate_run_name: str | None = None   # the run's name, as its author chose it
    candidate_model_id: str | None = None   # the logged model judged (`m-...`), if known
    promoted_version: str | None = None
    notes: tuple[str, ...] = ()
    eval_rows: int | None = None
    data_changed: bool = False
    forced: bool = False
    champion_found_by: str | None = None
    champion_missing: str | None = None
    candidate_model: Mapping[str, Any] | None = None
    champion_model: Mapping[str, Any] | None = None
    eval_set: Mapping[str, Any] | None = None


def verdict_document(verdict: Verdict | None, facts: Facts) -> dict[str, Any]:
    """The whole document. With no verdict (the gate stopped before one) it says
    `error`, every key still present: what is not known is null or empty."""
    document: dict[str, Any] = {
        "passed": False, "status": "error", "exit_code": facts.exit_code,
        "error": facts.error, "candidate_run_id": facts.candidate_run_id,
        "candidate_run_name": facts.candidate_run_name,
        "champion_version": None, "promoted_version": facts.promoted_version,
        "policy": None, "paired": False, "fallback_reason": None, "failed_metrics": [],
        "metrics": [], "model_name": facts.model_name, "notes": list(facts.notes),
        "eval_rows": facts.eval_rows, "data_changed": facts.data_changed,
        "forced": facts.forced, "champion_found_by": facts.champion_found_by,
        "verified": False, "champion_verified": None,
        "candidate_model": _copy(facts.candidate_model),
        "champion_model": _copy(facts.champion_model), "eval_set": _copy(facts.eval_set),
        "blocked_by": [], "champion_missing": facts.champion_missing,
        "blocked_reason": None, "candidate_model_id": facts.candidate_model_id,
        "slices": []}
    if verdict is not None:     # the keys keep their places: a dict update
        document.update(_judged(verdict))
    # a logged model with no run (`--model-id`): no run id, rather than an empty one
    document["candidate_run_id"] = document["candidate_run_id"] or None
    return document


def error_document(exit_code: int, error: str, candidate_run_id: str | None = None,
                   model_name: str | None = None) -> dict[str, Any]:
    """The document of an exit with no verdict: bad input (2) or infrastructure (3)."""
    return verdict_document(None, Facts(model_name=model_name, exit_code=exit_code,
                                        error=error, candidate_run_id=candidate_run_id))


def _judged(verdict: Verdict) -> dict[str, Any]:
    return {"passed": verdict.passed, "status": str(verdict.status),
            "candidate_run_id": verdict.candidate_run_id,
            "champion_version": verdict.champion_version, "policy": verdict.policy,
            "paired": verdict.paired, "fallback_reason": verdict.fallback_reason,
            "failed_metrics": [m.name for m in verdict.failed],
            "metrics": [_metric(m) for m in verdict.metrics],
            "verified": verdict.candidate_verified,
            "champion_verified": verdict.champion_verified,
            "blocked_by": list(verdict.blocked_by), "blocked_reason": verdict.blocked_reason,
            "slices": [_slice(s) for s in verdict.slices]}


def _copy(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _metric(m: MetricResult) -> dict[str, Any]:
    return {"name": m.name, "direction": m.direction, "champion": _num(m.champion),
            "candidate": _num(m.candidate), "delta": _num(m.delta),
            "delta_rel": _num(m.delta_rel), "worsening": _num(m.worsening),
            "allowance": _num(m.allowance), "ci_low": _num(m.low), "ci_high": _num(m.high),
            "min_detectable": _num(m.mde), "underpowered": m.underpowered,
            "paired": m.paired, "status": str(m.status), "reason": m.reason}


def _slice(s: SliceResult) -> dict[str, Any]:
    return {"column": s.column, "value": s.value, "rows": s.rows, "gated": s.gated,
            "status": str(s.status), "metrics": [_slice_metric(m) for m in s.metrics]}


def _slice_metric(m: SliceMetric) -> dict[str, Any]:
    return {"name": m.name, "champion": _num(m.champion), "candidate": _num(m.candidate),
            "worsening": _num(m.worsening), "allowance": _num(m.allowance),
            "ci_low": _num(m.low), "ci_high": _num(m.high), "p_value": _num(m.p_value),
            "status": str(m.status)}


def _num(value: float | None) -> float | None:
    # JSON has no NaN; null says "not available" honestly
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)
