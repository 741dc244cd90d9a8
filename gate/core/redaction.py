"""Redaction: what the gate must never print, log, report or post.

Pure: every error path (the CLI's and the workflow helpers') and every report runs its
text through here, so a password in a tracking URI or a token in the environment
cannot reach a log, a job summary or a comment.
"""
from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import urlsplit

MIN_SECRET = 4      # a credential shorter than this would star out ordinary words


# quotes are part of the match: a raw password may hold one
_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s<>]*)")


def redact_uri(text: str) -> str:
    """`text` with the user:password@ part of every URI in it removed, fit for logs.

    The userinfo ends at the authority's LAST '@': a password with a raw '@' (or '/',
    which would end the authority early) is still all removed; when in doubt this cuts
    too much, never too little."""
    return _URI.sub(_without_userinfo, text)


def _without_userinfo(match: re.Match[str]) -> str:
    rest = match["rest"]
    if rest.startswith("/"):        # sqlite:///path, file:///path: no authority at all
        return match[0]
    # the '@' of a userinfo comes before any query or fragment, wherever the path starts
    head = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = head.rfind("@")
    return match["scheme"] + rest[at + 1:] if at >= 0 else match[0]


def secrets_in(environ: Mapping[str, str]) -> list[str]:
    """Every credential the tool can see, to be masked in GitHub's logs."""
    found = [environ.get(key, "") for key in
             ("GITHUB_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "GATE_WEBHOOK_URL")]     # whoever holds the webhook's URL posts to the channel
    uri = environ.get("MLFLOW_TRACKING_URI", "")
    if "@" in uri:
        password = urlsplit(uri).password
        if password:
            found.append(password)
    return [value for value in found if value]


def scrub(text: str, environ: Mapping[str, str]) -> str:
    """`text` with URI credentials and every secret of `environ` replaced by ***."""
    line = redact_uri(text)
    for secret in secrets_in(environ):
        if len(secret) >= MIN_SECRET:    # a credential quoted outside any URI
            line = line.replace(secret, "***")
    return line
