"""An HTTP proxy in front of a real `mlflow server` that can stop, slow down or fail.

The gate talks to the proxy's port; the proxy forwards to the real server. Rules
fire on matching requests: answer with a status, delay, or take the whole proxy
down (connection refused from then on, like a stopped server) until `start()`.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "content-encoding"}


@dataclass
class Rule:
    method: str
    path: str               # regex searched in the request path
    action: str             # "status:503", "delay:3", "stop"
    times: int = 1


@dataclass
class ChaosProxy:
    upstream: str
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._session = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ChaosProxy":
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            threading.Thread(target=lambda: (server.shutdown(), server.server_close()),
                             daemon=True).start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _listening(self.port):
                time.sleep(0.05)

    def add(self, method: str, path: str, action: str, times: int = 1) -> None:
        with self._lock:
            self.rules.append(Rule(method, path, action, times))

    def take(self, method: str, path: str) -> str | None:
        with self._lock:
            self.seen.append((method, path))
            for rule in self.rules:
                if rule.times > 0 and rule.method in (method, "*") and \
                        re.search(rule.path, path):
                    rule.times -= 1
                    return rule.action
        return None

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> requests.Response:
        return self._session.request(method, self.upstream + path, headers=headers,
                                     data=body, timeout=60, allow_redirects=False)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class _Handler(BaseHTTPRequestHandler):
    proxy: ChaosProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        action = self.proxy.take(self.command, self.path)
        if action == "stop":
            self.proxy.stop()
            self.close_connection = True
            return                      # no answer: the server died mid-request
        if action and action.startswith("status:"):
            self._reply(int(action.split(":")[1]), b'{"error_code": "TEMPORARILY_UNAVAILABLE"}',
                        {"Content-Type": "application/json"})
            return
        if action and action.startswith("delay:"):
            time.sleep(float(action.split(":")[1]))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream = self.proxy.forward(self.command, self.path, headers, body)
        self._reply(upstream.status_code, upstream.content,
                    {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass                        # the client gave up (timeout): fine

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
