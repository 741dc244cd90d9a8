"""Turn a verdict into markdown: build a small view model, let jinja2 lay it out.

Everything that comes from a run (names, params, tags, branch names) is untrusted:
it goes into the markdown only through `untrusted`, which makes it an inline code
span (no links, HTML, images or @mentions inside) with table pipes escaped.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import jinja2

from gate.config import Config
from gate.decide import MetricResult, Verdict
from gate.registry import Champion, RunInfo
from gate.tracking import redact_uri

MAX_UNTRUSTED = 120
STATUS_ORDER = {"error": 0, "failed": 1, "within_noise": 2, "skipped": 3, "passed": 4}
RESULT_LABEL = {"failed": "❌ failed", "error": "⛔ error", "within_noise": "⚠️ within noise",
                "skipped": "➖ skipped", "passed": "✅ passed"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e]+")


@dataclass(frozen=True)
class Context:
    """What the report needs beyond the verdict, gathered by the CLI."""

    model_name: str
    alias: str
    tracking_uri: str
    candidate: RunInfo
    champion: Champion | None = None
    promote_requested: bool = False
    promoted_version: str | None = None
    commit: str | None = None
    notes: Sequence[str] = ()
    eval_rows: int | None = None
    trend: Sequence[tuple[str, float]] = ()      # (label, primary metric) oldest first
    config: Config | None = None
    override_hint: str = ""


@dataclass(frozen=True)
class Report:
    markdown: str
    without_details: str
    view: Mapping[str, Any] = field(default_factory=dict)


def untrusted(value: Any, limit: int = MAX_UNTRUSTED) -> str:
    """Render text from a run as an inert inline code span, safe inside a table cell."""
    text = _CONTROL.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    if not text:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def fmt_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}"


def fmt_signed(value: float | None, suffix: str = "", digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}{suffix}"


def headline(verdict: Verdict, ctx: Context) -> tuple[str, str]:
    """The verdict at a glance, and what happens next."""
    status = verdict.status
    n_failed = len(verdict.failed)
    if status == "error":
        return ("⛔ **Error**: the gate could not judge this run "
                f"({len(verdict.errors)} metric(s) missing or not finite)",
                "Nothing was promoted. Fix the run's metrics and re-run the gate.")
    if status == "blocked":
        hint = ctx.override_hint or ("a maintainer runs `gate promote --run-id RUN "
                                     "--force --reason TEXT` (the manual workflow)")
        why = f"{n_failed} metric(s) failed" if n_failed else verdict.blocked_reason
        return (f"❌ **Blocked**: {why}",
                f"Not promoted. To override, {hint}.")
    if ctx.promoted_version:
        nxt = f"Promoted: v{ctx.promoted_version} now holds `@{ctx.alias}`."
    elif ctx.promote_requested:
        nxt = "Already in Production: nothing to move."
    else:
        nxt = "Not promoted by this check (promotion happens on the main branch)."
    if status == "first_model":
        return "🆕 **First model**: no Production version to compare with", nxt
    return "✅ **Passed**: no metric worse than allowed", nxt


def build_view(verdict: Verdict, ctx: Context) -> dict[str, Any]:
    title, next_step = headline(verdict, ctx)
    ui = _ui_base(ctx.tracking_uri)
    cand = ctx.candidate
    rows = sorted(verdict.metrics, key=lambda m: STATUS_ORDER.get(m.status, 9))
    champion = ctx.champion
    view = {
        "marker_model": ctx.model_name,
        "title": title,
        "next_step": next_step,
        "model": untrusted(ctx.model_name),
        "candidate": untrusted(cand.name or cand.run_id),
        "candidate_id": untrusted(cand.run_id),
        "candidate_url": f"{ui}/#/experiments/{cand.experiment_id}/runs/{cand.run_id}"
        if ui else "",
        "champion": f"v{champion.version}" if champion else "none yet",
        "champion_url": f"{ui}/#/models/{_path(ctx.model_name)}/versions/{champion.version}"
        if ui and champion else "",
        "champion_found_by": champion.found_by if champion else "",
        "commit": untrusted(ctx.commit[:12]) if ctx.commit else "",
        "policy": verdict.policy,
        "paired": verdict.paired,
        "fallback": untrusted(verdict.fallback_reason, 300) if verdict.fallback_reason else "",
        "rows": [_metric_row(m) for m in rows],
        "underpowered": [m.name for m in verdict.metrics if m.underpowered],
        "trend": _trend(ctx, verdict),
        "details": _details(verdict, ctx),
    }
    return view


def _metric_row(m: MetricResult) -> dict[str, str]:
    interval = "n/a"
    if m.low is not None and m.high is not None:
        interval = f"[{fmt_signed(m.low, digits=3)}, {fmt_signed(m.high, digits=3)}]"
    rel = m.delta_rel
    return {"name": untrusted(m.name), "goal": "↓ lower" if m.direction == "lower" else
            "↑ higher", "champion": fmt_value(m.champion), "candidate": fmt_value(m.candidate),
            "delta": fmt_signed(m.delta), "delta_pct": fmt_signed(
                None if rel is None else rel * 100, " %", 2),
            "interval": interval, "mde": fmt_value(m.mde) if m.mde is not None else "n/a",
            "rule": m.reason.replace("|", "\\|"), "result": RESULT_LABEL.get(m.status, m.status)}


def _trend(ctx: Context, verdict: Verdict) -> dict[str, Any] | None:
    primary = ctx.config.primary_metric if ctx.config else verdict.metrics[0].name
    candidate = next((m.candidate for m in verdict.metrics if m.name == primary), None)
    points = [(label, value) for label, value in ctx.trend if math.isfinite(value)]
    if candidate is None or not points:
        return None
    points.append(("candidate", candidate))
    labels = ", ".join(f'"{_chart_label(label)}"' for label, _ in points)
    values = ", ".join(f"{value:.4f}" for _, value in points)
    return {"metric": _chart_label(primary), "labels": labels, "points": values}


def _details(verdict: Verdict, ctx: Context) -> dict[str, Any]:
    cand = ctx.candidate
    old = ctx.champion.run.params if ctx.champion else {}
    changed = [{"name": untrusted(k, 60), "old": untrusted(old.get(k, "—"), 60),
                "new": untrusted(v, 60)}
               for k, v in sorted(cand.params.items()) if old.get(k) != v][:50] \
        if ctx.champion else []
    gated = {m.name for m in verdict.metrics}
    other = [{"name": untrusted(k, 60), "value": fmt_value(v)}
             for k, v in sorted(cand.metrics.items()) if k not in gated][:50]
    config_lines = _config_lines(ctx.config) if ctx.config else []
    return {"changed_params": changed, "other_metrics": other,
            "eval_rows": ctx.eval_rows if ctx.eval_rows is not None else "unknown",
            "eval_digest": untrusted(cand.tags.get("gate.eval_digest", "unknown"), 40),
            "data_digest": untrusted(cand.tags.get("gate.data_digest", "unknown"), 40),
            "config": config_lines,
            "notes": [untrusted(n, 400) for n in ctx.notes]}


def _config_lines(config: Config) -> list[str]:
    c = config.compare
    lines = [f'[model] name = "{config.model.name}", alias = "{config.model.alias}"'
             + (f', stage = "{config.model.stage}"' if config.model.stage else ""),
             f'[compare] policy = "{c.policy}", confidence = {c.confidence}, '
             f"resamples = {c.resamples}, seed = {c.seed}"]
    for r in config.metrics:
        bound = f", max = {r.max}" if r.max is not None else \
            (f", min = {r.min}" if r.min is not None else "")
        lines.append(f'[metrics.{r.name}] direction = "{r.direction}"{bound}, tolerance = '
                     f"{r.tolerance}, tolerance_rel = {r.tolerance_rel}, "
                     f"required = {str(r.required).lower()}")
    return lines


def _chart_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\- ]", "", str(text))[:30] or "?"


def _path(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _ui_base(tracking_uri: str) -> str:
    if not tracking_uri.startswith(("http://", "https://")):
        return ""
    return redact_uri(tracking_uri).rstrip("/")


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gate", "templates"), undefined=jinja2.StrictUndefined,
    autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def marker(model_name: str) -> str:
    """The hidden first line that finds this model's PR comment again."""
    return f"<!-- model-gate:{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)} -->"


def render(verdict: Verdict, ctx: Context) -> Report:
    view = build_view(verdict, ctx)
    template = _ENV.get_template("report.md.j2")
    full = template.render(view=view, marker=marker(ctx.model_name), details=True)
    short = template.render(view=view, marker=marker(ctx.model_name), details=False)
    return Report(markdown=full, without_details=short, view=view)


def render_skipped(reason: str, model_name: str, how_to_run: str) -> str:
    template = _ENV.get_template("skipped.md.j2")
    return template.render(marker=marker(model_name), reason=untrusted(reason, 300),
                           how_to_run=how_to_run)
