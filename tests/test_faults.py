"""Faults CI meets, through a proxy in front of a real `mlflow server`: the server
dying mid-promotion, answering slowly, or failing for a while."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from tests.chaos_proxy import ChaosProxy
from tests.conftest import store_rows_toml, train

ALIAS_MOVE = r"/registered-models/alias"


@pytest.fixture
def proxy(mlflow_server: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[ChaosProxy]:
    chaos = ChaosProxy(mlflow_server).start()
    monkeypatch.chdir(tmp_path)
    name = f"faults-{tmp_path.name}"
    Path("gate.toml").write_text(store_rows_toml().replace(
        'name = "diabetes-regressor"', f'name = "{name}"'))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", chaos.url)
    monkeypatch.setenv("GATE_LOCK_TTL", "2")
    yield chaos
    chaos.stop()


def model_name() -> str:
    return Path("gate.toml").read_text().split('name = "', 1)[1].split('"', 1)[0]


def test_server_dies_mid_promotion_then_a_retry_succeeds(proxy: ChaosProxy, mlflow_server: str,
                                                         capsys: pytest.CaptureFixture) -> None:
    real = MlflowClient(mlflow_server)
    assert main(["check", "--run-id", train(), "--promote"]) == 0
    better = train("--max-depth", "4", "--min-samples-leaf", "5", "--n-estimators", "30")
    capsys.readouterr()

    proxy.add("POST", ALIAS_MOVE, "stop")          # dies as the alias is about to move
    start = time.monotonic()
    assert main(["check", "--run-id", better, "--promote", "--json", "v.json"]) == 3
    assert time.monotonic() - start < 45
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "MLflow" in err
    verdict = json.loads(Path("v.json").read_text())
    assert verdict["status"] == "passed" and verdict["promoted_version"] is None
    assert any("promotion failed, nothing was promoted" in n for n in verdict["notes"])

    # no half promotion: Production unchanged, the new version is not marked promoted
    name = model_name()
    assert str(real.get_registered_model(name).aliases["production"]) == "1"
    version2 = real.get_model_version(name, "2")
    assert "gate.promoted_at" not in version2.tags

    proxy.start()                                   # the server is back
    time.sleep(2.1)                                 # the crashed lease expires
    assert main(["check", "--run-id", better, "--promote", "--json", "v.json"]) == 0
    assert json.loads(Path("v.json").read_text())["promoted_version"] == "2"  # same version
    assert str(real.get_registered_model(name).aliases["production"]) == "2"
    assert "gate.promoted_at" in real.get_model_version(name, "2").tags
    assert len(real.search_model_versions(f"name='{name}'")) == 2


def test_server_failing_for_a_while_is_retried(proxy: ChaosProxy) -> None:
    run_id = train()
    proxy.add("*", r"/runs/get", "status:503", times=2)   # restarting: two 503s, then up
    assert main(["check", "--run-id", run_id, "--json", "v.json"]) == 0
    assert [p for m, p in proxy.seen if "/runs/get" in p][:3] and \
        sum("/runs/get" in p for _, p in proxy.seen) >= 3


def test_slow_server_gives_exit_3_within_the_bound(proxy: ChaosProxy,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    run_id = train()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    proxy.add("*", r"/runs/get", "delay:3", times=10)
    start = time.monotonic()
    assert main(["check", "--run-id", run_id]) == 3
    # timeout x (retries + 1) + backoff: about 3 s here, 47 s with the defaults
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert "not reachable" in err or "timed out" in err.lower() or "MLflow" in err
    assert "Traceback" not in err
    os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
