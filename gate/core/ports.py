"""The ports between the verdict logic and a model store, in the gate's words.

The evidence and the commands ask these questions and make these writes; the MLflow
store (`gate.mlflowstore.registry.Registry`) answers them, and so does the in-memory
store of the tests. Structural types: an implementation imports nothing from here.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Mapping, Protocol, Sequence

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

    def champion(self, model: ModelConfig) -> Champion | None:
        """The version holding the alias (else the legacy stage), or None."""
        ...

    def missing_champion(self, model: ModelConfig) -> str | None:
        """Why there is no champion although the gate promoted one; None if never."""
        ...

    def champion_version(self, model: ModelConfig) -> str | None: ...

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
                      tags: Mapping[str, str]) -> None:
        """Tag `version`, then point the alias at it if the champion is still `expected`."""
        ...

    def promotion_lock(self, name: str) -> AbstractContextManager[None]:
        """A lease on moving the champion of `name`; InfraError if another holds it."""
        ...

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None: ...


class Store(Reads, Protocol):
    """One model store: the reads, its artifacts and its writes."""

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def promotions(self) -> Promotions: ...
