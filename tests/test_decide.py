"""The pure verdict: parametrize tables of named boundary cases."""
import math

import pytest

from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import Evidence, decide
from gate.stats.paired import PairedStat, worsening

RMSE = MetricRule("rmse", "lower", max=70.0, tolerance_rel=0.02)
R2 = MetricRule("r2", "higher", min=0.3, tolerance=0.01)


def cfg(*rules: MetricRule, policy: str = "significant") -> Config:
    return Config(model=ModelConfig("m"), compare=CompareConfig(policy=policy),
                  metrics=rules, primary_metric=rules[0].name)


def point(candidate: dict, champion: dict | None, version: str | None = "1") -> Evidence:
    return Evidence("run", candidate, champion_version=version if champion is not None
                    else None, champion_metrics=champion or {})


@pytest.mark.parametrize("case, rule, cand, champ, status", [
    ("better_lower", RMSE, 50.0, 55.0, "passed"),
    ("within_relative_tolerance", RMSE, 56.0, 55.0, "passed"),
    ("equality_boundary_relative", RMSE, 55.0 * 1.02, 55.0, "passed"),
    ("just_over_relative", RMSE, 55.0 * 1.0201, 55.0, "failed"),
    ("absolute_max_broken", RMSE, 71.0, 72.0, "failed"),
    ("absolute_max_equal", RMSE, 70.0, 70.0, "passed"),
    ("higher_better", R2, 0.5, 0.4, "passed"),
    ("higher_within_abs_tolerance", R2, 0.395, 0.40, "passed"),
    ("higher_equality_boundary_abs", R2, 0.39, 0.40, "passed"),
    ("higher_worse", R2, 0.38, 0.40, "failed"),
    ("higher_below_min", R2, 0.29, 0.20, "failed"),
    ("zero_champion_no_tolerance", MetricRule("mae", "lower", tolerance_rel=0.5), 0.1, 0.0,
     "failed"),
    ("zero_champion_abs_tolerance", MetricRule("mae", "lower", tolerance=0.2), 0.1, 0.0,
     "passed"),
    ("negative_champion_relative_uses_abs", MetricRule("r2", "higher", tolerance_rel=0.1),
     -0.55, -0.5, "passed"),
])
def test_point_rules(case: str, rule: MetricRule, cand: float, champ: float,
                     status: str) -> None:
    verdict = decide(cfg(rule, policy="point"), point({rule.name: cand}, {rule.name: champ}))
    assert verdict.metrics[0].status == status, case
    assert verdict.status == ("passed" if status == "passed" else "blocked")


@pytest.mark.parametrize("case, cand, rule, metric_status, verdict_status", [
    ("missing_required", {}, RMSE, "error", "error"),
    ("nan_required", {"rmse": math.nan}, RMSE, "error", "error"),
    ("inf_required", {"rmse": math.inf}, RMSE, "error", "error"),
    ("missing_optional", {}, MetricRule("rmse", "lower", required=False), "skipped", "passed"),
])
def test_missing_or_non_finite(case: str, cand: dict, rule: MetricRule, metric_status: str,
                               verdict_status: str) -> None:
    verdict = decide(cfg(rule), point(cand, {"rmse": 50.0}))
    assert verdict.metrics[0].status == metric_status, case
    assert verdict.status == verdict_status


def test_first_model_passes_bounds_only() -> None:
    verdict = decide(cfg(RMSE, R2), point({"rmse": 60.0, "r2": 0.4}, None))
    assert verdict.status == "first_model" and verdict.passed
    assert all("no Production version" in m.reason for m in verdict.metrics)


def test_first_model_still_fails_an_absolute_bound() -> None:
    verdict = decide(cfg(RMSE), point({"rmse": 80.0}, None))
    assert verdict.status == "blocked" and not verdict.passed


def test_champion_without_the_metric_is_judged_by_bound_only() -> None:
    verdict = decide(cfg(RMSE), point({"rmse": 60.0}, {"mae": 1.0}))
    assert verdict.metrics[0].status == "passed"
    assert "Production has no finite value" in verdict.metrics[0].reason


def test_failed_metrics_and_errors_are_derived() -> None:
    verdict = decide(cfg(RMSE, R2), point({"rmse": 80.0, "r2": 0.5}, {"rmse": 50.0, "r2": 0.5}))
    assert [m.name for m in verdict.failed] == ["rmse"] and verdict.errors == ()


def paired(worse: float, low: float, high: float, champion: float = 50.0,
           mde: float = 1.0) -> Evidence:
    stat = PairedStat(champion=champion, candidate=champion + worse, worsening=worse,
                      low=low, high=high, mde=mde, rows=100)
    return Evidence("run", {"rmse": 0.0}, champion_version="1",
                    champion_metrics={"rmse": 0.0}, paired={"rmse": stat})


@pytest.mark.parametrize("policy, worse, low, high, status", [
    # significant: practically (> allowance 1.0) and statistically (low > 0) worse
    ("significant", 3.0, 0.5, 5.0, "failed"),
    ("significant", 3.0, -0.5, 5.0, "within_noise"),
    ("significant", 0.5, 0.1, 0.9, "passed"),
    ("significant", 1.0, 0.5, 1.5, "passed"),        # equality boundary: not > allowance
    # point ignores the interval
    ("point", 3.0, -0.5, 5.0, "failed"),
    ("point", 0.9, -0.5, 5.0, "passed"),
    # non-inferiority: the upper bound must be within the allowance
    ("non_inferiority", 0.2, -0.5, 1.5, "failed"),
    ("non_inferiority", 0.2, -0.5, 1.0, "passed"),
    ("non_inferiority", -2.0, -3.0, -1.0, "passed"),
])
def test_policies(policy: str, worse: float, low: float, high: float, status: str) -> None:
    rule = MetricRule("rmse", "lower", tolerance=1.0)
    result = decide(cfg(rule, policy=policy), paired(worse, low, high)).metrics[0]
    assert result.status == status
    assert result.paired and result.champion == 50.0 and result.candidate == 50.0 + worse


def test_paired_values_replace_logged_ones_and_flag_underpowered() -> None:
    rule = MetricRule("rmse", "lower", tolerance=1.0)
    result = decide(cfg(rule), paired(0.1, -1, 1, mde=2.5)).metrics[0]
    assert result.underpowered and result.allowance == 1.0
    assert not decide(cfg(rule), paired(0.1, -1, 1, mde=0.5)).metrics[0].underpowered


def test_fallback_reason_is_carried_and_point_is_used() -> None:
    evidence = Evidence("run", {"rmse": 60.0}, "1", {"rmse": 50.0},
                        fallback_reason="no eval rows")
    verdict = decide(cfg(RMSE), evidence)
    assert verdict.fallback_reason == "no eval rows" and not verdict.paired
    assert verdict.metrics[0].status == "failed"


@pytest.mark.parametrize("direction, champion, candidate, expected", [
    ("lower", 10.0, 12.0, 2.0), ("lower", 10.0, 8.0, -2.0),
    ("higher", 0.5, 0.4, 0.1), ("higher", 0.5, 0.7, -0.2),
])
def test_worsening_sign(direction: str, champion: float, candidate: float,
                        expected: float) -> None:
    assert worsening(direction, champion, candidate) == pytest.approx(expected)


def _paired(candidate: float) -> PairedStat:
    return PairedStat(champion=50.0, candidate=candidate, worsening=candidate - 50.0,
                      low=-1.0, high=1.0, mde=2.0, rows=100)


@pytest.mark.parametrize("case, logged, paired, computed, status", [
    # the run's own value must be there for a required metric, whatever the gate scored
    ("required_nan_with_pairing", math.nan, _paired(49.0), {}, "error"),
    ("required_missing_with_pairing", None, _paired(49.0), {}, "error"),
    ("required_logged_and_paired", 49.0, _paired(49.0), {}, "passed"),
])
def test_required_metric_rule_holds_with_paired_evidence(case, logged, paired, computed,
                                                         status) -> None:
    metrics = {} if logged is None else {"rmse": logged}
    evidence = Evidence("run", metrics, champion_version="1", champion_metrics={"rmse": 50.0},
                        paired={"rmse": paired}, candidate_computed=computed)
    assert decide(cfg(RMSE), evidence).metrics[0].status == status


def test_optional_metric_the_gate_computed_is_judged_on_a_first_model() -> None:
    rule = MetricRule("mape", "lower", max=0.5, required=False)
    evidence = Evidence("run", {}, candidate_computed={"mape": 0.9})
    result = decide(cfg(rule), evidence).metrics[0]
    assert result.status == "failed" and result.candidate == 0.9


@pytest.mark.parametrize("case, flavors, verified, require, blocked", [
    ("flavor_allowed", ("sklearn",), True, False, False),
    ("flavor_format_allowed", ("sklearn:skops",), True, False, False),
    ("flavor_not_allowed", ("lightgbm",), True, False, True),
    ("unverified_allowed_by_default", (), False, False, False),
    ("unverified_blocked_when_required", (), False, True, True),
])
def test_run_rules(case, flavors, verified, require, blocked) -> None:
    config = Config(model=ModelConfig("m", allowed_flavors=flavors),
                    compare=CompareConfig(require_verified=require), metrics=(RMSE,),
                    primary_metric="rmse")
    evidence = Evidence("run", {"rmse": 50.0}, candidate_verified=verified,
                        candidate_flavor="sklearn:skops")
    verdict = decide(config, evidence)
    assert (verdict.status == "blocked") is blocked and bool(verdict.blocked_by) is blocked
