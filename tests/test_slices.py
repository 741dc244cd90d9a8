"""Slices (issue #25), without MLflow: the [slices] config, the per-slice paired
statistics against the engine on each slice's own rows, Holm's step-down, the slice
rule in decide, the report, the verdict JSON against its schema, and bad slice input."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest

from gate.core import config as config_mod
from gate.core.decide import Evidence, decide
from gate.core.domain import Champion, RunInfo
from gate.core.slicerules import holm, p_value
from gate.delivery.verdict_json import Facts, error_document, verdict_document
from gate.errors import ConfigError, InputError
from gate.evidence import slicing
from gate.evidence.evalset import EvalRows
from gate.report import markdown as report
from gate.stats import engine
from gate.stats.catalogue import ClassScores
from gate.stats.paired import PairedStat, SliceStat
from gate.stats.slices import SliceColumn, paired_sliced

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "verdict.schema.json").read_text())
BASE = '[model]\nname = "m"\n[metrics.rmse]\ndirection = "lower"\ntolerance_rel = 0.02\n' \
    '[metrics.r2]\ndirection = "higher"\ntolerance_rel = 0.05\n' \
    '[eval]\ndata = "holdout.csv"\ntarget = "y"\n'
REGRESSION = [("rmse", "lower"), ("mae", "lower"), ("r2", "higher")]


def parse(slices: str) -> config_mod.Config:
    # a top-level key must come before the first table
    return config_mod.parse(BASE + slices if slices.startswith("[") else slices + BASE)


# --- config -------------------------------------------------------------------------

@pytest.mark.parametrize("text, error", [
    ('[slices]\ncolumns = ["segment"]\n', None),
    ('[slices]\ncolumns = ["segment", "age"]\nbins = { age = [30, 50.5] }\nmin_rows = 50\n'
     '[slices.tolerance_rel]\nrmse = 0.1\n[slices.tolerance]\nr2 = 0.02\n', None),
    ('[slices]\ncolumn = ["segment"]\n', "unknown key 'slices.column' (did you mean "
     "'slices.columns'?)"),
    ('[slices]\nmin_rows = 300\n', "slices.columns is required"),
    ('[slices]\ncolumns = []\n', "slices.columns must be a non-empty array"),
    ('[slices]\ncolumns = "segment"\n', "slices.columns must be a non-empty array"),
    ('[slices]\ncolumns = ["a", "a"]\n', "slices.columns names 'a' twice"),
    ('[slices]\ncolumns = ["y"]\n', "slices.columns names 'y', which is eval.target"),
    ('[slices]\ncolumns = ["a"]\nmin_rows = 5\n', "slices.min_rows must be an integer of at "
     "least 10"),
    ('[slices]\ncolumns = ["a"]\nmin_rows = true\n', "slices.min_rows must be an integer"),
    ('[slices]\ncolumns = ["a"]\nbins = { b = [1] }\n', "slices.bins.b: 'b' is not in "
     "slices.columns"),
    ('[slices]\ncolumns = ["a"]\nbins = { a = [3, 1] }\n', "slices.bins.a must be strictly "
     "increasing"),
    ('[slices]\ncolumns = ["a"]\nbins = { a = ["x"] }\n', "slices.bins.a must be a non-empty "
     "array of finite numbers"),
    ('[slices]\ncolumns = ["a"]\nbins = { a = [] }\n', "slices.bins.a must be a non-empty"),
    ('[slices]\ncolumns = ["a"]\n[slices.tolerance_rel]\nrmsee = 0.1\n',
     "unknown key 'slices.tolerance_rel.rmsee' (did you mean 'slices.tolerance_rel.rmse'?)"),
    ('[slices]\ncolumns = ["a"]\n[slices.tolerance_rel]\nrmse = -0.1\n',
     "slices.tolerance_rel.rmse must be a finite number >= 0"),
    ('[slices]\ncolumns = ["a"]\n[slices.tolerance]\nrmse = "x"\n',
     "slices.tolerance.rmse must be a finite number >= 0"),
    ('[slice]\ncolumns = ["a"]\n', "unknown key 'slice' (did you mean 'slices'?)"),
    ('slices = 3\n', "[slices] must be a table"),
])
def test_slices_config(text: str, error: str | None) -> None:
    if error is None:
        config = parse(text)
        assert config.slices.columns and config.slices.min_rows in (200, 50)
        return
    with pytest.raises(ConfigError) as raised:
        parse(text)
    assert error in str(raised.value) and "\n" not in str(raised.value)


def test_slices_config_values_and_allowance() -> None:
    config = parse('[slices]\ncolumns = ["segment", "age"]\nbins = { age = [30, 50] }\n'
                   '[slices.tolerance_rel]\nrmse = 0.10\n')
    s = config.slices
    assert s.edges("age") == (30.0, 50.0) and s.edges("segment") is None
    assert s.min_rows == 200
    assert s.allowance("rmse", 0.0, 0.02, 50.0) == pytest.approx(5.0)   # the override
    assert s.allowance("r2", 0.0, 0.05, 0.5) == pytest.approx(0.025)   # the metric's own
    assert config_mod.parse(BASE).slices.columns == ()                  # off by default


# --- statistics ---------------------------------------------------------------------

def regression_rows(n: int = 3000, seed: int = 0) -> tuple[Any, Any, Any, Any]:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 3.0, n)
    codes = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    champion = y + rng.normal(0.0, 1.0, n)
    candidate = y + rng.normal(0.0, 1.0, n) * np.where(codes == 2, 1.3, 1.0)
    return y, champion, candidate, codes


def test_the_aggregate_is_unchanged_and_each_slice_is_the_engine_on_its_rows() -> None:
    y, champion, candidate, codes = regression_rows()
    column = SliceColumn("segment", ("A", "B", "C", "D"), codes)
    options: dict[str, Any] = {"confidence": 0.95, "resamples": 1000, "seed": 3}
    whole, stats = paired_sliced(REGRESSION, y, champion, candidate, [column], **options)
    assert whole == engine.paired_bootstraps(REGRESSION, y, champion, candidate, **options)
    assert [(s.value, s.rows) for s in stats] == \
        [(v, int(np.sum(codes == k))) for k, v in enumerate("ABCD")]
    for code, stat in enumerate(stats):
        rows = codes == code
        alone = engine.paired_bootstraps(REGRESSION, y[rows], champion[rows],
                                         candidate[rows], **options)
        assert set(stat.paired) == set(alone)
        for name, got in stat.paired.items():
            want = alone[name]
            # the point values exactly; the spread up to bootstrap noise (restricted
            # resamples, not drawn afresh: 1000 of them put se within ~5 %)
            assert (got.champion, got.candidate, got.worsening, got.rows) == \
                (want.champion, want.candidate, want.worsening, want.rows)
            assert got.se == pytest.approx(want.se, rel=0.15)
            assert got.low == pytest.approx(want.low, abs=0.5 * want.se)
    regressed = stats[2].paired["rmse"]
    assert regressed.low > 0 and stats[0].paired["rmse"].low < 0 < stats[0].paired["rmse"].high


def test_chunking_does_not_change_a_slice() -> None:
    y, champion, candidate, codes = regression_rows(800)
    column = SliceColumn("segment", ("A", "B", "C", "D"), codes)
    runs = [paired_sliced(REGRESSION, y, champion, candidate, [column], confidence=0.9,
                          resamples=300, seed=1, chunk=chunk)[1] for chunk in (None, 7)]
    assert runs[0] == runs[1]


def test_linearised_slices_equal_the_engine_on_their_rows() -> None:
    y, champion, candidate, codes = regression_rows(2000)
    column = SliceColumn("segment", ("A", "B", "C", "D"), codes)
    _, stats = paired_sliced(REGRESSION, y, champion, candidate, [column], confidence=0.95,
                             resamples=100, seed=0, analytic_rows=0)
    for code, stat in enumerate(stats):
        rows = codes == code
        alone = engine.paired_bootstraps(REGRESSION, y[rows], champion[rows],
                                         candidate[rows], confidence=0.95, resamples=100,
                                         seed=0, analytic_rows=0)
        # all slices at once (gate.stats.slicelinear): the engine's values up to rounding
        assert set(stat.paired) == set(alone)
        for name, got in stat.paired.items():
            for field in ("champion", "candidate", "worsening", "low", "high", "mde", "se"):
                assert getattr(got, field) == pytest.approx(getattr(alone[name], field),
                                                            rel=1e-7, abs=1e-12), (name, field)


@pytest.mark.parametrize("analytic_rows", [10 ** 9, 0], ids=["bootstrap", "linearised"])
def test_rank_and_label_metrics_per_slice(analytic_rows: int) -> None:
    rng = np.random.default_rng(5)
    n = 1500
    y = (rng.random(n) < 0.4).astype(int)
    codes = rng.integers(0, 3, n)

    def scores(noise: float) -> ClassScores:
        t = y * 1.2 + rng.normal(0.0, noise, n)
        p = 1 / (1 + np.exp(-(t - 0.6)))
        return ClassScores((t > 0.6).astype(int), np.column_stack((1 - p, p)), (0, 1))

    champion, candidate = scores(1.0), scores(1.0)
    rules = [("roc_auc", "higher"), ("f1", "higher"), ("log_loss", "lower")]
    column = SliceColumn("tier", ("gold", "silver", "bronze"), codes)
    _, stats = paired_sliced(rules, y, champion, candidate, [column], confidence=0.95,
                             resamples=400, seed=0, analytic_rows=analytic_rows)
    for code, stat in enumerate(stats):
        rows = codes == code
        take = [ClassScores(s.labels[rows], s.proba[rows], s.classes)   # type: ignore[index]
                for s in (champion, candidate)]
        alone = engine.paired_bootstraps(rules, y[rows], *take, confidence=0.95,
                                         resamples=400, seed=0, analytic_rows=analytic_rows)
        for name in ("roc_auc", "f1", "log_loss"):
            assert stat.paired[name].worsening == pytest.approx(alone[name].worsening,
                                                                abs=1e-12)
            assert stat.paired[name].se == pytest.approx(alone[name].se, rel=0.25)


def test_a_slice_too_small_or_undefined_leaves_its_metrics_out() -> None:
    y, champion, candidate, codes = regression_rows(600)
    codes = codes.copy()
    codes[:5] = 3               # a few rows of D, then move the rest of D away
    codes[5:][codes[5:] == 3] = 0
    y = y.copy()
    y[codes == 1] = 1.0         # a constant target on B: r2 undefined there
    column = SliceColumn("segment", ("A", "B", "C", "D"), codes)
    _, stats = paired_sliced(REGRESSION, y, champion, candidate, [column], confidence=0.95,
                             resamples=200, seed=0)
    by_value = {s.value: s for s in stats}
    assert by_value["D"].rows == 5 and by_value["D"].paired == {}
    assert "r2" not in by_value["B"].paired and "rmse" in by_value["B"].paired


# --- Holm and the rule --------------------------------------------------------------

def test_holm_step_down_on_a_constructed_case() -> None:
    # thresholds 0.05/4, /3, /2, /1 = 0.0125, 0.0167, 0.025, 0.05: it stops at the third
    assert holm([0.2, 0.013, 0.001, 0.03], 0.05) == [False, True, True, False]
    # Holm rejects what Bonferroni (0.05/3 each) would not: 0.04 <= 0.05 at the last step
    assert holm([0.011, 0.012, 0.04], 0.05) == [True, True, True]
    assert holm([0.02, 0.001], 0.05) == [True, True]
    assert holm([0.03, 0.03], 0.05) == [False, False]      # 0.03 > 0.025: nothing
    assert holm([], 0.05) == []


def stat(champion: float, candidate: float, se: float, rows: int = 89) -> PairedStat:
    worse = candidate - champion
    return PairedStat(champion, candidate, worse, worse - 1.96 * se, worse + 1.96 * se,
                      2.8 * se, rows, se)


def test_p_value_boundaries() -> None:
    assert p_value(stat(50, 51, 1.0), 1.0) >= 0.5                # exactly at the allowance
    assert p_value(stat(50, 51, 0.0), 0.5) == 0.0                # no noise, beyond
    assert p_value(stat(50, 51, 0.0), 1.0) == 1.0                # no noise, at it
    assert p_value(stat(50, 53, 1.0), 1.0) == pytest.approx(1 - 0.97725, abs=1e-4)


CONFIG = parse('[slices]\ncolumns = ["segment"]\nmin_rows = 200\n')
AGGREGATE = {"rmse": stat(50.0, 50.4, 0.5, 2000), "r2": stat(0.5, 0.5, 0.01, 2000)}


def sliced(*slices: SliceStat, champion: str | None = "1",
           config: config_mod.Config = CONFIG) -> Any:
    evidence = Evidence("c" * 32, {"rmse": 50.4, "r2": 0.5}, champion_version=champion,
                        paired=AGGREGATE if champion else {}, slices=slices)
    return decide(config, evidence)


def one(value: str, rows: int, champion: float, candidate: float, se: float) -> SliceStat:
    return SliceStat("segment", value, rows, {"rmse": stat(champion, candidate, se, rows)})


@pytest.mark.parametrize("case, status, verdict", [
    # allowance 2 % of 50 = 1.0
    ("confidently beyond the allowance", "failed", "blocked"),
    ("exactly at the allowance, no noise", "passed", "passed"),
    ("beyond the allowance within noise", "within_noise", "passed"),
    ("beyond, but fewer rows than min_rows", "not_gated", "passed"),
    ("better", "passed", "passed"),
])
def test_decide_with_one_slice(case: str, status: str, verdict: str) -> None:
    slice_ = {"confidently beyond the allowance": one("B", 300, 50.0, 64.5, 2.0),
              "exactly at the allowance, no noise": one("B", 300, 50.0, 51.0, 0.0),
              "beyond the allowance within noise": one("B", 300, 50.0, 53.0, 2.0),
              "beyond, but fewer rows than min_rows": one("B", 199, 50.0, 80.0, 2.0),
              "better": one("B", 300, 50.0, 45.0, 1.0)}[case]
    result = sliced(slice_)
    assert result.metrics[0].status == "passed"          # the aggregate rule, unchanged
    assert (result.slices[0].status, result.status) == (status, verdict)
    assert result.slices[0].gated == (slice_.rows >= 200)


def test_the_correction_counts_the_gated_slices() -> None:
    # z = 2.6 beyond the allowance: p = 0.0047 < 0.025 alone; with 20 gated slices
    # Holm's first threshold is 0.025/20 = 0.00125 and it no longer blocks
    suspect = one("B", 300, 50.0, 51.0 + 2.6, 1.0)
    assert sliced(suspect).status == "blocked"
    others = [one(f"o{k}", 300, 50.0, 50.0, 1.0) for k in range(19)]
    crowd = sliced(suspect, *others)
    assert crowd.status == "passed" and crowd.slices[0].status == "within_noise"
    # small slices are not tested, so they do not dilute the correction
    small = [one(f"s{k}", 50, 50.0, 50.0, 1.0) for k in range(19)]
    assert sliced(suspect, *small).status == "blocked"


def test_a_slice_allowance_of_its_own_and_no_champion() -> None:
    loose = parse('[slices]\ncolumns = ["segment"]\n[slices.tolerance_rel]\nrmse = 0.5\n')
    assert sliced(one("B", 300, 50.0, 64.5, 2.0), config=loose).status == "passed"
    first = sliced(one("B", 300, 50.0, 64.5, 2.0), champion=None)
    assert first.status == "first_model" and first.slices == ()


# --- report and JSON ----------------------------------------------------------------

def blocked_report(value: str = "B") -> tuple[Any, Any]:
    verdict = sliced(one("A", 900, 50.0, 50.2, 1.0), one(value, 320, 50.0, 64.5, 2.0),
                     one("C", 150, 50.0, 70.0, 5.0),
                     *[one(f"x{k}", 250, 50.0, 49.0, 1.0) for k in range(4)])
    run = RunInfo(run_id="c" * 32, name="cand", experiment_id="1", metrics={}, params={},
                  tags={}, artifact_uri="")
    ctx = report.Context("m", "production", "https://mlflow.example.com", run,
                         Champion("1", run, "alias"), config=CONFIG, eval_rows=2170)
    return verdict, report.render(verdict, ctx)


def test_the_verdict_line_names_the_failing_slice() -> None:
    verdict, rendered = blocked_report()
    assert verdict.status == "blocked" and not verdict.failed
    title = rendered.markdown.splitlines()[1]
    assert title == "### ❌ **Blocked**: worse on 1 slice (`segment=B: rmse +29 %`)"
    assert rendered.text.startswith("model gate: Blocked: worse on 1 slice "
                                    "(segment=B: rmse +29 %)")


def test_the_slice_table_shows_the_worst_few() -> None:
    _, rendered = blocked_report()
    lines = rendered.markdown.splitlines()
    start = lines.index("| Slice | Result | Metric | Production →<br>candidate | Change | Rows |")
    rows = [line for line in lines[start + 2:] if line.startswith("|")]
    rows = rows[:next((i for i, line in enumerate(lines[start + 2:])
                       if not line.startswith("|")), len(rows))]
    assert len(rows) == 5                   # 7 slices, the worst 5
    assert rows[0] == "| `segment=B` | ❌\u00a0failed | `rmse` | 50.00\u00a0→\u00a064.50 | " \
        "+29.0\u00a0% | 320 |"
    assert "not\u00a0gated" not in rows[0] and "`segment=C`" in rows[1]
    assert "7 slices, 6 gated (at least 200 rows), 1 failed" in rendered.markdown
    text = rendered.text
    assert re.search(r"segment=B\s+FAILED\s+rmse\s+50.00 -> 64.50\s+\+29.0 %\s+320", text)
    assert max(len(line) for line in text.splitlines()) <= 100


def test_a_slice_value_from_the_rows_is_inert() -> None:
    _, rendered = blocked_report("<img src=x>|`@team")
    assert "<img" not in rendered.markdown.replace("`segment=<img", "")
    assert "| ``segment=<img src=x>\\|`@team`` |" in rendered.markdown


def test_the_verdict_json_lists_the_slices_and_is_valid() -> None:
    verdict, _ = blocked_report()
    document = verdict_document(verdict, Facts(model_name="m", exit_code=1))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    b = next(s for s in document["slices"] if s["value"] == "B")
    assert (b["column"], b["rows"], b["gated"], b["status"]) == ("segment", 320, True, "failed")
    rmse = b["metrics"][0]
    assert rmse["name"] == "rmse" and rmse["champion"] == 50.0 and rmse["candidate"] == 64.5
    assert rmse["allowance"] == pytest.approx(1.0) and rmse["p_value"] < 1e-6
    small = next(s for s in document["slices"] if s["value"] == "C")
    assert small["gated"] is False and small["metrics"][0]["p_value"] is None
    error = error_document(2, "slice column 'segment' is not in the eval rows")
    jsonschema.Draft202012Validator(SCHEMA).validate(error)
    assert error["slices"] == []


# --- bad input ----------------------------------------------------------------------

def rows_of(frame: pd.DataFrame) -> EvalRows:
    return EvalRows(frame, np.zeros(len(frame)), None, "0" * 64, "holdout.csv")


@pytest.mark.parametrize("frame, config, error", [
    (pd.DataFrame({"x": [1, 2]}), '["segment"]', "slice column 'segment' ([slices] columns) "
     "is not in the eval rows"),
    (pd.DataFrame({"segment": ["a", None, "b"]}), '["segment"]',
     "slice column 'segment' has 1 missing (NaN) values"),
    (pd.DataFrame({"segment": [1.0, math.nan]}), '["segment"]',
     "slice column 'segment' has 1 missing (NaN) values"),
    (pd.DataFrame({"id": np.arange(1001)}), '["id"]',
     "slice column 'id' has 1001 distinct values in the eval rows, more than 1000"),
    (pd.DataFrame({"age": ["old", "young"]}), '["age"]\nbins = { age = [30] }',
     "slice column 'age' has bins ([slices] bins) but is not numeric"),
])
def test_bad_slice_columns_are_one_line_naming_the_column(frame: pd.DataFrame, config: str,
                                                          error: str) -> None:
    slices = parse(f"[slices]\ncolumns = {config}\n").slices
    with pytest.raises(InputError) as raised:
        slicing.columns_of(slices, rows_of(frame))
    assert error in str(raised.value) and "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


def test_columns_bins_and_withholding() -> None:
    frame = pd.DataFrame({"age": [10, 30, 45, 70, 99], "segment": ["b", "a", "b", "c", "a"],
                          "x": [0.1, 0.2, 0.3, 0.4, 0.5]})
    slices = parse('[slices]\ncolumns = ["segment", "age"]\nbins = { age = [30, 50] }\n').slices
    segment, age = slicing.columns_of(slices, rows_of(frame))
    assert segment.labels == ("a", "b", "c") and segment.codes.tolist() == [1, 0, 1, 2, 0]
    assert age.labels == ("<30", "[30, 50)", ">=50") and age.codes.tolist() == [0, 1, 1, 2, 2]
    assert list(slicing.withheld(slices, rows_of(frame)).features.columns) == ["x"]


def test_a_slice_column_the_model_takes_is_refused() -> None:
    from gate.evidence import modelfile, scoring

    info = modelfile.ModelFile.__new__(modelfile.ModelFile)
    object.__setattr__(info, "input_columns", ("x", "segment"))
    model = scoring.Model(info, None)
    slices = parse('[slices]\ncolumns = ["segment"]\n').slices
    with pytest.raises(InputError, match="slice column 'segment' is an input feature of "
                       "the candidate's model"):
        slicing.check_inputs(slices, model, "the candidate's model")
    object.__setattr__(info, "input_columns", ("x",))
    slicing.check_inputs(slices, model, "the candidate's model")


def test_slices_configured_but_not_paired_say_so() -> None:
    evidence = Evidence("f" * 32, {"rmse": 57.9, "r2": 0.4}, champion_version="1",
                        champion_metrics={"rmse": 55.0, "r2": 0.42},
                        fallback_reason="the model files of champion v1 are gone")
    verdict = decide(CONFIG, evidence)
    run = RunInfo(run_id="f" * 32, name="cand", experiment_id="1", metrics={}, params={},
                  tags={}, artifact_uri="")
    ctx = report.Context("m", "production", "", run, Champion("1", run, "alias"),
                         config=CONFIG)
    rendered = report.render(verdict, ctx)
    assert "**Slices**: not compared: the models were not scored on the same rows" in \
        rendered.markdown and "| Slice |" not in rendered.markdown
    assert "Slices: not compared" in rendered.text
