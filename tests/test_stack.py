"""The gate against the deployed stack: PostgreSQL, S3 (moto) and basic-auth `mlflow server`.

One story, in order, as CI lives it: main's first model, a PR that is measured but may not
promote, main promoting a better model, a rollback, and the files landing in the bucket.
The CLI entry points are called in-process (`main([...])`, as CI would run them) with the
environment a workflow step gets: tracking URI and one user's credentials, no S3 keys.
"""

from __future__ import annotations

import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

import train_model
from gate.commands.cli import main as gate
from gate.errors import InfraError
from gate.mlflowstore.prune import prune
from tests.servers import NO_JOB_RUNNER
from tests.stack import EXPERIMENT, MODEL, REPO, Stack, bootstrapped  # noqa: F401
from tests.verdicts import IN_PROCESS, read_verdict

CONFIG = str(REPO / "gate.toml")
DEPLOY = REPO / "deploy"
# The state the story builds up, test by test: version numbers and run ids.
STORY: dict[str, str] = {}


@pytest.fixture
def login(bootstrapped: Stack, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    """Switch the process to one CI user, with exactly the variables a workflow step sets."""
    def as_user(username: str, password: str | None = None, ci_event: str = "") -> None:
        if password is None:
            password = {"ci-pr": bootstrapped.passwords.ci_pr,
                        "ci-promoter": bootstrapped.passwords.ci_promoter}[username]
        env = bootstrapped.client_env(username, password)
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                    "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.setenv(key, env[key])
        for key in [k for k in os.environ if k.startswith("AWS_")] + ["MLFLOW_S3_ENDPOINT_URL"]:
            monkeypatch.delenv(key, raising=False)
        if ci_event:
            # train_model.py tags runs with the Actions context; prune keys on those tags.
            monkeypatch.setenv("GITHUB_ACTIONS", "true")
            monkeypatch.setenv("GITHUB_EVENT_NAME", ci_event)
            monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
        else:
            monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return as_user


def train(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "train.json"
    assert train_model.main([*args, "--experiment", EXPERIMENT, "--json", str(out)]) == 0
    return json.loads(out.read_text())["run_id"]


def check(tmp_path: Path, run_id: str, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "verdict.json"
    code = gate(["check", "--run-id", run_id, "--config", CONFIG, "--json", str(out), *extra])
    return code, read_verdict(out, IN_PROCESS)


def production(live: Stack) -> str | None:
    client = MlflowClient(tracking_uri=live.tracking_uri)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        mp.setenv("MLFLOW_TRACKING_PASSWORD", live.passwords.admin)
        aliases = client.get_registered_model(MODEL).aliases
    return aliases.get("production")


def test_main_promotes_the_first_model(bootstrapped: Stack, login, tmp_path: Path) -> None:  # noqa: F811,E501
    login("ci-promoter", ci_event="push")
    run_id = STORY["champion_run"] = train(tmp_path, "--n-estimators", "10")
    code, verdict = check(tmp_path, run_id, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert production(bootstrapped) == "1"


def test_pr_user_checks_but_cannot_promote(bootstrapped: Stack, login, tmp_path: Path,  # noqa: F811,E501
                                           capfd: pytest.CaptureFixture[str]) -> None:
    login("ci-pr", ci_event="pull_request")
    run_id = STORY["pr_run"] = train(tmp_path, "--model", "ridge", "--alpha", "0.1")
    code, verdict = check(tmp_path, run_id)
    assert (code, verdict["status"], verdict["champion_version"]) == (0, "passed", "1")
    capfd.readouterr()

    code, verdict = check(tmp_path, run_id, "--promote")
    err = capfd.readouterr().err
    assert code == 3
    # Who was refused, and the permission that would have allowed it.
    assert "ci-pr" in err and "EDIT" in err, err
    assert "Traceback" not in err
    assert production(bootstrapped) == "1"
    assert verdict.get("promoted_version") is None


def test_main_promotes_a_better_model_and_rolls_back(bootstrapped: Stack, login,  # noqa: F811
                                                     tmp_path: Path) -> None:
    login("ci-promoter", ci_event="push")
    run_id = train(tmp_path, "--model", "gradient_boosting", "--n-estimators", "50",
                   "--max-depth", "2")
    code, verdict = check(tmp_path, run_id, "--promote")
    assert (code, verdict["status"], verdict["champion_version"]) == (0, "passed", "1")
    assert verdict["promoted_version"] == production(bootstrapped) == "2"

    assert gate(["rollback", "--model-name", MODEL, "--config", CONFIG,
                 "--reason", "stack test"]) == 0
    assert production(bootstrapped) == "1"


def test_model_files_are_in_the_bucket(bootstrapped: Stack) -> None:  # noqa: F811
    keys = bootstrapped.bucket_keys()
    assert keys and all(key.startswith("mlartifacts/") for key in keys)
    names = {key.rsplit("/", 1)[-1] for key in keys}
    assert {"MLmodel", "model.skops", "predictions.parquet", "eval.parquet",
            "verified_predictions.parquet"} <= names
    # The PR run's own files went through the server's proxy, too: no client had S3 keys.
    assert any(STORY["pr_run"] in key for key in keys)


def test_wrong_password_is_exit_3_and_never_echoed(bootstrapped: Stack, login,  # noqa: F811
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    wrong = "Wr0ng-" + bootstrapped.passwords.ci_pr[::-1]
    login("ci-pr", password=wrong)
    code = gate(["check", "--run-id", STORY["champion_run"], "--config", CONFIG])
    out, err = capfd.readouterr()
    assert code == 3
    assert "gate: error:" in err and ("401" in err or "not authenticated" in err.lower())
    assert wrong not in out + err
    assert "Traceback" not in err


def test_pr_user_cannot_prune(bootstrapped: Stack, login) -> None:  # noqa: F811
    login("ci-pr")
    client = MlflowClient(tracking_uri=bootstrapped.tracking_uri)
    with pytest.raises(InfraError, match="refused user 'ci-pr' deleting run .* needs MANAGE"):
        prune(client, [EXPERIMENT], older_than_days=0, keep=0, yes=True)
    assert client.get_run(STORY["pr_run"]).info.lifecycle_stage == "active"


def test_admin_prune_spares_runs_behind_versions(bootstrapped: Stack, login) -> None:  # noqa: F811,E501
    login("admin", password=bootstrapped.passwords.admin)
    client = MlflowClient(tracking_uri=bootstrapped.tracking_uri)
    report = prune(client, [EXPERIMENT], older_than_days=0, keep=0, yes=False)
    # The PR run backs no version; the two promoted runs do.
    assert [r.run_id for r in report.runs] == [STORY["pr_run"]]
    assert report.kept_registered == 2


def test_compose_file_keeps_the_deployment_rules() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    assert not any("ports" in services[name] for name in ("postgres", "minio", "minio-init"))
    for name in ("postgres", "minio", "mlflow"):
        assert services[name]["restart"] == "unless-stopped" and services[name]["healthcheck"]
    assert all(volume.split(":")[0] in ("pgdata", "minio-data") or volume.startswith("./")
               for service in services.values() for volume in service.get("volumes", []))
    # The server's flags live in deploy/entrypoint.py (tests/test_entrypoint.py checks them).
    assert services["mlflow"]["environment"]["GATE_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" in services["mlflow"]["environment"]
    # No init scripts: the entrypoint creates the auth database (they may never run).
    assert not any("docker-entrypoint-initdb.d" in volume
                   for volume in services["postgres"].get("volumes", []))
    # the stack tests run the server as deployed: job runner off unless .env asks for it
    for key, value in NO_JOB_RUNNER.items():
        assert services["mlflow"]["environment"][key].endswith(f":-{value}}}")
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert str(value).startswith("${"), f"{key} must come from .env"
    example = {line.split("=")[0] for line in (DEPLOY / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text)) - {"MINIO_IMAGE", "MC_IMAGE"}
    assert used <= example, f"undocumented in .env.example: {used - example}"


def test_server_image_pins_the_versions_tested_here() -> None:
    pins = [line.split("==") for line in (DEPLOY / "requirements-server.txt").read_text()
            .splitlines() if "==" in line and not line.startswith("#")]
    assert pins
    for name, pinned in pins:
        assert version(name.split("[")[0]) == pinned, name
