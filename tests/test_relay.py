"""Deploy on promotion: deploy/relay.py turns a real `mlflow server`'s registry webhooks
into one GitHub `repository_dispatch` per move of the alias by the gate (promotion or
rollback), and none for a move by hand."""
from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import io
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest
from mlflow import MlflowClient

from gate.commands.cli import main
from tests import servers
from tests.conftest import store_rows_toml
from tests.conftest import train
from tests.listener import listening

ROOT = Path(__file__).resolve().parent.parent
MODEL = "diabetes-regressor"
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")
SECRET = "relay-secret-0123456789"
TOKEN = "ghs_" + "r" * 36


def relay_module() -> ModuleType:
    """deploy/relay.py as a module (deploy/ is not a package: the image copies files)."""
    spec = importlib.util.spec_from_file_location("gate_deploy_relay", ROOT / "deploy" / "relay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


relay_mod = relay_module()


@pytest.fixture(scope="module")
def webhook_server(tmp_path_factory: pytest.TempPathFactory, empty_store: Path
                   ) -> Iterator[str]:
    """A real `mlflow server` allowed to deliver webhooks to http://127.0.0.1 (MLflow
    refuses plain http and private addresses unless told, for SSRF's sake)."""
    from cryptography.fernet import Fernet

    home = tmp_path_factory.mktemp("webhook-server")
    store = Path(shutil.copy(empty_store, home / "mlflow.db"))
    env = {"MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
           "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
           "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    with servers.mlflow_server(home, store, env=env) as url:
        yield url


def sign(body: bytes, delivery: str = "d1", stamp: int | None = None,
         secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    digest = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body,
                      hashlib.sha256).digest()
    return {"x-mlflow-delivery-id": delivery, "x-mlflow-timestamp": str(stamp),
            "x-mlflow-signature": "v1," + base64.b64encode(digest).decode()}


def wait_lines(log: io.StringIO, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.getvalue().splitlines()
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"relay said {log.getvalue()!r}, wanted {count} lines")


def test_gate_moves_dispatch_once_and_hand_moves_never(
        webhook_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", webhook_server)
    client = MlflowClient(webhook_server)
    log = io.StringIO()
    with listening("/") as github:
        api = github.url.rstrip("/")
        relay = relay_mod.Relay(relay_mod.Settings(
            tracking_uri=webhook_server, repository="acme/models", token=TOKEN, api_url=api,
            secret=SECRET, wait=6.0, skew=5.0), log=log)
        server = relay_mod.make_server(relay, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        relay.start()
        try:
            client.create_webhook(
                name="deploy-on-promotion", events=["model_version_alias.created"],
                url=f"http://127.0.0.1:{server.server_address[1]}/mlflow", secret=SECRET)

            assert main(["check", "--run-id", train(), "--promote"]) == 0
            wait_lines(log, 1)
            assert main(["check", "--run-id", train(*BETTER), "--promote"]) == 0
            wait_lines(log, 2)
            assert main(["rollback", "--model-name", MODEL, "--reason", "latency"]) == 0
            wait_lines(log, 3)
            # by hand: back to v2 (promoted by the gate, but not now), then a version
            # registered by hand
            client.set_registered_model_alias(MODEL, "production", "2")
            wait_lines(log, 4)
            run_id = client.get_model_version(MODEL, "1").run_id
            manual = client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id)
            client.set_registered_model_alias(MODEL, "production", manual.version)
            lines = wait_lines(log, 5)
            time.sleep(1.0)
        finally:
            relay.stop()
            server.shutdown()
            server.server_close()
    assert lines == [
        f"relay: {MODEL} v1: promoted by the gate: dispatched model-promoted",
        f"relay: {MODEL} v2: promoted by the gate: dispatched model-promoted",
        f"relay: {MODEL} v1: rolled_back by the gate: dispatched model-promoted",
        f"relay: {MODEL} v2: @production was not moved by the gate: nothing dispatched",
        f"relay: {MODEL} v3: @production was not moved by the gate: nothing dispatched"]
    assert [r.path for r in github.requests] == ["/repos/acme/models/dispatches"] * 3
    assert {r.headers["authorization"] for r in github.requests} == {f"Bearer {TOKEN}"}
    assert github.bodies == [
        {"event_type": "model-promoted", "client_payload": {
            "model": MODEL, "version": "1", "alias": "production", "action": "promoted",
            "previous": None, "gate_status": "first_model"}},
        {"event_type": "model-promoted", "client_payload": {
            "model": MODEL, "version": "2", "alias": "production", "action": "promoted",
            "previous": "1", "gate_status": "passed"}},
        {"event_type": "model-promoted", "client_payload": {
            "model": MODEL, "version": "1", "alias": "production", "action": "rolled_back",
            "previous": "2", "gate_status": "first_model"}}]
    assert TOKEN not in log.getvalue()


def event(version: str = "4", alias: str = "production") -> bytes:
    return json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": "2026-12-07T10:00:00+00:00",
                       "data": {"name": MODEL, "alias": alias, "version": version}}).encode()


def offline_relay(**settings: Any) -> Any:
    """A relay whose worker never runs: what `accept` queues is looked at directly."""
    return relay_mod.Relay(relay_mod.Settings(
        tracking_uri="http://127.0.0.1:9", repository="acme/models", token=TOKEN,
        secret=SECRET, **settings), log=io.StringIO())


def test_only_signed_fresh_deliveries_are_accepted_and_each_once() -> None:
    relay = offline_relay()
    body = event()
    assert relay.accept({}, body) == 401                                    # unsigned
    assert relay.accept(sign(body, secret="wrong"), body) == 401            # forged
    assert relay.accept(sign(body, stamp=int(time.time()) - 3600), body) == 401   # replayed
    assert relay.accept(sign(body, delivery="d1"), event("5")) == 401       # body changed
    assert relay.accept(sign(body, delivery="d1"), body) == 202
    assert relay.accept(sign(body, delivery="d1"), body) == 202             # MLflow's retry
    other = event(alias="staging")
    assert relay.accept(sign(other, delivery="d2"), other) == 202           # not our alias
    assert relay.moves.qsize() == 1
    move = relay.moves.get_nowait()
    assert (move.model, move.alias, move.version) == (MODEL, "production", "4")


def test_other_events_are_ignored_and_settings_are_required() -> None:
    relay = offline_relay()
    tag = json.dumps({"entity": "model_version_tag", "action": "set", "data": {}}).encode()
    assert relay.accept(sign(tag), tag) == 202 and relay.moves.empty()
    with pytest.raises(SystemExit, match="RELAY_WEBHOOK_SECRET"):
        relay_mod.main(["--port", "0"], {"MLFLOW_TRACKING_URI": "http://x",
                                         "GITHUB_REPOSITORY": "a/b", "GITHUB_TOKEN": "t"})
    assert os.environ.get("RELAY_WEBHOOK_SECRET") is None
