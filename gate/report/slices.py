"""The slices in the report: the failing ones named in the verdict line, and a compact
table of the worst few (one row per slice and metric) that fits a PR comment.

Slice values come from the eval rows: they are Untrusted, printed as code spans.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from gate.core.config import Config
from gate.core.decide import Verdict
from gate.core.slicerules import SliceMetric, SliceResult

WORST_ROWS = 5              # rows of the slice table: the worst (slice, metric) pairs
MARK = {"failed": "❌", "within_noise": "⚠️", "passed": "✅", "not_gated": "➖"}
WORD = {"failed": "failed", "within_noise": "within noise", "passed": "passed",
        "not_gated": "not gated"}
NBSP = "\u00a0"


def headline_name(s: SliceResult) -> str:
    """`segment=B: rmse +29 %`: the slice and its worst failing metric."""
    worst = max(s.failed or s.metrics, key=lambda m: m.excess)
    return f"{s.name}: {worst.name} {_change(worst, 0).replace(NBSP, ' ')}"


def failed_names(verdict: Verdict) -> list[str]:
    """The failing slices, worst first, as the verdict line names them."""
    ranked = sorted(verdict.failed_slices,
                    key=lambda s: -max(m.excess for m in s.failed))
    return [headline_name(s) for s in ranked]


def view(verdict: Verdict, config: Config | None, untrusted: Callable[[str, int], Any]
         ) -> dict[str, Any] | None:
    """The slice table's rows and the sentence above it; None without slices.
    `untrusted` marks text from the eval rows (markdown.Untrusted.of)."""
    if not verdict.slices:
        if config is None or not config.slices.columns or verdict.champion_version is None:
            return None
        # configured, a champion, and still no slices: the comparison was not paired
        return {"rows": [], "shown": 0, "total": 0,
                "summary": "not compared: the models were not scored on the same rows, so "
                           "no slice could be (see above)."}
    pairs = [(s, m) for s in verdict.slices for m in s.metrics]
    # the failing first, then the rest by how far beyond their allowance, gated or not
    # (a small slice much worse is worth a look even though it cannot block)
    pairs.sort(key=lambda p: (p[1].status != "failed", -p[1].excess))
    rows = []
    for s, m in pairs[:WORST_ROWS]:
        dec = _decimals(m.champion, m.candidate)
        rows.append({"slice": untrusted(s.name, 32), "status": str(m.status),
                     "mark": MARK.get(str(m.status), ""),
                     "word": WORD.get(str(m.status), str(m.status)),
                     "metric": untrusted(m.name, 30), "rows": str(s.rows),
                     # one line: the slice's name is the column that wraps
                     "shift": f"{m.champion:.{dec}f}{NBSP}→{NBSP}{m.candidate:.{dec}f}",
                     "change": _change(m, 1)})
    gated = sum(1 for s in verdict.slices if s.gated)
    confidence = config.compare.confidence if config else 0.95
    min_rows = config.slices.min_rows if config else 0
    alpha = (1 - confidence) / 2 * 100
    failed = len(verdict.failed_slices)
    summary = (f"{len(verdict.slices)} slices, {gated} gated (at least {min_rows} rows), "
               f"{failed} failed. A slice fails when it is worse than its allowance at "
               f"a family-wise {alpha:.3g}{NBSP}% (one-sided, Holm over the gated slices).")
    return {"rows": rows, "summary": summary, "shown": len(rows), "total": len(pairs)}


def _change(m: SliceMetric, digits: int) -> str:
    rel = m.delta_rel
    if rel is None or not math.isfinite(rel):
        return f"{m.candidate - m.champion:+.4g}"
    return f"{rel * 100:+.{digits}f}{NBSP}%"


def _decimals(*values: float) -> int:
    """Four significant digits of the largest value, 0 to 4 decimals (as the main table)."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return 4
    return min(4, max(0, 3 - math.floor(math.log10(max(finite)))))
