"""The gate (this repository's MLflow 3 client) against the last MLflow 2 server.

The server runs from its own venv (mlflow 2.22, built once by uv and cached by its pins
under the temp dir). What works and what degrades there, as README states it:
- an MLflow 3 client cannot log a model to it (no logged-model endpoints): train_model.py
  stops with one line (exit 3); runs, metrics and artifacts log fine;
- runs whose models an MLflow 2 client logged (here: a small trainer in the server's venv,
  with `gate.log_evaluation`) are gated, promoted, rolled back and listed as usual: the
  gate reads the model from the run's `runs:/` path and registers it from there;
- MLflow 2 has no skops format, so a scikit-learn model is cloudpickle, which the gate
  never unpickles: its predictions are the logged ones, marked unverified;
- `--model-id m-...` is one line, exit 2: such a server has no logged models.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator

import pytest

from gate.commands.cli import main
from tests import servers
from tests.conftest import store_rows_toml
from tests.conftest import ROOT

SERVER_PINS = ["mlflow==2.22.*",
               # mlflow 2.22 imports a pool class SQLAlchemy 2.1 removed
               "sqlalchemy<2.1"]
# the trainer's libraries at the dev venv's versions: the same eval rows and numbers
SAME_AS_HERE = ("scikit-learn", "numpy", "pandas", "scipy")
CACHE = Path(os.environ.get("GATE_CLIENT_VENV_CACHE", tempfile.gettempdir()))
MODEL = "diabetes-regressor"

TRAINER = '''
"""A team's trainer on MLflow 2: a scikit-learn model (cloudpickle, MLflow 2's only
format) and the evaluation the gate reads."""
import sys

import mlflow
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split

import gate

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_eval, y_train, y_eval = train_test_split(X, y, test_size=0.2, random_state=42)
model = Ridge(alpha=float(sys.argv[1])).fit(X_train, y_train)
mlflow.set_experiment("mlflow2-trainer")
with mlflow.start_run() as run:
    gate.log_evaluation(y_eval.to_numpy(), model.predict(X_eval), features=X_eval,
                        row_ids=X_eval.index.to_numpy(), target="target", task="regression")
    mlflow.sklearn.log_model(model, artifact_path="model")
print(run.info.run_id)
'''


def mlflow2_python() -> Path:
    """The MLflow 2 venv's python, built first (by uv, in seconds) if not cached."""
    pins = SERVER_PINS + [f"{name}=={version(name)}" for name in SAME_AS_HERE]
    key = hashlib.sha256("\n".join([*pins, sys.version]).encode()).hexdigest()[:16]
    home = CACHE / f"gate-mlflow2-venv-{key}"
    if (home / ".complete").exists():
        return home / "bin" / "python"
    partial = Path(tempfile.mkdtemp(prefix=f"{home.name}.partial-", dir=CACHE))
    try:
        uv = _uv()
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(partial)],
                       check=True, capture_output=True, timeout=120)
        done = subprocess.run([uv, "pip", "install", "--quiet", "--python",
                               str(partial / "bin" / "python"), *pins],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"installing {pins} failed:\n{done.stderr[-3000:]}")
        (partial / ".complete").touch()
        try:
            partial.rename(home)
        except OSError:     # another session finished first: use its venv
            if not (home / ".complete").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return home / "bin" / "python"


def _uv() -> str:
    for candidate in (servers.BIN / "uv", Path("/work/main/.venv/bin/uv")):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed: it builds the MLflow 2 venv in seconds")
    return found


@pytest.fixture(scope="module")
def mlflow2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`mlflow server` 2.22 from its own venv, SQLite store, served artifacts."""
    python = mlflow2_python()
    home = tmp_path_factory.mktemp("mlflow2-server")
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(python), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
           "--artifacts-destination", str(home / "artifacts"), "--serve-artifacts",
           "--workers", "1"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    log = home / "server.log"
    with servers.process(cmd, log, env=clean, cwd=home) as proc:
        servers.wait_ready(servers.http_ok(f"{url}/health"), proc, log, "mlflow 2 server",
                           timeout=180)
        yield {"url": url, "python": python, "home": home}


def train2(server: dict[str, Any], alpha: float) -> str:
    """A run logged by the MLflow 2 client of the server's venv."""
    script = server["home"] / "train2.py"
    script.write_text(TRAINER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GITHUB_"))}
    env.update(MLFLOW_TRACKING_URI=server["url"], PYTHONPATH=str(ROOT))
    done = subprocess.run([str(server["python"]), str(script), str(alpha)], env=env,
                          text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def at_server(mlflow2_server: dict[str, Any], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow2_server["url"])
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    return mlflow2_server


def check(run_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--run-id", run_id, "--json", "v.json", *extra])
    return code, json.loads(Path("v.json").read_text())


def test_the_server_is_mlflow_2(at_server: dict[str, Any]) -> None:
    import requests

    assert requests.get(f"{at_server['url']}/version", timeout=10).text.startswith("2.22.")


def test_runs_logged_by_an_mlflow_2_client_are_gated_promoted_and_rolled_back(
        at_server: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    code, verdict = check(train2(at_server, 1.0), "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    source = MlflowClient(at_server["url"]).get_model_version(MODEL, "1").source
    assert source.startswith("runs:/") and source.endswith("/model")
    assert verdict["candidate_model"]["model"] == "sklearn / cloudpickle"
    # unpickled in the sandbox with the gate's packages (MLflow 3), which the report
    # names against the model's recorded ones
    assert verdict["verified"] is True
    assert "not its recorded mlflow==2.22." in verdict["candidate_model"]["predictions"]

    code, verdict = check(train2(at_server, 3000.0), "--promote")
    assert code == 1 and verdict["paired"] and verdict["promoted_version"] is None

    better = train2(at_server, 0.01)
    code, verdict = check(better, "--promote")
    assert code == 0 and verdict["promoted_version"] == "2" and verdict["paired"]
    assert verdict["champion_model"]["predictions"] == "cached at its promotion (digest checked)"
    assert main(["promote", "--run-id", better]) == 0     # already Production: no v3

    assert main(["rollback", "--reason", "mlflow 2"]) == 0
    capsys.readouterr()
    assert main(["status", "--json", "status.json"]) == 0
    assert "Production (@production) is v1" in capsys.readouterr().out
    status = json.loads(Path("status.json").read_text())
    gates = [r["gate"] for r in status["versions"]]
    assert gates == ["passed (rolled back)", "first_model (restored)"]


def test_an_mlflow_3_trainer_cannot_log_a_model_there_and_says_so(
        at_server: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import train_model

    assert train_model.main(["--n-estimators", "5"]) == 3
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no logged models (a server older than MLflow 3)" in err


def test_a_logged_model_id_is_one_line_exit_2(at_server: dict[str, Any],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--model-id", "m-0123456789abcdef", "--promote"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "has no logged models" in err and "--run-id" in err
