"""The ports between the verdict logic and a model store, in the gate's words.

The evidence and the commands ask these questions and make these writes; the MLflow
store (`gate.mlflowstore.registry.Registry`) answers them, and so does the in-memory
store of the tests. Structural types: an implementation imports nothing from here.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from gate import contract
from gate.core.config import ModelConfig
from gate.core.domain import Champion, RunInfo, StoredFile, VersionInfo


class Reads(Protocol):
    """Runs, versions and the champion, as the gate sees them."""

    @property
    def uri(self) -> str:
        """The store's address, as configured (may hold credentials)."""
        ...

    @property
    def uri_safe(self) -> str:
        """The address with any credentials redacted, for messages."""
        ...

    def run(self, run_id: str) -> RunInfo: ...

    def logged_model(self, model_id: str) -> RunInfo:
        """An MLflow 3 logged model (`m-...`) as a candidate: `model_id` set, its own
        metrics, params and tags; `run_id` its source run's ("" when it has none), and
        `artifact_uri` that run's artifact root, else the model's own location."""
        ...

    def champion(self, model: ModelConfig) -> Champion | None:
        """The version holding the alias (else the legacy stage), or None."""
        ...

    def missing_champion(self, model: ModelConfig) -> str | None:
        """Why there is no champion although the gate promoted one; None if never."""
        ...

    def champion_version(self, model: ModelConfig) -> str | None: ...

    def is_registered(self, name: str) -> bool:
        """Whether a registered model `name` exists (with or without versions)."""
        ...

    def versions(self, name: str, newest: int | None = None) -> list[VersionInfo]:
        """The model's versions, newest first; with `newest`, at most that many."""
        ...

    def version(self, name: str, version: str) -> VersionInfo: ...

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version `alias` points at (no stage fallback); None when it is not set.
        InputError when there is no model `name`."""
        ...

    def model_location(self, name: str, version: str, source: str = "") -> str | None:
        """Where a version's model files are stored; None if the store cannot say."""
        ...

    def logged_model_location(self, model_id: str) -> str | None: ...

    def baseline(self, name: str, spec: str) -> Champion:
        """`--against`: a version (`vN`) of `name`, or any run id, as the champion."""
        ...


class Artifacts(Protocol):
    def fetch(self, location: str, paths: Sequence[str], dest: str) -> Path | None:
        """Files under an artifact location to dest/<path>: dest, or None when one of
        them is not there."""
        ...

    def list_files(self, location: str) -> list[StoredFile]:
        """Every file under an artifact location, recursively; [] when none is there."""
        ...

    def log_file(self, run_id: str, local: Path, folder: str) -> None: ...


class Promotions(Protocol):
    """The writes: each checks what it relies on, since a store has no transactions."""

    def check_unchanged(self, model: ModelConfig, expected: str | None) -> None:
        """Raise InfraError if the champion is no longer `expected`."""
        ...

    def register(self, name: str, run: RunInfo) -> str:
        """The run's model as a version of `name`; the same run never becomes two."""
        ...

    def move_champion(self, model: ModelConfig, version: str, expected: str | None,
                      tags: Mapping[str, str], stamp: str = contract.V_PROMOTED_AT) -> None:
        """Tag `version`, then point the alias at it if the champion is still `expected`;
        the time it moved goes into the tag `stamp` (a rollback keeps the promotion's)."""
        ...

    def promotion_lock(self, name: str) -> AbstractContextManager[None]:
        """A lease on moving the champion of `name`; InfraError if another holds it."""
        ...

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None: ...


class Holdouts(Protocol):
    """Sealed eval sets: runs of an experiment of their own, whose permissions let the
    gate's identity read them and a pull request's not."""

    def find(self, experiment: str, sha256: str) -> list[str]:
        """The ids of the holdout runs of `experiment` tagged with content `sha256`,
        newest first; none when the experiment does not exist."""
        ...

    def start(self, experiment: str, name: str, tags: Mapping[str, str]) -> str:
        """The id of a new run `name` of `experiment` (created if missing), with `tags`."""
        ...

    def finish(self, run_id: str) -> None:
        """Mark the run finished (its files and tags are written)."""
        ...


class Store(Reads, Protocol):
    """One model store: the reads, its artifacts and its writes."""

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def promotions(self) -> Promotions: ...

    @property
    def holdouts(self) -> Holdouts: ...
