"""The whole flow on the embedded local store, through `main([...])`: train, check,
promote, block, rollback, status, and every bad input with its exit code."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from tests.conftest import train

MODEL = "diabetes-regressor"
WORSE = ("--drop-columns", "bmi,s5")          # the two most informative features
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def check(run_id: str, *extra: str, path: str = "verdict.json") -> tuple[int, dict]:
    code = main(["check", "--run-id", run_id, "--json", path, *extra])
    return code, json.loads(Path(path).read_text())


def champion_version() -> str | None:
    version = client().get_registered_model(MODEL).aliases.get("production")
    return None if version is None else str(version)


def test_first_model_is_promoted_then_worse_blocked_then_better_promoted(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = train("--n-estimators", "30")
    code, verdict = check(base, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert verdict["champion_version"] is None and verdict["passed"] is True
    assert champion_version() == "1"

    worse = train(*WORSE)
    code, verdict = check(worse, "--promote")
    assert code == 1 and verdict["status"] == "blocked" and verdict["passed"] is False
    assert verdict["promoted_version"] is None and verdict["champion_version"] == "1"
    assert verdict["paired"] is True and "rmse" in verdict["failed_metrics"]
    rmse = next(m for m in verdict["metrics"] if m["name"] == "rmse")
    assert rmse["ci_low"] > 0 and rmse["status"] == "failed"
    assert set(rmse) >= {"name", "champion", "candidate", "delta", "status"}
    assert champion_version() == "1"
    assert len(client().search_model_versions(f"name='{MODEL}'")) == 1   # nothing registered

    better = train(*BETTER)
    code, verdict = check(better, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "passed", "2")
    assert champion_version() == "2"
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["gate.status"] == "passed" and tags["gate.champion_version"] == "1"
    assert {"gate.commit", "gate.actor", "gate.promoted_at", "gate.metrics"} <= set(tags)
    assert client().get_model_version(MODEL, "1")   # the old champion stays reachable

    out = capsys.readouterr().out
    assert "Blocked" in out and "Promoted: v2" in out


def test_check_without_promote_never_registers(local_store: Path) -> None:
    run_id = train()
    code, verdict = check(run_id)
    assert code == 0 and verdict["status"] == "first_model"
    assert verdict["promoted_version"] is None
    assert client().search_registered_models() == []


def test_same_run_never_becomes_two_versions(local_store: Path) -> None:
    run_id = train()
    assert check(run_id, "--promote")[0] == 0
    assert main(["promote", "--model-name", MODEL, "--run-id", run_id]) == 0
    code, verdict = check(run_id, "--promote")
    assert code == 0 and verdict["promoted_version"] is None   # already Production
    assert len(client().search_model_versions(f"name='{MODEL}'")) == 1


def test_promote_is_gated_and_force_is_audited(local_store: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    check(train(), "--promote")
    worse = train(*WORSE)
    assert main(["promote", "--model-name", MODEL, "--run-id", worse]) == 1
    assert champion_version() == "1"

    assert main(["promote", "--model-name", MODEL, "--run-id", worse, "--force"]) == 2
    assert "--force needs --reason" in capsys.readouterr().err

    code = main(["promote", "--model-name", MODEL, "--run-id", worse, "--force",
                 "--reason", "hotfix: data contract changed"])
    assert code == 0 and champion_version() == "2"
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["gate.status"] == "forced"
    assert tags["gate.reason"] == "hotfix: data contract changed"


def test_rollback_and_status(local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check(train(), "--promote")
    check(train(*BETTER), "--promote")
    assert champion_version() == "2"
    capsys.readouterr()

    assert main(["rollback", "--model-name", MODEL, "--reason", "latency"]) == 0
    assert champion_version() == "1"
    tags = client().get_model_version(MODEL, "2").tags
    assert tags["gate.rollback_reason"] == "latency" and "gate.rolled_back_at" in tags
    assert "moved from v2 to v1" in capsys.readouterr().out

    # v1 was the first model: nothing earlier to go back to
    assert main(["rollback", "--model-name", MODEL]) == 2
    assert "records no previous champion" in capsys.readouterr().err

    assert main(["status", "--model-name", MODEL, "--json", "status.json"]) == 0
    out = capsys.readouterr().out
    assert "Production (@production) is v1" in out
    assert "v2" in out and "(rolled back)" in out
    status = json.loads(Path("status.json").read_text())
    assert status["champion_version"] == "1" and len(status["versions"]) == 2


def test_promote_by_version(local_store: Path) -> None:
    check(train(), "--promote")
    check(train(*BETTER), "--promote")
    main(["rollback", "--model-name", MODEL])
    assert champion_version() == "1"
    assert main(["promote", "--model-name", MODEL, "--version", "2"]) == 0
    assert champion_version() == "2"


def test_legacy_stage_is_the_champion_when_no_alias(local_store: Path) -> None:
    import warnings

    run_id = train()
    mlflow_client = client()
    mlflow_client.create_registered_model(MODEL)
    run = mlflow_client.get_run(run_id)
    model_id = run.outputs.model_outputs[0].model_id
    mlflow_client.create_model_version(MODEL, f"models:/{model_id}", run_id,
                                       model_id=model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow_client.transition_model_version_stage(MODEL, "1", "Production")
    code, verdict = check(train(*WORSE), "--summary", "summary.md")
    assert code == 1 and verdict["champion_version"] == "1"
    assert verdict["champion_found_by"] == "stage"
    assert "legacy stage" in Path("summary.md").read_text()


def test_champion_moved_during_promotion_is_exit_3(local_store: Path) -> None:
    """Production moving between the comparison and the alias move: nothing changes."""
    from gate.core import config as config_mod
    from gate.errors import InfraError
    from gate.commands.check import promote_run
    from gate.mlflowstore.registry import Registry

    check(train(), "--promote")
    registry = Registry(os.environ["MLFLOW_TRACKING_URI"])
    cfg = config_mod.load("gate.toml")
    stale = registry.champion(cfg.model)
    check(train(*BETTER), "--promote")            # someone else promotes v2
    candidate = registry.run(train("--seed", "7"))
    with pytest.raises(InfraError, match="moved from v1 to v2"):
        promote_run(registry, cfg, candidate, stale, None, reason=None, forced=False)
    assert champion_version() == "2"
    assert len(client().search_model_versions(f"name='{MODEL}'")) == 2


@pytest.mark.parametrize("argv, fragment", [
    (["check", "--run-id", "0" * 32], "not found"),
    (["check", "--run-id", "not-a-run"], "not found"),
    (["check", "--run-id", "x", "--config", "missing.toml"], "config file not found"),
    (["promote", "--model-name", MODEL, "--version", "9"], "version 9"),
    (["rollback", "--model-name", "no-such-model"], "no Production version"),
    (["status", "--model-name", "no-such-model"], "has no versions"),
])
def test_bad_input_is_exit_2_with_one_line(local_store: Path, capsys: pytest.CaptureFixture,
                                           argv: list[str], fragment: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and "Traceback" not in err


def test_malformed_config_is_exit_2(local_store: Path, capsys: pytest.CaptureFixture) -> None:
    Path("gate.toml").write_text('[metrics.rmse]\ndirection = "lower"\ntolerence = 1\n')
    assert main(["check", "--run-id", "x"]) == 2
    assert "did you mean 'metrics.rmse.tolerance'" in capsys.readouterr().err


def test_required_metric_missing_is_exit_2(local_store: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    text = Path("gate.toml").read_text() + '\n[metrics.mape]\ndirection = "lower"\n'
    Path("gate.toml").write_text(text)
    code, verdict = check(train())
    assert code == 2 and verdict["status"] == "error" and verdict["passed"] is False
    err = capsys.readouterr().err
    assert "mape: required metric missing from the candidate run" in err


@pytest.mark.parametrize("value, shown", [(math.nan, "nan"), (math.inf, "inf"),
                                          (-math.inf, "-inf")])
def test_non_finite_metric_is_exit_2(local_store: Path, capsys: pytest.CaptureFixture,
                                     value: float, shown: str) -> None:
    run_id = train()
    client().log_metric(run_id, "rmse", value)
    code, verdict = check(run_id)
    assert code == 2 and verdict["status"] == "error"
    assert f"rmse: required metric not finite ({shown})" in capsys.readouterr().err


def test_model_name_without_versions_is_first_model(local_store: Path) -> None:
    client().create_registered_model("empty-model")
    code, verdict = check(train(), "--model-name", "empty-model")
    assert code == 0 and verdict["status"] == "first_model"


def test_ci_without_tracking_uri_is_exit_2(local_store: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["check", "--run-id", "x"]) == 2
    assert "MLFLOW_TRACKING_URI is not set" in capsys.readouterr().err


def test_embedded_default_store_trains_gates_and_promotes(tmp_path: Path,
                                                          empty_store: Path) -> None:
    """README's main job with no MLFLOW_TRACKING_URI at all, in fresh processes: MLflow's
    own default store (sqlite:///mlflow.db in the working directory), for the trainer and
    the gate alike."""
    import json
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    shutil.copy(empty_store, tmp_path / "mlflow.db")      # migrated: saves ~10 s
    (tmp_path / "gate.toml").write_text((ROOT / "gate.toml").read_text())
    shutil.copytree(ROOT / "data", tmp_path / "data")     # the eval set it pins
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING",
                                                                    "GITHUB_"))}
    env.pop("CI", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=300)

    trained = run(str(ROOT / "train_model.py"), "--n-estimators", "10", "--json", "t.json")
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads((tmp_path / "t.json").read_text())["run_id"]
    checked = run("-m", "gate", "check", "--run-id", run_id, "--promote", "--json", "v.json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads((tmp_path / "v.json").read_text())["promoted_version"] == "1"
    status = run("-m", "gate", "status", "--model-name", "diabetes-regressor")
    assert status.returncode == 0 and "Production (@production) is v1" in status.stdout
