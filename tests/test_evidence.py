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

from gate import modelfile
from gate.cli import main
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


def test_candidate_without_eval_rows_falls_back_to_logged_metrics(local_store: Path) -> None:
    promote_baseline()
    run_id = train("--seed", "3")
    artifacts = Path(client().get_run(run_id).info.artifact_uri.replace("file://", ""))
    shutil.rmtree(artifacts / "gate")
    code, verdict = check(run_id, "--summary", "s.md")
    assert verdict["paired"] is False
    assert "has no gate/eval_rows.csv" in verdict["fallback_reason"]
    assert all(m["ci_low"] is None for m in verdict["metrics"])
    assert "Not a paired comparison" in Path("s.md").read_text()


def test_candidate_missing_predictions_falls_back(local_store: Path) -> None:
    promote_baseline()
    run_id = train("--seed", "3")
    artifacts = Path(client().get_run(run_id).info.artifact_uri.replace("file://", ""))
    (artifacts / "gate" / "predictions.csv").unlink()
    code, verdict = check(run_id)
    assert verdict["paired"] is False
    assert "has no gate/eval_rows.csv and gate/predictions.csv" in verdict["fallback_reason"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.skops"])
def test_model_file_named_outside_the_model_folder_is_refused(name: str) -> None:
    mlmodel = {"flavors": {"sklearn": {"serialization_format": "skops",
                                       "pickled_model": name}}}
    with pytest.raises(InputError, match="not a path inside the model folder"):
        modelfile.skops_file(mlmodel, "champion m v1")
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "data/model.skops"
    assert modelfile.skops_file(mlmodel, "champion m v1") == "data/model.skops"


def test_champion_model_files_gone_falls_back(local_store: Path) -> None:
    promote_baseline()
    source = client().get_model_version(MODEL, "1").source        # models:/m-...
    model_id = source.split("/")[-1]
    for folder in Path("mlruns").glob(f"*/models/{model_id}/artifacts"):
        shutil.rmtree(folder)
    code, verdict = check(train("--seed", "3"))
    assert verdict["paired"] is False
    assert "model files of champion v1 are gone" in verdict["fallback_reason"]


def test_eval_rows_lacking_a_champion_column_fall_back(local_store: Path,
                                                       tmp_path: Path) -> None:
    promote_baseline()
    data = diabetes_csv(tmp_path / "no_s6.csv", drop=("s6",))
    code, verdict = check(train("--data", str(data), "--target", "target"))
    assert verdict["paired"] is False
    assert "lack s6, which champion v1 needs" in verdict["fallback_reason"]
    assert verdict["data_changed"] is True
    assert any("training data changed" in note for note in verdict["notes"])


def test_extra_columns_are_fine_and_data_change_is_reported(local_store: Path,
                                                            tmp_path: Path) -> None:
    promote_baseline()
    data = diabetes_csv(tmp_path / "extra.csv", extra=True)
    code, verdict = check(train("--data", str(data), "--target", "target"))
    assert verdict["paired"] is True and verdict["fallback_reason"] is None
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
    return run.info.run_id


def test_candidate_with_untrusted_types_is_refused(local_store: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    run_id = log_untrusted_model()
    assert main(["check", "--run-id", run_id, "--promote"]) == 2
    err = capsys.readouterr().err
    assert "needs untrusted types math.log1p" in err and "\n" not in err.strip()
    assert client().search_registered_models() == []       # nothing registered


def test_champion_with_untrusted_types_is_not_loaded(local_store: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    run_id = log_untrusted_model()
    mv_client = client()
    mv_client.create_registered_model(MODEL)
    model_id = mv_client.get_run(run_id).outputs.model_outputs[0].model_id
    mv_client.create_model_version(MODEL, f"models:/{model_id}", run_id, model_id=model_id)
    mv_client.set_registered_model_alias(MODEL, "production", "1")
    assert main(["check", "--run-id", train()]) == 2
    assert "champion diabetes-regressor v1: needs untrusted types math.log1p" in \
        capsys.readouterr().err


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


def test_eval_rows_in_csv_round_trip_exactly(local_store: Path) -> None:
    run_id = train()
    folder = Path(client().download_artifacts(run_id, "gate", "."))
    rows = pd.read_csv(folder / "eval_rows.csv")
    preds = pd.read_csv(folder / "predictions.csv")["prediction"].to_numpy()
    logged = client().get_run(run_id).data.metrics["rmse"]
    rescored = float(np.sqrt(np.mean((preds - rows["target"].to_numpy()) ** 2)))
    assert rescored == pytest.approx(logged, rel=1e-12)
