"""One MLflow client for one tracking URI, and the mapping of its failures.

Every MlflowException leaves the gate's MLflow code as a GateError with the exit code
it deserves: not there (2), refused or unreachable (3). The reads (`registry`), the
writes (`promotion`) and the artifact transfers (`artifacts`) share this session.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, TypeVar

from gate.errors import GateError, InfraError, InputError
from gate.mlflowstore.s3 import storage_errors
from gate.core.redaction import redact_uri
from gate.mlflowstore.tracking import apply_client_defaults

# How MLflow says "not there": RESOURCE_DOES_NOT_EXIST, or for a missing alias
# INVALID_PARAMETER_VALUE (HTTP 400)
NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

T = TypeVar("T")

# The permission a refused call needed, for the error message
READ = "READ on the experiment or the registered model"

EDIT = ("EDIT on the registered model (registering versions, tagging them and moving "
        "aliases)")


def point_mlflow_at(uri: str) -> None:
    """Make the process's MLflow resolve to `uri` too. MLflow's registry looks a new
    version's `models:/m-...` source up through its global tracking URI, so with the
    embedded store (no MLFLOW_TRACKING_URI) registration would search MLflow's own default
    store and fail. The command line calls this once; a library caller sets its own."""
    import mlflow

    # set_tracking_uri also resets MLflow's tracer (an OpenTelemetry import): only if needed
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)


class Session:
    """The MlflowClient of one tracking URI. MLflow's global tracking URI is left alone:
    every call names its URI, so two sessions in one process do not interfere."""

    def __init__(self, tracking_uri: str) -> None:
        apply_client_defaults()     # before mlflow is imported: some are read at import
        from mlflow import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @property
    def uri_safe(self) -> str:
        return redact_uri(self.uri)

    def or_none(self, what: str, call: Callable[[], T],
                not_there: tuple[str, ...] = NOT_THERE) -> T | None:
        """call(), or None when MLflow answers that the thing is not there; any other
        failure raises as `errors` maps it."""
        from mlflow.exceptions import MlflowException

        try:
            with self.errors(what):
                return call()
        except InputError as exc:
            cause = exc.__cause__
            if isinstance(cause, MlflowException) and cause.error_code in not_there:
                return None
            raise

    def errors(self, what: str, needs: str = READ) -> contextlib.AbstractContextManager[None]:
        return mlflow_errors(self.uri, what, needs)


@contextlib.contextmanager
def mlflow_errors(uri: str, what: str, needs: str = READ) -> Iterator[None]:
    """Every MLflow failure inside leaves as a GateError with one line: not there (exit 2),
    refused (exit 3, naming the user and `needs`, the permission that would allow it),
    unreachable or failing (exit 3)."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        # S3 first: MLflow wraps a missing bucket as "does not exist", which reads as exit 2
        with storage_errors():
            yield
    except GateError:
        raise
    except RestException as exc:
        raise _from_rest(exc, what, uri, needs) from exc
    except MlflowException as exc:
        # basic auth answers 401/403 in plain text: a bare MlflowException, not a
        # RestException, but with the error code set
        if exc.error_code in (*NOT_THERE, *_REFUSED):
            raise _from_rest(exc, what, uri, needs) from exc
        if predates_logged_models(exc):     # asked for an m-... of an MLflow 2 server
            raise InputError(f"{what}: MLflow at {redact_uri(uri)} {OLD_SERVER}; name the "
                             "run with --run-id") from exc
        raise InfraError(f"MLflow at {redact_uri(uri)} failed on {what}: "
                         f"{short_infra(exc)}") from exc
    except OSError as exc:
        raise InfraError(f"cannot reach MLflow at {redact_uri(uri)} ({what}): "
                         f"{type(exc).__name__}") from exc


_REFUSED = ("PERMISSION_DENIED", "UNAUTHENTICATED")

OLD_SERVER = "has no logged models (a server older than MLflow 3)"


def predates_logged_models(exc: BaseException) -> bool:
    """An MLflow 3 client's logged-model request to an MLflow 2 server: no such endpoint."""
    return getattr(exc, "error_code", "") == "ENDPOINT_NOT_FOUND" and \
        "/mlflow/logged-models" in str(exc)


_BAD_CREDENTIALS = ("the credentials were rejected: check MLFLOW_TRACKING_USERNAME and "
                    "MLFLOW_TRACKING_PASSWORD")


def _from_rest(exc: Any, what: str, uri: str, needs: str) -> GateError:
    code = exc.error_code
    if code in NOT_THERE:
        return InputError(f"{what}: {first_line(exc)}")
    status = getattr(exc, "get_http_status_code", lambda: 0)()
    if code in _REFUSED or status in (401, 403):
        status = status if status in (401, 403) else \
            (401 if code == "UNAUTHENTICATED" else 403)
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
        who = f" user {user!r}" if user else ""
        hint = _BAD_CREDENTIALS if status == 401 else f"this needs {needs}"
        return InfraError(f"MLflow at {redact_uri(uri)} refused{who} {what} "
                          f"(HTTP {status}): {hint}")
    return InfraError(f"MLflow at {redact_uri(uri)} failed on {what}: {first_line(exc)}")


def unreachable(exc: BaseException) -> bool:
    """Unreachable or refused (exit 3): worth no second request to find out more."""
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError)):
        return True
    status = getattr(exc, "get_http_status_code", lambda: 0)()
    # a failed artifact download wraps its cause into the message of an INTERNAL_ERROR
    return status in (401, 403) or any(sign in str(exc) for sign in _UNREACHABLE)


_UNREACHABLE = ("Max retries exceeded", "Failed to establish", "timed out",
                "401 Client Error", "403 Client Error")


def short_infra(exc: BaseException) -> str:
    text = str(exc)
    if "Max retries exceeded" in text or "Failed to establish" in text:
        return "server not reachable (connection refused or timed out)"
    return first_line(exc)


def first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return redact_uri(str(message).strip().splitlines()[0])[:300] if message else \
        type(exc).__name__


def quote(value: str) -> str:
    return value.replace("'", "\\'")


def name_filter(name: str) -> str:
    """A search filter matching model `name`; callers keep only exact matches.

    MLflow's filter parser only strips a string's outer quotes and unescapes nothing
    (`'a\\'b'` searches for a backslash), so a name is quoted with the quote it does
    not contain; one with both kinds becomes a LIKE pattern with `_` for each quote."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    return "name LIKE '" + "".join("_" if c in "'\"" else c for c in name) + "'"
