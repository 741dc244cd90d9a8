"""A tiny local HTTP listener for the tests: it records every request (path, headers,
JSON body) and answers from a queue of (status, delay) faults, then 200."""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Listener:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    faults: list[tuple[int, float]] = field(default_factory=list)   # (status, seconds late)
    status: int = 200

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.requests)


@contextmanager
def listening(path: str = "/hook") -> Iterator[Listener]:
    """A listener on a free 127.0.0.1 port; its URL ends with `path`."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:      # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                listener.requests.append(Recorded(self.path, {k.lower(): v for k, v in
                                                              self.headers.items()}, raw))
                status, delay = listener.faults.pop(0) if listener.faults else \
                    (listener.status, 0.0)
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:     # the client gave up waiting
                pass

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener = Listener(f"http://127.0.0.1:{server.server_address[1]}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
