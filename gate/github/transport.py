"""How the gate talks to GitHub's API: one session, the token on the API host only,
bounded retries with backoff and rate-limit waits, pagination, typed errors.

Retries live in `Transport.request` and nowhere else; every non-2xx answer leaves
this module as a `GitHubError` whose message carries neither the token nor headers.
"""
from __future__ import annotations

import email.utils
import logging
import random
import time
from typing import Any, Callable, Iterator, Mapping

import requests
import requests.auth

from gate.errors import ConfigError, InfraError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8                # next to the time budget, so Retry-After: 0 cannot spin
SECONDARY_RATE_LIMIT_WAIT = 60.0  # GitHub's advice when a secondary limit names no time
# Room for one secondary-rate-limit wait plus the failed attempts and backoffs around it:
# a budget of exactly SECONDARY_RATE_LIMIT_WAIT never retried, as the attempt's own time
# counts too.
DEFAULT_MAX_WAIT = 2 * SECONDARY_RATE_LIMIT_WAIT

_API_VERSION = "2022-11-28"


class GitHubError(InfraError):
    """GitHub refused or could not be reached (exit 3)."""

    def __init__(self, message: str, status: int | None = None, *,
                 transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient      # retried until the time budget ran out


class AmbiguousWrite(GitHubError):
    """A non-idempotent request failed in a way that may still have reached GitHub."""


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class Transport:
    """One authenticated session to one GitHub API, with bounded retries.

    `max_wait` bounds the time spent sleeping between retries and in failed attempts,
    over all requests, so one comment never holds a CI job for long (add at most one
    `timeout` for the last attempt). `sleep` and `jitter` are injectable so tests need
    not wait.
    """

    def __init__(self, api_url: str, token: str, *, timeout: float = 10,
                 max_wait: float = DEFAULT_MAX_WAIT,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random,
                 graphql_url: str | None = None) -> None:
        token = (token or "").strip()
        if not token:
            raise ConfigError("GITHUB_TOKEN is empty: the PR comment needs a token")
        # requests would quote a bad header value, token included, in its own error.
        if not all(33 <= ord(ch) <= 126 for ch in token):
            raise ConfigError("GITHUB_TOKEN contains characters a token cannot have")
        self.api_url = api_url.rstrip("/")
        self.graphql_url = (graphql_url or _graphql_url(self.api_url)).rstrip("/")
        self.timeout = timeout
        self.max_wait = max_wait
        self._token = token
        self._sleep = sleep
        self._jitter = jitter
        self._spent = 0.0
        self._session = requests.Session()
        # Set as the session's auth, so requests never swaps in a ~/.netrc password.
        self._session.auth = _BearerAuth(token)
        self._session.headers.update({
            "Accept": "application/vnd.github+json",
            "User-Agent": "model-gate",
            "X-GitHub-Api-Version": _API_VERSION,
        })

    def close(self) -> None:
        self._session.close()

    def scrub(self, text: str) -> str:
        """The text without the token."""
        return text.replace(self._token, "***")

    def _url(self, path: str) -> str:
        if path.startswith("/"):
            return self.api_url + path
        # Link headers give absolute URLs; the token goes to the API host and nowhere else.
        if path.startswith(self.api_url + "/") or path == self.graphql_url:
            return path
        raise GitHubError("GitHub API: refusing to send the token to a URL outside "
                          f"{self.api_url}")

    def request(self, method: str, path: str, *, idempotent: bool | None = None,
                **kw: Any) -> requests.Response:
        """One API call with retries on 5xx, 429, rate-limit 403 and network errors.

        Waits honour Retry-After and x-ratelimit-reset, else back off exponentially
        with jitter. A POST is not idempotent: when it fails in a way that may have
        reached GitHub (5xx, a lost connection), it is not repeated blindly; after the
        wait the caller gets an AmbiguousWrite and looks before writing again.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method != "POST"
        url = self._url(path)
        where = f"{method} {url.removeprefix(self.api_url).split('?', 1)[0]}"
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        for attempt in range(MAX_ATTEMPTS):
            started = time.monotonic()
            try:
                response = self._session.request(method, url, **kw)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = "timed out" if isinstance(exc, requests.Timeout) else "unreachable"
                last, status = f"GitHub API {problem}: {where}", None
                wait = _backoff(attempt, self._jitter)
                ambiguous = True
            else:
                if response.ok:
                    return response
                status = response.status_code
                last = self.scrub(f"GitHub API: {where} answered {status}{_explain(response)}")
                wait_or_none = _retry_wait(response, attempt, self._jitter)
                if wait_or_none is None:
                    raise GitHubError(last, status)
                wait, ambiguous = wait_or_none, status >= 500
            self._spent += time.monotonic() - started
            if attempt + 1 >= MAX_ATTEMPTS:
                break
            if self._spent + wait > self.max_wait:
                raise GitHubError(f"{last}; gave up after {attempt + 1} attempts (waiting "
                                  f"{wait:.0f} s more would pass {self.max_wait:.0f} s)",
                                  status, transient=True)
            log.warning("%s; retrying in %.1f s", last, wait)
            self._sleep(wait)
            self._spent += wait
            if ambiguous and not idempotent:
                raise AmbiguousWrite(last, status, transient=True)
        raise GitHubError(f"{last}; gave up after {MAX_ATTEMPTS} attempts", status,
                          transient=True)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One GraphQL query (a read: retried like a GET); its `data`, or a GitHubError."""
        response = self.request("POST", self.graphql_url, idempotent=True,
                                json={"query": query, "variables": dict(variables or {})})
        try:
            answer = response.json()
        except ValueError:
            raise GitHubError("GitHub GraphQL answered with no JSON") from None
        if not isinstance(answer, dict):
            raise GitHubError("GitHub GraphQL answered with no object")
        errors = answer.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else {}
            message = first.get("message") if isinstance(first, dict) else None
            text = " ".join(str(message or "an error").split())[:300]
            raise GitHubError(self.scrub(f"GitHub GraphQL: {text}"))
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def pages(self, path: str) -> Iterator[Any]:
        """The items of a listing, page after page (Link: next), each page read once."""
        url: str | None = path
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            response = self.request("GET", url)
            try:
                items = response.json()
            except ValueError:
                raise GitHubError(f"GitHub API: GET {path} answered with no JSON") from None
            if not isinstance(items, list):
                raise GitHubError(f"GitHub API: GET {path} answered with no list")
            yield from items
            url = response.links.get("next", {}).get("url")


def _graphql_url(api_url: str) -> str:
    # api.github.com/graphql, and on GitHub Enterprise Server HOST/api/graphql beside /api/v3
    if api_url.endswith("/api/v3"):
        return api_url[:-len("/v3")] + "/graphql"
    return api_url + "/graphql"


def _backoff(attempt: int, jitter: Callable[[], float]) -> float:
    # Half fixed, half random ("equal jitter"): spreads parallel jobs, keeps a floor.
    base = min(30.0, 2.0 ** attempt)
    return base / 2 + jitter() * base / 2


def _retry_wait(response: requests.Response, attempt: int,
                jitter: Callable[[], float]) -> float | None:
    """Seconds to wait before retrying this answer, or None when retrying is pointless."""
    status = response.status_code
    retry_after = _retry_after(response.headers.get("Retry-After"))
    remaining = response.headers.get("x-ratelimit-remaining")
    reset = response.headers.get("x-ratelimit-reset")
    primary_limit = remaining == "0" and reset is not None
    if status == 403:
        secondary = "secondary rate limit" in response.text.lower()
        if not (secondary or retry_after is not None or primary_limit):
            return None         # a real permission refusal: retrying changes nothing
    elif status != 429 and status < 500:
        return None
    if retry_after is not None:
        return retry_after
    if primary_limit and reset is not None:
        try:
            # +1 s: the reset is whole seconds and our clock may trail GitHub's.
            return max(0.0, float(reset) - time.time()) + 1.0
        except ValueError:
            pass
    if status == 403 or status == 429:
        # Secondary limits without a time: wait a minute, then back off further.
        return max(SECONDARY_RATE_LIMIT_WAIT, _backoff(attempt, jitter))
    return _backoff(attempt, jitter)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _explain(response: requests.Response) -> str:
    """GitHub's own one-line reason, from its JSON error body."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message") or "")]
    for err in data.get("errors") or []:
        if isinstance(err, dict) and err.get("message"):
            parts.append(str(err["message"]))
    text = "; ".join(p for p in parts if p)
    text = " ".join(text.split())[:300]
    return f": {text}" if text else ""
