"""The report renders as intended in GitHub Flavored Markdown (cmarkgfm, GitHub's own
renderer), and untrusted text from runs cannot break it."""
from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gate.report import markdown as report
from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import Evidence, MetricResult, decide
from gate.stats.paired import PairedStat
from gate.core.domain import Champion, RunInfo

CONFIG = Config(model=ModelConfig("diabetes"), compare=CompareConfig(),
                metrics=(MetricRule("rmse", "lower", max=70.0, tolerance_rel=0.02),
                         MetricRule("mae", "lower", tolerance_rel=0.02),
                         MetricRule("r2", "higher", min=0.2, tolerance_rel=0.05)),
                primary_metric="rmse")


def run(name: str = "candidate-run", params: dict | None = None,
        tags: dict | None = None, run_id: str = "c" * 32) -> RunInfo:
    return RunInfo(run_id=run_id, name=name, experiment_id="1",
                   metrics={"rmse": 60.0, "mae": 48.0, "r2": 0.4, "train_time": 1.5},
                   params=params or {"n_estimators": "50"}, tags=tags or {},
                   artifact_uri="")


class _Logged(dict):
    """The run logged every metric (the paired values are what the verdict uses)."""

    def get(self, key, default=None):  # type: ignore[override]
        return 1.0


LOGGED = _Logged()


def stat(champion: float, candidate: float, worse: float, low: float, high: float,
         mde: float = 1.0) -> PairedStat:
    return PairedStat(champion, candidate, worse, low, high, mde, 89)


def blocked_verdict():
    evidence = Evidence("c" * 32, LOGGED, champion_version="3", champion_metrics={},
                        paired={"rmse": stat(55.0, 60.0, 5.0, 2.0, 8.0),
                                "mae": stat(45.0, 44.0, -1.0, -2.0, 0.5),
                                "r2": stat(0.45, 0.40, 0.05, 0.01, 0.09, mde=0.05)})
    return decide(CONFIG, evidence)


def champion() -> Champion:
    return Champion("3", run("old", {"n_estimators": "100"}, run_id="a" * 32), "alias")


def html(markdown: str) -> str:
    # UNSAFE lets raw HTML through, as GitHub does (then sanitises): escaping is ours to do
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


class Tables(HTMLParser):
    """Collect every table as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(markdown: str) -> Tables:
    parser = Tables()
    parser.feed(html(markdown))
    return parser


def metric_table(parsed: Tables) -> list[list[str]]:
    """The per-metric table, no-break spaces read as spaces."""
    table = next(t for t in parsed.tables if t[0][0] == "Metric")
    return [[cell.replace("\u00a0", " ") for cell in row] for row in table]


def test_blocked_report_leads_with_the_verdict_and_failing_metrics_first() -> None:
    verdict = blocked_verdict()
    ctx = report.Context("diabetes", "production", "http://u:secret@mlflow.example:5000",
                         run(), champion(), commit="0123456789abcdef", config=CONFIG,
                         trend=[("v1", 58.0), ("v3", 55.0)], eval_rows=89)
    rendered = report.render(verdict, ctx)
    lines = rendered.markdown.splitlines()
    assert lines[0] == "<!-- model-gate:diabetes -->"
    assert lines[1] == "### ❌ **Blocked**: 2 of 3 metrics failed (`rmse`, `r2`)"
    assert "Not promoted" in rendered.markdown and "--force --reason" in rendered.markdown

    parsed = parse(rendered.markdown)
    assert all(cell for table in parsed.tables for cell in table[0])   # no empty header
    table = metric_table(parsed)
    assert table[0] == ["Metric", "Result", "Production →candidate", "Change",
                        "Worsening95 % CI", "Rule"]
    body = table[1:]
    assert [row[0] for row in body] == ["rmse ↓", "r2 ↑", "mae ↓"]      # failing first
    assert body[0][1:] == ["❌ failed", "55.00 → 60.00", "+9.1 %", "[+2.00, +8.00]",
                           "beyond allowance"]
    assert body[1][2:5] == ["0.4500 → 0.4000", "-11.1 %", "[+0.0100, +0.0900]"]
    assert body[2][1] == "✅ passed" and body[2][5] == "not worse"
    # the full rule, the allowance and the minimum detectable worsening: in the details
    rules = next(t for t in parsed.tables if t[0][0] == "Metric" and "Rule" in t[0]
                 and "Allowance" in t[0])
    assert rules[0] == ["Metric", "Allowance", "Min. detectable", "Rule"]
    assert rules[1] == ["rmse", "1.100", "1.000",
                        "worse by 5 > allowance 1.1, confidently (CI low > 0)"]
    assert "Compared with" in rendered.markdown and "same 89 eval rows" in rendered.markdown


def test_first_model_and_fallback_leave_out_columns_with_nothing_to_say() -> None:
    first = decide(CONFIG, Evidence("c" * 32, {"rmse": 50.0, "mae": 40.0, "r2": 0.5}))
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", run(), None,
                         config=CONFIG)
    table = metric_table(parse(report.render(first, ctx).markdown))
    assert table[0] == ["Metric", "Result", "Candidate", "Rule"]
    assert table[1] == ["rmse ↓", "✅ passed", "50.00", "bounds only"]

    fallback = decide(CONFIG, Evidence("c" * 32, {"rmse": 70.5, "mae": 40.0, "r2": 0.5},
                                       champion_version="3",
                                       champion_metrics={"rmse": 55.0, "mae": 45.0, "r2": 0.45},
                                       fallback_reason="candidate run has no gate/eval_rows.csv"))
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", run(), champion(),
                         config=CONFIG)
    markdown = report.render(fallback, ctx).markdown
    table = metric_table(parse(markdown))
    assert table[0] == ["Metric", "Result", "Production →candidate", "Change", "Rule"]
    assert table[1] == ["rmse ↓", "❌ failed", "55.00 → 70.50", "+28.2 %", "above max 70"]
    # the fallback is said under the verdict, before anything else
    head = markdown.split("| Metric |", 1)[0]
    assert head.index("Not a paired comparison: `candidate run has no gate/eval_rows.csv`") \
        < head.index("Not promoted")


def test_trust_notes_under_the_verdict_and_models_near_the_top() -> None:
    ctx = report.Context(
        "diabetes", "production", "sqlite:///x.db", run(), champion(), config=CONFIG,
        trust_notes=["candidate predictions unverified: logged by the run (custom pyfunc)"],
        models=[("candidate", "pyfunc / cloudpickle, unverified"),
                ("champion", "sklearn / skops, verified")])
    markdown = report.render(blocked_verdict(), ctx).markdown
    lines = markdown.splitlines()
    assert lines[3:5] == ["> [!WARNING]", "> - `candidate predictions unverified: logged by "
                          "the run (custom pyfunc)`"]
    assert ("**Models**: candidate `pyfunc / cloudpickle, unverified` · champion "
            "`sklearn / skops, verified`") in lines
    assert lines.index("> [!WARNING]") < next(i for i, line in enumerate(lines)
                                              if line.startswith("**Models**")) \
        < next(i for i, line in enumerate(lines) if line.startswith("| Metric |"))
    text = report.render(blocked_verdict(), ctx).text
    assert "! candidate predictions unverified: logged by the run (custom pyfunc)" in text
    assert "models      candidate: pyfunc / cloudpickle, unverified; champion: sklearn / " \
        "skops, verified" in text


def test_ten_metrics_name_three_failures_and_count_the_rest() -> None:
    rules = tuple(MetricRule(f"metric_{i}", "lower", tolerance_rel=0.02) for i in range(10))
    config = Config(model=ModelConfig("diabetes"), compare=CompareConfig(), metrics=rules,
                    primary_metric="metric_0")
    paired = {r.name: stat(1.0, 1.5 if i < 5 else 0.9, 0.5 if i < 5 else -0.1,
                           0.2 if i < 5 else -0.2, 0.8 if i < 5 else 0.05)
              for i, r in enumerate(rules)}
    verdict = decide(config, Evidence("c" * 32, LOGGED, champion_version="3", paired=paired))
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", run(), champion(),
                         config=config)
    rendered = report.render(verdict, ctx)
    assert rendered.markdown.splitlines()[1] == ("### ❌ **Blocked**: 5 of 10 metrics failed "
                                                 "(`metric_0`, `metric_1`, `metric_2` and 2 "
                                                 "more)")
    assert len(metric_table(parse(rendered.markdown))) == 11
    assert "model gate: Blocked: 5 of 10 metrics failed (metric_0, metric_1, metric_2 and 2 " \
        "more)" in rendered.text


@pytest.mark.parametrize("values, shown", [
    ((55.0, 60.0), ("55.00 → 60.00", "+9.1 %")),
    ((0.45, 0.4), ("0.4500 → 0.4000", "-11.1 %")),
    ((1234.5, 1300.25), ("1234 → 1300", "+5.3 %")),
    ((0.0012, 0.0013), ("0.0012 → 0.0013", "+8.3 %")),
    ((0.0, 0.25), ("0.0000 → 0.2500", "+0.2500")),      # no % of a zero: the change itself
    ((2.5e7, 2.6e7), ("2.5e+07 → 2.6e+07", "+4.0 %")),
])
def test_values_show_four_significant_digits(values: tuple[float, float],
                                             shown: tuple[str, str]) -> None:
    result = MetricResult("m", "lower", "passed", "", candidate=values[1],
                          champion=values[0], delta=values[1] - values[0])
    row = report._metric_row(result, "significant")
    assert (row["shift"], row["change"].replace("\u00a0", " ")) == shown


def test_links_carry_no_credentials_and_point_at_the_mlflow_ui() -> None:
    ctx = report.Context("diabetes", "production", "https://bot:hunter2@mlflow.example/",
                         run(), champion(), config=CONFIG)
    markdown = report.render(blocked_verdict(), ctx).markdown
    assert "hunter2" not in markdown and "bot:" not in markdown
    rendered = html(markdown)
    assert 'href="https://mlflow.example/#/experiments/1/runs/' + "c" * 32 in rendered
    assert 'href="https://mlflow.example/#/models/diabetes/versions/3"' in rendered


def test_mermaid_trend_and_collapsed_details() -> None:
    ctx = report.Context("diabetes", "production", "sqlite:///mlruns.db", run(), champion(),
                         config=CONFIG, trend=[("v1", 58.0), ("v3", 55.0)],
                         notes=["eval data changed since champion v3 (aaa -> bbb)"])
    rendered = report.render(blocked_verdict(), ctx)
    out = html(rendered.markdown)
    assert '<pre lang="mermaid"><code>xychart-beta' in out
    assert 'x-axis ["v1", "v3", "candidate"]' in rendered.markdown
    assert "line [58.0000, 55.0000, 60.0000]" in rendered.markdown
    assert "<details>" in out and "<summary>Details</summary>" in out
    assert "eval data changed" in out
    params = next(t for t in parse(rendered.markdown).tables if t[0][0] == "Param")
    assert params[1] == ["n_estimators", "100", "50"]
    assert "<details>" not in rendered.without_details
    assert len(rendered.without_details) < len(rendered.markdown)


@pytest.mark.parametrize("status, first_words", [
    ("first_model", "🆕 **First model**"),
    ("passed", "✅ **Passed**"),
])
def test_headlines(status: str, first_words: str) -> None:
    evidence = Evidence("c" * 32, {"rmse": 50.0, "mae": 40.0, "r2": 0.5},
                        champion_version=None if status == "first_model" else "3",
                        champion_metrics={"rmse": 55.0, "mae": 45.0, "r2": 0.45})
    verdict = decide(CONFIG, evidence)
    assert verdict.status == status
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", run(), None,
                         promote_requested=True, promoted_version="4", config=CONFIG)
    markdown = report.render(verdict, ctx).markdown
    assert markdown.splitlines()[1].endswith(first_words + markdown.splitlines()[1].split(
        first_words, 1)[1])
    assert "Promoted: v4 now holds `@production`." in markdown


HOSTILE = [
    "a|b|c|d",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[click](https://evil.example)",
    "![img](https://evil.example/x.png)",
    "@octocat please look",
    "https://evil.example/autolink",
    "www.evil.example",
    "line1\nline2\r\n| x | y |",
    "`` ` ``` code ``",
    "\x1b[31mred\x07 \u202e reversed",
    "x" * 100_000,
    "</details><details open>",
    "**bold** _it_ ~~s~~ # heading",
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_run_text_stays_inert(hostile: str) -> None:
    cand = run(name=hostile, params={hostile: hostile, "n_estimators": hostile},
               tags={"gate.eval_digest": hostile, "gate.data_digest": hostile})
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", cand, champion(),
                         commit=hostile, notes=[hostile], config=CONFIG,
                         trust_notes=[hostile], models=[(hostile, hostile)])
    rendered = report.render(blocked_verdict(), ctx)
    markdown = rendered.markdown
    out = html(markdown)
    parsed = parse(markdown)
    assert not {"img", "script", "a"} & set(parsed.tags)      # no sqlite URL, so no links
    assert "<details open>" not in out and out.count("<details>") == 1
    for table in parsed.tables:
        assert len({len(row) for row in table}) == 1, table    # no cell split or added
    # every untrusted string appears only inside code spans
    text_outside_code = re.sub(r"<code>.*?</code>", "", out, flags=re.S)
    assert "@octocat" not in text_outside_code
    assert "evil.example" not in text_outside_code
    assert len(markdown) < 20_000
    # the terminal gets no escape sequences and no line past 100 columns
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u202e]", rendered.text)
    assert max(len(line) for line in rendered.text.splitlines()) <= 100


def test_untrusted_spans() -> None:
    assert report.untrusted("a|b") == "`a\\|b`"
    assert report.untrusted("x`y") == "``x`y``"
    assert report.untrusted("`") == "`` ` ``"
    assert report.untrusted("") == "` `"
    assert len(report.untrusted("z" * 1000)) <= report.MAX_UNTRUSTED + 2


def test_skipped_report() -> None:
    markdown = report.render_skipped("fork PR: no secrets", "diabetes", "Ask a maintainer.")
    assert markdown.startswith("<!-- model-gate:diabetes -->\n")
    assert "Skipped" in markdown and "not a pass" in markdown


def test_plain_text_for_a_100_column_terminal_and_markdown_for_github(tmp_path) -> None:
    from gate.delivery import deliver

    long_names = tuple(MetricRule(f"expected_calibration_error_{i}", "lower",
                                  tolerance_rel=0.02) for i in range(10))
    config = Config(model=ModelConfig("diabetes"), compare=CompareConfig(),
                    metrics=long_names, primary_metric=long_names[0].name)
    verdict = decide(config, Evidence("c" * 32, LOGGED, champion_version="3", paired={
        r.name: stat(2.5e7, 2.6e7, 1e6, 2.5e5, 1.9e6) for r in long_names}))
    ctx = report.Context("diabetes", "production", "https://mlflow.example.com", run(),
                         champion(), commit="0123456789abcdef", config=config, eval_rows=89,
                         notes=["eval data changed since champion v3: " + "x " * 80],
                         trust_notes=["candidate predictions unverified: logged by the run "
                                      "(custom pyfunc)"])
    rendered = report.render(verdict, ctx)
    lines = rendered.text.splitlines()
    assert lines[0] == "model gate: Blocked: 10 of 10 metrics failed " \
        "(expected_calibration_error_0, expected_calibration_error_1, " \
        "expected_calibration_error_2 and 7 more)"[:len(lines[0])]
    assert all(len(line) <= 100 or line.strip().startswith("https://") for line in lines)
    assert not re.search(r"\*\*|`|<|\|", rendered.text)            # no markup at all
    header = next(line for line in lines if line.startswith("metric"))
    # too wide with the rule: it goes, the rules are spelled out under the table
    assert header.split() == ["metric", "result", "production", "->", "candidate", "change",
                              "worsening", "95", "%", "CI"]
    assert "  expected_calibration_error_0: worse by 1e+06 > allowance 5e+05" in rendered.text
    assert "expected_ca…on_error_9 ↓  FAILED" in rendered.text   # cut names stay apart

    out, summary = io.StringIO(), tmp_path / "summary.md"
    deliver.deliver(rendered, verdict, "diabetes", deliver.Targets(summary_path=str(summary)),
                    {"status": verdict.status, "passed": False}, out=out, environ={})
    assert out.getvalue() == rendered.text
    assert summary.read_text() == rendered.markdown


@pytest.mark.parametrize("evidence, title", [
    (Evidence("c" * 32, {"mae": 40.0, "r2": 0.5}, champion_version="3",
              champion_metrics={"rmse": 55.0, "mae": 45.0, "r2": 0.45}),
     "### ⛔ **Error**: could not judge, 1 of 3 metrics missing or not finite (`rmse`)"),
    (Evidence("c" * 32, LOGGED, champion_version="3",
              paired={"rmse": stat(55.0, 57.0, 2.0, -0.5, 4.0),
                      "mae": stat(45.0, 44.0, -1.0, -2.0, 0.5),
                      "r2": stat(0.45, 0.44, 0.01, -0.01, 0.03)}),
     "### ✅ **Passed**: none of 3 metrics failed, 1 worse but within noise"),
])
def test_error_and_within_noise_headlines(evidence: Evidence, title: str) -> None:
    ctx = report.Context("diabetes", "production", "sqlite:///x.db", run(), champion(),
                         config=CONFIG)
    rendered = report.render(decide(CONFIG, evidence), ctx)
    assert rendered.markdown.splitlines()[1] == title
    first = metric_table(parse(rendered.markdown))[1]
    assert first[1] in ("⛔ error", "⚠️ within noise")          # the worst result first
    assert first[-1] in ("missing", "CI includes 0")
