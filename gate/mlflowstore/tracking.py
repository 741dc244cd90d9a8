"""Where MLflow lives, and how hard the client tries to reach it."""
from __future__ import annotations

import os
from typing import MutableMapping

from gate.errors import InputError

# MLflow's own default when no tracking URI is set (3.7+; a folder `./mlruns` holding
# file-store data keeps its older default): the gate asks MLflow, this is for messages
MLFLOW_DEFAULT_STORE = "sqlite:///mlflow.db"
DEFAULT_NOTE = "MLFLOW_TRACKING_URI is not set: MLflow's default store"

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


def resolve_tracking_uri(environ: MutableMapping[str, str] = os.environ) -> str:
    """The tracking URI to use: MLFLOW_TRACKING_URI, else the store MLflow itself would use
    in this directory (a trainer that set no URI logged there); in GitHub Actions a
    missing one is an error."""
    uri = environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    if environ.get("GITHUB_ACTIONS") == "true":
        raise InputError("MLFLOW_TRACKING_URI is not set: in CI the gate refuses MLflow's "
                         "default local store, which would see no Production model and pass "
                         "everything")
    return mlflow_default_uri()


def mlflow_default_uri() -> str:
    """MLflow's answer with no tracking URI set: `sqlite:///<cwd>/mlflow.db` since 3.7,
    absolute, so a message names the very file searched."""
    apply_client_defaults()     # before mlflow is imported: some are read at import
    import mlflow

    return str(mlflow.get_tracking_uri())


def store_note(environ: MutableMapping[str, str] = os.environ) -> str:
    """Why this store, for a message that names it: empty when the URI was set."""
    return "" if environ.get("MLFLOW_TRACKING_URI", "").strip() else DEFAULT_NOTE


def apply_client_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    for key, value in CLIENT_DEFAULTS.items():
        environ.setdefault(key, value)
