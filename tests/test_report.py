"""The report renders as intended in GitHub Flavored Markdown (cmarkgfm, GitHub's own
renderer), and untrusted text from runs cannot break it."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gate import report
from gate.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.decide import Evidence, PairedStat, decide
from gate.registry import Champion, RunInfo

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


def stat(champion: float, candidate: float, worse: float, low: float, high: float,
         mde: float = 1.0) -> PairedStat:
    return PairedStat(champion, candidate, worse, low, high, mde, 89)


def blocked_verdict():
    evidence = Evidence("c" * 32, {}, champion_version="3", champion_metrics={},
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
    return next(t for t in parsed.tables if t[0][0] == "Metric")


def test_blocked_report_leads_with_the_verdict_and_failing_metrics_first() -> None:
    verdict = blocked_verdict()
    ctx = report.Context("diabetes", "production", "http://u:secret@mlflow.example:5000",
                         run(), champion(), commit="0123456789abcdef", config=CONFIG,
                         trend=[("v1", 58.0), ("v3", 55.0)], eval_rows=89)
    rendered = report.render(verdict, ctx)
    lines = rendered.markdown.splitlines()
    assert lines[0] == "<!-- model-gate:diabetes -->"
    assert "Blocked" in lines[1] and "2 metric(s) failed" in lines[1]
    assert "Not promoted" in rendered.markdown and "--force --reason" in rendered.markdown

    table = metric_table(parse(rendered.markdown))
    assert table[0] == ["Metric", "Goal", "Production", "Candidate", "Δ", "Δ %",
                        "Worsening CI", "Min. detectable", "Rule", "Result"]
    body = table[1:]
    assert [row[0] for row in body] == ["rmse", "r2", "mae"]      # failing first
    assert body[0][2:6] == ["55.0000", "60.0000", "+5.0000", "+9.09 %"]
    assert body[0][6] == "[+2.000, +8.000]" and body[0][9] == "❌ failed"
    assert body[2][9] == "✅ passed"
    assert all(len(row) == 10 for row in body)


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
                         commit=hostile, notes=[hostile], config=CONFIG)
    markdown = report.render(blocked_verdict(), ctx).markdown
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
