"""Decision quality of the slice rule: regressions confined to one slice, and seed-only
retrains, over many independent eval draws.

A generator of rows with a `segment` column (10 segments of unequal size, the model
never sees it); a random forest champion trained once. Each case is judged on fresh
eval draws by the gate's own pure pieces (gate.stats.slices.paired_sliced and
gate.core.decide.decide, the configuration below), no MLflow server:

- one slice regressed: the candidate is the champion except on one segment, where
  its predictions carry extra noise making that segment's true rmse 25 % worse (or
  as set); the segment has about `--slice-rows` eval rows. Blocked >= 95 % is the bar;
  the table also says how often the aggregate rule alone would have blocked it.
- seed-only retrains: the same forest with other seeds. Every segment's true change
  is far inside its allowance, so every block is a false one; the family-wise bar is
  (1 - confidence) / 2 = 2.5 %.
- segment B exactly at its allowance (rmse +2 % there): the least favourable null,
  where a correct test blocks at most the nominal rate.

    python -m bench.slice_quality             # ~3 min on 2 busy cores
    python -m bench.slice_quality --quick     # seconds
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bench.common import log, machine, pct, table
from gate.core import config as config_mod
from gate.core.decide import Evidence, Verdict, decide
from gate.stats.slices import SliceColumn, paired_sliced

CONFIG = config_mod.parse("""
[model]
name = "segmented"
[compare]
policy = "significant"
confidence = 0.95
resamples = 2000
seed = 0
[metrics.rmse]
direction = "lower"
tolerance_rel = 0.02
[metrics.mae]
direction = "lower"
tolerance_rel = 0.02
[metrics.r2]
direction = "higher"
tolerance_rel = 0.05
[slices]
columns = ["segment"]
min_rows = 200
""", "bench")
SEGMENTS = tuple("ABCDEFGHIJ")
FEATURES = 6


@dataclass(frozen=True)
class World:
    """The generator's segment shares (segment B is the one regressed)."""

    shares: np.ndarray

    def draw(self, n: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = rng.normal(0.0, 1.0, (n, FEATURES))
        segment = rng.choice(len(SEGMENTS), n, p=self.shares)
        shift = np.linspace(-1.0, 1.0, len(SEGMENTS))[segment]
        y = 3 * X[:, 0] + 2 * np.sin(2 * X[:, 1]) + X[:, 2] * X[:, 3] + shift + \
            rng.normal(0.0, 1.0, n)
        return X, segment, y


def world(eval_rows: int, slice_rows: int) -> World:
    rest = (1.0 - slice_rows / eval_rows) / (len(SEGMENTS) - 1)
    shares = np.full(len(SEGMENTS), rest)
    shares[1] = slice_rows / eval_rows
    # unequal sizes: the other segments from 0.6x to 1.4x of an even share
    others = np.r_[0, 2:len(SEGMENTS)]
    shares[others] *= np.linspace(0.6, 1.4, len(others))
    shares[others] *= (1.0 - shares[1]) / shares[others].sum()
    return World(shares)


def forest(X: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=50, min_samples_leaf=5, random_state=seed,
                                 n_jobs=1).fit(X, y)


def judged(y: np.ndarray, segment: np.ndarray, champion: np.ndarray,
           candidate: np.ndarray) -> Verdict:
    rules = [rule.spec() for rule in CONFIG.metrics]
    column = SliceColumn("segment", SEGMENTS, segment)
    compare = CONFIG.compare
    whole, slices = paired_sliced(rules, y, champion, candidate, [column],
                                  confidence=compare.confidence,
                                  resamples=compare.resamples, seed=compare.seed)
    evidence = Evidence("candidate", {name: stat.candidate for name, stat in whole.items()},
                        champion_version="1", paired=whole, slices=slices)
    return decide(CONFIG, evidence)


def true_slice_change(w: World, champion: Any, candidate: Any, noise: float,
                      rng: np.random.Generator, rows: int) -> tuple[float, float]:
    """(largest true relative rmse change of any segment, the aggregate's), on `rows`
    fresh rows; `noise` is the extra sd on segment B."""
    X, segment, y = w.draw(rows, rng)
    first = champion.predict(X)
    second = candidate.predict(X) + noise * (segment == 1) * rng.normal(0.0, 1.0, len(y))
    worst = max(_rmse(y[segment == k], second[segment == k]) /
                _rmse(y[segment == k], first[segment == k]) - 1
                for k in range(len(SEGMENTS)))
    return worst, _rmse(y, second) / _rmse(y, first) - 1


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


def run_case(w: World, champion: Any, candidate: Any, noise: float, draws: int,
             eval_rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    blocked = by_slice = by_aggregate = 0
    slice_rows = []
    start = time.perf_counter()
    for _ in range(draws):
        X, segment, y = w.draw(eval_rows, rng)
        first = champion.predict(X)
        second = candidate.predict(X) + noise * (segment == 1) * rng.normal(0.0, 1.0, len(y))
        verdict = judged(y, segment, first, second)
        blocked += not verdict.passed
        by_slice += bool(verdict.failed_slices)
        by_aggregate += bool(verdict.failed)
        slice_rows.append(int(np.sum(segment == 1)))
    return {"blocked": blocked, "by_slice": by_slice, "by_aggregate": by_aggregate,
            "draws": draws, "slice_rows": float(np.median(slice_rows)),
            "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--draws", type=int, help="eval draws per case (default 200)")
    p.add_argument("--eval-rows", type=int, default=4000)
    p.add_argument("--slice-rows", type=int, default=300,
                   help="expected eval rows of the regressed segment")
    p.add_argument("--worse", type=float, default=0.25,
                   help="true relative rmse worsening of the regressed segment")
    p.add_argument("--seeds", type=int, default=4, help="seed-only retrains")
    args = p.parse_args(raw)
    draws = args.draws or (10 if args.quick else 200)
    truth = 20_000 if args.quick else 200_000
    w = world(args.eval_rows, args.slice_rows)
    rng = np.random.default_rng(7)
    X, _, y = w.draw(5000, rng)
    log("training the champion and the seed-only retrains")
    champion = forest(X, y, 0)
    retrains = [forest(X, y, seed) for seed in range(1, args.seeds + 1)]
    # extra noise on segment B: rmse^2 -> (1 + worse)^2 rmse^2 there
    Xb, segment, yb = w.draw(truth, rng)
    base = _rmse(yb[segment == 1], champion.predict(Xb[segment == 1]))
    noise = base * np.sqrt((1 + args.worse) ** 2 - 1)
    rows = []
    # the least favourable null: B exactly at its rmse allowance (2 %), a block is false
    at_allowance = base * np.sqrt(1.02 ** 2 - 1)
    cases = [(f"segment B {args.worse:.0%} worse", champion, noise),
             ("segment B at its allowance (+2 %)", champion, at_allowance)] + \
        [(f"seed-only retrain (seed {s})", model, 0.0) for s, model in
         enumerate(retrains, start=1)]
    for index, (name, candidate, extra) in enumerate(cases):
        log(f"{name}: {draws} eval draws of {args.eval_rows} rows")
        worst, aggregate = true_slice_change(w, champion, candidate, extra,
                                             np.random.default_rng(100 + index), truth)
        got = run_case(w, champion, candidate, extra, draws, args.eval_rows, 1000 + index)
        rows.append([name, f"{got['slice_rows']:.0f}", f"{100 * worst:+.1f} %",
                     f"{100 * aggregate:+.1f} %", got["draws"],
                     pct(got["blocked"] / got["draws"]),
                     pct(got["by_slice"] / got["draws"]),
                     pct(got["by_aggregate"] / got["draws"]),
                     f"{got['seconds'] / got['draws']:.2f}"])
    seeds = [r for r in rows[2:]]
    total = sum(int(r[4]) for r in seeds)
    false = sum(round(float(r[5].split()[0]) * int(r[4]) / 100) for r in seeds)
    out = ["## Slices: decision quality", "", f"Measured {machine()}.",
           f"Command: `{' '.join(['python -m bench.slice_quality', *raw])}`", "",
           f"{args.eval_rows} eval rows per draw, 10 segments (B about {args.slice_rows} "
           "rows, the others 0.6x to 1.4x an even share), rmse/mae/r2 with the gate's "
           "allowances (2 %, 2 %, 5 %), 2000 resamples, min_rows 200; true changes on "
           f"{truth:,} fresh rows.", "",
           table(["candidate", "rows of B (median)", "worst true segment change (rmse)",
                  "true aggregate change (rmse)", "draws", "blocked", "by the slice rule",
                  "by the aggregate rule", "s / decision"], rows),
           f"Seed-only retrains blocked: {false}/{total} ({pct(false / max(total, 1))}); "
           "nominal family-wise rate 2.5 % (Monte Carlo error about "
           f"{100 * np.sqrt(0.025 * 0.975 / max(total, 1)):.1f} points)."]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
