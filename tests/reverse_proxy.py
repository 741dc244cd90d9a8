"""A reverse proxy in miniature, as nginx sits in front of the deployed server.

It listens on 127.0.0.1 and forwards every request to the upstream server with the Host
header it was given: the public name (`proxy_set_header Host $host` behind a browser at
https://NAME), the upstream's own address (nginx's default), or a name the server does not
know. Everything else passes unchanged, Origin and Authorization included, plus the
X-Forwarded-* headers a proxy adds.
"""
from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

# Per-connection headers (RFC 9110 section 7.6.1) and the ones the proxy sets itself.
_NOT_FORWARDED = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                  "transfer-encoding", "upgrade", "host", "content-length"}


class ReverseProxy:
    def __init__(self, upstream: str, host: str, scheme: str = "https") -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.host = host
        self.scheme = scheme
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "ReverseProxy":
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    proxy: ReverseProxy
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(self.proxy.upstream_host,
                                              self.proxy.upstream_port, timeout=60)
        try:
            # skip_host: http.client would otherwise send the upstream address as Host.
            upstream.putrequest(self.command, self.path, skip_host=True,
                                skip_accept_encoding=True)
            upstream.putheader("Host", self.proxy.host)
            for name, value in self.headers.items():
                if name.lower() not in _NOT_FORWARDED:
                    upstream.putheader(name, value)
            upstream.putheader("X-Forwarded-For", self.client_address[0])
            upstream.putheader("X-Forwarded-Proto", self.proxy.scheme)
            upstream.putheader("Content-Length", str(len(body or b"")))
            upstream.endheaders(body)
            resp = upstream.getresponse()
            data = resp.read()
            self.send_response(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in _NOT_FORWARDED:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        pass
