"""The one private MLflow call the gate makes, pinned so an MLflow upgrade fails here first.

`gate.artifacts.download_one` uses `ArtifactRepository._download_file` (one GET per file;
the public download lists the path first). These tests fail as soon as a store the gate
reads from renames it or changes its arguments.
"""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

from gate.mlflowstore.artifacts import download_one


@pytest.mark.parametrize("repo", [LocalArtifactRepository, HttpArtifactRepository,
                                  S3ArtifactRepository])
def test_every_store_the_gate_reads_keeps_the_one_file_download(repo: type) -> None:
    method = getattr(repo, "_download_file", None)
    assert method is not None, f"{repo.__name__} lost _download_file"
    assert list(inspect.signature(method).parameters)[:3] == \
        ["self", "remote_file_path", "local_path"]


def test_download_one_fetches_exactly_one_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "gate").mkdir(parents=True)
    (store / "gate" / "a.txt").write_text("a")
    (store / "gate" / "b.txt").write_text("b")
    repo = get_artifact_repository(store.as_uri())
    download_one(repo, "gate/a.txt", tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text() == "a"
    assert not (tmp_path / "b.txt").exists()
