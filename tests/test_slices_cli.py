"""Slices end to end on the embedded local store: a candidate worse on one segment only
is blocked and the slice named; bad slice input is exit 2 with nothing promoted."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from train_model import TRUSTED_TYPES

MODEL = "segmented"
FEATURES = ["x0", "x1", "x2", "x3"]
CONFIG = f'''[model]
name = "{MODEL}"
[compare]
resamples = 1000
[metrics.rmse]
direction = "lower"
tolerance_rel = 0.10
[eval]
data = "holdout.csv"
target = "target"
'''


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(0.0, 1.0, (n, 4)), columns=FEATURES)
    data["target"] = 3 * data.x0 + 2 * data.x2 + rng.normal(0.0, 1.0, n)
    # B is where x1 is high: the models see x1, never the segment itself
    data["segment"] = np.where(data.x1 > 1.0, "B", np.where(data.x0 > 0, "A", "C"))
    return data


def log_forest(train: pd.DataFrame, shift_b: float) -> str:
    """A forest on the features; `shift_b` corrupts the training targets of segment B
    only, so the candidate is worse there and nowhere else."""
    import mlflow
    from sklearn.ensemble import RandomForestRegressor

    y = train.target + shift_b * (train.segment == "B")
    model = RandomForestRegressor(n_estimators=30, min_samples_leaf=3, random_state=0)
    model.fit(train[FEATURES], y)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("slices")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                 skops_trusted_types=list(TRUSTED_TYPES),
                                 pip_requirements=["scikit-learn"],
                                 # its signature names its inputs: the gate reads them from
                                 # MLmodel, never from the model file
                                 input_example=train[FEATURES].head(3))
        mlflow.log_metric("rmse", 1.0)
    return run.info.run_id


def check(run_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--run-id", run_id, "--json", "verdict.json", *extra])
    return code, json.loads(Path("verdict.json").read_text())


def versions() -> list[str]:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))


@pytest.fixture
def segmented(local_store: Path) -> str:
    """A champion promoted on a pinned eval set with a segment column; its run id."""
    frame(2000, 1).to_csv("holdout.csv", index=False)
    Path("gate.toml").write_text(CONFIG + '[slices]\ncolumns = ["segment"]\nmin_rows = 200\n')
    champion = log_forest(frame(3000, 0), 0.0)
    code, verdict = check(champion, "--promote")
    assert (code, verdict["status"], verdict["slices"]) == (0, "first_model", [])
    return champion


def test_a_candidate_worse_on_one_segment_only_is_blocked_naming_it(
        segmented: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    candidate = log_forest(frame(3000, 0), 1.6)
    code, verdict = check(candidate, "--promote")
    assert code == 1 and verdict["status"] == "blocked" and verdict["failed_metrics"] == []
    rmse = verdict["metrics"][0]
    assert rmse["status"] in ("passed", "within_noise")    # the aggregate alone would pass
    by_value = {s["value"]: s for s in verdict["slices"]}
    assert set(by_value) == {"A", "B", "C"}
    assert by_value["B"]["status"] == "failed" and by_value["B"]["rows"] >= 200
    assert by_value["A"]["status"] != "failed" and by_value["C"]["status"] != "failed"
    out = capsys.readouterr().out
    assert "Blocked: worse on 1 slice (segment=B: rmse +" in out
    assert versions() == ["1"]


@pytest.mark.parametrize("slices, error", [
    ('columns = ["region"]', "slice column 'region' ([slices] columns) is not in the eval rows"),
    ('columns = ["x1"]', "slice column 'x1' is an input feature of the candidate's model"),
    ('columns = ["row"]', "slice column 'row' has 2000 distinct values"),
    ('columns = ["gap"]', "slice column 'gap' has 1 missing (NaN) values"),
])
def test_bad_slice_input_is_exit_2_and_nothing_promoted(
        segmented: str, slices: str, error: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = pd.read_csv("holdout.csv")
    data["row"] = np.arange(len(data))
    data["gap"] = ["g"] * (len(data) - 1) + [None]
    data.to_csv("holdout.csv", index=False)
    Path("gate.toml").write_text(CONFIG + f"[slices]\n{slices}\n")
    capsys.readouterr()
    candidate = log_forest(frame(3000, 0), 0.0)
    code, verdict = check(candidate, "--promote")
    err = capsys.readouterr().err
    assert code == 2 and verdict["status"] == "error" and error in verdict["error"]
    assert error in err and len(err.strip().splitlines()) == 1
    assert versions() == ["1"]
