"""Coverage of the gate's paired interval at 1,000 eval rows, for f1, roc_auc and log_loss.

The classifier bench's model pairs (a seed-0 champion against seed-only retrains and
injected regressions, bench/decision_classifier.py) scored on many disjoint eval sets of
1,000 rows drawn from a large pool of fresh rows of the same generator draw; each set's
interval (gate.stats.paired_bootstraps, as the gate computes it) is checked against the
pair's true worsening on the rest of the pool. Also the per-row log-loss differences
the interval is built on (their tails).

    python -m bench.interval_coverage            # ~15 min on 2 cores
    python -m bench.interval_coverage --quick    # seconds
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bench import decision_classifier as dc
from bench.common import log, machine, pct, table
from gate.stats import resample
from gate.stats import engine as stats
from gate.stats.catalogue import ClassScores, MetricSpec

EVAL_ROWS = 1000
TRAIN_ROWS = 4000
# (change, seed, whether f1 and roc_auc are checked too): their rank-metric bootstrap
# costs ten times log_loss's, so they run on fewer pairs and sets
PAIRS = ((dc.SEED_ONLY, 1, True), (dc.SEED_ONLY, 2, True), (dc.SEED_ONLY, 3, True),
         (dc.SEED_ONLY, 4, False), (dc.SEED_ONLY, 5, False),
         (dc.REGRESSIONS[0], 1, True), (dc.REGRESSIONS[5], 1, False),
         (dc.REGRESSIONS[8], 1, True), (dc.REGRESSIONS[13], 1, False))
QUICK_PAIRS = (PAIRS[0], PAIRS[5])


@dataclass(frozen=True)
class Check:
    """One pair's intervals on disjoint eval sets, for one metric."""

    task: str
    metric: str
    seed_only: bool
    truth: np.ndarray       # per set: the true worsening on the rest of the pool
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Tails:
    task: str
    pair: str
    d: np.ndarray           # per-row log-loss worsening on the whole pool


def pool_task(name: str, classes: int, sets: int) -> dc.Task:
    """TRAIN_ROWS training rows and `sets` x EVAL_ROWS pool rows of one generator draw
    (the decision bench's parameters; a sibling of its draw, as covariances depend on
    the row count)."""
    X, y = dc.generate(classes, TRAIN_ROWS + sets * EVAL_ROWS)
    empty = np.empty((0, X.shape[1]))
    return dc.Task(name, dc.average_for(classes), X[:TRAIN_ROWS], y[:TRAIN_ROWS],
                   empty, y[:0], X[TRAIN_ROWS:], y[TRAIN_ROWS:])


def _rows(scores: ClassScores, rows: np.ndarray) -> ClassScores:
    assert scores.proba is not None
    return ClassScores(scores.labels[rows], scores.proba[rows], scores.classes)


def _value(spec: MetricSpec, y: np.ndarray, scores: ClassScores) -> float:
    part, _ = stats.classification_parts(spec, y, scores, scores)
    return resample.point(part, len(y))


def _row_log_loss(y: np.ndarray, scores: ClassScores) -> np.ndarray:
    assert scores.proba is not None
    column = {c: i for i, c in enumerate(scores.classes)}
    picked = scores.proba[np.arange(len(y)), [column[v] for v in y]]
    eps = np.finfo(float).eps          # sklearn's and the gate's clip
    return -np.log(np.clip(picked, eps, 1 - eps))


def run_task(name: str, classes: int, sets: int, rank_sets: int, resamples: int,
             pairs: Sequence[tuple[dc.Change, int, bool]]
             ) -> tuple[list[Check], list[Tails]]:
    from threadpoolctl import threadpool_limits

    task = pool_task(name, classes, sets)
    ranking = dc.ranking_of(task)
    y = task.y_fresh
    with threadpool_limits(1):
        champion = dc.fit(dc.SEED_ONLY, task, dc.CHAMPION_SEED, ranking).scores(task.X_fresh)
    champion_loss = _row_log_loss(y, champion)
    checks, tails = [], []
    for change, seed, ranked in pairs:
        log(f"{name}: {change.kind}, {change.level}, seed {seed}")
        with threadpool_limits(1):
            candidate = dc.fit(change, task, seed, ranking).scores(task.X_fresh)
        d = _row_log_loss(y, candidate) - champion_loss
        tails.append(Tails(name, f"{change.kind}, {change.level}, seed {seed}", d))
        for metric, direction, _ in dc.METRICS:
            count = sets if metric == "log_loss" else rank_sets if ranked else 0
            if not count:
                continue
            spec = MetricSpec(metric, direction, average=task.average)
            truth, low, high = np.empty(count), np.empty(count), np.empty(count)
            for i in range(count):
                rows = np.arange(i * EVAL_ROWS, (i + 1) * EVAL_ROWS)
                rest = np.ones(len(y), dtype=bool)
                rest[rows] = False
                if metric == "log_loss":        # a mean: the rest's from the sums
                    truth[i] = (d.sum() - d[rows].sum()) / (len(d) - EVAL_ROWS)
                else:
                    values = [_value(spec, y[rest], _rows(s, rest))
                              for s in (champion, candidate)]
                    truth[i] = values[1] - values[0] if direction == "lower" \
                        else values[0] - values[1]
                stat = stats.paired_bootstraps([spec], y[rows], _rows(champion, rows),
                                               _rows(candidate, rows), confidence=0.95,
                                               resamples=resamples, seed=0)[metric]
                low[i], high[i] = stat.low, stat.high
            checks.append(Check(name, metric, change == dc.SEED_ONLY, truth, low, high))
    return checks, tails


def report(checks: Sequence[Check], tails: Sequence[Tails], resamples: int,
           sets: int, rank_sets: int) -> list[str]:
    rows = []
    for task in dict.fromkeys(c.task for c in checks):
        for metric, _, _ in dc.METRICS:
            for label, pick in (("seed-only", True), ("regressions", False), ("all", None)):
                group = [c for c in checks if c.task == task and c.metric == metric
                         and (pick is None or c.seed_only == pick)]
                if not group:
                    continue
                truth, low, high = (np.concatenate([getattr(c, f) for c in group])
                                    for f in ("truth", "low", "high"))
                n = len(truth)
                below, above = np.mean(truth < low), np.mean(truth > high)
                rows.append([task, metric, label, len(group), f"{n:,}",
                             pct(1 - below - above), pct(below), pct(above),
                             f"{100 * np.sqrt(0.95 * 0.05 / n):.1f} pt"])
    out = ["### Coverage of the paired interval at 1,000 eval rows", "",
           f"Disjoint eval sets of {EVAL_ROWS:,} rows from a pool of fresh rows of the "
           f"generator draw the models were trained on ({TRAIN_ROWS:,} train rows); each "
           f"pair's true worsening is measured on the rest of the pool. The gate's 95 % "
           f"interval ({resamples} resamples). log_loss: {sets} sets per pair; f1 and "
           f"roc_auc: {rank_sets} sets on fewer pairs. `truth < low` is the side a false "
           "block needs (nominal 2.5 %). The sets are shared by a task's pairs, so its "
           "pooled rows are not independent: the Monte Carlo error shown (binomial) is a "
           "lower bound.", "",
           table(["task", "metric", "pairs", "kind", "intervals", "coverage",
                  "truth < low", "truth > high", "MC error"],
                 [[r[0], r[1], r[3], r[2], *r[4:]] for r in rows])]
    tail_rows = []
    for t in tails:
        d = t.d
        sd = d.std()
        q = np.quantile(d, [0.001, 0.5, 0.999])
        tail_rows.append([t.task, t.pair, f"{d.mean():+.4f}", f"{sd:.3f}",
                          f"{((d - d.mean()) ** 3).mean() / sd ** 3:+.2f}",
                          f"{((d - d.mean()) ** 4).mean() / sd ** 4 - 3:.1f}",
                          f"{q[0]:+.2f} / {q[1]:+.3f} / {q[2]:+.2f}",
                          f"{np.abs(d - d.mean()).max() / sd:.1f}"])
    out += ["### Per-row log-loss worsening (candidate - champion) on the pool", "",
            "Excess kurtosis 0 for a normal distribution.", "",
            table(["task", "pair", "mean", "sd", "skewness", "excess kurtosis",
                   "0.1 % / median / 99.9 %", "max |d - mean| / sd"], tail_rows)]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny version for smoke tests")
    p.add_argument("--sets", type=int, help="log_loss eval sets per pair (default 400)")
    p.add_argument("--rank-sets", type=int,
                   help="f1 and roc_auc eval sets per pair (default 100)")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    args = p.parse_args(raw)
    sets = args.sets or (4 if args.quick else 400)
    rank_sets = min(sets, args.rank_sets or (2 if args.quick else 100))
    resamples = args.resamples or (200 if args.quick else 2000)
    pairs = QUICK_PAIRS if args.quick else PAIRS
    measured = machine()
    start = time.perf_counter()
    checks, tails = [], []
    for name, classes in (("binary", 2), ("3 classes", 3)):
        c, t = run_task(name, classes, sets, rank_sets, resamples, pairs)
        checks += c
        tails += t
    print("\n".join([
        "## Interval coverage (classifiers)", "", f"Measured {measured}.",
        f"Command: `{' '.join(['python -m bench.interval_coverage', *raw])}`", "",
        *report(checks, tails, resamples, sets, rank_sets),
        f"Wall time: {time.perf_counter() - start:.0f} s.", ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
