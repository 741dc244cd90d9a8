"""The one sticky PR comment the gate keeps per model: its body cut to GitHub's size limit,
and finding, creating or editing it without ever leaving two.

The comment is ours when its author is the token's login and its first line is exactly
the marker; a comment a reviewer minimized is left as they left it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from gate.errors import InputError
from gate.github.transport import AmbiguousWrite, GitHubError, Transport

log = logging.getLogger(__name__)

COMMENT_LIMIT = 65536           # GitHub refuses longer issue comments with 422
TRUNCATION_NOTE = "\n\n_Report truncated to fit GitHub's comment size limit; " \
                  "the job summary has the full report._\n"


def fit_comment(full: str, without_details: str, limit: int = COMMENT_LIMIT) -> str:
    """The longest of: the full body, the body without details, a truncated body."""
    if len(full) <= limit:
        return full
    if len(without_details) <= limit:
        return without_details
    if limit <= len(TRUNCATION_NOTE) + 8:
        return TRUNCATION_NOTE.strip()[:limit]
    budget = limit - len(TRUNCATION_NOTE) - 4     # 4: room to close a code fence
    kept = without_details[:budget]
    # Cut at a line end so no table row or link is left half written.
    if "\n" in kept:
        kept = kept[:kept.rindex("\n") + 1]
    # An open fence (a Mermaid chart) would swallow the note and render it as code.
    if sum(1 for line in kept.splitlines() if line.lstrip().startswith("```")) % 2:
        kept += "```"
    return kept.rstrip("\n") + TRUNCATION_NOTE


def check_marker(marker: str) -> None:
    """An InputError unless the marker is one non-empty line."""
    if not marker.strip() or "\n" in marker or "\r" in marker:
        raise InputError("the comment marker must be one non-empty line")


def _marker_line(text: str) -> str:
    # a comment's first line is where the sticky marker sits
    return text.split("\n", 1)[0].rstrip("\r")


def _normalised(text: str) -> str:
    # GitHub may hand bodies back with CRLF line ends; that alone is not a change.
    return text.replace("\r\n", "\n").rstrip("\n")


@dataclass(frozen=True)
class StickyComment:
    """The comment starting with `marker` that `login` keeps on one pull request."""

    api: Transport
    repo: str
    pr: int
    marker: str
    login: str

    def __post_init__(self) -> None:
        check_marker(self.marker)

    def upsert(self, body: str) -> str:
        """Create, update or leave alone the comment: "created", "updated" or "unchanged".

        The marker becomes the first line of the body; keep `body` within
        COMMENT_LIMIT - len(marker) - 1 characters.
        """
        text = body if _marker_line(body) == self.marker else f"{self.marker}\n{body}"
        found = self.find()
        if found is None:
            return self._create(text)
        if _normalised(found.get("body") or "") == _normalised(text):
            return "unchanged"
        self._edit(found, text)
        return "updated"

    def find(self) -> dict[str, Any] | None:
        """The newest of our comments still shown, or None."""
        path = f"/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"
        ours = []
        for comment in self.api.pages(path):
            if not isinstance(comment, dict):
                continue
            author = (comment.get("user") or {}).get("login")
            body = comment.get("body") or ""
            # Only our own comment whose first line is exactly the marker: a
            # "<!-- model-gate:m-v2 -->" or a quote of our marker is someone else's.
            if author == self.login and _marker_line(body) == self.marker:
                ours.append(comment)
        hidden = self._minimized([str(c.get("node_id") or "") for c in ours])
        # A comment a reviewer minimized stays as they left it: the newest one still
        # shown is ours to edit, else a new one is posted.
        shown = [c for c in ours if str(c.get("node_id") or "") not in hidden]
        return shown[-1] if shown else None

    def _minimized(self, node_ids: Sequence[str]) -> set[str]:
        """The node ids among these that are minimized (REST does not say; GraphQL does)."""
        ids = [i for i in node_ids if i]
        if not ids:
            return set()
        try:
            data = self.api.graphql("query($ids: [ID!]!) { nodes(ids: $ids) "
                                    "{ ... on IssueComment { id isMinimized } } }",
                                    {"ids": ids})
        except GitHubError as exc:
            if exc.status not in (403, 404) or exc.transient:
                raise
            return set()        # no GraphQL for this token: edit as before, never fail
        return {str(node.get("id")) for node in data.get("nodes") or []
                if isinstance(node, dict) and node.get("isMinimized") is True}

    def _edit(self, found: dict[str, Any], text: str) -> None:
        self.api.request("PATCH", f"/repos/{self.repo}/issues/comments/{found['id']}",
                         json={"body": text})

    def _create(self, text: str) -> str:
        path = f"/repos/{self.repo}/issues/{self.pr}/comments"
        try:
            self.api.request("POST", path, json={"body": text})
        except AmbiguousWrite as exc:
            # The POST may have landed even though the answer was lost: a blind retry
            # would leave two comments on the PR.
            log.warning("%s; checking whether the comment was created", exc)
            found = self.find()
            if found is None:
                self.api.request("POST", path, json={"body": text}, idempotent=True)
            elif _normalised(found.get("body") or "") != _normalised(text):
                self._edit(found, text)
        return "created"
