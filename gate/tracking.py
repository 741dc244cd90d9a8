"""Where MLflow lives, and how hard the client tries to reach it."""
from __future__ import annotations

import os
import re
from typing import MutableMapping

from gate.errors import InputError

EMBEDDED_STORE = "sqlite:///mlruns.db"

# MLflow's defaults retry a dead server for minutes; a CI gate should answer in
# under half a minute: 3 retries with backoff 1 s (1 + 2 + 4 s) and a 10 s timeout.
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # MLflow prints run URLs with the tracking URI's user:password@ part
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # MLflow's usage telemetry phones home from CI, and its session id is set and popped
    # in os.environ from a thread: a concurrent artifact download then died on a
    # KeyError('_MLFLOW_TELEMETRY_SESSION_ID') under load (bench/load.py, 1 of 50 checks)
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

# Skops refuses anything not on this list; mlflow's own loader would trust the list
# stored inside the model, which the model's author controls.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


def resolve_tracking_uri(environ: MutableMapping[str, str] = os.environ) -> str:
    """The tracking URI to use; in GitHub Actions a missing one is an error."""
    uri = environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    if environ.get("GITHUB_ACTIONS") == "true":
        raise InputError("MLFLOW_TRACKING_URI is not set: in CI the gate refuses the embedded "
                         "store, which would see no Production model and pass everything")
    return EMBEDDED_STORE


def apply_client_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    for key, value in CLIENT_DEFAULTS.items():
        environ.setdefault(key, value)


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
