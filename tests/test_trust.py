"""Evidence the candidate cannot forge, on a real local MLflow store.

A pull request's trainer can log any rows, predictions and metrics it likes; these
tests forge them the way such a trainer would and check that nothing gets through.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_diabetes

from gate.commands.cli import main
from tests.conftest import train

MODEL = "diabetes-regressor"
WORSE = ("--n-estimators", "30", "--drop-columns", "bmi,s5")


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def artifacts_of(run_id: str) -> Path:
    return Path(client().get_run(run_id).info.artifact_uri.replace("file://", "")) / "gate"


def check(run_id: str, *extra: str) -> tuple[int, dict]:
    code = main(["check", "--run-id", run_id, "--json", "v.json", *extra])
    return code, json.loads(Path("v.json").read_text())


def promote_baseline() -> str:
    run_id = train("--n-estimators", "30")
    assert check(run_id, "--promote")[0] == 0
    return run_id


def versions() -> list[str]:
    return sorted(str(mv.version) for mv in client().search_model_versions(f"name = '{MODEL}'"))


def champion() -> str:
    return str(client().get_registered_model(MODEL).aliases["production"])


def forge_metrics(run_id: str) -> None:
    for key, value in {"rmse": 1.0, "mae": 1.0, "r2": 0.99}.items():
        client().log_metric(run_id, key, value)


def test_predictions_overwritten_with_the_truth_are_ignored(local_store: Path) -> None:
    promote_baseline()
    worse = train(*WORSE)
    folder = artifacts_of(worse)
    rows = pd.read_parquet(folder / "eval.parquet")
    pd.DataFrame({"prediction": rows["target"]}).to_parquet(folder / "predictions.parquet")
    forge_metrics(worse)
    code, verdict = check(worse, "--promote")
    assert code == 1 and verdict["status"] == "blocked"
    assert verdict["verified"] is True and verdict["promoted_version"] is None
    assert versions() == ["1"] and champion() == "1"


def test_cherry_picked_eval_rows_are_ignored(local_store: Path) -> None:
    promote_baseline()
    worse = train(*WORSE)
    folder = artifacts_of(worse)
    rows = pd.read_parquet(folder / "eval.parquet")
    predicted = pd.read_parquet(folder / "predictions.parquet")
    error = (predicted["prediction"] - rows["target"]).abs()
    best = error.sort_values().index[:len(rows) // 3]        # the third it does best on
    rows.loc[best].to_parquet(folder / "eval.parquet", index=False)
    predicted.loc[best].to_parquet(folder / "predictions.parquet", index=False)
    forge_metrics(worse)
    code, verdict = check(worse, "--promote", "--summary", "s.md")
    assert code == 1 and verdict["status"] == "blocked"
    assert verdict["eval_set"]["rows"] == 89 and verdict["eval_set"]["source"] == \
        "Production v1's eval rows"
    assert any(note.startswith("eval set differs: the candidate logged 29 eval rows")
               for note in verdict["notes"])
    assert versions() == ["1"] and champion() == "1"


def test_production_rows_rewritten_after_promotion_are_refused(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    base = promote_baseline()
    folder = artifacts_of(base)
    rows = pd.read_parquet(folder / "eval.parquet")
    rows.iloc[:30].to_parquet(folder / "eval.parquet", index=False)
    code = main(["check", "--run-id", train("--seed", "3"), "--promote"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "v1's eval rows (eval.parquet) changed after its promotion" in err
    assert versions() == ["1"]


def test_tampered_champion_cache_is_not_used(local_store: Path) -> None:
    base = promote_baseline()
    cache = artifacts_of(base) / "verified_predictions.parquet"
    frame = pd.read_parquet(cache)
    (frame * 2).to_parquet(cache, index=False)      # Production made to look much worse
    code, verdict = check(train(*WORSE))
    assert code == 1 and verdict["paired"] is True
    assert verdict["champion_model"]["predictions"] == \
        "computed by the gate, mlflow.pyfunc in sandbox (bwrap)"
    assert any("do not match their recorded digest" in note for note in verdict["notes"])


@pytest.mark.parametrize("value", [math.nan, None])
def test_required_metric_nan_or_missing_is_exit_2_with_eval_artifacts(
        local_store: Path, value: float | None) -> None:
    promote_baseline()
    run_id = train("--seed", "3")
    if value is None:
        client().delete_run(run_id)      # metrics cannot be deleted: log a fresh run
        run_id = _run_with_evaluation_but_no_rmse()
    else:
        client().log_metric(run_id, "rmse", value)
    code, verdict = check(run_id, "--promote")
    assert code == 2 and verdict["status"] == "error"
    assert versions() == ["1"]


def _run_with_evaluation_but_no_rmse() -> str:
    import mlflow
    from sklearn.linear_model import Ridge

    import gate

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge().fit(X, y)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("model-gate")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                 pip_requirements=["scikit-learn"])
        gate.log_evaluation(y[:100], model.predict(X[:100]), features=X[:100],
                            log_metrics=False)
        mlflow.log_metrics({"mae": 40.0, "r2": 0.5})
    return run.info.run_id


def pin_eval_set(folder: Path, digest: str = "") -> Path:
    """A held-out set pinned in gate.toml; the rest becomes the training data."""
    frame = load_diabetes(as_frame=True).frame
    holdout = frame.sample(150, random_state=1)
    holdout.to_csv(folder / "holdout.csv", index=False)
    frame.drop(index=holdout.index).to_csv(folder / "train.csv", index=False)
    extra = f'digest = "{digest}"\n' if digest else ""
    # this holdout is harder than the trainer's own split: judge changes, not the bound
    Path("gate.toml").write_text(Path("gate.toml").read_text().replace("min = 0.2", "min = 0.1"))
    with open("gate.toml", "a") as fh:
        fh.write(f'\n[eval]\ndata = "holdout.csv"\ntarget = "target"\n{extra}')
    return folder / "train.csv"


def test_pinned_eval_set_is_used_for_both_models(local_store: Path) -> None:
    data = ("--data", str(pin_eval_set(local_store)), "--target", "target")
    code, verdict = check(train("--n-estimators", "30", *data), "--promote")
    assert code == 0 and verdict["eval_set"]["source"] == "pinned eval set holdout.csv"
    code, verdict = check(train("--model", "ridge", "--alpha", "100", *data))
    assert code == 1 and verdict["paired"] is True and verdict["eval_rows"] == 150
    assert verdict["champion_model"]["predictions"].startswith("cached at its promotion")


def test_pinned_eval_set_with_another_digest_is_refused(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    pin_eval_set(local_store, digest="sha256:" + "0" * 64)
    assert main(["check", "--run-id", train()]) == 2
    err = capsys.readouterr().err
    assert "[eval] data holdout.csv" in err and "content differs from eval.digest" in err


def test_against_another_run_or_version(local_store: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    base = promote_baseline()
    worse = train(*WORSE)
    code, verdict = check(worse, "--against", base)
    assert code == 1 and verdict["paired"] is True
    assert verdict["champion_version"] == f"run {base}"
    code, verdict = check(base, "--against", "v1")
    assert code == 0 and verdict["status"] == "passed"
    assert main(["check", "--run-id", worse, "--against", "v1", "--promote"]) == 2
    assert "never promotes" in capsys.readouterr().err
    assert versions() == ["1"]


def test_flavor_not_allowed_is_blocked_before_registration(local_store: Path) -> None:
    text = Path("gate.toml").read_text().replace(
        'alias = "production"', 'alias = "production"\nallowed_flavors = ["lightgbm"]')
    Path("gate.toml").write_text(text)
    code, verdict = check(train(), "--promote")
    assert code == 1 and verdict["status"] == "blocked"
    assert "sklearn:skops, which is not in [model] allowed_flavors" in verdict["blocked_by"][0]
    assert client().search_registered_models() == []


def test_require_verified_blocks_numbers_the_gate_could_not_compute(
        local_store: Path, tmp_path: Path) -> None:
    Path("gate.toml").write_text(Path("gate.toml").read_text().replace(
        "seed = 0", "seed = 0\nrequire_verified = true"))
    promote_baseline()
    frame = load_diabetes(as_frame=True).frame
    frame["noise"] = np.random.default_rng(0).normal(size=len(frame))
    frame.to_csv(tmp_path / "extra.csv", index=False)
    # a new feature: scored on values only the run supplied, so not verified
    code, verdict = check(train("--data", str(tmp_path / "extra.csv"), "--target", "target"))
    assert code == 1 and verdict["verified"] is False
    assert "require_verified" in verdict["blocked_by"][0]


def _hostile(folder: Path, case: str) -> None:
    if case == "manifest":
        (folder / "evaluation.json").write_text("{not json")
    elif case == "columns":
        wide = pd.DataFrame(np.zeros((2, 5000)), columns=[f"c{i}" for i in range(5000)])
        wide["target"] = 1.0
        wide.to_parquet(folder / "eval.parquet")
    elif case == "binary":
        (folder / "predictions.parquet").write_bytes(os.urandom(4096))
    elif case == "count":
        pd.DataFrame({"prediction": [1.0, 2.0]}).to_parquet(folder / "predictions.parquet")
    elif case == "no_prediction":
        pd.DataFrame({"x": np.zeros(89)}).to_parquet(folder / "predictions.parquet")


@pytest.mark.parametrize("case,message", [
    ("manifest", "gate/evaluation.json: not valid JSON"),
    ("columns", "gate/eval.parquet: 5001 columns is over the limit"),
    ("binary", "gate/predictions.parquet: not a readable Parquet file"),
    ("count", "gate/predictions.parquet: 2 predictions for 89 eval rows"),
    ("no_prediction", "gate/predictions.parquet: has no 'prediction' column"),
])
def test_malformed_evaluation_artifacts_are_exit_2_naming_run_and_artifact(
        local_store: Path, capsys: pytest.CaptureFixture, case: str, message: str) -> None:
    promote_baseline()
    run_id = train("--seed", "3")
    _hostile(artifacts_of(run_id), case)
    code = main(["check", "--run-id", run_id, "--promote"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert f"run {run_id}: {message}" in err
    assert versions() == ["1"]


def test_legacy_csv_header_of_a_million_columns_is_refused_fast(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    run_id = train("--seed", "3")
    folder = artifacts_of(run_id)
    shutil.rmtree(folder)
    folder.mkdir()
    header = ",".join(f"c{i}" for i in range(1_000_000)).encode()
    (folder / "eval_rows.csv").write_bytes(header + b"\n")
    (folder / "predictions.csv").write_text("prediction\n1\n")
    client().set_tag(run_id, "gate.target", "target")
    assert main(["check", "--run-id", run_id]) == 2
    assert "CSV header longer than" in capsys.readouterr().err


@pytest.mark.parametrize("mlmodel, message", [
    ("- a\n- b\n", "MLmodel file is not a mapping"),
    ("flavors:\n- sklearn\n", "MLmodel file has no 'flavors' mapping"),
    ("flavors:\n  sklearn: [1, 2]\n", "has a flavor that is not a mapping"),
    ("flavors: {sklearn: {pickled_model: ../../x.skops, serialization_format: skops}}\n",
     "not a path inside the model folder"),
])
def test_malformed_mlmodel_is_exit_2_and_nothing_is_registered(
        local_store: Path, capsys: pytest.CaptureFixture, mlmodel: str, message: str) -> None:
    run_id = train("--seed", "3")
    model_id = client().get_run(run_id).outputs.model_outputs[0].model_id
    for folder in Path("mlruns").glob(f"*/models/{model_id}/artifacts"):
        (folder / "MLmodel").write_text(mlmodel)
    code = main(["check", "--run-id", run_id, "--promote"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and "Traceback" not in err
    assert client().search_registered_models() == []


def test_a_broken_model_is_the_error_reported_when_its_rows_are_broken_too(
        local_store: Path, capsys: pytest.CaptureFixture) -> None:
    """The model is read before the rows: its error is the one reported."""
    promote_baseline()
    run_id = train("--seed", "3")
    _hostile(artifacts_of(run_id), "manifest")
    model_id = client().get_run(run_id).outputs.model_outputs[0].model_id
    for folder in Path("mlruns").glob(f"*/models/{model_id}/artifacts"):
        (folder / "MLmodel").write_text("- a\n- b\n")
    assert main(["check", "--run-id", run_id, "--promote"]) == 2
    err = capsys.readouterr().err.strip()
    assert "MLmodel file is not a mapping" in err and "\n" not in err
    assert versions() == ["1"]


@pytest.mark.parametrize("rows, predictions, message", [
    (b"", b"prediction\n1\n", "not a readable CSV file"),
    (os.urandom(3000), b"prediction\n1\n", "not a readable"),
    (b"target,x\n1,2\n3,4\n", b"prediction\nabc\ndef\n", "not numeric"),
])
def test_broken_legacy_csv_artifacts_are_exit_2(local_store: Path,
                                                capsys: pytest.CaptureFixture, rows: bytes,
                                                predictions: bytes, message: str) -> None:
    """Contract 0 (the CSV files runs logged before Parquet) is read with the same care."""
    run_id = train("--seed", "3")
    folder = artifacts_of(run_id)
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "eval_rows.csv").write_bytes(rows)
    (folder / "predictions.csv").write_bytes(predictions)
    client().set_tag(run_id, "gate.target", "target")
    client().delete_tag(run_id, "gate.contract")
    # a model no loader reads: its logged predictions are all the gate has
    model_id = client().get_run(run_id).outputs.model_outputs[0].model_id
    for mlmodel in Path("mlruns").glob(f"*/models/{model_id}/artifacts/MLmodel"):
        mlmodel.write_text("flavors: {python_function: {python_model: m.pkl}}\n")
    code = main(["check", "--run-id", run_id])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err and "Traceback" not in err
