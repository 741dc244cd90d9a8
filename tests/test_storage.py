"""gate/storage.py on the exceptions boto3 and MLflow raise, built as they build them.

The end-to-end behaviour (real moto_server, real processes) is in tests/test_s3_direct.py;
this table pins the classification, the bucket naming and the scrubbing in milliseconds.
"""
from __future__ import annotations

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                 ReadTimeoutError)
from mlflow.exceptions import MlflowException

from gate.errors import InfraError
from gate.mlflowstore.s3 import storage_error, storage_errors

URI = "s3://models-bucket/artifacts/1/abc/artifacts"


def client_error(code: str, operation: str = "PutObject", message: str = "",
                 **extra: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message, **extra}}, operation)


def raised_inside(outer: type[Exception], inner: BaseException, text: str) -> Exception:
    """`outer(text)` raised in the handler of `inner`, as boto3 and MLflow chain them."""
    try:
        try:
            raise inner
        except type(inner):
            raise outer(text)
    except outer as exc:
        return exc


@pytest.mark.parametrize("exc, says", [
    (NoCredentialsError(), "no AWS credentials"),
    (client_error("InvalidAccessKeyId"), "access key is unknown"),
    (client_error("SignatureDoesNotMatch"), "secret key does not match"),
    (client_error("ExpiredToken"), "session token has expired"),
    (client_error("AccessDenied"), "access denied"),
    (client_error("403", "HeadObject"), "access denied (HTTP 403)"),
    (client_error("NoSuchBucket", "ListObjectsV2"), "bucket does not exist"),
    (client_error("SlowDown", "PutObject", "Reduce your request rate."),
     "PutObject failed with SlowDown: Reduce your request rate."),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b/k"), "not reachable"),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"), "did not answer in time"),
    (ModuleNotFoundError("No module named 'boto3'", name="boto3"), "boto3 is not installed"),
])
def test_each_s3_fault_is_one_infra_line_naming_the_bucket(exc: BaseException,
                                                           says: str) -> None:
    found = storage_error(exc, URI)
    assert isinstance(found, InfraError) and found.exit_code == 3
    assert str(found).startswith("S3 bucket 'models-bucket'") and says in str(found)
    assert "\n" not in str(found)


@pytest.mark.parametrize("exc", [
    client_error("404", "HeadObject"),      # a missing file: the caller's question
    client_error("NoSuchKey", "GetObject"),
    ValueError("not S3 at all"),
    MlflowException("RESOURCE_DOES_NOT_EXIST: run 'x' not found"),
])
def test_what_is_not_an_s3_fault_is_left_alone(exc: BaseException) -> None:
    assert storage_error(exc, URI) is None


def test_wrapped_faults_are_found_in_the_chain() -> None:
    # boto3's upload and MLflow's listing raise their own error inside the ClientError's
    # handler; MLflow's even carries RESOURCE_DOES_NOT_EXIST, which reads as exit 2
    upload = raised_inside(S3UploadFailedError, client_error("NoSuchBucket"),
                           "Failed to upload /tmp/x to other-bucket/k: An error occurred "
                           "(NoSuchBucket) when calling the PutObject operation")
    listing = raised_inside(MlflowException, client_error("NoSuchBucket", "ListObjectsV2"),
                            "Failed to list artifacts in s3://b: The bucket does not exist")
    for exc in (upload, listing):
        found = storage_error(exc, URI)
        assert found is not None and "bucket does not exist" in str(found)


@pytest.mark.parametrize("uri, exc, bucket", [
    ("", client_error("NoSuchBucket", BucketName="named-in-error"), "named-in-error"),
    ("", S3UploadFailedError("Failed to upload /tmp/f to up-bucket/a/b: An error "
                             "occurred (AccessDenied) when calling the PutObject "
                             "operation"), "up-bucket"),
    ("http://mlflow:5000", NoCredentialsError(), "(artifact store)"),
])
def test_the_bucket_comes_from_the_uri_else_from_the_error(
        uri: str, exc: BaseException, bucket: str) -> None:
    found = storage_error(exc, uri)
    assert found is not None and f"S3 bucket {bucket!r}" in str(found)


def test_names_the_endpoint_and_never_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t/KEY+value"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "https://user:pw@minio.example.com:9000")
    found = storage_error(client_error("Teapot", "GetObject", f"echoing {secret}"), URI)
    assert found is not None and secret not in str(found) and "***" in str(found)
    assert "at https://minio.example.com:9000:" in str(found) and "pw" not in str(found)


def test_the_context_manager_maps_s3_and_passes_everything_else() -> None:
    with pytest.raises(InfraError, match="no AWS credentials"):
        with storage_errors(URI):
            raise NoCredentialsError()
    with pytest.raises(KeyError):
        with storage_errors(URI):
            raise KeyError("not ours")
