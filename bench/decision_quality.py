"""Decision quality of the gate against the alternatives, on the same cases.

Seed-only retrains (false blocks) and injected regressions of four kinds (detection),
each judged by the gate's three policies, by MLflow's `validate_evaluation_results`
and by a plain point comparison of the logged metrics, at two eval-set sizes. The
gate's own pure pieces run in-process (stats.paired_bootstrap and decide.decide), so
no MLflow server is needed.

    python -m bench.decision_quality            # full run, ~15 min on 2 busy cores
    python -m bench.decision_quality --quick    # a tiny version, seconds
    python -m bench.decision_quality --task classifier    # only the classifier cases

The classifier cases (f1, roc_auc, log_loss; binary and multiclass) live in
bench/decision_classifier.py.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from bench.common import at_least, log, machine, pct, rate, table
from gate.stats import engine as stats
from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import Evidence, MetricResult, decide
from gate.stats.paired import PairedStat

TOLERANCE_REL = 0.02
SPLIT_SEED = 42         # train_model.py's default: every run is evaluated on the same rows
TEST_SIZE = 0.2
CHAMPION_SEED = 0
METHODS = ("significant", "point", "non_inferiority", "logged point",
           "MLflow rel 0.02", "MLflow threshold")
BUCKETS = ("better (<= 0)", "within allowance", "grey zone", "> allowance + mde")


@dataclass(frozen=True)
class Change:
    """What a candidate does differently from the champion (seed 0, 50 trees)."""

    kind: str
    level: str
    n_estimators: int = 50
    max_depth: int | None = None
    drop_ranks: tuple[int, ...] = ()        # 1 = the champion's most important feature
    label_noise: float = 0.0                # sd of noise added to y_train, in sd(y_train)
    keep_quantile: float | None = None      # train only where the top feature is below it


SEED_ONLY = Change("seed only", "new seed")
REGRESSIONS = (
    Change("weaker model", "max_depth 10", max_depth=10),
    Change("weaker model", "10 trees", n_estimators=10),
    Change("weaker model", "max_depth 6", max_depth=6),
    Change("weaker model", "3 trees", n_estimators=3),
    Change("dropped features", "5th feature", drop_ranks=(5,)),
    Change("dropped features", "3rd feature", drop_ranks=(3,)),
    Change("dropped features", "top feature", drop_ranks=(1,)),
    Change("dropped features", "top 2 features", drop_ranks=(1, 2)),
    Change("label noise", "0.25 sd", label_noise=0.25),
    Change("label noise", "0.5 sd", label_noise=0.5),
    Change("label noise", "1 sd", label_noise=1.0),
    Change("label noise", "2 sd", label_noise=2.0),
    Change("shifted split", "keep 95 %", keep_quantile=0.95),
    Change("shifted split", "keep 90 %", keep_quantile=0.9),
    Change("shifted split", "keep 80 %", keep_quantile=0.8),
    Change("shifted split", "keep 70 %", keep_quantile=0.7),
)
QUICK_REGRESSIONS = (REGRESSIONS[3], REGRESSIONS[6], REGRESSIONS[11], REGRESSIONS[15])


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_eval: np.ndarray
    y_eval: np.ndarray


@dataclass(frozen=True)
class DataSet:
    name: str
    split: Split
    # fresh rows from the generator for the true effect; None when there is no
    # generator, and the true effect comes from repeated random splits instead
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    resplit: Callable[[int], Split]


@dataclass(frozen=True)
class Fitted:
    model: Any
    columns: list[int]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(X[:, self.columns]), dtype=float)


@dataclass(frozen=True)
class Case:
    change: Change
    seed: int
    true_effect: float              # relative change of the true rmse, > 0 is worse
    stat: PairedStat
    result: MetricResult            # the `significant` verdict's, for mde and the flag
    blocked: dict[str, bool]

    @property
    def detectable(self) -> float:
        """allowance + mde, relative to the champion's rmse on the eval rows."""
        return TOLERANCE_REL + self.stat.mde / self.stat.champion

    @property
    def bucket(self) -> str:
        if self.true_effect <= 0:
            return BUCKETS[0]
        if self.true_effect <= TOLERANCE_REL:
            return BUCKETS[1]
        if self.true_effect <= self.detectable:
            return BUCKETS[2]
        return BUCKETS[3]


@dataclass(frozen=True)
class SizeResult:
    data: DataSet
    seeds: list[Case]
    regressions: list[Case]
    seconds: float
    decide_seconds: float


def split(X: np.ndarray, y: np.ndarray, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    X_train, X_eval, y_train, y_eval = train_test_split(X, y, test_size=TEST_SIZE,
                                                        random_state=seed)
    return Split(X_train, y_train, X_eval, y_eval)


def diabetes() -> DataSet:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return DataSet("diabetes", split(X, y, SPLIT_SEED), None, None,
                   lambda seed: split(X, y, seed))


def friedman(rows: int, test_rows: int) -> DataSet:
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=rows, n_features=10, noise=1.0, random_state=0)
    X_test, y_test = make_friedman1(n_samples=test_rows, n_features=10, noise=1.0,
                                    random_state=1)
    return DataSet("friedman1", split(X, y, SPLIT_SEED), X_test, y_test,
                   lambda seed: split(X, y, seed))


def fit(change: Change, data: Split, seed: int, ranking: Sequence[int]) -> Fitted:
    """Train like train_model.py (RandomForestRegressor, n_jobs=1), with the change."""
    from sklearn.ensemble import RandomForestRegressor

    dropped = {ranking[r - 1] for r in change.drop_ranks}
    columns = [c for c in range(data.X_train.shape[1]) if c not in dropped]
    X, y = data.X_train, data.y_train
    if change.keep_quantile is not None:
        top = X[:, ranking[0]]
        keep = top <= np.quantile(top, change.keep_quantile)
        X, y = X[keep], y[keep]
    if change.label_noise:
        rng = np.random.default_rng([seed, 1])
        y = y + rng.normal(0.0, change.label_noise * data.y_train.std(), len(y))
    model = RandomForestRegressor(n_estimators=change.n_estimators, max_depth=change.max_depth,
                                  random_state=seed, n_jobs=1)
    return Fitted(model.fit(X[:, columns], y), columns)


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def ranking_of(champion: Fitted) -> list[int]:
    return [int(i) for i in np.argsort(-champion.model.feature_importances_, kind="stable")]


def gate_config(resamples: int) -> Config:
    # rmse only and no absolute max: the bench isolates the comparison with Production
    rule = MetricRule(name="rmse", direction="lower", tolerance_rel=TOLERANCE_REL)
    return Config(model=ModelConfig(name="bench"),
                  compare=CompareConfig(policy="significant", confidence=0.95,
                                        resamples=resamples, seed=0),
                  metrics=(rule,), primary_metric="rmse")


def judge(config: Config, stat: PairedStat, metric: str = "rmse",
          mlflow_name: str = "root_mean_squared_error"
          ) -> tuple[dict[str, bool], MetricResult]:
    """Every method's block / pass on one case of `metric` (the config's only rule),
    and the `significant` metric result."""
    import mlflow
    from mlflow.models import EvaluationResult, MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    champion, candidate = {metric: stat.champion}, {metric: stat.candidate}
    paired = Evidence(candidate_run_id="candidate", candidate_metrics=candidate,
                      champion_version="1", champion_metrics=champion,
                      paired={metric: stat})
    blocked: dict[str, bool] = {}
    result: MetricResult | None = None
    for policy in ("significant", "point", "non_inferiority"):
        verdict = decide(replace(config, compare=replace(config.compare, policy=policy)),
                         paired)
        blocked[policy] = not verdict.passed
        if policy == "significant":
            result = verdict.metrics[0]
    # the gate's own fallback: no per-row evidence, the logged values only
    logged = replace(paired, paired={}, fallback_reason="bench: logged metrics only")
    blocked["logged point"] = not decide(config, logged).passed

    # MLflow's relative threshold demands an improvement of that size; a tolerance
    # can only be spelled as an absolute threshold recomputed from the baseline
    greater = config.metrics[0].direction == "higher"
    bound = stat.champion * (1 - TOLERANCE_REL if greater else 1 + TOLERANCE_REL)
    base = EvaluationResult({mlflow_name: stat.champion}, {})
    cand = EvaluationResult({mlflow_name: stat.candidate}, {})
    for method, threshold in (
            ("MLflow rel 0.02", MetricThreshold(min_relative_change=TOLERANCE_REL,
                                                greater_is_better=greater)),
            ("MLflow threshold", MetricThreshold(threshold=bound,
                                                 greater_is_better=greater))):
        try:
            mlflow.validate_evaluation_results({mlflow_name: threshold}, cand, base)
            blocked[method] = False
        except ModelValidationFailedException:
            blocked[method] = True
    assert result is not None
    return blocked, result


def true_effects_by_resplit(data: DataSet, changes: Sequence[Change], splits: int,
                            seed: int) -> dict[Change, float]:
    """The expected relative rmse change of each change, over `splits` random splits.

    A data set without a generator has no independent rows; averaging the held-out
    effect over many splits (none of them the gate's) estimates the change's effect.
    """
    effects: dict[Change, list[float]] = defaultdict(list)
    for index in range(splits):
        part = data.resplit(1000 + index)
        champion = fit(SEED_ONLY, part, CHAMPION_SEED, [])
        ranking = ranking_of(champion)
        base = rmse(part.y_eval, champion.predict(part.X_eval))
        for change in changes:
            cand = fit(change, part, seed, ranking)
            effects[change].append(rmse(part.y_eval, cand.predict(part.X_eval)) / base - 1)
    return {change: float(np.mean(values)) for change, values in effects.items()}


def run_size(data: DataSet, config: Config, seeds: int, case_seeds: int,
             changes: Sequence[Change], splits: int) -> SizeResult:
    start = time.perf_counter()
    part = data.split
    champion = fit(SEED_ONLY, part, CHAMPION_SEED, [])
    ranking = ranking_of(champion)
    champion_eval = champion.predict(part.X_eval)
    if data.X_test is not None:
        champion_true = rmse(data.y_test, champion.predict(data.X_test))
        resplit: dict[Change, float] = {}
    else:
        log(f"{data.name}: true effects over {splits} random splits")
        resplit = true_effects_by_resplit(data, changes, splits, seed=1)
        resplit[SEED_ONLY] = 0.0    # a new seed is no change in expectation

    decide_seconds = 0.0

    def case(change: Change, seed: int) -> Case:
        nonlocal decide_seconds
        cand = fit(change, part, seed, ranking)
        if data.X_test is not None:
            true = rmse(data.y_test, cand.predict(data.X_test)) / champion_true - 1
        else:
            true = resplit[change]
        tic = time.perf_counter()
        stat = stats.paired_bootstrap("rmse", "lower", part.y_eval, champion_eval,
                                      cand.predict(part.X_eval),
                                      confidence=config.compare.confidence,
                                      resamples=config.compare.resamples,
                                      seed=config.compare.seed)
        blocked, result = judge(config, stat)
        decide_seconds += time.perf_counter() - tic
        return Case(change, seed, true, stat, result, blocked)

    log(f"{data.name}: {seeds} seed-only retrains, {len(part.y_eval)} eval rows")
    seed_cases = [case(SEED_ONLY, seed) for seed in range(1, seeds + 1)]
    log(f"{data.name}: {len(changes)} regressions x {case_seeds} seeds")
    reg_cases = [case(change, seed) for change in changes
                 for seed in range(1, case_seeds + 1)]
    count = len(seed_cases) + len(reg_cases)
    return SizeResult(data, seed_cases, reg_cases, time.perf_counter() - start,
                      decide_seconds / count)


def report(results: Sequence[SizeResult], config: Config, argv: Sequence[str],
           measured: str) -> str:
    out = ["## Decision quality", "",
           f"Measured {measured}.",
           f"Command: `{' '.join(['python -m bench.decision_quality', *argv])}`", "",
           f"rmse, direction lower, tolerance_rel {TOLERANCE_REL}, confidence "
           f"{config.compare.confidence}, {config.compare.resamples} resamples; "
           "RandomForestRegressor(50 trees), champion seed 0.", ""]
    out += ["### Eval sets", "", _sets_table(results)]
    out += ["### False blocks (seed-only retrains)", "", _false_blocks(results)]
    out += ["### Block rate by true effect", "",
            "Injected regressions, grouped by their true effect on rmse relative to "
            "this case's allowance (2 %) and allowance + mde (the minimum detectable "
            "worsening from the bootstrap). Target: the `significant` policy blocks "
            ">= 95 % of the last group at the larger size.", "",
            _buckets(results)]
    out += ["### Block rate by regression", "", _per_change(results)]
    total = sum(r.seconds for r in results)
    out += ["### Wall time", "", table(
        ["eval set", "cases", "wall time (s)", "bootstrap + decide per case (ms)"],
        [[r.data.name, len(r.seeds) + len(r.regressions), f"{r.seconds:.0f}",
          f"{1000 * r.decide_seconds:.0f}"] for r in results]
        + [["total", sum(len(r.seeds) + len(r.regressions) for r in results),
            f"{total:.0f}", ""]])]
    return "\n".join(out)


def _sets_table(results: Sequence[SizeResult]) -> str:
    rows = []
    for r in results:
        mde = [c.stat.mde / c.stat.champion for c in r.seeds]
        flagged = sum(c.result.underpowered for c in r.seeds + r.regressions)
        count = len(r.seeds) + len(r.regressions)
        rows.append([r.data.name, len(r.data.split.y_eval), len(r.data.split.y_train),
                     "20k fresh rows" if r.data.X_test is not None
                     else "mean over random splits",
                     round(r.seeds[0].stat.champion, 3) if r.seeds else "-",
                     pct(statistics.median(mde)) if mde else "-",
                     rate(flagged, count), _spread([c.true_effect for c in r.seeds])])
    return table(["eval set", "eval rows", "train rows", "true effect from",
                  "champion rmse", "median mde (seed-only)", "flagged underpowered",
                  "seed-only true effect (min .. max)"], rows)


def _spread(values: Sequence[float]) -> str:
    if not values or not any(values):
        return "0 (by construction)" if values else "-"
    return f"{100 * min(values):+.1f} % .. {100 * max(values):+.1f} %"


def _false_blocks(results: Sequence[SizeResult]) -> str:
    rows = [[r.data.name, len(r.seeds)] +
            [rate(sum(c.blocked[m] for c in r.seeds), len(r.seeds)) for m in METHODS]
            for r in results]
    return table(["eval set", "retrains", *METHODS], rows)


def _buckets(results: Sequence[SizeResult]) -> str:
    rows = []
    for r in results:
        for bucket in BUCKETS:
            cases = [c for c in r.regressions if c.bucket == bucket]
            if not cases:
                continue
            rows.append([r.data.name, bucket, len(cases)] +
                        [rate(sum(c.blocked[m] for c in cases), len(cases)) for m in METHODS])
    return table(["eval set", "true effect", "cases", *METHODS], rows)


def _per_change(results: Sequence[SizeResult]) -> str:
    rows = []
    for r in results:
        by_change: dict[Change, list[Case]] = defaultdict(list)
        for c in r.regressions:
            by_change[c.change].append(c)
        for change, cases in by_change.items():
            true = statistics.median(c.true_effect for c in cases)
            limit = statistics.median(c.detectable for c in cases)
            rows.append([r.data.name, change.kind, change.level, len(cases),
                         f"{100 * true:+.1f} %", pct(limit)] +
                        [f"{100 * sum(c.blocked[m] for c in cases) / len(cases):.0f} %"
                         for m in METHODS])
    return table(["eval set", "kind", "level", "cases", "true effect", "allowance + mde",
                  *METHODS], rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="a tiny version (few seeds and cases, 200 resamples) for smoke tests")
    p.add_argument("--seeds", type=int, help="seed-only retrains per eval set (default 100)")
    p.add_argument("--case-seeds", type=int,
                   help="seeds per injected regression (default 8)")
    p.add_argument("--splits", type=int,
                   help="random splits for the small set's true effects (default 30)")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    p.add_argument("--rows", type=int,
                   help="friedman1 and classifier rows before the 80/20 split "
                   "(default 5000: 1000 eval rows)")
    p.add_argument("--task", choices=("all", "regression", "classifier"), default="all",
                   help="which cases to run (default all)")
    p.add_argument("--draws", type=at_least(0),
                   help="classifiers: independent eval draws for the false-block rate "
                   "(default 40; 0 leaves them out)")
    p.add_argument("--draw-retrains", type=at_least(1),
                   help="classifiers: seed-only retrains per independent draw (default 10)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    # MLflow logs every validation at INFO; import it before any case is timed
    import mlflow.models  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    quick = args.quick
    seeds = args.seeds or (3 if quick else 100)
    case_seeds = args.case_seeds or (1 if quick else 8)
    splits = args.splits or (2 if quick else 30)
    config = gate_config(args.resamples or (200 if quick else 2000))
    rows = args.rows or (1000 if quick else 5000)
    changes = QUICK_REGRESSIONS if quick else REGRESSIONS
    measured = machine()
    if args.task in ("all", "regression"):
        results = [run_size(diabetes(), config, seeds, case_seeds, changes, splits),
                   run_size(friedman(rows, 2000 if quick else 20000), config, seeds,
                            case_seeds, changes, splits)]
        print(report(results, config, raw, measured))
    if args.task in ("all", "classifier"):
        print("\n".join(_classifiers(args, raw, measured, seeds, rows)))
    return 0


def _classifiers(args: argparse.Namespace, raw: Sequence[str], measured: str, seeds: int,
                 rows: int) -> list[str]:
    from bench import decision_classifier as dc

    resamples = args.resamples or (200 if args.quick else 2000)
    case_seeds = args.case_seeds or (1 if args.quick else 4)
    changes = dc.QUICK_REGRESSIONS if args.quick else dc.REGRESSIONS
    results = [dc.run_task(dc.make_task(name, classes, rows), resamples, seeds, case_seeds,
                           changes)
               for name, classes in (("binary", 2), ("3 classes", 3))]
    draws = args.draws if args.draws is not None else (2 if args.quick else 40)
    retrains = args.draw_retrains if args.draw_retrains is not None else \
        (2 if args.quick else 10)
    drawn = [dc.run_draws(name, classes, rows, draws, retrains, resamples)
             for name, classes in (("binary", 2), ("3 classes", 3))] if draws else []
    head = [] if args.task == "all" else [
        "## Decision quality", "", f"Measured {measured}.",
        f"Command: `{' '.join(['python -m bench.decision_quality', *raw])}`", ""]
    return head + dc.report(results, resamples, drawn)


if __name__ == "__main__":
    raise SystemExit(main())
