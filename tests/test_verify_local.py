"""The verdict bound to the bytes, end to end on the embedded local store through
`main([...])`: promotion records the digest, `verify` checks a deployment's model, and
a version whose files were overwritten after its promotion stops the next check, is
marked by `status`, and is never rolled back to."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from tests.conftest import train

MODEL = "diabetes-regressor"
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def check(run_id: str, *extra: str) -> tuple[int, dict]:
    code = main(["check", "--run-id", run_id, "--json", "verdict.json", *extra])
    return code, json.loads(Path("verdict.json").read_text())


def model_file(version: str) -> Path:
    model_id = client().get_model_version(MODEL, version).source.split("/")[-1]
    found = list(Path("mlruns").glob(f"*/models/{model_id}/artifacts/model.skops"))
    assert len(found) == 1, found
    return found[0]


def champion() -> str:
    return str(client().get_registered_model(MODEL).aliases["production"])


def test_verify_status_rollback_and_check_read_the_recorded_digest(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(train("--n-estimators", "30"), "--promote")[0] == 0
    code, verdict = check(train(*BETTER), "--promote")
    assert code == 0 and verdict["promoted_version"] == "2"
    digest = verdict["candidate_model"]["digest"]
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["gate.model_sha256"] == digest and "model.skops" in tags["gate.model_files"]
    capsys.readouterr()

    assert main(["verify", f"models:/{MODEL}@production", "--json", "verify.json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"verified: {MODEL} v2 files match {digest[:19]}… (promoted by "
                          "the gate at ")
    assert json.loads(Path("verify.json").read_text())["verified"] is True

    # the previous version's model is overwritten: rollback refuses to go back to it
    first = model_file("1").read_bytes()
    shutil.copyfile(model_file("2"), model_file("1"))
    assert main(["rollback", "--model-name", MODEL, "--reason", "latency"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rollback refused, Production stays v2" in err
    assert f"{MODEL} v1's model files changed since the gate promoted it: model.skops " \
        "(changed)" in err
    assert champion() == "2"
    assert main(["verify", f"models:/{MODEL}/1"]) == 1
    assert capsys.readouterr().out.startswith(f"NOT verified: {MODEL} v1's model files "
                                              "changed")

    # Production's own model is overwritten: the next check stops, naming it
    model_file("2").write_bytes(first)     # a valid model, the worse one
    code, verdict = check(train("--n-estimators", "30", "--seed", "3"), "--promote")
    err = capsys.readouterr().err
    assert code == 2 and verdict["exit_code"] == 2 and verdict["promoted_version"] is None
    assert err.count("\n") == 1 and f"champion {MODEL} v2's model files changed since the " \
        "gate promoted it: model.skops (changed)" in err
    assert champion() == "2" and len(client().search_model_versions(f"name='{MODEL}'")) == 2
    assert main(["verify", f"models:/{MODEL}@production"]) == 1
    capsys.readouterr()
    assert main(["status", "--model-name", MODEL]) == 2
    captured = capsys.readouterr()
    assert "CHANGED" in captured.out and "model.skops (changed)" in captured.err


def test_verify_bad_references_are_exit_2(local_store: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "runs:/abc/model"]) == 2
    assert "not a model reference" in capsys.readouterr().err
    assert main(["verify", f"models:/{MODEL}@production"]) == 2
    assert "not found" in capsys.readouterr().err
    assert check(train(), "--promote")[0] == 0
    assert main(["verify", f"models:/{MODEL}@staging"]) == 2
    assert "has no alias 'staging'" in capsys.readouterr().err
    assert main(["verify", f"models:/{MODEL}/9"]) == 2
