"""The digest of a model's files: what binds a verdict to the bytes it judged.

One SHA-256 over a canonical text, a line `path<TAB>sha256` per file in sorted path
order, so the same files give the same digest whatever order a store lists them in,
and a changed byte, an added, removed or renamed file give another. Pure: it reads
only the folder it is given.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

PREFIX = "sha256:"
# the per-file hashes kept in a version tag are cut to this many hex digits: enough
# to name which file changed (the full digest is what authenticates the set)
SHORT = 16
MAX_FILES_TAG = 4000    # characters: MLflow stores cap tag values at 5000
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ModelDigest:
    value: str                          # "sha256:<hex>" over the canonical text
    files: tuple[tuple[str, str], ...]  # (relative POSIX path, sha256 hex), sorted

    @property
    def short(self) -> str:
        """The digest for people: `sha256:` and 12 hex digits."""
        return self.value[:len(PREFIX) + 12]


def digest_files(files: Mapping[str, str]) -> ModelDigest:
    """The digest of files given as {relative path: sha256 hex}."""
    ordered = tuple(sorted(files.items()))
    text = "".join(f"{path}\t{sha}\n" for path, sha in ordered)
    return ModelDigest(PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest(), ordered)


def digest_folder(folder: Path) -> ModelDigest:
    """The digest of every regular file under `folder` (links are not followed: the
    gate downloads files, a link there is not one of the model's)."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files[path.relative_to(folder).as_posix()] = sha256_of(path)
    return digest_files(files)


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def files_tag(digest: ModelDigest) -> str | None:
    """The file list as a compact version tag ({path: short sha}), or None when it
    would not fit in one: then only the digest is recorded."""
    text = json.dumps({path: sha[:SHORT] for path, sha in digest.files},
                      separators=(",", ":"), sort_keys=True)
    return text if len(text) <= MAX_FILES_TAG else None


def files_from_tag(raw: str | None) -> dict[str, str] | None:
    """The file list a version tag recorded; None for a missing or malformed tag (a
    tag anyone with EDIT on the model may write costs the reader nothing)."""
    if not raw or len(raw) > MAX_FILES_TAG:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return None
    return dict(data)


def changed_files(recorded: Mapping[str, str], digest: ModelDigest) -> tuple[str, ...]:
    """The files that differ from a recorded list: `path (changed|added|removed)`,
    sorted by path."""
    now = {path: sha for path, sha in digest.files}
    found = []
    for path in sorted(set(recorded) | set(now)):
        if path not in now:
            found.append(f"{path} (removed)")
        elif path not in recorded:
            found.append(f"{path} (added)")
        elif not now[path].startswith(recorded[path][:SHORT]) or not recorded[path]:
            found.append(f"{path} (changed)")
    return tuple(found)
