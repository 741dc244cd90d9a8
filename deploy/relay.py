"""Deploy on promotion: a relay from MLflow's registry webhooks to GitHub's
`repository_dispatch`, for versions the gate promoted (or rolled back to) only.

    python deploy/relay.py --port 8787

MLflow (3.3+) posts `model_version_alias.created` the moment an alias moves, by hand or by
the gate, and before the gate has written `gate.promoted_at`; a rollback's event looks the
same as a promotion's. So the relay answers at once (202), then re-reads the registry:
the alias must still point at the event's version, and within --wait seconds that
version must carry a `gate.promoted_at` written for this move (no older than the event,
within --skew) while the model's `gate.champion` names it. Only then does it POST
/repos/{repo}/dispatches with event_type `model-promoted` and client_payload
{model, version, alias, action: promoted | rolled_back, previous, gate_status}: one
dispatch per move. A move by hand, to a version the gate never promoted or promoted
long ago, dispatches nothing.

Settings come from the environment (never a flag: `ps` would show them):

    MLFLOW_TRACKING_URI     the MLflow server to re-read (its usual credentials apply)
    RELAY_WEBHOOK_SECRET    the webhook's secret: every delivery's X-MLflow-Signature is
                            checked against it (required unless --allow-unsigned)
    GITHUB_REPOSITORY       owner/name of the repository that deploys
    GITHUB_TOKEN            a token that may create repository dispatches there
    GITHUB_API_URL          default https://api.github.com

Stdlib only, plus the MLflow client the server image already has.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENT_TYPE = "model-promoted"
MAX_BODY = 64 * 1024            # MLflow's alias payloads are a few hundred bytes
REPLAY_WINDOW = 300             # seconds a signed delivery stays valid
POLL = 0.5
ROLLBACK_GRACE = 5.0            # a rollback tags the version it left just after the move
SEEN_DELIVERIES = 1000
PROMOTED_AT, STATUS, RESTORED_FROM = "gate.promoted_at", "gate.status", "gate.restored_from"
RESTORED_AT = "gate.restored_at"
ROLLED_BACK_AT, PREVIOUS, CHAMPION = "gate.rolled_back_at", "gate.champion_version", \
    "gate.champion"


@dataclass(frozen=True)
class Settings:
    tracking_uri: str
    repository: str
    token: str
    api_url: str = "https://api.github.com"
    secret: str = ""            # "": unsigned deliveries accepted (--allow-unsigned)
    alias: str = "production"
    wait: float = 30.0          # seconds to wait for the gate's tags
    skew: float = 60.0          # how far the gate's clock may lag the server's


@dataclass(frozen=True)
class Move:
    """One `model_version_alias.created` event."""

    model: str
    alias: str
    version: str
    at: dt.datetime             # when the server moved the alias


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """MLflow's signature: v1,base64(HMAC-SHA256(secret, "id.timestamp.body")), with a
    timestamp within REPLAY_WINDOW of now."""
    delivery, stamp = headers.get("x-mlflow-delivery-id", ""), \
        headers.get("x-mlflow-timestamp", "")
    signature = headers.get("x-mlflow-signature", "")
    try:
        if abs(now - int(stamp)) > REPLAY_WINDOW:
            return False
    except ValueError:
        return False
    signed = f"{delivery}.{stamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return hmac.compare_digest(expected.encode(), signature.encode())


def parse_move(body: bytes) -> Move | None:
    """The alias move an event announces; None for any other event."""
    try:
        event = json.loads(body)
        data = event["data"]
        if (event.get("entity"), event.get("action")) != ("model_version_alias", "created"):
            return None
        at = _when(str(event.get("timestamp"))) or dt.datetime.now(dt.timezone.utc)
        return Move(str(data["name"]), str(data["alias"]), str(data["version"]), at)
    except (ValueError, KeyError, TypeError):
        return None


def _when(text: str | None) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


class Relay:
    """Judges alias moves one at a time, and dispatches the gate's."""

    def __init__(self, settings: Settings, log: Any = sys.stderr) -> None:
        from mlflow import MlflowClient

        self.settings, self.log = settings, log
        self.client = MlflowClient(settings.tracking_uri)
        self.moves: queue.Queue[Move | None] = queue.Queue()
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.worker = threading.Thread(target=self._work, daemon=True)

    def accept(self, headers: Mapping[str, str], body: bytes) -> int:
        """The HTTP status for one delivery; a move worth judging is queued."""
        if self.settings.secret and not verify(self.settings.secret, headers, body,
                                               time.time()):
            return 401
        delivery = headers.get("x-mlflow-delivery-id", "")
        if delivery:
            if delivery in self.seen:       # MLflow retried a delivery we already took
                return 202
            self.seen[delivery] = None
            while len(self.seen) > SEEN_DELIVERIES:
                self.seen.popitem(last=False)
        move = parse_move(body)
        if move is None:
            return 400 if not body.strip() else 202
        if move.alias == self.settings.alias:
            self.moves.put(move)
        return 202

    def _work(self) -> None:
        while (move := self.moves.get()) is not None:
            try:
                self.handle(move)
            except Exception as exc:        # one bad move must not stop the relay
                self._say(f"{move.model} v{move.version}: not relayed: "
                          f"{type(exc).__name__}: {exc}")

    def handle(self, move: Move) -> str:
        """What the move was: `promoted`, `rolled_back`, or why nothing was dispatched."""
        deadline = time.monotonic() + self.settings.wait
        gated_since: float | None = None
        while True:
            held, tags = self._holder(move)
            if held != move.version:
                return self._say(f"{move.model} v{move.version}: @{move.alias} moved on to "
                                 f"v{held}: nothing dispatched for this move")
            if self._gate_moved(move, tags):
                gated_since = gated_since or time.monotonic()
                if not tags.get(RESTORED_FROM) or self._rolled_back(move, tags):
                    break
                if time.monotonic() - gated_since > ROLLBACK_GRACE:
                    break
            if time.monotonic() > deadline:
                if gated_since is not None:
                    break
                return self._say(f"{move.model} v{move.version}: @{move.alias} was not moved "
                                 "by the gate: nothing dispatched")
            time.sleep(POLL)
        action = "rolled_back" if tags.get(RESTORED_FROM) and self._rolled_back(move, tags) \
            else "promoted"
        previous = tags.get(RESTORED_FROM) if action == "rolled_back" else tags.get(PREVIOUS)
        self.dispatch({"model": move.model, "version": move.version, "alias": move.alias,
                       "action": action, "previous": previous if previous != "none" else None,
                       "gate_status": tags.get(STATUS)})
        self._say(f"{move.model} v{move.version}: {action} by the gate: dispatched "
                  f"{EVENT_TYPE}")
        return action

    def _holder(self, move: Move) -> tuple[str, dict[str, str]]:
        version = self.client.get_model_version_by_alias(move.model, move.alias)
        return str(version.version), dict(version.tags or {})

    def _gate_moved(self, move: Move, tags: Mapping[str, str]) -> bool:
        """The gate wrote this version's promotion (or, for a rollback, its restoration:
        the original promotion time is kept) after the alias moved, and named it the
        model's champion (its last two writes)."""
        if not (self._fresh(tags.get(PROMOTED_AT), move) or
                self._fresh(tags.get(RESTORED_AT), move)):
            return False
        model_tags = self.client.get_registered_model(move.model).tags or {}
        return model_tags.get(CHAMPION) == move.version

    def _rolled_back(self, move: Move, tags: Mapping[str, str]) -> bool:
        left = self.client.get_model_version(move.model, tags[RESTORED_FROM])
        return self._fresh((left.tags or {}).get(ROLLED_BACK_AT), move)

    def _fresh(self, stamp: str | None, move: Move) -> bool:
        when = _when(stamp)
        return when is not None and \
            (when - move.at).total_seconds() >= -self.settings.skew

    def dispatch(self, payload: Mapping[str, Any]) -> None:
        """POST the repository dispatch; GitHub's 5xx and a dropped connection are tried
        three times."""
        s = self.settings
        request = urllib.request.Request(
            f"{s.api_url.rstrip('/')}/repos/{s.repository}/dispatches", method="POST",
            data=json.dumps({"event_type": EVENT_TYPE, "client_payload": payload}).encode(),
            headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json",
                     "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "model-gate-relay"})
        for attempt in range(3):
            try:
                with urllib.request.urlopen(request, timeout=10):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == 2:
                    raise RuntimeError(f"GitHub answered HTTP {exc.code}") from None
            except (urllib.error.URLError, TimeoutError) as exc:
                if attempt == 2:
                    raise RuntimeError(f"GitHub unreachable: {type(exc).__name__}") from None
            time.sleep(2 ** attempt)

    def _say(self, line: str) -> str:
        print(f"relay: {line}", file=self.log, flush=True)
        return line

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.moves.put(None)
        self.worker.join(timeout=60)


def make_server(relay: Relay, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:      # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._answer(413)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(relay.accept(headers, body))

        def do_GET(self) -> None:       # noqa: N802
            self._answer(200 if self.path == "/health" else 404)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass        # the relay logs its decisions; request lines add nothing

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    missing = [key for key in ("MLFLOW_TRACKING_URI", "GITHUB_REPOSITORY", "GITHUB_TOKEN")
               if not environ.get(key)]
    if not args.allow_unsigned and not environ.get("RELAY_WEBHOOK_SECRET"):
        missing.append("RELAY_WEBHOOK_SECRET (or --allow-unsigned)")
    if missing:
        raise SystemExit(f"relay: error: set {', '.join(missing)}")
    return Settings(tracking_uri=environ["MLFLOW_TRACKING_URI"],
                    repository=environ["GITHUB_REPOSITORY"], token=environ["GITHUB_TOKEN"],
                    api_url=environ.get("GITHUB_API_URL") or "https://api.github.com",
                    secret=environ.get("RELAY_WEBHOOK_SECRET", ""), alias=args.alias,
                    wait=args.wait, skew=args.skew)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--alias", default="production", help="the alias the gate moves")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the gate's tags after a move (default 30)")
    parser.add_argument("--skew", type=float, default=60.0,
                        help="seconds the gate's clock may lag the server's (default 60)")
    parser.add_argument("--allow-unsigned", action="store_true",
                        help="accept deliveries without a signature (local trials only)")
    args = parser.parse_args(argv)
    relay = Relay(settings_from(args, environ))
    server = make_server(relay, args.host, args.port)
    relay.start()
    print(f"relay: listening on {args.host}:{server.server_address[1]}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        relay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
