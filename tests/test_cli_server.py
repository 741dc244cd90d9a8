"""Against a real `mlflow server` process (SQLite backend, artifacts served by the server),
with the trainer and the gate run as separate processes, as CI runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gate import contract
from tests.conftest import ROOT, store_rows_toml
from tests.servers import free_port
from tests.verdicts import read_verdict

MODEL = "server-model"


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=120)


@pytest.fixture
def env(mlflow_server: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "gate.toml").write_text(store_rows_toml().replace(
        'name = "diabetes-regressor"', f'name = "{MODEL}"'))
    return {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server,
            "MLFLOW_EXPERIMENT_NAME": "server-tests"}


def train(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = run([str(ROOT / "train_model.py"), "--n-estimators", "10", *args,
                "--json", "train.json"], env, cwd)
    assert done.returncode == 0, done.stderr
    return json.loads((cwd / "train.json").read_text())["run_id"]


def test_flow_against_a_real_server(env: dict[str, str], tmp_path: Path,
                                    mlflow_server: str) -> None:
    base = train(env, tmp_path)
    first = run(["-m", "gate", "check", "--run-id", base, "--promote", "--json", "v1.json"],
                env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert read_verdict(tmp_path / "v1.json", first)["promoted_version"] == "1"

    worse = train(env, tmp_path, "--drop-columns", "bmi,s5")
    blocked = run(["-m", "gate", "check", "--run-id", worse, "--promote",
                   "--json", "v2.json", "--summary", "summary.md"], env, tmp_path)
    assert blocked.returncode == 1, blocked.stderr
    verdict = read_verdict(tmp_path / "v2.json", blocked)
    assert verdict["status"] == "blocked" and verdict["paired"] is True
    summary = (tmp_path / "summary.md").read_text()
    assert "Blocked" in summary
    # links point at the server's UI
    assert f"{mlflow_server}/#/models/{MODEL}/versions/1" in summary
    assert "Traceback" not in blocked.stderr

    client = MlflowClient(mlflow_server)
    assert str(client.get_registered_model(MODEL).aliases["production"]) == "1"
    # the champion's eval artifacts went through the server's artifact proxy
    names = {f.path for f in client.list_artifacts(base, "gate")}
    assert {contract.MANIFEST, contract.EVAL_ROWS, contract.PREDICTIONS} <= names


def test_server_not_listening_is_exit_3_fast(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        env.pop(key, None)          # the product's own defaults must bound the wait
    start = time.monotonic()
    done = run(["-m", "gate", "check", "--run-id", "a" * 32], env, tmp_path)
    elapsed = time.monotonic() - start
    assert done.returncode == 3
    assert elapsed < 30
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "cannot reach MLflow" in err[0] or "not reachable" in err[0]
    assert "Traceback" not in done.stderr


def test_credentials_in_the_uri_never_printed(tmp_path: Path) -> None:
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    env = {**os.environ, "MLFLOW_TRACKING_URI":
           f"http://ci:s3cr3t-pass@127.0.0.1:{free_port()}"}
    done = run(["-m", "gate", "check", "--run-id", "a" * 32], env, tmp_path)
    assert done.returncode == 3
    assert "s3cr3t-pass" not in done.stderr + done.stdout


def test_credentials_in_a_working_uri_stay_out_of_every_output(
        mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from gate.commands.cli import main
    from tests.conftest import train as train_in_process

    secret_uri = mlflow_server.replace("http://", "http://ci-user:uri-pass-789@")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gate.toml").write_text(store_rows_toml().replace(
        'name = "diabetes-regressor"', 'name = "cred-model"'))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secret_uri)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    run_id = train_in_process()
    assert main(["check", "--run-id", run_id, "--promote", "--json", "v.json",
                 "--summary", "s.md"]) == 0
    captured = capsys.readouterr()
    outside_masks = "\n".join(line for line in captured.out.splitlines()
                              if not line.startswith("::add-mask::"))
    assert "::add-mask::uri-pass-789" in captured.out
    for text in (outside_masks, captured.err, (tmp_path / "s.md").read_text(),
                 (tmp_path / "v.json").read_text(), (tmp_path / "out").read_text()):
        assert "uri-pass-789" not in text
    assert f"{mlflow_server}/#/experiments/" in (tmp_path / "s.md").read_text()
