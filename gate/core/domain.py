"""The gate's domain types: runs and versions as the gate sees them.

Plain frozen data with no MLflow in it, so the pure parts (decide, report) can use them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    name: str
    experiment_id: str
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]
    artifact_uri: str
    start_time: int = 0
    model_id: str | None = None     # the MLflow 3 logged model this run produced


@dataclass(frozen=True)
class Champion:
    version: str
    run: RunInfo
    found_by: str           # "alias" or "stage"; "run" or "version" for --against
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str = ""        # what the version was registered from, e.g. models:/m-...
    run_deleted: bool = False   # its run is gone (`mlflow gc`): `run` holds only the id

    @property
    def label(self) -> str:
        return f"run {self.run.run_id}" if self.found_by == "run" else f"v{self.version}"


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str
    aliases: tuple[str, ...]
    stage: str
    tags: Mapping[str, str]
    created: int
    source: str = ""        # what it was registered from, e.g. models:/m-...


@dataclass(frozen=True)
class StoredFile:
    """One file under an artifact location, as the store lists it."""

    path: str               # relative to the location, POSIX
    size: int | None        # bytes, when the store says


def logged_model_of(source: str) -> str | None:
    """The logged model id of a version registered from `models:/m-...`, else None."""
    prefix = "models:/"
    rest = source[len(prefix):] if source.startswith(prefix) else ""
    return rest if rest.startswith("m-") and "/" not in rest and "@" not in rest else None
