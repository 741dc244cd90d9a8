"""How often the leakage note (gate.evidence.leakage) fires: on honest retrains, where
it must stay quiet, and on models that saw the eval rows, where it must speak.

Each draw splits the diabetes data anew into training (60 %), the run's own validation
rows (20 %, where it logs its rmse) and the pinned eval rows (20 %, where the gate pairs
it with the champion, a random forest of seed 0). Candidates:

- seed only: the same forest with another seed (the honest retrain the brief asks about)
- better: a stronger recipe (more trees, deeper), honestly trained
- leaky: the champion's recipe trained on the training rows plus the eval rows

    python -m bench.leakage              # 200 draws, a few minutes on 2 busy cores
    python -m bench.leakage --draws 20   # a quick look
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from bench.common import table
from gate.evidence import leakage
from gate.stats import engine as stats

KINDS = ("seed only", "better", "leaky")


def forest(seed: int, trees: int = 50, depth: int | None = 6) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=trees, max_depth=depth, random_state=seed,
                                 n_jobs=1)


def draw(index: int, X: Any, y: Any, resamples: int) -> dict[str, bool]:
    """One split; whether the rule fires for each kind of candidate."""
    rng = np.random.default_rng(index)
    order = rng.permutation(len(y))
    cut1, cut2 = int(0.6 * len(y)), int(0.8 * len(y))
    train, valid, evals = order[:cut1], order[cut1:cut2], order[cut2:]
    champion = forest(0).fit(X[train], y[train])
    candidates = {"seed only": forest(index + 1).fit(X[train], y[train]),
                  "better": forest(index + 1, 200, None).fit(X[train], y[train]),
                  "leaky": forest(index + 1).fit(X[np.r_[train, evals]],
                                                 y[np.r_[train, evals]])}
    fired = {}
    for kind, model in candidates.items():
        logged = float(np.sqrt(np.mean((model.predict(X[valid]) - y[valid]) ** 2)))
        stat = stats.paired_bootstrap("rmse", "lower", y[evals], champion.predict(X[evals]),
                                      model.predict(X[evals]), confidence=0.95,
                                      resamples=resamples, seed=0)
        fired[kind] = leakage.suspicious("lower", stat, logged)
    return fired


def main(argv: list[str] | None = None) -> int:
    from sklearn.datasets import load_diabetes

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--resamples", type=int, default=1000)
    args = p.parse_args(argv)
    X, y = load_diabetes(return_X_y=True)
    counts = dict.fromkeys(KINDS, 0)
    for index in range(args.draws):
        for kind, fired in draw(index, X, y, args.resamples).items():
            counts[kind] += fired
    print(f"leakage note (improvement > {leakage.MDE_MULTIPLE:g} mde and > "
          f"{leakage.LOGGED_MARGIN:.0%} better than logged), {args.draws} draws, "
          f"{len(y) - int(0.8 * len(y))} eval rows:\n")
    print(table(["candidate", "fired", "rate"],
                [[kind, counts[kind], f"{counts[kind] / args.draws:.1%}"] for kind in KINDS]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
