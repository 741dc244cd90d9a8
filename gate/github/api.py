"""The GitHub client the gate uses: the transport (`transport`), the token's login, pull
requests, and the sticky comment (`comments`), under one object callers hold."""
from __future__ import annotations

import random
import re
import time
from typing import Any, Callable

from gate.errors import InputError
from gate.github.comments import StickyComment, check_marker
from gate.github.transport import DEFAULT_MAX_WAIT, GitHubError, Transport

DEFAULT_BOT_LOGIN = "github-actions[bot]"

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class GitHubClient(Transport):
    """A small GitHub client: the transport's `request` and `graphql`, plus the login
    the token acts as, pull requests and the sticky comment. `login` skips the lookup."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 10,
                 max_wait: float = DEFAULT_MAX_WAIT,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random,
                 login: str | None = None, graphql_url: str | None = None) -> None:
        super().__init__(api_url, token, timeout=timeout, max_wait=max_wait, sleep=sleep,
                         jitter=jitter, graphql_url=graphql_url)
        self._login = login

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r})"

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> str:
        """The login the token comments as."""
        if self._login is None:
            try:
                self._login = str(self.request("GET", "/user").json()["login"])
            except GitHubError as exc:
                # Installation tokens (GITHUB_TOKEN, a GitHub App's) get 403 from /user;
                # GraphQL's viewer names the app's bot, e.g. "my-app[bot]".
                if exc.status not in (403, 404) or exc.transient:
                    raise
                self._login = self._viewer_login()
            except (ValueError, KeyError, TypeError):
                raise GitHubError("GitHub API: GET /user answered without a login") from None
        return self._login

    def _viewer_login(self) -> str:
        try:
            data = self.graphql("query { viewer { login } }")
        except GitHubError as exc:
            if exc.status not in (403, 404) or exc.transient:
                raise
            return DEFAULT_BOT_LOGIN        # no GraphQL here: GITHUB_TOKEN's own author
        login = (data.get("viewer") or {}).get("login")
        if not isinstance(login, str) or not login:
            raise GitHubError("GitHub GraphQL: viewer has no login")
        return login

    def pull_request(self, repo: str, number: int) -> dict[str, Any]:
        """GET /repos/{repo}/pulls/{number}."""
        _check_repo(repo)
        try:
            data = self.request("GET", f"/repos/{repo}/pulls/{int(number)}").json()
        except ValueError:
            raise GitHubError(f"GitHub API: pull request #{number} answered with no JSON") \
                from None
        if not isinstance(data, dict):
            raise GitHubError(f"GitHub API: pull request #{number} answered with no object")
        return data

    def pull_request_files(self, repo: str, number: int) -> list[str]:
        """The paths a pull request changes (renames: both names); GitHub lists 3000 at most."""
        _check_repo(repo)
        paths: list[str] = []
        for item in self.pages(f"/repos/{repo}/pulls/{int(number)}/files?per_page=100"):
            if isinstance(item, dict):
                paths += [str(item[k]) for k in ("filename", "previous_filename")
                          if isinstance(item.get(k), str)]
        return paths

    def upsert_comment(self, repo: str, pr: int, body: str, marker: str) -> str:
        """Create, update or leave alone the one comment that starts with `marker`.

        Returns "created", "updated" or "unchanged". The marker becomes the first line
        of the body; keep `body` within COMMENT_LIMIT - len(marker) - 1 characters.
        """
        _check_repo(repo)
        check_marker(marker)        # before the login lookup: a bad marker costs no request
        return StickyComment(self, repo, pr, marker, self.login()).upsert(body)


def _check_repo(repo: str) -> None:
    if not _REPO.match(repo):
        raise InputError(f"invalid repository {repo!r}: expected OWNER/NAME")
