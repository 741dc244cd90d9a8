"""Artifact transfers: a few named files down from a run or model, one file up, and
the listing of a model's folder.

A GET per file, sizes capped before anything parses them; S3 faults of clients that
write to the bucket directly are told apart from files that are not there.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from gate import contract
from gate.errors import GateError, InfraError, InputError
from gate.mlflowstore.session import Session, first_line, short_infra, unreachable
from gate.mlflowstore.s3 import storage_error, storage_errors
from gate.core.domain import StoredFile
from gate.core.redaction import redact_uri


class Artifacts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def fetch(self, location: str, paths: Sequence[str], dest: str) -> Path | None:
        """Download files under an artifact location (a run's artifact_uri, a model's
        storage location) to dest/<path>; dest, or None when one of them is not there.

        The folder is listed first (once for all the files in it): a missing file is
        told from a failing store, and a file over MAX_ARTIFACT_BYTES is refused from
        its listed size before any of it is downloaded. Then one GET per file (MLflow's
        download_artifacts would list every path again to learn if it is a folder).
        """
        base = location.rstrip("/")
        repo = self._repo(base)
        listings: dict[str, dict[str, int | None] | GateError] = {}
        for path in paths:
            folder, _, leaf = path.rpartition("/")
            if folder not in listings:
                listings[folder] = self._sizes(repo, base, folder)
            listed = listings[folder]
            if not isinstance(listed, GateError):
                if leaf not in listed:
                    return None
                size = listed[leaf]
                if size is not None and size > contract.MAX_ARTIFACT_BYTES:
                    # refused from the listing: nothing of it is downloaded
                    raise _too_big(base, path, size)
            local = Path(dest, *PurePosixPath(path).parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                download_one(repo, path, local)
            except Exception as exc:  # each store raises its own types; sorted out here
                if (s3_fault := storage_error(exc, base)) is not None:
                    raise s3_fault from None
                if isinstance(listed, GateError):
                    raise listed from None      # the listing named the fault (no bucket)
                raise InfraError(f"cannot download {path} from "
                                 f"{redact_uri(self.session.uri)}: {short_infra(exc)}") \
                    from None
            if local.stat().st_size > contract.MAX_ARTIFACT_BYTES:
                # a store whose listing gives no size: the download is the check
                local.unlink()
                raise _too_big(base, path, None)
        return Path(dest)

    def list_files(self, location: str) -> list[StoredFile]:
        """Every file under an artifact location, walking its folders; [] when nothing
        is there. At most MAX_MODEL_FILES entries: a listing is bounded like a read."""
        from mlflow.exceptions import MlflowException

        base = location.rstrip("/")
        repo = self._repo(base)
        found: list[StoredFile] = []
        pending: list[str | None] = [None]
        entries = 0
        try:
            with storage_errors(base):
                while pending:
                    for info in repo.list_artifacts(pending.pop()) or []:
                        entries += 1
                        if entries > contract.MAX_MODEL_FILES:
                            raise InputError(f"{redact_uri(base)}: more than "
                                             f"{contract.MAX_MODEL_FILES} files and folders")
                        if info.is_dir:
                            pending.append(info.path)
                        else:
                            found.append(StoredFile(info.path, info.file_size))
        except (MlflowException, OSError) as exc:
            raise InfraError(f"cannot list {redact_uri(base)}: {short_infra(exc)}") from None
        return found

    def _repo(self, base: str) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import \
            get_artifact_repository

        try:
            return get_artifact_repository(base, tracking_uri=self.session.uri)
        except Exception as exc:  # an unknown scheme, a store this client cannot use
            if (s3_fault := storage_error(exc, base)) is not None:
                raise s3_fault from None
            raise InputError(f"cannot read artifacts at {redact_uri(base)[:200]}: "
                             f"{first_line(exc)[:200]}") from None

    def log_file(self, run_id: str, local: Path, folder: str) -> None:
        """Upload one file into a run's artifacts under `folder`."""
        with self.session.errors(f"writing artifacts of run {run_id}",
                                 "EDIT on the experiment (writing run artifacts)"):
            self.session.client.log_artifact(run_id, str(local), artifact_path=folder)

    def _sizes(self, repo: Any, base: str, folder: str
               ) -> dict[str, int | None] | GateError:
        """The files directly under `folder` of the location, with their sizes (None
        when the store does not say): one listing, before anything is downloaded.

        When the store is failing (unreachable, an S3 fault), that fault, unraised: the
        download meets it too and names it as it always did (an S3 HEAD's 403, say);
        only when the download cannot say more is the listing's fault the error."""
        try:
            listed = repo.list_artifacts(folder or None)
        except Exception as exc:  # each store raises its own types; sorted out here
            if (s3_fault := storage_error(exc, base)) is not None:
                return s3_fault
            if unreachable(exc):
                return InfraError(f"cannot list {redact_uri(base)[:200]}: "
                                  f"{short_infra(exc)}")
            where = f"{base}/{folder}" if folder else base
            raise InfraError(f"cannot list {redact_uri(where)[:200]}: "
                             f"{short_infra(exc)}") from None
        return {str(info.path).rstrip("/").rsplit("/", 1)[-1]:
                (int(info.file_size) if info.file_size is not None else None)
                for info in listed or [] if not info.is_dir}


def _too_big(base: str, path: str, size: int | None) -> InputError:
    found = f" ({size} bytes)" if size is not None else ""
    return InputError(f"{redact_uri(base)}/{path}: over the gate's limit of "
                      f"{contract.MAX_ARTIFACT_BYTES} bytes{found}")


def download_one(repo: Any, path: str, local: Path) -> None:
    """One file from an artifact repository, in one request.

    MLflow's public download_artifacts lists the path first to learn whether it is a
    folder, doubling the requests; `_download_file` is the one-file download every
    artifact store implements. It is private: tests/test_artifacts.py fails
    first if MLflow renames it.
    """
    repo._download_file(path, str(local))
