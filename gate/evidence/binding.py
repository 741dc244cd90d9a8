"""The verdict bound to the bytes: a model's folder fetched whole and digested, and a
version's files checked against the digest the promoter recorded on it.

A registered version points at its logged model's artifacts, which anyone with EDIT on
the experiment can overwrite after the check; every use of a promoted version (as the
champion, in the prediction cache, `status`, `rollback`, `verify`) checks its files
here first. The store is reached only through `gate.core.ports`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping

from gate import contract
from gate.core.domain import Champion
from gate.core.ports import Store
from gate.errors import InputError
from gate.evidence.modeldigest import ModelDigest, changed_files, digest_folder, \
    files_from_tag, files_tag

MLMODEL = "MLmodel"


@dataclass(frozen=True)
class Files:
    """A model's files as downloaded, and their digest."""

    folder: Path
    digest: ModelDigest


def fetch_model(store: Store, location: str | None, dest: Path, label: str) -> Files | None:
    """Every file of the model at `location` into `dest` (a fresh folder), and their
    digest; None when no file is there. Sizes are capped from the listing before any
    download, and each file again as it lands."""
    if location is None:
        return None
    # MLmodel first, as the gate always read a model: one GET, and the store's first
    # answer (a missing file, a refused key) reads as it did before the listing
    got = store.artifacts.fetch(location, (MLMODEL,), str(dest)) is not None
    listed = store.artifacts.list_files(location)
    if got and MLMODEL not in {item.path for item in listed}:
        (dest / MLMODEL).unlink()   # gone since: the digest is of what the listing holds
    if not listed:
        return None
    total = 0
    for item in listed:
        parts = PurePosixPath(item.path).parts
        if not parts or PurePosixPath(item.path).is_absolute() or ".." in parts:
            raise InputError(f"{label}: the store lists {item.path[:200]!r}, which is not a "
                             "path inside the model folder")
        if item.size is not None and item.size > contract.MAX_ARTIFACT_BYTES:
            raise InputError(f"{label}: {item.path[:200]} is over the gate's limit of "
                             f"{contract.MAX_ARTIFACT_BYTES} bytes")
        total += item.size or 0
    if total > contract.MAX_MODEL_BYTES:
        raise InputError(f"{label}: its files are over the gate's limit of "
                         f"{contract.MAX_MODEL_BYTES} bytes together")
    rest = [item.path for item in listed if not (got and item.path == MLMODEL)]
    if store.artifacts.fetch(location, rest, str(dest)) is None:
        raise InputError(f"{label}: a listed file could not be downloaded (its files changed "
                         "while the gate read them)")
    return Files(dest, digest_folder(dest))


@dataclass(frozen=True)
class Binding:
    """A version's model files against the digest recorded at its promotion."""

    label: str                      # "diabetes-regressor v3"
    recorded: str | None            # V_MODEL_SHA; None: promoted before digests
    files: Files | None             # None: no file is there any more
    changed: tuple[str, ...] = ()   # which files differ, when the list was recorded

    @property
    def matches(self) -> bool:
        return self.recorded is not None and self.files is not None and \
            self.files.digest.value == self.recorded

    @property
    def problem(self) -> str | None:
        """One line saying how the files differ from the recorded digest; None when
        they match or no digest was recorded."""
        if self.recorded is None or self.matches:
            return None
        if self.files is None:
            return f"{self.label}'s model files are gone (the gate promoted {self.recorded[:19]}…)"
        which = ", ".join(self.changed) if self.changed else \
            "files differ from the digest recorded at promotion"
        return (f"{self.label}'s model files changed since the gate promoted it: "
                f"{which[:400]} (now {self.files.digest.short}…, recorded "
                f"{self.recorded[:19]}…)")

    @property
    def unrecorded_note(self) -> str:
        return (f"{self.label} was promoted before the gate recorded model digests: its "
                "files are not checked")


def bind(tags: Mapping[str, str], files: Files | None, label: str) -> Binding:
    """Compare downloaded files with what a version's tags recorded."""
    recorded = tags.get(contract.V_MODEL_SHA) or None
    listed = files_from_tag(tags.get(contract.V_MODEL_FILES))
    changed: tuple[str, ...] = ()
    if recorded and files is not None and files.digest.value != recorded and listed:
        changed = changed_files(listed, files.digest)
    return Binding(label, recorded, files, changed)


def check_version(store: Store, name: str, version: str, tags: Mapping[str, str],
                  source: str, dest: Path) -> Binding:
    """A registered version's files, downloaded and compared with its recorded digest."""
    label = f"{name} v{version}"
    files = fetch_model(store, store.model_location(name, version, source), dest, label)
    return bind(tags, files, label)


def champion_files(store: Store, name: str, champion: Champion,
                   dest: Path) -> tuple[Files | None, tuple[str, ...]]:
    """The champion's model files, checked against its version's digest before anything
    of it is used (its cached predictions included): InputError (exit 2) when they
    changed since its promotion, never a silent re-score. None when they are gone (its
    cached predictions may still pair the check); notes for the report."""
    if champion.found_by == "run":      # --against a run: no version vouches for it
        location = store.logged_model_location(champion.run.model_id) \
            if champion.run.model_id else None
        return fetch_model(store, location, dest, f"run {champion.run.run_id}"), ()
    binding = check_version(store, name, champion.version, champion.tags, champion.source,
                            dest)
    if binding.files is None:       # deleted, not swapped: nothing can serve it either
        return None, (f"{binding.label}'s model files are gone: it cannot be served, and "
                      "only its cached predictions can pair this check",)
    if binding.recorded is None:
        return binding.files, (binding.unrecorded_note,)
    if binding.problem is not None:
        raise InputError(f"champion {binding.problem}; the check stops (restore the files, "
                         "or promote or roll back to a version that verifies)")
    return binding.files, ()


def version_tags(digest: ModelDigest) -> dict[str, str]:
    """What the promoter records on a version: the digest, and the files if they fit."""
    tags = {contract.V_MODEL_SHA: digest.value}
    listed = files_tag(digest)
    if listed is not None:
        tags[contract.V_MODEL_FILES] = listed
    return tags


def changed_since(store: Store, name: str, version: str, digest: ModelDigest,
                  dest: Path) -> tuple[str, ...]:
    """The files of a just-registered version that differ from those the check digested
    (read again, whole: correctness over speed); () when every byte is the same."""
    label = f"{name} v{version}"
    files = fetch_model(store, store.model_location(name, version), dest, label)
    if files is None:
        return ("every file (gone)",)
    if files.digest.value == digest.value:
        return ()
    return changed_files(dict(digest.files), files.digest) or \
        ("files differ from the digest taken at the check",)
