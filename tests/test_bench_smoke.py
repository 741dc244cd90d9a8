"""The benches in their --quick mode, so they cannot rot: each runs end to end and
prints the tables the README quotes."""
from __future__ import annotations

from pathlib import Path

import pytest


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Each markdown table under its `###` heading, as a list of rows by column name."""
    found: dict[str, list[dict[str, str]]] = {}
    heading, header = "", None
    for line in markdown.splitlines():
        if line.startswith("### "):
            heading, header = line[4:].strip(), None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if header is None:
                header = cells
                found[heading] = []
            elif not set("".join(cells)) <= set("-: "):
                found[heading].append(dict(zip(header, cells)))
        else:
            header = None
    return found


def test_decision_quality_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import decision_quality

    assert decision_quality.main(["--quick"]) == 0
    found = tables(capsys.readouterr().out)

    false_blocks = found["False blocks (seed-only retrains)"]
    assert [row["eval set"] for row in false_blocks] == ["diabetes", "friedman1"]
    for row in false_blocks:
        assert set(decision_quality.METHODS) <= set(row)
        assert all("/" in row[m] for m in decision_quality.METHODS)
    # 89 eval rows cannot detect a 2 % worsening: every verdict says so
    sets = {row["eval set"]: row for row in found["Eval sets"]}
    flagged, total = sets["diabetes"]["flagged underpowered"].split(" ")[0].split("/")
    assert sets["diabetes"]["eval rows"] == "89" and flagged == total
    kinds = {row["kind"] for row in found["Block rate by regression"]}
    assert kinds == {"weaker model", "dropped features", "label noise", "shifted split"}
    assert found["Block rate by true effect"]

    # the classifier half: every metric of both tasks judged by every method
    blocks = found["Classifiers: false blocks (seed-only retrains)"]
    assert [(row["task"], row["metric"]) for row in blocks] == [
        (task, metric) for task in ("binary", "3 classes")
        for metric in ("f1", "roc_auc", "log_loss")]
    assert all("/" in row[m] for row in blocks for m in decision_quality.METHODS)
    kinds = {row["kind"] for row in found["Classifiers: block rate by regression"]}
    assert kinds == {"weaker model", "dropped features", "label noise", "shifted split"}
    # and the false-block rate over independent eval draws, each with its own champion
    drawn = found["Classifiers: false blocks over independent eval draws"]
    assert [(row["task"], row["metric"]) for row in drawn] == [
        (task, metric) for task in ("binary", "3 classes")
        for metric in ("f1", "roc_auc", "log_loss")]
    for row in drawn:
        assert row["draws x retrains"] == "2 x 2"
        assert len(row["blocked per draw"].split()) == 2
        assert row["pooled significant"].endswith("%)") and "/4 " in row["pooled significant"]


def test_large_eval_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import large_eval
    from gate.stats import engine as stats

    assert large_eval.main(["--quick"]) == 0
    found = tables(capsys.readouterr().out)

    decided = found["One decision of three metrics"]
    assert [(row["task"], row["eval rows"]) for row in decided] == [
        ("regression", "1,000"), ("binary classifier", "1,000"),
        ("regression", "110,000"), ("binary classifier", "110,000")]
    # the largest size is past the bootstrap's threshold, the smallest is not
    assert 1_000 <= stats.ANALYTIC_ROWS < 110_000
    assert [row["interval"] for row in decided] == ["bootstrap (200)"] * 2 + ["linearised"] * 2
    assert all(float(row["seconds"]) >= 0 for row in decided)
    assert [row["metrics"] for row in decided[:2]] == ["rmse, mae, r2", "f1, roc_auc, log_loss"]
    cost = found["What the bootstrap would cost"]
    assert len(cost) == 2 and all(float(row["seconds for 200 (scaled)"]) >= 0 for row in cost)
    # on 2,000 rows the two standard errors already agree within a quarter
    for row in found["Linearised against bootstrap"]:
        assert all(0.75 < float(row[f"metric {i}"]) < 1.25 for i in (1, 2, 3))
    covered = found["Coverage by simulation"]
    assert [row["metric"] for row in covered] == ["rmse", "mae", "r2", "f1", "roc_auc",
                                                  "log_loss"]
    assert all(row["coverage"].endswith("%") for row in covered)


def test_slice_quality_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import slice_quality

    assert slice_quality.main(["--quick", "--draws", "2", "--seeds", "1",
                               "--eval-rows", "3000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Slices: decision quality")
    rows = [line for line in out.splitlines() if line.startswith("| segment B")]
    assert len(rows) == 2 and "seed-only retrain (seed 1)" in out
    assert "Seed-only retrains blocked: " in out


def test_large_eval_slices_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import large_eval

    assert large_eval.main(["--quick", "--slices", "5", "--rows", "3000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Slices on large eval sets")
    assert "| regression | 3,000 | 5 | bootstrap (200) |" in out


def test_interval_coverage_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import interval_coverage

    assert interval_coverage.main(["--quick"]) == 0
    found = tables(capsys.readouterr().out)

    covered = found["Coverage of the paired interval at 1,000 eval rows"]
    assert {(row["task"], row["metric"]) for row in covered} == {
        (task, metric) for task in ("binary", "3 classes")
        for metric in ("f1", "roc_auc", "log_loss")}
    for row in covered:
        sides = ("coverage", "truth < low", "truth > high")
        shares = [float(row[side].rstrip(" %")) for side in sides]
        assert abs(sum(shares) - 100) < 0.2
    tails = found["Per-row log-loss worsening (candidate - champion) on the pool"]
    assert len(tails) == 2 * len(interval_coverage.QUICK_PAIRS)
    assert all(float(row["sd"]) > 0 for row in tails)


def test_leakage_quick(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import leakage

    assert leakage.main(["--draws", "2", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "| seed only |" in out and "| leaky |" in out


def test_gate_speed_quick(mlflow_server: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    from bench import gate_speed

    # in-process saves the ~15 s of importing mlflow and sklearn again; MLflow's
    # set_experiment exports the experiment id, so it is put back after the test
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    assert gate_speed.main(["--quick", "--tracking-uri", mlflow_server]) == 0
    found = tables(capsys.readouterr().out)

    decision = found["Decision: the gate against MLflow's native path"]
    assert [row["path"] for row in decision] == [
        "gate, champion cached", "gate, champion re-scored", "MLflow native"]
    for row in decision:
        assert (row["data"], row["eval rows"]) == ("diabetes", "89")
        assert float(row["native / this"].rstrip("x")) > 0 and int(row["requests"]) > 0
    assert decision[0]["target"].startswith(">= 4x: ")
    # the gate's own process imports neither scikit-learn nor skops, also when it scores
    # the candidate (in the sandbox)
    processes = found["A whole `gate check` process"]
    assert [row["loads a model"] for row in processes] == [
        "-", "no", "yes, the candidate", "yes, the candidate", "yes, the candidate"]
    assert [row["imports sklearn / skops"] for row in processes] == [
        "neither", "neither", "neither", "neither", "neither"]
    assert processes[-1]["target"].startswith("<= +1.88 s: ")
    assert all(float(row["median (s)"]) > 0 and float(row["CPU (s)"]) > 0
               for row in processes)
    rows = [row["eval rows"] for row in found["Paired bootstrap against eval rows"]]
    assert rows == ["1,000", "10,000"]
    history = found["One `gate check` against history"]
    assert len(history) == 2 and all(float(row["median (s)"]) > 0 for row in history)
    assert history[1]["history"] == "20 runs, 3 versions (one model)"
