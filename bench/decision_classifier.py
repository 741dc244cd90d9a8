"""Decision quality for classifiers: f1, roc_auc and log_loss, binary and multiclass.

The classifier half of bench/decision_quality.py (which runs it with `--task`):
seed-only retrains and injected regressions of a HistGradientBoostingClassifier on
generated tasks, each case's true effect measured on 20,000 fresh rows of the same
generator, and the gate's policies against a point comparison and MLflow's
`validate_evaluation_results`, per metric. In-process: the stats engine and
gate.decide, no MLflow server.
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

from bench.common import log, pct, rate, table
from bench.decision_quality import BUCKETS, METHODS, TOLERANCE_REL, judge
from gate.stats import resample
from gate.stats import engine as stats
from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import MetricResult
from gate.stats.paired import PairedStat, worsening
from gate.stats.catalogue import ClassScores, MetricSpec

# (gate name, direction, MLflow's name for the logged metric)
METRICS = (("f1", "higher", "f1_score"), ("roc_auc", "higher", "roc_auc"),
           ("log_loss", "lower", "log_loss"))
FRESH_ROWS = 20_000
CHAMPION_SEED = 0


@dataclass(frozen=True)
class Change:
    """What a candidate does differently from the champion (40 boosting rounds)."""

    kind: str
    level: str
    max_iter: int = 40
    max_depth: int | None = None
    drop_ranks: tuple[int, ...] = ()    # 1 = the most informative feature (F statistic)
    flip: float = 0.0                   # share of training labels replaced at random
    keep_quantile: float | None = None  # train only where the top feature is below it


SEED_ONLY = Change("seed only", "new seed")
REGRESSIONS = (
    Change("weaker model", "15 rounds", max_iter=15),
    Change("weaker model", "5 rounds", max_iter=5),
    Change("weaker model", "depth 2", max_depth=2),
    Change("weaker model", "stumps, 10 rounds", max_depth=1, max_iter=10),
    Change("dropped features", "3rd feature", drop_ranks=(3,)),
    Change("dropped features", "top feature", drop_ranks=(1,)),
    Change("dropped features", "top 2 features", drop_ranks=(1, 2)),
    Change("dropped features", "top 4 features", drop_ranks=(1, 2, 3, 4)),
    Change("label noise", "10 % flipped", flip=0.1),
    Change("label noise", "20 % flipped", flip=0.2),
    Change("label noise", "30 % flipped", flip=0.3),
    Change("label noise", "45 % flipped", flip=0.45),
    Change("shifted split", "keep 90 %", keep_quantile=0.9),
    Change("shifted split", "keep 80 %", keep_quantile=0.8),
    Change("shifted split", "keep 65 %", keep_quantile=0.65),
    Change("shifted split", "keep 50 %", keep_quantile=0.5),
)
QUICK_REGRESSIONS = (REGRESSIONS[1], REGRESSIONS[6], REGRESSIONS[10], REGRESSIONS[15])


@dataclass(frozen=True)
class Task:
    name: str
    average: str | None
    X_train: np.ndarray
    y_train: np.ndarray
    X_eval: np.ndarray
    y_eval: np.ndarray
    X_fresh: np.ndarray
    y_fresh: np.ndarray


@dataclass(frozen=True)
class Case:
    change: Change
    seed: int
    true_effect: dict[str, float]       # relative true worsening per metric (> 0 worse)
    stat: dict[str, PairedStat]
    result: dict[str, MetricResult]
    blocked: dict[str, dict[str, bool]]

    def bucket(self, metric: str) -> str:
        effect = self.true_effect[metric]
        detectable = TOLERANCE_REL + self.stat[metric].mde / abs(self.stat[metric].champion)
        if effect <= 0:
            return BUCKETS[0]
        if effect <= TOLERANCE_REL:
            return BUCKETS[1]
        if effect <= detectable:
            return BUCKETS[2]
        return BUCKETS[3]


@dataclass(frozen=True)
class TaskResult:
    task: Task
    seeds: list[Case]
    regressions: list[Case]
    seconds: float


def generate(classes: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The bench's generated task: one make_classification draw of `samples` rows. Its
    cluster covariances depend on `samples`, so draws of other sizes are siblings."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=samples, n_features=20, n_informative=8,
                               n_redundant=4, n_classes=classes, n_clusters_per_class=2,
                               flip_y=0.05, class_sep=0.8, random_state=0)
    return X, y


def average_for(classes: int) -> str | None:
    return None if classes == 2 else "macro"


def make_task(name: str, classes: int, rows: int) -> Task:
    """`rows` rows split 80/20 into train and eval, and fresh rows of the same draw."""
    X, y = generate(classes, rows + FRESH_ROWS)
    train = int(rows * 0.8)
    return Task(name, average_for(classes), X[:train], y[:train],
                X[train:rows], y[train:rows], X[rows:], y[rows:])


def ranking_of(task: Task) -> list[int]:
    from sklearn.feature_selection import f_classif

    score, _ = f_classif(task.X_train, task.y_train)
    return [int(i) for i in np.argsort(-score, kind="stable")]


@dataclass(frozen=True)
class Fitted:
    model: Any
    columns: list[int]

    def scores(self, X: np.ndarray) -> ClassScores:
        proba = self.model.predict_proba(X[:, self.columns])
        classes = self.model.classes_
        return ClassScores(classes[proba.argmax(axis=1)], proba, tuple(classes))


def fit(change: Change, task: Task, seed: int, ranking: Sequence[int]) -> Fitted:
    from sklearn.ensemble import HistGradientBoostingClassifier

    dropped = {ranking[r - 1] for r in change.drop_ranks}
    columns = [c for c in range(task.X_train.shape[1]) if c not in dropped]
    X, y = task.X_train, task.y_train
    if change.keep_quantile is not None:
        top = X[:, ranking[0]]
        keep = top <= np.quantile(top, change.keep_quantile)
        X, y = X[keep], y[keep]
    if change.flip:
        rng = np.random.default_rng([seed, 1])
        flip = rng.random(len(y)) < change.flip
        y = np.where(flip, rng.choice(np.unique(task.y_train), len(y)), y)
    # feature subsampling makes the seed matter, as bagging does in a forest
    model = HistGradientBoostingClassifier(max_iter=change.max_iter, max_depth=change.max_depth,
                                           max_features=0.5, early_stopping=False,
                                           random_state=seed)
    return Fitted(model.fit(X[:, columns], y), columns)


def metric_values(task: Task, y: np.ndarray, scores: ClassScores) -> dict[str, float]:
    """The three metrics on all of `y` (the fresh rows), by the gate's own scorer."""
    values = {}
    for name, direction, _ in METRICS:
        spec = MetricSpec(name, direction, average=task.average)
        part, _ = stats.classification_parts(spec, y, scores, scores)
        values[name] = resample.point(part, len(y))
    return values


def config_for(name: str, direction: str, resamples: int) -> Config:
    rule = MetricRule(name=name, direction=direction, tolerance_rel=TOLERANCE_REL)
    return Config(model=ModelConfig(name="bench"),
                  compare=CompareConfig(policy="significant", confidence=0.95,
                                        resamples=resamples, seed=0),
                  metrics=(rule,), primary_metric=name)


def run_task(task: Task, resamples: int, seeds: int, case_seeds: int,
             changes: Sequence[Change]) -> TaskResult:
    start = time.perf_counter()
    case = scorer(task, resamples)
    log(f"{task.name}: {seeds} seed-only retrains, {len(task.y_eval)} eval rows")
    seed_cases = [case(SEED_ONLY, seed) for seed in range(1, seeds + 1)]
    log(f"{task.name}: {len(changes)} regressions x {case_seeds} seeds")
    reg_cases = [case(change, seed) for change in changes
                 for seed in range(1, case_seeds + 1)]
    return TaskResult(task, seed_cases, reg_cases, time.perf_counter() - start)


def scorer(task: Task, resamples: int) -> Callable[[Change, int], Case]:
    """Fits the task's seed-0 champion; the function it returns fits and judges a
    candidate against it."""
    from threadpoolctl import threadpool_limits

    ranking = ranking_of(task)
    # one OpenMP thread: on two shared cores, more threads only wait for each other
    with threadpool_limits(1):
        champion = fit(SEED_ONLY, task, CHAMPION_SEED, ranking)
        champion_eval = champion.scores(task.X_eval)
        champion_true = metric_values(task, task.y_fresh, champion.scores(task.X_fresh))
    specs = [MetricSpec(name, direction, average=task.average)
             for name, direction, _ in METRICS]
    configs = {name: config_for(name, direction, resamples) for name, direction, _ in METRICS}

    def case(change: Change, seed: int) -> Case:
        with threadpool_limits(1):
            cand = fit(change, task, seed, ranking)
            true = metric_values(task, task.y_fresh, cand.scores(task.X_fresh))
            cand_eval = cand.scores(task.X_eval)
        effect = {name: worsening(direction, champion_true[name], true[name])
                  / abs(champion_true[name]) for name, direction, _ in METRICS}
        paired = stats.paired_bootstraps(specs, task.y_eval, champion_eval,
                                         cand_eval, confidence=0.95,
                                         resamples=resamples, seed=0)
        blocked, results = {}, {}
        for name, _, mlflow_name in METRICS:
            blocked[name], results[name] = judge(configs[name], paired[name], name,
                                                 mlflow_name)
        return Case(change, seed, effect, paired, results, blocked)

    return case


@dataclass(frozen=True)
class DrawsResult:
    """Seed-only retrains over independent eval draws: `cases[k]` are draw k's retrains,
    each judged against draw k's own seed-0 champion on draw k's eval rows."""

    name: str
    rows: int
    cases: list[list[Case]]
    seconds: float


def draw_tasks(name: str, classes: int, rows: int, draws: int) -> list[Task]:
    """`draws` disjoint blocks of `rows` rows (each split 80/20 into train and eval) and
    FRESH_ROWS fresh rows, all from one generator draw.

    One `generate` call for all of them, a sibling of make_task's draw.
    """
    X, y = generate(classes, draws * rows + FRESH_ROWS)
    train, fresh = int(rows * 0.8), draws * rows
    return [Task(name, average_for(classes), X[at:at + train], y[at:at + train],
                 X[at + train:at + rows], y[at + train:at + rows], X[fresh:], y[fresh:])
            for at in range(0, fresh, rows)]


def run_draws(name: str, classes: int, rows: int, draws: int, retrains: int,
              resamples: int) -> DrawsResult:
    start = time.perf_counter()
    log(f"{name}: {draws} independent eval draws x {retrains} seed-only retrains")
    cases = []
    for task in draw_tasks(name, classes, rows, draws):
        case = scorer(task, resamples)
        cases.append([case(SEED_ONLY, seed) for seed in range(1, retrains + 1)])
    return DrawsResult(name, rows, cases, time.perf_counter() - start)


def report(results: Sequence[TaskResult], resamples: int,
           drawn: Sequence[DrawsResult] = ()) -> list[str]:
    out = ["### Classifiers: eval sets", "",
           f"HistGradientBoostingClassifier (40 rounds, max_features 0.5), champion seed "
           f"{CHAMPION_SEED}; `make_classification` (20 features, 8 informative, 5 % "
           f"flipped labels); true effects on {FRESH_ROWS:,} fresh rows of the same draw; "
           f"tolerance_rel {TOLERANCE_REL}, confidence 0.95, {resamples} resamples. "
           "Multiclass f1 and roc_auc: macro average (roc_auc one-vs-rest).", "",
           _sets(results)]
    out += ["### Classifiers: false blocks (seed-only retrains)", "",
            "All retrains of a task share one champion and one eval draw: the rate is "
            "conditional on that draw (the next table pools independent draws).", "",
            _false_blocks(results)]
    out += report_draws(drawn)
    out += ["### Classifiers: block rate by true effect", "",
            "Injected regressions by their true relative worsening against the allowance "
            "(2 %) and allowance + mde. Target: `significant` blocks >= 95 % of the last "
            "group.", "", _buckets(results)]
    out += ["### Classifiers: block rate by regression", "", _per_change(results)]
    out += ["### Classifiers: wall time", "", table(
        ["task", "cases", "wall time (s)"],
        [[r.task.name, len(r.seeds) + len(r.regressions), f"{r.seconds:.0f}"]
         for r in results] +
        [[f"{r.name}, independent draws", sum(len(c) for c in r.cases),
          f"{r.seconds:.0f}"] for r in drawn])]
    return out


def report_draws(results: Sequence[DrawsResult]) -> list[str]:
    if not results or not results[0].cases:
        return []
    draws, retrains = len(results[0].cases), len(results[0].cases[0])
    rows = results[0].rows
    return [
        "### Classifiers: false blocks over independent eval draws", "",
        f"{draws} independent draws per task: disjoint blocks of {rows:,} rows "
        f"({int(rows * 0.8):,} train / {rows - int(rows * 0.8):,} eval) of one "
        f"make_classification call with {draws * rows + FRESH_ROWS:,} rows (same "
        f"parameters, random_state 0; a sibling of the generator above, whose covariances "
        f"depend on the row count), true effects on its last {FRESH_ROWS:,} rows. Each "
        f"draw has its own seed-{CHAMPION_SEED} champion and seed-only retrains (seeds "
        f"1-{retrains}), judged by `significant` on that draw's eval rows. Pooled: all "
        f"retrains of all draws; its 95 % interval resamples whole draws (10,000 times), "
        "since retrains that share a champion and eval rows share their luck. Expected: "
        "the mean over retrains of P(block) if the estimate were normal around the true "
        "effect with the bootstrap's se (se = interval width / 3.92), "
        "1 - Phi((max(allowance, 1.96 se) - true effect) / se); at true 0: the same with "
        "a true effect of 0, the rule's own rate when nothing changed. True effects are "
        "relative to each draw's champion on the fresh rows: two seeds differ for real.",
        "",
        _draws(results)]


def _draws(results: Sequence[DrawsResult]) -> str:
    z = NormalDist().inv_cdf(0.975)
    out = []
    for r in results:
        for name, _, _ in METRICS:
            blocks = np.array([sum(c.blocked[name]["significant"] for c in cases)
                               for cases in r.cases])
            sizes = np.array([len(cases) for cases in r.cases])
            flat = [c for cases in r.cases for c in cases]
            expected, at_zero = [], []
            for c in flat:
                stat = c.stat[name]
                se = (stat.high - stat.low) / (2 * z) / abs(stat.champion)
                bar = max(TOLERANCE_REL, z * se)
                if se > 0:
                    expected.append(1 - NormalDist().cdf((bar - c.true_effect[name]) / se))
                    at_zero.append(1 - NormalDist().cdf(bar / se))
            rng = np.random.default_rng(0)
            pick = rng.integers(0, len(blocks), (10_000, len(blocks)))
            pooled = blocks[pick].sum(axis=1) / sizes[pick].sum(axis=1)
            low, high = np.quantile(pooled, [0.025, 0.975])
            effects = np.array([c.true_effect[name] for c in flat])
            beyond = sum(c.blocked[name]["significant"] and c.true_effect[name] > TOLERANCE_REL
                         for c in flat)
            mde = [c.stat[name].mde / abs(c.stat[name].champion) for c in flat]
            out.append([r.name, name, f"{len(blocks)} x {sizes.max()}",
                        " ".join(str(b) for b in blocks),
                        rate(int(blocks.sum()), int(sizes.sum())),
                        f"{pct(low)} .. {pct(high)}", beyond,
                        pct(statistics.mean(expected)) if expected else "-",
                        pct(statistics.mean(at_zero)) if at_zero else "-",
                        pct(statistics.median(mde)),
                        f"{100 * effects.mean():+.1f} +- {100 * effects.std(ddof=1):.1f} % "
                        f"({100 * effects.min():+.1f} .. {100 * effects.max():+.1f}); "
                        f"{int((effects > TOLERANCE_REL).sum())} > allowance"])
    return table(["task", "metric", "draws x retrains", "blocked per draw",
                  "pooled significant", "pooled 95 % interval", "blocked, true > allowance",
                  "expected (calibrated)", "expected at true 0", "median mde",
                  "true effect: mean +- sd (min .. max)"], out)


def _sets(results: Sequence[TaskResult]) -> str:
    rows = []
    for r in results:
        for name, _, _ in METRICS:
            mde = [c.stat[name].mde / abs(c.stat[name].champion) for c in r.seeds]
            effects = [c.true_effect[name] for c in r.seeds]
            rows.append([r.task.name, name, len(r.task.y_eval), len(r.task.y_train),
                         f"{r.seeds[0].stat[name].champion:.4f}" if r.seeds else "-",
                         pct(statistics.median(mde)) if mde else "-",
                         f"{100 * min(effects):+.1f} % .. {100 * max(effects):+.1f} %"
                         if effects else "-"])
    return table(["task", "metric", "eval rows", "train rows", "champion (eval rows)",
                  "median mde (seed-only)", "seed-only true effect (min .. max)"], rows)


def _false_blocks(results: Sequence[TaskResult]) -> str:
    rows = [[r.task.name, name, len(r.seeds)] +
            [rate(sum(c.blocked[name][m] for c in r.seeds), len(r.seeds)) for m in METHODS]
            for r in results for name, _, _ in METRICS]
    return table(["task", "metric", "retrains", *METHODS], rows)


def _buckets(results: Sequence[TaskResult]) -> str:
    rows = []
    for r in results:
        for name, _, _ in METRICS:
            for bucket in BUCKETS:
                cases = [c for c in r.regressions if c.bucket(name) == bucket]
                if cases:
                    rows.append([r.task.name, name, bucket, len(cases)] +
                                [rate(sum(c.blocked[name][m] for c in cases), len(cases))
                                 for m in METHODS])
    return table(["task", "metric", "true effect", "cases", *METHODS], rows)


def _per_change(results: Sequence[TaskResult]) -> str:
    rows = []
    for r in results:
        by_change: dict[Change, list[Case]] = defaultdict(list)
        for c in r.regressions:
            by_change[c.change].append(c)
        for change, cases in by_change.items():
            effects = [f"{100 * statistics.median(c.true_effect[n] for c in cases):+.1f} %"
                       for n, _, _ in METRICS]
            blocks = [f"{100 * sum(c.blocked[n]['significant'] for c in cases) / len(cases):.0f} %"
                      for n, _, _ in METRICS]
            rows.append([r.task.name, change.kind, change.level, len(cases), *effects, *blocks])
    names = [n for n, _, _ in METRICS]
    return table(["task", "kind", "level", "cases", *[f"true {n}" for n in names],
                  *[f"significant blocks {n}" for n in names]], rows)
