"""The report as a maintainer sees it: rendered like a GitHub PR comment, in headless
Chromium, measured from the DOM. No table may be wider than the comment body, and each
metric's result sits in the first two columns, in the first screen for a few metrics.

Screenshots are kept as test artifacts (the folder is printed). With
GATE_UPDATE_DOCS=1 the blocked one also becomes docs/report-blocked.png for the README.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gate.core import config as config_mod
from gate.report import markdown as report
from gate.core.config import CompareConfig, Config, MetricRule, ModelConfig
from gate.core.decide import Evidence, decide
from gate.stats.paired import PairedStat
from gate.core.domain import Champion, RunInfo
from tests.test_report import LOGGED
from tests import browser

ROOT = Path(__file__).resolve().parent.parent
GATE_TOML = config_mod.load(ROOT / "gate.toml")
FIRST_SCREEN = 600          # px from the top of the comment: seen without scrolling
ONE_LINE_ROW = 40           # px: a table row of one line of text (37 with GitHub's padding)
RESULTS = {"❌\u00a0failed", "✅\u00a0passed", "⚠️\u00a0within noise", "⛔\u00a0error",
           "➖\u00a0skipped"}
MLFLOW = "https://mlflow.example.com"


def run_info(name: str, run_id: str, metrics: dict[str, float],
             params: dict[str, str]) -> RunInfo:
    return RunInfo(run_id=run_id, name=name, experiment_id="1", metrics=metrics,
                   params=params, tags={"gate.eval_digest": "sha256:9f2c41d07be3",
                                        "gate.data_digest": "sha256:51aa07c3e0d9"},
                   artifact_uri="")


BASELINE = run_info("baseline", "7d3f0a9c51e24b7c9a0e6f1d2c3b4a59",
                    {"rmse": 55.17, "mae": 44.77, "r2": 0.4254},
                    {"n_estimators": "50", "drop_columns": ""})
CHAMPION = Champion("1", BASELINE, "alias")


def paired(champion: float, candidate: float, worse: float, low: float, high: float,
           mde: float) -> PairedStat:
    return PairedStat(champion, candidate, worse, low, high, mde, 89)


def blocked() -> tuple[report.Report, list[str]]:
    # The figures of a real run: scripts/demo.sh's "worse-model" (bmi and s5 dropped)
    # against its baseline, as `gate check --json` reported them.
    evidence = Evidence("1572ad7e962e4635b282ed22b718745a", LOGGED, champion_version="1", paired={
        "rmse": paired(55.1743, 63.1081, 7.9338, 1.2246, 14.8499, 9.7396),
        "mae": paired(44.7654, 53.9452, 9.1798, 3.0934, 14.9006, 8.5807),
        "r2": paired(0.4254, 0.2483, 0.1771, 0.0259, 0.3481, 0.2276)})
    candidate = run_info("worse-model", "1572ad7e962e4635b282ed22b718745a",
                         {"rmse": 63.1081, "mae": 53.9452, "r2": 0.2483, "train_time": 0.41},
                         {"n_estimators": "50", "drop_columns": "bmi,s5"})
    ctx = report.Context("diabetes-regressor", "production", MLFLOW, candidate, CHAMPION,
                         commit="59e514a7687d2b1c", eval_rows=89, config=GATE_TOML,
                         trend=[("v1", 55.1743)],
                         models=[("candidate", "sklearn / skops, verified"),
                                 ("Production", "sklearn / skops, verified")])
    return report.render(decide(GATE_TOML, evidence), ctx), ["rmse", "mae", "r2"]


def passed() -> tuple[report.Report, list[str]]:
    evidence = Evidence("b" * 32, LOGGED, champion_version="1", paired={
        "rmse": paired(55.1743, 54.0210, -1.1533, -3.0107, 0.7012, 2.1),
        "mae": paired(44.7654, 44.9120, 0.1466, -1.2001, 1.4930, 1.9),
        "r2": paired(0.4254, 0.4480, -0.0226, -0.0511, 0.0060, 0.05)})
    candidate = run_info("better-model", "b" * 32, {"rmse": 54.021}, {"max_depth": "4"})
    ctx = report.Context("diabetes-regressor", "production", MLFLOW, candidate, CHAMPION,
                         promote_requested=True, promoted_version="2", eval_rows=89,
                         config=GATE_TOML, trend=[("v1", 55.1743)])
    return report.render(decide(GATE_TOML, evidence), ctx), ["rmse", "mae", "r2"]


def first_model() -> tuple[report.Report, list[str]]:
    evidence = Evidence("a" * 32, {"rmse": 55.1743, "mae": 44.7654, "r2": 0.4254})
    candidate = run_info("baseline", "a" * 32, dict(evidence.candidate_metrics), {})
    ctx = report.Context("diabetes-regressor", "production", MLFLOW, candidate, None,
                         promote_requested=True, promoted_version="1", config=GATE_TOML)
    return report.render(decide(GATE_TOML, evidence), ctx), ["rmse", "mae", "r2"]


def fallback() -> tuple[report.Report, list[str]]:
    evidence = Evidence("f" * 32, {"rmse": 57.9, "mae": 45.1, "r2": 0.39},
                        champion_version="1",
                        champion_metrics={"rmse": 55.1743, "mae": 44.7654, "r2": 0.4254},
                        fallback_reason="the model files of champion v1 are gone: compared "
                                        "with the metrics it logged at training time")
    candidate = run_info("retrain", "f" * 32, dict(evidence.candidate_metrics), {})
    ctx = report.Context(
        "diabetes-regressor", "production", MLFLOW, candidate, CHAMPION, config=GATE_TOML,
        trust_notes=["candidate predictions unverified: logged by the run (custom pyfunc)"],
        models=[("candidate", "pyfunc / cloudpickle, unverified"),
                ("Production", "sklearn / skops, files gone")])
    return report.render(decide(GATE_TOML, evidence), ctx), ["rmse", "mae", "r2"]


TEN = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_weighted",
       "log_loss", "brier", "roc_auc", "average_precision", "expected_calibration_error")


def ten_metrics() -> tuple[report.Report, list[str]]:
    lower = {"log_loss", "brier", "expected_calibration_error"}
    rules = tuple(MetricRule(name, "lower" if name in lower else "higher",
                             tolerance_rel=0.01) for name in TEN)
    config = Config(model=ModelConfig("churn-classifier"),
                    compare=CompareConfig(policy="non_inferiority"), metrics=rules,
                    primary_metric="roc_auc")
    stats = {}
    for i, name in enumerate(TEN):
        champion = 0.8123 + i / 100
        worse = (-0.012, 0.004, 0.031)[i % 3]
        candidate = champion + (worse if name in lower else -worse)
        stats[name] = paired(champion, candidate, worse, worse - 0.011, worse + 0.0113,
                             0.0157)
    evidence = Evidence("d" * 32, LOGGED, champion_version="12", paired=stats)
    champion = Champion("12", run_info("nightly", "e" * 32, {}, {}), "stage")
    ctx = report.Context("churn-classifier", "production", MLFLOW,
                         run_info("feature/new-encoder", "d" * 32, {}, {}), champion,
                         eval_rows=4210, config=config,
                         trend=[(f"v{v}", 0.88 + v / 1000) for v in range(5, 13)])
    return report.render(decide(config, evidence), ctx), list(TEN)


SLICES = (("customer_segment", "enterprise-north-america-tier-1", 1204, 0.01),
          ("customer_segment", "B", 312, 0.29),
          ("customer_segment", "small-business-emea", 640, 0.05),
          ("region", "asia-pacific-including-oceania-and-japan", 150, 0.4),
          ("region", "europe", 2210, -0.02),
          ("region", "americas", 1480, 0.0))


def slices() -> tuple[report.Report, list[str]]:
    """Blocked by one segment while the aggregate passes; long slice values, five rows."""
    from gate.stats.paired import SliceStat

    config = config_mod.parse((ROOT / "gate.toml").read_text() +
                              '\n[slices]\ncolumns = ["customer_segment", "region"]\n')
    evidence = Evidence("c" * 32, LOGGED, champion_version="1", paired={
        "rmse": paired(55.1743, 55.9012, 0.7269, -0.4101, 1.8640, 1.6),
        "mae": paired(44.7654, 45.1020, 0.3366, -0.6101, 1.2833, 1.3),
        "r2": paired(0.4254, 0.4189, 0.0065, -0.0071, 0.0201, 0.02)},
        slices=tuple(SliceStat(column, value, rows, {"rmse": PairedStat(
            55.0, 55.0 * (1 + worse), 55.0 * worse, 55.0 * worse - 4.0, 55.0 * worse + 4.0,
            5.7, rows, 2.0)}) for column, value, rows, worse in SLICES))
    candidate = run_info("segment-model", "c" * 32, {"rmse": 55.9012}, {"max_depth": "8"})
    ctx = report.Context("diabetes-regressor", "production", MLFLOW, candidate, CHAMPION,
                         eval_rows=2366, config=config, trend=[("v1", 55.1743)])
    return report.render(decide(config, evidence), ctx), ["rmse", "mae", "r2"]


def slice_table(measured: dict[str, Any]) -> dict[str, Any] | None:
    return next((t for t in measured["tables"]
                 if [c["text"] for c in t["rows"][0]["cells"][:2]] == ["Slice", "Result"]),
                None)


SCENARIOS = {"blocked": blocked, "passed": passed, "first-model": first_model,
             "fallback": fallback, "ten-metrics": ten_metrics, "slices": slices}


@pytest.fixture(scope="module")
def pages(request: pytest.FixtureRequest) -> dict[str, browser.Page]:
    """Every scenario laid out once (Chromium starts twice for all of them)."""
    folder = Path(os.environ.get("GATE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / \
        "report-browser"
    rendered = {name: make()[0].markdown for name, make in SCENARIOS.items()}
    laid_out = browser.render_all(rendered, folder)
    # printed past pytest's capture, so a plain run shows where to look
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nreport screenshots (as GitHub lays them out): {folder}")
    return laid_out


def metric_table(measured: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in measured["tables"]
                if [c["text"] for c in t["rows"][0]["cells"][:2]] == ["Metric", "Result"])


@pytest.mark.parametrize("name", SCENARIOS)
def test_report_fits_a_pr_comment_with_each_result_beside_its_metric(
        name: str, pages: dict[str, browser.Page]) -> None:
    metrics = SCENARIOS[name]()[1]
    page = pages[name]
    measured = page.measured
    assert page.screenshot.stat().st_size > 10_000      # a picture, not a blank
    assert measured["bodyWidth"] == browser.COMMENT_WIDTH
    assert measured["bodyScrollWidth"] <= measured["bodyWidth"], "something overflows"

    # every table, the folded ones unfolded: nothing scrolls sideways
    for table in measured["tables"]:
        assert table["scrollWidth"] <= measured["bodyWidth"], \
            [c["text"] for c in table["rows"][0]["cells"]]
        assert all(c["text"] for c in table["rows"][0]["cells"]), "an empty header cell"

    table = metric_table(measured)
    assert table["scrollWidth"] <= table["clientWidth"]
    rows = table["rows"][1:]
    assert sorted(row["cells"][0]["text"].split("\u00a0")[0] for row in rows) == \
        sorted(metrics)
    for row in rows:
        result = row["cells"][1]
        assert result["text"] in RESULTS
        assert result["box"]["right"] <= measured["bodyRight"]     # visible, no scrolling
    assert len(table["rows"][0]["cells"]) <= 6

    blocks = measured["blocks"]
    assert blocks[0]["tag"] == "h3" and blocks[0]["box"]["top"] == 0   # the verdict first
    alert = next((b for b in blocks if "markdown-alert-warning" in b["cls"]), None)
    if name == "fallback":
        assert alert is not None and "Not a paired comparison" in alert["text"]
        assert "candidate predictions unverified" in alert["text"]
        assert blocks[1] is alert and alert["box"]["bottom"] <= FIRST_SCREEN   # right under
    else:
        assert alert is None
    if name in ("blocked", "fallback"):         # the scenarios that say which models ran
        facts = next(b for b in blocks if b["text"].startswith("Model gate"))
        assert "Models: candidate" in facts["text"] and facts["box"]["bottom"] <= FIRST_SCREEN
    if len(metrics) <= 3:
        assert table["box"]["bottom"] <= FIRST_SCREEN, "the results are below the fold"
        assert all(row["box"]["bottom"] - row["box"]["top"] <= ONE_LINE_ROW for row in rows)
    else:
        assert table["box"]["top"] <= FIRST_SCREEN

    sliced = slice_table(measured)
    assert (sliced is not None) == (name == "slices")
    if sliced is not None:      # the worst slices: narrow enough, each result visible
        assert sliced["scrollWidth"] <= sliced["clientWidth"] <= measured["bodyWidth"]
        assert 1 < len(sliced["rows"]) <= 6
        for row in sliced["rows"][1:]:
            assert row["cells"][1]["text"].split("\u00a0", 1)[1] in \
                ("failed", "within noise", "passed", "not gated")
            assert row["cells"][1]["box"]["right"] <= measured["bodyRight"]
        assert "customer_segment=B" in sliced["rows"][1]["cells"][0]["text"]
        assert "customer_segment=B: rmse +29 %" in blocks[0]["text"]

    if name == "blocked" and os.environ.get("GATE_UPDATE_DOCS") == "1":
        first_screen(page, ROOT / "docs" / "report-blocked.png")


def first_screen(page: browser.Page, target: Path) -> None:
    """The top of the screenshot down to the results and their note, small enough to commit."""
    from PIL import Image

    blocks = page.measured["blocks"]
    note = next(b for b in blocks if "markdown-alert-note" in b["cls"])
    bottom = int(note["box"]["bottom"]) + 2 * browser.MARGIN     # below the note, padded
    with Image.open(page.screenshot) as image:
        cropped = image.crop((0, 0, image.width, min(bottom, image.height)))
        target.parent.mkdir(parents=True, exist_ok=True)
        cropped.convert("RGB").quantize(colors=128).save(target, optimize=True)
