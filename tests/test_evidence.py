"""Same rows, confidence and every fallback, on a real local MLflow store."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_diabetes

import gate
from gate.evidence import modelfile
from gate.commands.cli import main
from gate.errors import InputError
from tests.conftest import train

MODEL = "diabetes-regressor"


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def check(run_id: str, *extra: str) -> tuple[int, dict]:
    code = main(["check", "--run-id", run_id, "--json", "v.json", *extra])
    return code, json.loads(Path("v.json").read_text())


def promote_baseline(*args: str) -> str:
    run_id = train("--n-estimators", "30", *args)
    assert check(run_id, "--promote")[0] == 0
    return run_id


def diabetes_csv(path: Path, drop: tuple[str, ...] = (), extra: bool = False) -> Path:
    frame = load_diabetes(as_frame=True).frame.drop(columns=list(drop))
    if extra:
        frame["noise"] = np.random.default_rng(0).normal(size=len(frame))
    frame.to_csv(path, index=False)
    return path


def test_seed_only_retrain_passes_and_is_paired(local_store: Path) -> None:
    promote_baseline()
    code, verdict = check(train("--n-estimators", "30", "--seed", "7"), "--summary", "s.md")
    assert code == 0 and verdict["paired"] is True and verdict["fallback_reason"] is None
    rmse = next(m for m in verdict["metrics"] if m["name"] == "rmse")
    assert rmse["ci_low"] < 0 < rmse["ci_high"] or rmse["worsening"] <= rmse["allowance"]
    # 89 eval rows cannot see a 2 % worsening: the report and the JSON say so
    assert rmse["underpowered"] is True and rmse["min_detectable"] > rmse["allowance"]
    assert "too small to detect a worsening the size of the allowance" in \
        Path("s.md").read_text()


def test_verdict_is_deterministic(local_store: Path) -> None:
    promote_baseline()
    candidate = train("--seed", "3")
    first = check(candidate)[1]["metrics"]
    second = check(candidate)[1]["metrics"]
    assert first == second


def artifacts_of(run_id: str) -> Path:
    return Path(client().get_run(run_id).info.artifact_uri.replace("file://", ""))


def test_candidate_without_eval_artifacts_is_scored_on_production_rows(
        local_store: Path) -> None:
    promote_baseline()
    run_id = train("--seed", "3")
    shutil.rmtree(artifacts_of(run_id) / "gate")
    code, verdict = check(run_id)
    # the rows are Production's and the predictions the gate's own: nothing of the
    # candidate's evaluation is needed
    assert verdict["paired"] is True and verdict["verified"] is True
    assert verdict["eval_set"]["source"] == "Production v1's eval rows"


def test_first_model_without_eval_artifacts_falls_back_to_logged_metrics(
        local_store: Path) -> None:
    run_id = train("--seed", "3")
    shutil.rmtree(artifacts_of(run_id) / "gate")
    code, verdict = check(run_id, "--summary", "s.md")
    assert code == 0 and verdict["status"] == "first_model"
    assert verdict["paired"] is False and verdict["verified"] is False
    assert "logged no evaluation" in verdict["fallback_reason"]
    assert "Not a paired comparison" in Path("s.md").read_text()


def test_champion_without_rows_or_cache_falls_back(local_store: Path) -> None:
    base = promote_baseline()
    shutil.rmtree(artifacts_of(base) / "gate")
    for tag in ("gate.eval_uri", "gate.eval_sha256", "gate.predictions_sha256"):
        client().delete_model_version_tag(MODEL, "1", tag)
    code, verdict = check(train("--seed", "3"))
    assert verdict["paired"] is False
    assert "v1 logged no eval rows" in verdict["fallback_reason"]
    assert all(m["ci_low"] is None for m in verdict["metrics"])


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.skops"])
def test_model_file_named_outside_the_model_folder_is_refused(name: str) -> None:
    mlmodel = {"flavors": {"sklearn": {"serialization_format": "skops",
                                       "pickled_model": name}}}
    with pytest.raises(InputError, match="not a path inside the model folder"):
        modelfile.describe(mlmodel, "champion m v1")
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "data/model.skops"
    assert modelfile.describe(mlmodel, "champion m v1").data == "data/model.skops"


def test_champion_model_files_gone_falls_back(local_store: Path) -> None:
    promote_baseline()
    source = client().get_model_version(MODEL, "1").source        # models:/m-...
    model_id = source.split("/")[-1]
    for folder in Path("mlruns").glob(f"*/models/{model_id}/artifacts"):
        shutil.rmtree(folder)
    # the gate's own predictions of v1, kept at its promotion, still pair the check
    code, verdict = check(train("--seed", "3"))
    assert verdict["paired"] is True
    assert verdict["champion_model"]["predictions"].startswith("cached at its promotion")
    client().delete_model_version_tag(MODEL, "1", "gate.predictions_sha256")
    code, verdict = check(train("--seed", "3"))
    assert verdict["paired"] is False
    assert "model files of v1 are gone" in verdict["fallback_reason"]


def test_candidate_rows_lacking_a_column_do_not_matter(local_store: Path,
                                                       tmp_path: Path) -> None:
    promote_baseline()
    data = diabetes_csv(tmp_path / "no_s6.csv", drop=("s6",))
    code, verdict = check(train("--data", str(data), "--target", "target"))
    # compared on Production's rows, which have every column both models need
    assert verdict["paired"] is True and verdict["verified"] is True
    assert verdict["data_changed"] is True
    assert any("training data changed" in note for note in verdict["notes"])
    assert any(note.startswith("eval set differs") for note in verdict["notes"])


def test_new_feature_is_scored_on_its_own_values_but_not_verified(local_store: Path,
                                                                  tmp_path: Path) -> None:
    promote_baseline()
    data = diabetes_csv(tmp_path / "extra.csv", extra=True)
    code, verdict = check(train("--data", str(data), "--target", "target"))
    # Production's rows lack `noise`: the candidate's own values of it are used, in
    # line with Production's rows by row id, and the report says whose they are
    assert verdict["paired"] is True and verdict["fallback_reason"] is None
    assert verdict["verified"] is False
    assert "only the run supplied (noise)" in verdict["candidate_model"]["predictions"]
    assert any("training data changed" in note for note in verdict["notes"])


def test_dvc_md5_is_recorded_as_a_tag(local_store: Path, tmp_path: Path) -> None:
    data = diabetes_csv(tmp_path / "data.csv")
    (tmp_path / "data.csv.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 1\n  path: data.csv\n")
    run_id = train("--data", str(data), "--target", "target")
    assert client().get_run(run_id).data.tags["dvc.md5"] == "0123456789abcdef0123456789abcdef"


def log_untrusted_model() -> str:
    """A run whose skops model needs math.log1p, a type the gate does not trust."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    # the inverse function is stored in the file but never called by predict
    model = make_pipeline(FunctionTransformer(inverse_func=math.log1p, check_inverse=False),
                          Ridge()).fit(X, y)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("model-gate")
    with mlflow.start_run() as run:
        mlflow.log_metrics({"rmse": 50.0, "mae": 40.0, "r2": 0.5})
        mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                 skops_trusted_types=["math.log1p"],
                                 pip_requirements=["scikit-learn"])
        gate.log_evaluation(y[:100], model.predict(X[:100]), features=X[:100],
                            log_metrics=False)
    return run.info.run_id


def test_candidate_with_untrusted_types_is_scored_in_the_sandbox(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    # #28: the gate no longer parses a skops file in its own process (where the trusted
    # types guarded it): the model loads in the sandbox, as serving loads it, verified
    run_id = log_untrusted_model()
    code, verdict = check(run_id)
    assert code == 0 and verdict["status"] == "first_model"
    assert verdict["verified"] is True


def test_champion_with_untrusted_types_is_scored_in_the_sandbox(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    run_id = log_untrusted_model()
    mv_client = client()
    mv_client.create_registered_model(MODEL)
    model_id = mv_client.get_run(run_id).outputs.model_outputs[0].model_id
    mv_client.create_model_version(MODEL, f"models:/{model_id}", run_id, model_id=model_id)
    mv_client.set_registered_model_alias(MODEL, "production", "1")
    code, verdict = check(train())
    assert code in (0, 1), capsys.readouterr().err
    assert verdict["champion_verified"] is True


def test_trusted_types_can_be_extended_in_config(local_store: Path) -> None:
    text = Path("gate.toml").read_text().replace(
        'alias = "production"', 'alias = "production"\ntrusted_types = ["math.log1p"]')
    Path("gate.toml").write_text(text)
    code, verdict = check(log_untrusted_model())
    assert code == 0 and verdict["status"] == "first_model"


def test_metric_only_in_champion_is_bound_only(local_store: Path) -> None:
    text = Path("gate.toml").read_text() + \
        '\n[metrics.mape]\ndirection = "lower"\nrequired = false\n'
    Path("gate.toml").write_text(text)
    base = promote_baseline()
    client().log_metric(base, "mape", 0.3)
    code, verdict = check(train("--seed", "5"))
    mape = next(m for m in verdict["metrics"] if m["name"] == "mape")
    # mape has a per-row scorer, so both models are re-scored on the same rows
    assert mape["paired"] is True and mape["candidate"] is not None
    assert code == 0


def test_eval_rows_round_trip_exactly(local_store: Path) -> None:
    run_id = train()
    folder = Path(client().download_artifacts(run_id, "gate", "."))
    rows = pd.read_parquet(folder / "eval.parquet")
    preds = pd.read_parquet(folder / "predictions.parquet")["prediction"].to_numpy()
    logged = client().get_run(run_id).data.metrics["rmse"]
    rescored = float(np.sqrt(np.mean((preds - rows["target"].to_numpy()) ** 2)))
    assert rescored == pytest.approx(logged, rel=1e-12)
