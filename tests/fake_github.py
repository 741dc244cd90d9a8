"""A local stand-in for the parts of GitHub's REST API the gate uses.

Data-backed, not scripted: comments and pull requests live in memory, pagination
follows GitHub's rules (per_page up to 100, RFC 5988 Link headers), GraphQL answers the
two queries the gate sends (`viewer { login }`, and `nodes(ids:)` for a comment's
`isMinimized`), and faults are queued to test retries. Register the `fake_github`
fixture with `pytest_plugins = ["tests.fake_github"]`.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

COMMENT_LIMIT = 65536
INSTALLATION_LOGIN = "github-actions[bot]"
FAKE_TOKEN = "ghs_FakeTokenThatMustNeverBePrinted0123"


@dataclass
class LoggedRequest:
    method: str
    path: str                       # without the query string
    query: dict[str, str]
    status: int
    body: Any                       # parsed JSON body, or None
    headers: dict[str, str]         # lower-case names; Authorization is left out


@dataclass
class _Fault:
    status: int | None              # None: answer normally, only late
    headers: dict[str, str]
    body: Any
    times: int
    delay: float
    method: str | None
    drop: bool = False


@dataclass
class _Comment:
    id: int
    repo: str
    issue: int
    login: str
    body: str
    created_at: str
    updated_at: str
    minimized: bool = False

    def as_json(self, base: str) -> dict[str, Any]:
        owner, name = self.repo.split("/")
        return {
            "id": self.id,
            "node_id": f"IC_{self.id}",
            "url": f"{base}/repos/{self.repo}/issues/comments/{self.id}",
            "html_url": f"https://github.com/{owner}/{name}/pull/{self.issue}"
                        f"#issuecomment-{self.id}",
            "user": {"login": self.login,
                     "type": "Bot" if self.login.endswith("[bot]") else "User"},
            "body": self.body,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class _Pull:
    number: int
    head_sha: str
    head_ref: str
    head_repo: str
    base_ref: str
    files: list[str]
    state: str = "open"


@dataclass
class FakeGitHub:
    """GitHub's REST API for /user, issue comments and pull requests, and GraphQL, on
    127.0.0.1 and a free port."""

    token: str = FAKE_TOKEN
    login: str = "gate-bot"
    installation: bool = False      # /user answers 403 as it does for GITHUB_TOKEN
    app_login: str | None = None    # with installation: a GitHub App's bot, not Actions'
    graphql: bool = True            # False: /graphql is not there (404)
    link_base: str | None = None    # put another host in Link headers
    requests: list[LoggedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._comments: list[_Comment] = []
        self._pulls: dict[tuple[str, int], _Pull] = {}
        self._faults: list[_Fault] = []
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> FakeGitHub:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "use FakeGitHub as a context manager"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def author(self) -> str:
        """The login the token's comments are authored by."""
        if self.installation:
            return self.app_login or INSTALLATION_LOGIN
        return self.login

    # --- state --------------------------------------------------------------------------
    def add_comment(self, repo: str, issue: int, body: str, login: str | None = None) -> int:
        """Seed a comment, by default by someone else."""
        with self._lock:
            return self._add(repo, issue, body, login or "someone-else")

    def _add(self, repo: str, issue: int, body: str, login: str) -> int:
        self._next_id += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._comments.append(_Comment(self._next_id, repo, issue, login, body, stamp, stamp))
        return self._next_id

    def minimize(self, comment_id: int) -> None:
        """Hide a comment as a reviewer would ("outdated", "off topic")."""
        with self._lock:
            for comment in self._comments:
                if comment.id == comment_id:
                    comment.minimized = True

    def add_pull(self, repo: str, number: int, *, head_sha: str, head_ref: str = "feature",
                 head_repo: str | None = None, base_ref: str = "main",
                 files: list[str] | None = None, state: str = "open") -> None:
        with self._lock:
            self._pulls[(repo, number)] = _Pull(number, head_sha, head_ref, head_repo or repo,
                                                base_ref, list(files or []), state)

    def comments(self, repo: str, issue: int) -> list[dict[str, Any]]:
        with self._lock:
            return [c.as_json(self.url) for c in self._comments
                    if c.repo == repo and c.issue == issue]

    def writes(self) -> list[LoggedRequest]:
        """Requests that changed something (POST and PATCH that succeeded; GraphQL
        queries are POSTs that change nothing)."""
        return [r for r in self.requests if r.method in ("POST", "PATCH")
                and 200 <= r.status < 300 and r.path != "/graphql"]

    # --- faults -------------------------------------------------------------------------
    def fail_next(self, status: int, headers: dict[str, str] | None = None,
                  body: Any = None, times: int = 1, *, delay: float = 0.0,
                  method: str | None = None) -> None:
        """Answer the next `times` requests (of `method`, if given) with `status`."""
        self._queue(_Fault(status, dict(headers or {}), body, times, delay, method))

    def delay_next(self, seconds: float, times: int = 1, *, method: str | None = None) -> None:
        """Handle the next requests normally but answer late: the write lands, the
        client may time out first (the ambiguous case)."""
        self._queue(_Fault(None, {}, None, times, seconds, method))

    def drop_next(self, times: int = 1, *, method: str | None = None) -> None:
        """Close the connection without answering."""
        self._queue(_Fault(None, {}, None, times, 0.0, method, drop=True))

    def _queue(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (None, method):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- the API ------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], auth: str,
               payload: Any) -> tuple[int, dict[str, str], Any]:
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, {}, {"message": "Bad credentials"}
        parts = path.strip("/").split("/")
        if parts == ["graphql"] and method == "POST":
            return self._graphql(payload)
        if len(parts) >= 5 and parts[0] == "repos" and parts[3] == "pulls" \
                and parts[4].isdigit() and method == "GET":
            return self._pull(f"{parts[1]}/{parts[2]}", int(parts[4]), parts[5:], path, query)
        if method == "GET" and parts == ["user"]:
            if self.installation:
                return 403, {}, {"message": "Resource not accessible by integration"}
            return 200, {}, {"login": self.login, "id": 1, "type": "User"}
        if len(parts) == 6 and parts[0] == "repos" and parts[3:6:2] == ["issues", "comments"] \
                and parts[4].isdigit():
            repo, issue = f"{parts[1]}/{parts[2]}", int(parts[4])
            if method == "GET":
                return self._list(repo, issue, path, query)
            if method == "POST":
                return self._write(repo, issue, None, payload)
        if len(parts) == 6 and parts[0] == "repos" and parts[3:5] == ["issues", "comments"] \
                and parts[5].isdigit() and method == "PATCH":
            return self._write(f"{parts[1]}/{parts[2]}", None, int(parts[5]), payload)
        return 404, {}, {"message": "Not Found"}

    def _graphql(self, payload: Any) -> tuple[int, dict[str, str], Any]:
        if not self.graphql:
            return 404, {}, {"message": "Not Found"}
        query = payload.get("query") if isinstance(payload, dict) else None
        variables = (payload.get("variables") if isinstance(payload, dict) else None) or {}
        if not isinstance(query, str):
            return 200, {}, {"errors": [{"message": "A query attribute must be specified"}]}
        if "viewer" in query:
            return 200, {}, {"data": {"viewer": {"login": self.author}}}
        if "nodes(ids:" in query and isinstance(variables.get("ids"), list):
            with self._lock:
                by_node = {f"IC_{c.id}": c for c in self._comments}
            nodes = [{"id": i, "isMinimized": by_node[i].minimized} if i in by_node else None
                     for i in variables["ids"]]
            return 200, {}, {"data": {"nodes": nodes}}
        return 200, {}, {"errors": [{"message": "this fake does not know that query"}]}

    def _pull(self, repo: str, number: int, rest: list[str], path: str,
              query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            pull = self._pulls.get((repo, number))
        if pull is None or rest not in ([], ["files"]):
            return 404, {}, {"message": "Not Found"}
        if rest == ["files"]:
            items = [{"filename": name, "status": "modified"} for name in pull.files]
            return self._page(items, path, query)
        owner = pull.head_repo.split("/")[0]
        return 200, {}, {"number": pull.number, "state": pull.state,
                         "head": {"sha": pull.head_sha, "ref": pull.head_ref,
                                  "repo": {"full_name": pull.head_repo,
                                           "owner": {"login": owner}}},
                         "base": {"ref": pull.base_ref, "repo": {"full_name": repo}}}

    def _list(self, repo: str, issue: int, path: str,
              query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            items = [c.as_json(self.url) for c in self._comments
                     if c.repo == repo and c.issue == issue]
        return self._page(items, path, query)

    def _page(self, items: list[Any], path: str,
              query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        try:
            per_page = min(100, max(1, int(query.get("per_page", "30"))))
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            return 422, {}, {"message": "Invalid request"}
        last = max(1, math.ceil(len(items) / per_page))
        base = f"{self.link_base or self.url}{path}?per_page={per_page}&page="
        links = []
        if page < last:
            links += [f'<{base}{page + 1}>; rel="next"', f'<{base}{last}>; rel="last"']
        if page > 1:
            links += [f'<{base}{page - 1}>; rel="prev"', f'<{base}1>; rel="first"']
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, headers, items[(page - 1) * per_page:page * per_page]

    def _write(self, repo: str, issue: int | None, comment_id: int | None,
               payload: Any) -> tuple[int, dict[str, str], Any]:
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, str) or not body:
            return 422, {}, {"message": "Validation Failed",
                             "errors": [{"resource": "IssueComment", "code": "missing_field",
                                         "field": "body"}]}
        if len(body) > COMMENT_LIMIT:
            return 422, {}, {"message": "Validation Failed",
                             "errors": [{"resource": "IssueComment", "code": "custom",
                                         "field": "body", "message": "body is too long "
                                         f"(maximum is {COMMENT_LIMIT} characters)"}]}
        with self._lock:
            if issue is not None:
                new_id = self._add(repo, issue, body, self.author)
                comment = self._comments[-1]
                return 201, {"Location": f"{self.url}/repos/{repo}/issues/comments/{new_id}"}, \
                    comment.as_json(self.url)
            for comment in self._comments:
                if comment.repo == repo and comment.id == comment_id:
                    comment.body = body
                    comment.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    return 200, {}, comment.as_json(self.url)
        return 404, {}, {"message": "Not Found"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub

    def log_message(self, format: str, *args: Any) -> None:   # keep test output clean
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        headers = {k.lower(): v for k, v in self.headers.items()
                   if k.lower() != "authorization"}
        fault = self.fake._take_fault(self.command)
        if fault is not None and fault.drop:
            self.close_connection = True
            return
        if fault is not None and fault.status is not None:
            status, extra = fault.status, fault.headers
            body = fault.body if fault.body is not None else {"message": f"fault {status}"}
        else:
            status, extra, body = self.fake.handle(
                self.command, split.path, query, self.headers.get("Authorization", ""), payload)
        self.fake.requests.append(
            LoggedRequest(self.command, split.path, query, status, payload, headers))
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass                    # the client gave up waiting: that was the point

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server
