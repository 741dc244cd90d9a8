"""One decision on a very large eval set: time, memory, and whether its interval holds.

Above `gate.stats.ANALYTIC_ROWS` rows the gate does not resample: the interval is the
linearised one (infinitesimal jackknife) the bootstrap converges to. This bench times
a decision of three metrics at a million and ten million rows (regression and a
binary classifier), measures what the bootstrap would have cost, compares the two
standard errors where both run, and checks the linearised interval's coverage by
simulation against true worsenings known in closed form.

    python -m bench.large_eval            # full run, ~15 min on 2 busy cores
    python -m bench.large_eval --quick    # a tiny version, seconds
    python -m bench.large_eval --slices 50 --rows 1000000   # only the cost of 50 slices
"""
from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Sequence

import numpy as np

from bench.common import log, machine, pct, table
from gate.stats import engine as stats
from gate.stats.paired import PairedStat
from gate.stats.catalogue import ClassScores
from gate.stats.slices import SliceColumn, paired_sliced

CONFIDENCE = 0.95
REGRESSION = (("rmse", "lower"), ("mae", "lower"), ("r2", "higher"))
CLASSIFIER = (("f1", "higher"), ("roc_auc", "higher"), ("log_loss", "lower"))
_PHI = NormalDist().cdf


@dataclass(frozen=True)
class Task:
    """A generator of eval rows for two models whose true metrics are known exactly."""

    name: str
    rules: tuple[tuple[str, str], ...]
    make: Callable[[int, int], tuple[Any, Any, Any]]    # (rows, seed) -> y, champion, cand
    truth: dict[str, float]                              # true worsening per metric


# Regression: y ~ N(0, 3^2); the champion's error e1 ~ N(0, 1), the candidate's
# 0.8 e1 + N(0, 0.4004), so sd 1.02: rmse 1 -> 1.02, mae sd*sqrt(2/pi), r2 1 - var/9.
_SD = (1.0, 1.02)


def _regression(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 3.0, n)
    e1 = rng.normal(0.0, 1.0, n)
    e2 = 0.8 * e1 + rng.normal(0.0, np.sqrt(_SD[1] ** 2 - 0.64), n)
    return y, y + e1, y + e2


REGRESSION_TASK = Task("regression", REGRESSION, _regression, {
    "rmse": _SD[1] - _SD[0],
    "mae": (_SD[1] - _SD[0]) * np.sqrt(2 / np.pi),
    "r2": (_SD[1] ** 2 - _SD[0] ** 2) / 9.0,
})

# Binary: y ~ Bernoulli(0.4), a shared latent mu*y + N(0, 1), each model adds its own
# N(0, tau^2); its score t is N(mu*y, 1 + tau^2), its probability sigmoid(t - mu/2),
# its label t > mu/2. AUC, F1 and log loss then have closed forms (log loss by
# Gauss-Hermite quadrature).
_PI, _MU, _TAU = 0.4, 1.2, (0.5, 0.6)


def _classifier(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < _PI).astype(np.int64)
    latent = _MU * y + rng.normal(0.0, 1.0, n)
    models = []
    for tau in _TAU:
        t = latent + rng.normal(0.0, tau, n)
        p = 1.0 / (1.0 + np.exp(-(t - _MU / 2)))
        models.append(ClassScores((t > _MU / 2).astype(np.int64), np.column_stack((1 - p, p)),
                                  (0, 1)))
    return y, models[0], models[1]


def _true_classifier(tau: float) -> dict[str, float]:
    s = np.sqrt(1.0 + tau ** 2)
    recall = _PHI((_MU - _MU / 2) / s)
    false_pos = _PHI(-(_MU / 2) / s)
    f1 = 2 * _PI * recall / (_PI * recall + (1 - _PI) * false_pos + _PI)
    auc = _PHI(_MU / (np.sqrt(2) * s))
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    weights = weights / weights.sum()
    loss = 0.0
    for label, share in ((1, _PI), (0, 1 - _PI)):
        t = _MU * label + s * nodes
        # -log sigmoid(+-(t - mu/2)) = softplus(-+(t - mu/2))
        margin = (t - _MU / 2) * (1 if label else -1)
        loss += share * float(weights @ np.logaddexp(0.0, -margin))
    return {"f1": f1, "roc_auc": auc, "log_loss": loss}


_CHAMP, _CAND = _true_classifier(_TAU[0]), _true_classifier(_TAU[1])
CLASSIFIER_TASK = Task("binary classifier", CLASSIFIER, _classifier, {
    "f1": _CHAMP["f1"] - _CAND["f1"],
    "roc_auc": _CHAMP["roc_auc"] - _CAND["roc_auc"],
    "log_loss": _CAND["log_loss"] - _CHAMP["log_loss"],
})
TASKS = (REGRESSION_TASK, CLASSIFIER_TASK)


def _nbytes(*values: Any) -> int:
    total = 0
    for v in values:
        if isinstance(v, ClassScores):
            total += v.labels.nbytes + (v.proba.nbytes if v.proba is not None else 0)
        else:
            total += np.asarray(v).nbytes
    return total


def _decide(task: Task, y: Any, champ: Any, cand: Any, resamples: int,
            **options: Any) -> dict[str, PairedStat]:
    return stats.paired_bootstraps(list(task.rules), y, champ, cand, confidence=CONFIDENCE,
                                   resamples=resamples, seed=0, **options)


def decisions(sizes: Sequence[int], resamples: int) -> list[list[Any]]:
    rows = []
    for n in sizes:
        for task in TASKS:
            log(f"decision: {task.name}, {n:,} rows")
            y, champ, cand = task.make(n, 0)
            gc.collect()
            tracemalloc.start()
            start = time.perf_counter()
            result = _decide(task, y, champ, cand, resamples)
            seconds = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            method = "linearised" if n > stats.ANALYTIC_ROWS else f"bootstrap ({resamples})"
            rows.append([task.name, f"{n:,}", ", ".join(result), method, f"{seconds:.2f}",
                         f"{_nbytes(y, champ, cand) / 2 ** 20:.0f}", f"{peak / 2 ** 20:.0f}",
                         f"{rss:.0f}"])
            del y, champ, cand, result
    return rows


def slice_cost(sizes: Sequence[int], slices: int, resamples: int,
               repeats: int = 5) -> list[list[Any]]:
    """One decision with and without `slices` slices (one column, unequal sizes): the
    best of `repeats` wall times of each, and their ratio."""
    rows = []
    for n in sizes:
        for task in TASKS:
            log(f"slices: {task.name}, {n:,} rows, {slices} slices")
            y, champ, cand = task.make(n, 0)
            rng = np.random.default_rng(1)
            shares = np.linspace(1.0, 3.0, slices)
            codes = rng.choice(slices, n, p=shares / shares.sum())
            column = SliceColumn("segment", tuple(f"s{k}" for k in range(slices)), codes)
            # (wall, CPU) seconds: on a shared machine the CPU time of this process is
            # the steadier measure of the work, the wall time what a user waits
            plain: list[tuple[float, float]] = []
            sliced: list[tuple[float, float]] = []
            for _ in range(repeats):
                plain.append(_timed(lambda: _decide(task, y, champ, cand, resamples)))
                sliced.append(_timed(lambda: paired_sliced(
                    list(task.rules), y, champ, cand, [column], confidence=CONFIDENCE,
                    resamples=resamples, seed=0)))
            method = "linearised" if n > stats.ANALYTIC_ROWS else f"bootstrap ({resamples})"
            wall = [min(t[0] for t in times) for times in (plain, sliced)]
            cpu = [min(t[1] for t in times) for times in (plain, sliced)]
            rows.append([task.name, f"{n:,}", slices, method, f"{wall[0]:.2f}",
                         f"{wall[1]:.2f}", f"{wall[1] / wall[0]:.2f}", f"{cpu[0]:.2f}",
                         f"{cpu[1]:.2f}", f"{cpu[1] / cpu[0]:.2f}"])
    return rows


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def slice_report(argv: Sequence[str], measured: str, rows: list[list[Any]]) -> str:
    return "\n".join(["## Slices on large eval sets", "", f"Measured {measured}.",
                      f"Command: `{' '.join(['python -m bench.large_eval', *argv])}`", "",
                      "One decision of three metrics without slices and with one slice "
                      "column (every slice compared on the same resamples or linearised "
                      "like the aggregate); best of 5 wall times and of 5 CPU times of "
                      "this process.", "",
                      table(["task", "eval rows", "slices", "interval", "wall without (s)",
                             "wall with (s)", "wall ratio", "CPU without (s)",
                             "CPU with (s)", "CPU ratio"], rows)])


def bootstrap_cost(n: int, resamples: int, full: int) -> list[list[Any]]:
    """The bootstrap forced on n rows with a few resamples, scaled to `full` of them."""
    rows = []
    for task in TASKS:
        log(f"bootstrap cost: {task.name}, {n:,} rows x {resamples} resamples")
        y, champ, cand = task.make(n, 0)
        start = time.perf_counter()
        _decide(task, y, champ, cand, resamples, analytic_rows=10 ** 12)
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        _decide(task, y, champ, cand, resamples)
        linear = time.perf_counter() - start
        rows.append([task.name, f"{n:,}", resamples, f"{seconds:.1f}",
                     f"{seconds * full / resamples:.0f}", f"{linear:.2f}"])
    return rows


def agreement(sizes: Sequence[int], resamples: int) -> list[list[Any]]:
    """The linearised se against the bootstrap's on the same rows (ratio of mde)."""
    rows = []
    for n in sizes:
        for task in TASKS:
            log(f"agreement: {task.name}, {n:,} rows")
            y, champ, cand = task.make(n, 1)
            boot = _decide(task, y, champ, cand, resamples, analytic_rows=10 ** 12)
            line = _decide(task, y, champ, cand, resamples, analytic_rows=0)
            rows.append([task.name, f"{n:,}"] +
                        [f"{line[m].mde / boot[m].mde:.3f}" for m, _ in task.rules])
    return rows


def coverage(sizes: Sequence[int], reps: int) -> list[list[Any]]:
    """Share of linearised 95 % intervals that hold the true worsening."""
    rows = []
    for n in sizes:
        for task in TASKS:
            log(f"coverage: {task.name}, {n:,} rows x {reps} draws")
            hits = {m: 0 for m, _ in task.rules}
            width = {m: 0.0 for m, _ in task.rules}
            for rep in range(reps):
                y, champ, cand = task.make(n, 1000 + rep)
                result = _decide(task, y, champ, cand, 2, analytic_rows=0)
                for m, _ in task.rules:
                    hits[m] += result[m].low <= task.truth[m] <= result[m].high
                    width[m] += (result[m].high - result[m].low) / 2 / reps
            for m, _ in task.rules:
                rows.append([task.name, m, f"{n:,}", reps, f"{task.truth[m]:.5f}",
                             f"{width[m]:.5f}", pct(hits[m] / reps)])
    return rows


def report(argv: Sequence[str], measured: str, decided: list[list[Any]],
           cost: list[list[Any]], cost_n: int, agreed: list[list[Any]],
           covered: list[list[Any]], reps: int, resamples: int) -> str:
    out = ["## Large eval sets", "", f"Measured {measured}.",
           f"Command: `{' '.join(['python -m bench.large_eval', *argv])}`", "",
           f"Regression: {', '.join(m for m, _ in REGRESSION)}; binary classifier: "
           f"{', '.join(m for m, _ in CLASSIFIER)}; confidence {CONFIDENCE}, "
           f"{resamples} resamples where the bootstrap runs, linearised interval above "
           f"{stats.ANALYTIC_ROWS:,} rows.", ""]
    out += ["### One decision of three metrics", "",
            "Engine peak: the largest extra memory the call allocated (tracemalloc, NumPy "
            "included), beyond the inputs; max RSS: the whole process so far.", "",
            table(["task", "eval rows", "metrics", "interval", "seconds", "inputs (MiB)",
                   "engine peak (MiB)", "max RSS (MiB)"], decided)]
    out += ["### What the bootstrap would cost", "",
            f"The bootstrap forced on {cost_n:,} rows with a few resamples, scaled to "
            f"{resamples}; against the linearised decision on the same rows.", "",
            table(["task", "eval rows", "resamples run", "seconds",
                   f"seconds for {resamples} (scaled)", "linearised (s)"], cost)]
    names = [m for m, _ in REGRESSION]
    out += ["### Linearised against bootstrap", "",
            "mde of the linearised interval / mde of the bootstrap on the same rows "
            f"({resamples} resamples; Monte Carlo error of the bootstrap's se about "
            f"{100 / np.sqrt(2 * resamples):.1f} %). Columns in each task's metric order: "
            f"{', '.join(names)} / {', '.join(m for m, _ in CLASSIFIER)}.", "",
            table(["task", "eval rows", "metric 1", "metric 2", "metric 3"], agreed)]
    out += ["### Coverage by simulation", "",
            f"{reps} fresh eval sets per size from generators whose true worsening is "
            "known in closed form; the share of linearised 95 % intervals that hold it "
            f"(Monte Carlo error about {100 * np.sqrt(0.95 * 0.05 / reps):.1f} points).", "",
            table(["task", "metric", "eval rows", "draws", "true worsening",
                   "mean half-width", "coverage"], covered)]
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument("--rows", help="eval rows of the timed decisions, comma separated "
                   "(default 1000000,10000000)")
    p.add_argument("--reps", type=int, help="coverage draws per size (default 300)")
    p.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    p.add_argument("--slices", type=int, help="only time a decision with this many slices "
                   "against one without, at --rows (default 1000000)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    quick = args.quick
    sizes = [int(v) for v in args.rows.split(",")] if args.rows else \
        ([1_000, 110_000] if quick else [1_000_000, 10_000_000])
    reps = args.reps or (20 if quick else 300)
    resamples = args.resamples or (200 if quick else 2000)
    measured = machine()
    if args.slices:
        slice_sizes = [int(v) for v in args.rows.split(",")] if args.rows else \
            ([20_000] if quick else [1_000_000])
        print(slice_report(raw, measured, slice_cost(slice_sizes, args.slices, resamples)))
        return 0
    decided = decisions(sizes, resamples)
    cost_n = 20_000 if quick else 1_000_000
    cost = bootstrap_cost(cost_n, 20 if quick else 100, resamples)
    agreed = agreement([2_000] if quick else [20_000, 100_000], resamples)
    covered = coverage([2_000] if quick else [20_000, 200_000], reps)
    print(report(raw, measured, decided, cost, cost_n, agreed, covered, reps, resamples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
