"""S3 failures of a client that reads and writes artifacts itself, in the gate's words.

With `mlflow server --no-serve-artifacts --default-artifact-root s3://...` the trainer and
the gate talk to the bucket directly through boto3, and boto3's failures are none of
MLflow's types: a missing key, a wrong secret, a missing bucket or a dead endpoint would
leave as a traceback. `storage_error` turns each into one line that names the bucket and
what failed (exit 3); it never quotes a credential.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator
from urllib.parse import urlsplit

from gate.errors import GateError, InfraError
from gate.core.redaction import redact_uri

# S3 error codes (or bare HTTP statuses: a HEAD response has no body to carry a code)
# and what each means for the person reading the CI log
_REFUSED = {
    "InvalidAccessKeyId": "the access key is unknown to the store: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check "
                             "AWS_SECRET_ACCESS_KEY",
    "ExpiredToken": "the session token has expired: refresh AWS_SESSION_TOKEN",
    "InvalidToken": "the session token was rejected: check AWS_SESSION_TOKEN",
    "AccessDenied": "access denied: the keys may not read or write this bucket",
    "AllAccessDisabled": "access denied: all access to this bucket is disabled",
    "403": "access denied (HTTP 403): wrong keys, or keys that may not use this bucket",
}
_NO_BUCKET = ("NoSuchBucket",)
# A missing object is the caller's question (a model file that is not there), not a fault
_NOT_FOUND = ("NoSuchKey", "404")
_UPLOAD_CODE = re.compile(r"An error occurred \((\w+)\)")
_UPLOAD_TARGET = re.compile(r"Failed to upload .+ to ([^/\s]+)/")


def storage_error(exc: BaseException, uri: str = "") -> InfraError | None:
    """The InfraError for an S3 failure anywhere in exc's chain (MLflow wraps some of
    boto's and chains the rest), else None. `uri` is the artifact location in use, where
    the bucket is named when boto's error does not name it."""
    for link in _chain(exc):
        what = _classify(link)
        if what is not None:
            return InfraError(f"S3 bucket {_bucket(link, uri)!r}{_endpoint()}: "
                              f"{_scrub(what)}")
    return None


@contextlib.contextmanager
def storage_errors(uri: str = "") -> Iterator[None]:
    """Inside, an S3 failure leaves as storage_error's InfraError; anything else as is."""
    try:
        yield
    except GateError:
        raise
    except Exception as exc:
        found = storage_error(exc, uri)
        if found is None:
            raise
        raise found from exc


def _classify(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name in ("boto3", "botocore"):
        return "boto3 is not installed: pip install -r requirements.txt"
    try:
        from botocore import exceptions as bx
    except ImportError:
        return None
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return ("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(the server does not serve artifacts: clients use the bucket themselves)")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError,
                        bx.ConnectionClosedError)):
        return "the S3 endpoint is not reachable (connection refused or timed out)"
    if isinstance(exc, bx.ReadTimeoutError):
        return "the S3 endpoint did not answer in time"
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        return _by_code(str(error.get("Code", "")), exc.operation_name,
                        str(error.get("Message", "")))
    # boto3 re-raises a failed upload as S3UploadFailedError with the code in its text,
    # from within the handler (so the ClientError is also in the chain, as __context__)
    if type(exc).__name__ == "S3UploadFailedError":
        found = _UPLOAD_CODE.search(str(exc))
        return _by_code(found.group(1), "upload", "") if found else None
    return None


def _by_code(code: str, operation: str, message: str) -> str | None:
    if code in _REFUSED:
        return _REFUSED[code]
    if code in _NO_BUCKET:
        return "the bucket does not exist (create it, or fix the artifact root's bucket name)"
    if code in _NOT_FOUND or not code:
        return None
    first = message.strip().splitlines()[0][:200] if message.strip() else ""
    return f"{operation} failed with {code}" + (f": {first}" if first else "")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _bucket(exc: BaseException, uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme in ("s3", "s3a") and parts.netloc:
        return parts.netloc
    response = getattr(exc, "response", None) or {}
    named = response.get("Error", {}).get("BucketName") if isinstance(response, dict) else None
    if named:
        return str(named)
    found = _UPLOAD_TARGET.search(str(exc))
    return found.group(1) if found else "(artifact store)"


def _endpoint() -> str:
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL", "").strip()
    return f" at {redact_uri(endpoint)}" if endpoint else ""


def _scrub(text: str) -> str:
    """Belt and braces: no credential value survives, even inside a store's message."""
    for key in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(key, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text
