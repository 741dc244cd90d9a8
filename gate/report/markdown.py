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

from gate import contract
from gate.core.config import Config
from gate.core.decide import MetricResult, Verdict
from gate.core.domain import Champion, RunInfo
from gate.core.redaction import redact_uri
from gate.report import slices as slice_report

MAX_UNTRUSTED = 120
STATUS_ORDER = {"error": 0, "failed": 1, "within_noise": 2, "skipped": 3, "passed": 4}
RESULT_MARK = {"failed": "❌", "error": "⛔", "within_noise": "⚠️", "skipped": "➖",
               "passed": "✅"}
RESULT_WORD = {"failed": "failed", "error": "error", "within_noise": "within noise",
               "skipped": "skipped", "passed": "passed"}
NBSP = "\u00a0"             # keeps "95 %" and "❌ failed" on one line in a narrow cell
HEADLINE_NAMES = 3          # failed metrics named in the headline; the rest are counted
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
    # Short lines shown right under the verdict, e.g. "candidate predictions unverified:
    # logged by the run (custom pyfunc)": what the verdict rests on is part of the verdict.
    trust_notes: Sequence[str] = ()
    models: Sequence[tuple[str, str]] = ()       # (role, description) e.g. flavor, verified
    local: bool = False     # run by hand, not in CI: the next step is `--promote`


@dataclass(frozen=True)
class Report:
    markdown: str
    without_details: str
    view: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""          # the same report for a terminal: plain, at most 100 columns


class Untrusted(str):
    """Text from a run, cleaned of control characters and cut to `limit`.

    The markdown template turns every such value into an inert code span when it prints
    it (see `_finalize`), so the template cannot forget to escape one; the plain-text
    report prints it as it is.
    """

    limit: int = MAX_UNTRUSTED

    @classmethod
    def of(cls, value: Any, limit: int = MAX_UNTRUSTED) -> "Untrusted":
        text = _CONTROL.sub(" ", str(value)).strip()
        if len(text) > limit:
            text = text[:limit - 1] + "…"
        made = cls(text)
        made.limit = limit
        return made


def untrusted(value: Any, limit: int = MAX_UNTRUSTED) -> str:
    """Render text from a run as an inert inline code span, safe inside a table cell."""
    text = str(Untrusted.of(value, limit))
    if not text:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def fmt_value(value: float | None, decimals: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1e6:
        return f"{value:.4g}"
    return f"{value:.{decimals}f}"


def fmt_signed(value: float | None, suffix: str = "", digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1e6:
        return f"{value:+.4g}{suffix}"
    return f"{value:+.{digits}f}{suffix}"


def decimals_for(*values: float | None) -> int:
    """Decimals that show four significant digits of the largest value (0 to 4)."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 4
    return min(4, max(0, 3 - math.floor(math.log10(max(finite)))))


def headline(verdict: Verdict, ctx: Context) -> tuple[str, str]:
    """The verdict at a glance, and what happens next."""
    status = verdict.status
    total = len(verdict.metrics)
    if status == "error":
        return (f"⛔ **Error**: could not judge, {len(verdict.errors)} of {total} metrics "
                "missing or not finite",
                "Nothing was promoted. Fix the run's metrics and re-run the gate.")
    if status == "blocked" and not verdict.failed and verdict.blocked_by:
        # blocked by a rule about the run as a whole (flavor, unverified numbers)
        return (f"❌ **Blocked**: {verdict.blocked_by[0]}", "Not promoted.")
    if status == "blocked":
        hint = ctx.override_hint or ("a maintainer runs `gate promote --run-id RUN "
                                     "--force --reason TEXT` (the manual workflow)")
        slices = len(verdict.failed_slices)
        worse = f"worse on {slices} slice{'s' if slices > 1 else ''}" if slices else ""
        failed = f"{len(verdict.failed)} of {total} metrics failed" if verdict.failed else ""
        return (f"❌ **Blocked**: {', '.join(filter(None, (failed, worse)))}",
                f"Not promoted. To override, {hint}.")
    if ctx.promoted_version:
        nxt = f"Promoted: v{ctx.promoted_version} now holds `@{ctx.alias}`."
    elif ctx.promote_requested:
        nxt = "Already in Production: nothing to move."
    elif ctx.local:
        nxt = "Not promoted by this check: run it with `--promote` to promote it."
    else:
        nxt = "Not promoted by this check (promotion happens on the main branch)."
    if status == "first_model":
        return "🆕 **First model**: no Production version to compare with", nxt
    noise = sum(1 for m in verdict.metrics if m.status == "within_noise")
    return (f"✅ **Passed**: none of {total} metrics failed"
            + (f", {noise} worse but within noise" if noise else ""), nxt)


def build_view(verdict: Verdict, ctx: Context) -> dict[str, Any]:
    title, next_step = headline(verdict, ctx)
    ui = _ui_base(ctx.tracking_uri)
    cand = ctx.candidate
    rows = sorted(verdict.metrics, key=lambda m: STATUS_ORDER.get(m.status, 9))
    named = verdict.errors if verdict.status == "error" else verdict.failed
    failed = [Untrusted.of(m.name, 40) for m in rows if m in named]
    if verdict.status == "blocked":     # then the failing slices: `segment=B: rmse +29 %`
        failed += [Untrusted.of(name, 60) for name in slice_report.failed_names(verdict)]
    champion = ctx.champion
    confidence = ctx.config.compare.confidence if ctx.config else None
    judged = cand.run_id or cand.model_id or ""     # a logged model may have no run
    return {
        "marker_model": ctx.model_name,
        "title": title,
        "failed_names": failed[:HEADLINE_NAMES],
        "failed_more": max(0, len(failed) - HEADLINE_NAMES),
        "next_step": next_step,
        "fallback": Untrusted.of(verdict.fallback_reason, 300)
        if verdict.fallback_reason else "",
        "trust_notes": [Untrusted.of(n, 200) for n in ctx.trust_notes],
        "model": Untrusted.of(ctx.model_name),
        "candidate": Untrusted.of(cand.name or cand.run_id),
        "candidate_id": Untrusted.of(judged),
        # the full id: in the details
        "candidate_short": Untrusted.of(judged[:8 if cand.run_id else 10]),
        "candidate_url": f"{ui}/#/experiments/{cand.experiment_id}/"
        + (f"runs/{cand.run_id}" if cand.run_id else f"models/{cand.model_id}")
        if ui else "",
        "champion": champion.label if champion else "none yet",
        "champion_url": f"{ui}/#/models/{_path(ctx.model_name)}/versions/{champion.version}"
        if ui and champion and champion.version else "",
        "champion_found_by": champion.found_by if champion else "",
        # `--against` compares with a baseline of the user's choice, not Production
        "baseline": "Production" if champion is None or champion.found_by in
        ("alias", "stage") else "Baseline",
        "commit": Untrusted.of(ctx.commit[:12]) if ctx.commit else "",
        "comparison": _comparison(verdict, ctx),
        "models": [{"role": _word(role), "description": Untrusted.of(desc, 80)}
                   for role, desc in ctx.models],
        "interval_label": f"{confidence:.0%}".replace("%", NBSP + "%") + " CI"
        if confidence else "CI",
        "rows": [_metric_row(m, verdict.policy) for m in rows],
        "underpowered": Untrusted.of(", ".join(m.name for m in verdict.metrics
                                               if m.underpowered), 300),
        "trend": _trend(ctx, verdict),
        "slices": slice_report.view(verdict, ctx.config, Untrusted.of),
        "details": _details(verdict, ctx),
    }


def _comparison(verdict: Verdict, ctx: Context) -> str:
    if verdict.champion_version is None:
        return "no Production version yet: absolute bounds only"
    if not verdict.paired:
        return "logged metrics, point comparison (not paired)"
    rows = f"{ctx.eval_rows} " if ctx.eval_rows is not None else ""
    return f"same {rows}eval rows, paired bootstrap, policy `{verdict.policy}`"


def _metric_row(m: MetricResult, policy: str) -> dict[str, str]:
    dec = decimals_for(m.champion, m.candidate)
    fine = min(dec + 1, 4)      # an allowance can be smaller than the values' last digit
    interval = "n/a"
    if m.low is not None and m.high is not None:
        interval = f"[{fmt_signed(m.low, digits=dec)}, {fmt_signed(m.high, digits=dec)}]"
    rel = m.delta_rel
    # the change relative to Production (the values beside it give the absolute one)
    change = fmt_signed(rel * 100, NBSP + "%", 1) if rel is not None else \
        fmt_signed(m.delta, digits=fine)
    champion = fmt_value(m.champion, dec) if m.champion is not None else "—"
    return {"name": Untrusted.of(m.name, 60), "goal": "↓" if m.direction == "lower" else "↑",
            "direction": m.direction, "status": m.status,
            "mark": RESULT_MARK.get(m.status, ""), "word": RESULT_WORD.get(m.status, m.status),
            "shift": f"{champion} → {fmt_value(m.candidate, dec)}", "change": change,
            "candidate": fmt_value(m.candidate, dec),
            "interval": interval, "why": _why(m, policy),
            "allowance": fmt_value(m.allowance, fine) if m.allowance is not None else "n/a",
            "mde": fmt_value(m.mde, fine) if m.mde is not None else "n/a",
            "rule": m.reason.replace("|", "\\|")}


def _why(m: MetricResult, policy: str) -> str:
    """The rule that decided, in two or three words; the full text is in the details."""
    if m.status in ("error", "skipped"):
        return "missing" if m.candidate is None else "not finite"
    if m.reason.startswith(("above the absolute ", "below the absolute ")):
        return m.reason.replace("the absolute ", "")
    if m.worsening is None:
        return "bounds only"
    if m.status == "failed":
        return "not shown non-inferior" if policy == "non_inferiority" and m.paired \
            else "beyond allowance"
    if m.status == "within_noise":
        return "CI includes 0"
    if policy == "non_inferiority" and m.paired:
        return "shown non-inferior"
    return "within allowance" if m.worsening > 0 else "not worse"


def _word(text: str) -> str:
    # roles are the gate's own words; keep them plain so they need no escaping
    return re.sub(r"[^A-Za-z0-9 _-]", "", str(text))[:30] or "model"


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
    changed = [{"name": Untrusted.of(k, 60), "old": Untrusted.of(old.get(k, "—"), 60),
                "new": Untrusted.of(v, 60)}
               for k, v in sorted(cand.params.items()) if old.get(k) != v][:50] \
        if ctx.champion else []
    gated = {m.name for m in verdict.metrics}
    other = [{"name": Untrusted.of(k, 60), "value": fmt_value(v, decimals_for(v))}
             for k, v in sorted(cand.metrics.items()) if k not in gated][:50]
    config_lines = _config_lines(ctx.config) if ctx.config else []
    return {"changed_params": changed, "other_metrics": other,
            "eval_rows": ctx.eval_rows if ctx.eval_rows is not None else "unknown",
            "eval_digest": Untrusted.of(cand.tags.get(contract.TAG_EVAL_DIGEST, "unknown"), 40),
            "data_digest": Untrusted.of(cand.tags.get(contract.TAG_DATA_DIGEST, "unknown"), 40),
            "config": config_lines,
            "notes": [Untrusted.of(n, 400) for n in ctx.notes]}


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
    if config.slices.columns:
        s = config.slices
        lines.append(f"[slices] columns = {list(s.columns)}, min_rows = {s.min_rows}"
                     + (f", bins = {dict(s.bins)}" if s.bins else "")
                     + (f", tolerance = {dict(s.tolerance)}" if s.tolerance else "")
                     + (f", tolerance_rel = {dict(s.tolerance_rel)}" if s.tolerance_rel
                        else ""))
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


def _finalize(value: Any) -> Any:
    # Every value the markdown template prints passes here: text from a run becomes a code
    # span, whatever the template author remembered.
    return untrusted(value, value.limit) if isinstance(value, Untrusted) else value


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gate.report", "templates"), undefined=jinja2.StrictUndefined,
    autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    finalize=_finalize)


def marker(model_name: str) -> str:
    """The hidden first line that finds this model's PR comment again."""
    return f"<!-- model-gate:{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)} -->"


def render(verdict: Verdict, ctx: Context) -> Report:
    from gate.report.text import render_text

    view = build_view(verdict, ctx)
    template = _ENV.get_template("report.md.j2")
    full = template.render(view=view, marker=marker(ctx.model_name), details=True)
    short = template.render(view=view, marker=marker(ctx.model_name), details=False)
    return Report(markdown=full, without_details=short, view=view, text=render_text(view))


def render_skipped(reason: str, model_name: str, how_to_run: str) -> str:
    template = _ENV.get_template("skipped.md.j2")
    return template.render(marker=marker(model_name), reason=Untrusted.of(reason, 300),
                           how_to_run=how_to_run)
