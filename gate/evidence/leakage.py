"""Leakage in plain sight: a candidate far better than the champion on the eval rows and
better there than on its own validation rows has probably seen the eval rows.

A pure rule, on numbers the gate has anyway: the paired comparison on the eval rows and
the metric the run logged on its own validation rows. Memorised eval rows (a trainer
that downloads them, a split change that lets them into training) make a model look
much better on exactly those rows; an honest improvement shows on its own validation
rows too. The report says so in its first lines; it never blocks (a model can be that
much better). bench/leakage.py measures how often it fires on honest retrains.
"""
from __future__ import annotations

import math

from gate.stats.paired import PairedStat, worsening

# better than the champion by more than this many minimum detectable worsenings: about
# 7.5 standard errors of the paired difference, which a seed-only retrain never reaches
MDE_MULTIPLE = 3.0
# and better on the eval rows than its own logged value by more than this share of it:
# two honest estimates on ~100 rows each differ by about this much at one sd
LOGGED_MARGIN = 0.10


def suspicious(direction: str, stat: PairedStat, logged: float | None) -> bool:
    """Whether the candidate's score on the eval rows looks like rows it has seen."""
    if logged is None or not math.isfinite(logged) or not math.isfinite(stat.mde) \
            or stat.mde <= 0:
        return False
    if -stat.worsening <= MDE_MULTIPLE * stat.mde:
        return False
    beyond_logged = -worsening(direction, logged, stat.candidate)
    return beyond_logged > LOGGED_MARGIN * abs(logged)


def note(name: str, stat: PairedStat, logged: float) -> str:
    # a trust line: the report shows at most 200 characters of one
    return (f"possible leakage: {name} {stat.candidate:.4g} on the eval rows, far better than "
            f"the champion's {stat.champion:.4g} and than the {logged:.4g} the run logged on "
            "its own validation rows: were the eval rows in its training data?")
