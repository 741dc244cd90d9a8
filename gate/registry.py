"""All MLflow I/O, answering questions in the gate's words.

Aliases are the primary mechanism; the legacy stage is read as a fallback and moved
only when `[model] stage` is configured. Every MlflowException leaves this module as
a GateError with the exit code it deserves.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from gate import contract
from gate.config import ModelConfig
from gate.domain import Champion, RunInfo, VersionInfo  # noqa: F401 (re-exported)
from gate.errors import GateError, InfraError, InputError
from gate.tracking import apply_client_defaults, redact_uri

LOCK_TAG = contract.LOCK_TAG
LOCK_TTL = 30           # seconds a crashed promotion blocks the next (GATE_LOCK_TTL)
LOCK_SETTLE = 0.5       # seconds for a concurrent lock write to land before re-reading
LEGACY_STAGE = "Production"
VERSIONS_PAGE = 1000     # model versions per search request
# How MLflow says "not there": RESOURCE_DOES_NOT_EXIST, or for a missing alias
# INVALID_PARAMETER_VALUE (HTTP 400)
_NOT_THERE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
T = TypeVar("T")
# The permission a refused call needed, for the error message
READ = "READ on the experiment or the registered model"
EDIT = ("EDIT on the registered model (registering versions, tagging them and moving "
        "aliases)")


class Registry:
    def __init__(self, tracking_uri: str) -> None:
        apply_client_defaults()
        import mlflow
        from mlflow import MlflowClient

        self.uri = tracking_uri
        # set_tracking_uri also resets MLflow's tracer, importing OpenTelemetry's SDK
        # (107 ms by -X importtime at load 10): skip it when MLflow already resolves to
        # this URI (the CLI's case)
        if mlflow.get_tracking_uri() != tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @property
    def uri_safe(self) -> str:
        return redact_uri(self.uri)

    # -- reading -----------------------------------------------------------------

    def run(self, run_id: str) -> RunInfo:
        with self._errors(f"run {run_id!r}"):
            run = self.client.get_run(run_id)
        return _run_info(run)

    def champion(self, model: ModelConfig) -> Champion | None:
        """The version holding the alias, else the one in the legacy stage, else None."""
        # the alias first: one request for the version where the model and then the
        # version take two; only without the alias is the model read for its stages
        mv = self._version_by_alias(model)
        found_by = "alias"
        if mv is None:
            found = self._champion_version(model)
            if found is None:
                return None
            version, found_by = found
            with self._errors(f"model {model.name!r} version {version}"):
                mv = self.client.get_model_version(model.name, version)
        with self._errors(f"model {model.name!r} version {mv.version}"):
            run = self.client.get_run(mv.run_id)
        return Champion(version=str(mv.version), run=_run_info(run), found_by=found_by,
                        tags=dict(mv.tags or {}), source=mv.source or "")

    def _version_by_alias(self, model: ModelConfig) -> Any:
        # a missing alias is INVALID_PARAMETER_VALUE, a missing model "does not exist"
        def by_alias() -> Any:
            return self.client.get_model_version_by_alias(model.name, model.alias)

        return self._or_none(f"model {model.name!r} alias {model.alias!r}", by_alias)

    def champion_version(self, model: ModelConfig) -> str | None:
        found = self._champion_version(model)
        return found[0] if found else None

    def _champion_version(self, model: ModelConfig) -> tuple[str, str] | None:
        registered = self._registered_model(model.name)
        if registered is None:
            return None
        aliases = dict(registered.aliases or {})
        if model.alias in aliases:
            return str(aliases[model.alias]), "alias"
        stage = model.stage or LEGACY_STAGE
        for mv in registered.latest_versions or []:
            if mv.current_stage == stage:
                return str(mv.version), "stage"
        return None

    def _registered_model(self, name: str) -> Any:
        return self._or_none(f"model {name!r}", lambda: self.client.get_registered_model(name),
                             not_there=("RESOURCE_DOES_NOT_EXIST",))

    def versions(self, name: str, newest: int | None = None) -> list[VersionInfo]:
        """The model's versions, newest first, with aliases filled in; with `newest`,
        only that many, from one bounded search whatever the model's history."""
        registered = self._registered_model(name)
        if registered is None:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        found: list[Any] = []
        token = None
        with self._errors(f"versions of model {name!r}"):
            while True:
                page = self.client.search_model_versions(
                    f"name = '{_quote(name)}'", order_by=["version_number DESC"],
                    max_results=min(newest or VERSIONS_PAGE, VERSIONS_PAGE),
                    page_token=token)
                found.extend(page)
                token = page.token
                if not token or (newest is not None and len(found) >= newest):
                    break
        infos = [VersionInfo(version=str(mv.version), run_id=mv.run_id,
                             aliases=tuple(sorted(by_version.get(str(mv.version), []))),
                             stage=mv.current_stage or "None", tags=dict(mv.tags or {}),
                             created=int(mv.creation_timestamp or 0)) for mv in found]
        infos.sort(key=lambda v: int(v.version), reverse=True)
        return infos[:newest] if newest is not None else infos

    def model_location(self, name: str, version: str, source: str = "") -> str | None:
        """Where a version's model files are stored; None if the registry cannot say."""
        model_id = _logged_model_of(source)
        if model_id:    # one request, where the registry's download URI costs two
            return self.logged_model_location(model_id)
        return self._or_none(f"model {name!r} version {version}",
                             lambda: self.client.get_model_version_download_uri(name, version)
                             ) or None

    def logged_model_location(self, model_id: str) -> str | None:
        """Where an MLflow 3 logged model's files are stored; None if it is gone."""
        found = self._or_none(f"logged model {model_id}",
                              lambda: self.client.get_logged_model(model_id))
        return (found.artifact_location or None) if found else None

    def fetch(self, location: str, paths: Sequence[str], dest: str) -> Path | None:
        """Download files under an artifact location (a run's artifact_uri, a model's
        storage location) to dest/<path>; dest, or None when one of them is not there.

        One GET per file: MLflow's download_artifacts first lists every path to learn
        whether it is a folder, which doubles the requests. Only when a download fails
        is the parent listed, to tell a missing file from a failing store.
        """
        from mlflow.store.artifact.artifact_repository_registry import \
            get_artifact_repository

        base = location.rstrip("/")
        repo = get_artifact_repository(base, tracking_uri=self.uri)
        for path in paths:
            local = Path(dest, *PurePosixPath(path).parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                download_one(repo, path, local)
            except Exception as exc:  # each store raises its own types; sorted out here
                if _unreachable(exc) or self._listed(f"{base}/{path}"):
                    raise InfraError(f"cannot download {path} from {redact_uri(self.uri)}: "
                                     f"{_short_infra(exc)}") from None
                return None
            if local.stat().st_size > contract.MAX_ARTIFACT_BYTES:
                raise InputError(f"{redact_uri(base)}/{path}: over the gate's limit of "
                                 f"{contract.MAX_ARTIFACT_BYTES} bytes")
        return Path(dest)

    def baseline(self, name: str, spec: str) -> Champion:
        """`--against`: a version (`vN`) of `name`, or any run, as the comparison's champion."""
        if spec[:1] in "vV" and spec[1:].isascii() and spec[1:].isdigit():
            version = spec[1:]
            with self._errors(f"model {name!r} version {version}"):
                mv = self.client.get_model_version(name, version)
                run = self.client.get_run(mv.run_id)
            return Champion(version=str(mv.version), run=_run_info(run), found_by="version",
                            tags=dict(mv.tags or {}), source=mv.source or "")
        return Champion(version="", run=self.run(spec), found_by="run")

    def log_file(self, run_id: str, local: Path, folder: str) -> None:
        """Upload one file into a run's artifacts under `folder`."""
        with self._errors(f"writing artifacts of run {run_id}",
                          "EDIT on the experiment (writing run artifacts)"):
            self.client.log_artifact(run_id, str(local), artifact_path=folder)

    def _listed(self, uri: str) -> bool:
        """Whether the artifact at `uri` shows in its parent's listing."""
        import mlflow
        from mlflow.exceptions import MlflowException

        parent, _, leaf = uri.rpartition("/")
        try:
            listed = mlflow.artifacts.list_artifacts(artifact_uri=parent, tracking_uri=self.uri)
        except (MlflowException, OSError) as exc:
            raise InfraError(f"cannot list {redact_uri(parent)}: {_short_infra(exc)}") from None
        return any(info.path.rstrip("/").rsplit("/", 1)[-1] == leaf for info in listed or [])

    # -- writing -----------------------------------------------------------------

    def register(self, name: str, run: RunInfo) -> str:
        """The run's model as a version of `name`; the same run never becomes two."""
        if not run.model_id:
            raise InputError(f"run {run.run_id} logged no model: nothing to register")
        with self._errors(f"registering run {run.run_id} as model {name!r}", EDIT):
            existing = self.client.search_model_versions(
                f"name = '{_quote(name)}' and run_id = '{_quote(run.run_id)}'")
            if existing:
                return str(min(int(mv.version) for mv in existing))
            if self._registered_model(name) is None:
                self.client.create_registered_model(name)
            mv = self.client.create_model_version(
                name, source=f"models:/{run.model_id}", run_id=run.run_id,
                model_id=run.model_id, await_creation_for=60)
        return str(mv.version)

    def move_champion(self, model: ModelConfig, version: str, expected: str | None,
                      tags: Mapping[str, str]) -> None:
        """Point the alias (and stage) at `version` if the champion is still `expected`.

        Tags describing the decision go on first; the alias moves last, and is read
        back because set_registered_model_alias is last-writer-wins.
        """
        self.check_unchanged(model, expected)
        with self._errors(f"promoting model {model.name!r} v{version}", EDIT):
            for key, value in tags.items():
                self.client.set_model_version_tag(model.name, version, key, value)
            self.client.set_registered_model_alias(model.name, model.alias, version)
            if model.stage:
                with _quiet():
                    self.client.transition_model_version_stage(
                        model.name, version, model.stage, archive_existing_versions=False)
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            after = self.champion_version(model)
            if after != version:
                raise InfraError(f"another promotion of {model.name!r} won the race: "
                                 f"Production is {_v(after)}, not v{version}")
            self.client.set_model_version_tag(model.name, version, "gate.promoted_at", now)

    @contextlib.contextmanager
    def promotion_lock(self, name: str) -> Iterator[None]:
        """Hold a lease on moving Production of `name`.

        MLflow has no compare-and-set, so two promotions write their token to a
        registered-model tag, wait for writes in flight to land, and only the one
        whose token survived goes on; a crashed holder's lease expires.
        """
        ttl = float(os.environ.get("GATE_LOCK_TTL", LOCK_TTL))
        token = f"{uuid.uuid4().hex}:{int(time.time() + ttl)}"
        with self._errors(f"locking model {name!r} for promotion", EDIT):
            held = (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG)
            if held and not _expired(held):
                raise InfraError(f"another promotion of {name!r} is in progress (or crashed "
                                 f"less than {ttl:.0f} s ago); nothing was promoted, re-run "
                                 "the gate after it finishes")
            self.client.set_registered_model_tag(name, LOCK_TAG, token)
            time.sleep(LOCK_SETTLE)
            if (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG) != token:
                raise InfraError(f"another promotion of {name!r} took the lock first; "
                                 "nothing was promoted, re-run the gate against it")
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                # release only our own lease: an expired one may have been taken over
                if (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG) == token:
                    self.client.delete_registered_model_tag(name, LOCK_TAG)

    def check_unchanged(self, model: ModelConfig, expected: str | None) -> None:
        """Raise InfraError if Production is no longer the version the gate compared to."""
        current = self.champion_version(model)
        if current != expected:
            raise InfraError(f"Production of {model.name!r} moved from {_v(expected)} to "
                             f"{_v(current)} while the gate ran; nothing was promoted, "
                             "re-run the gate against the new champion")

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        with self._errors(f"tagging model {name!r} v{version}", EDIT):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

    def version(self, name: str, version: str) -> VersionInfo:
        with self._errors(f"model {name!r} version {version}"):
            mv = self.client.get_model_version(name, version)
        return VersionInfo(version=str(mv.version), run_id=mv.run_id,
                           aliases=tuple(mv.aliases or ()),
                           stage=mv.current_stage or "None", tags=dict(mv.tags or {}),
                           created=int(mv.creation_timestamp or 0))

    # -- errors ------------------------------------------------------------------

    def _or_none(self, what: str, call: Callable[[], T],
                 not_there: tuple[str, ...] = _NOT_THERE) -> T | None:
        """call(), or None when MLflow answers that the thing is not there; any other
        failure raises as `_errors` maps it."""
        from mlflow.exceptions import MlflowException

        try:
            with self._errors(what):
                return call()
        except InputError as exc:
            cause = exc.__cause__
            if isinstance(cause, MlflowException) and cause.error_code in not_there:
                return None
            raise

    def _errors(self, what: str, needs: str = READ) -> contextlib.AbstractContextManager[None]:
        return mlflow_errors(self.uri, what, needs)


@contextlib.contextmanager
def mlflow_errors(uri: str, what: str, needs: str = READ) -> Iterator[None]:
    """Every MLflow failure inside leaves as a GateError with one line: not there (exit 2),
    refused (exit 3, naming the user and `needs`, the permission that would allow it),
    unreachable or failing (exit 3)."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except GateError:
        raise
    except RestException as exc:
        raise _from_rest(exc, what, uri, needs) from exc
    except MlflowException as exc:
        # basic auth answers 401/403 in plain text: a bare MlflowException, not a
        # RestException, but with the error code set
        if exc.error_code in (*_NOT_THERE, *_REFUSED):
            raise _from_rest(exc, what, uri, needs) from exc
        raise InfraError(f"MLflow at {redact_uri(uri)} failed on {what}: "
                         f"{_short_infra(exc)}") from exc
    except OSError as exc:
        raise InfraError(f"cannot reach MLflow at {redact_uri(uri)} ({what}): "
                         f"{type(exc).__name__}") from exc


_REFUSED = ("PERMISSION_DENIED", "UNAUTHENTICATED")
_BAD_CREDENTIALS = ("the credentials were rejected: check MLFLOW_TRACKING_USERNAME and "
                    "MLFLOW_TRACKING_PASSWORD")


def _from_rest(exc: Any, what: str, uri: str, needs: str) -> GateError:
    code = exc.error_code
    if code in _NOT_THERE:
        return InputError(f"{what}: {_first_line(exc)}")
    status = getattr(exc, "get_http_status_code", lambda: 0)()
    if code in _REFUSED or status in (401, 403):
        status = status if status in (401, 403) else \
            (401 if code == "UNAUTHENTICATED" else 403)
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "")
        who = f" user {user!r}" if user else ""
        hint = _BAD_CREDENTIALS if status == 401 else f"this needs {needs}"
        return InfraError(f"MLflow at {redact_uri(uri)} refused{who} {what} "
                          f"(HTTP {status}): {hint}")
    return InfraError(f"MLflow at {redact_uri(uri)} failed on {what}: {_first_line(exc)}")


def _unreachable(exc: BaseException) -> bool:
    """Unreachable or refused (exit 3): worth no second request to find out more."""
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError)):
        return True
    status = getattr(exc, "get_http_status_code", lambda: 0)()
    # a failed artifact download wraps its cause into the message of an INTERNAL_ERROR
    return status in (401, 403) or any(sign in str(exc) for sign in _UNREACHABLE)


_UNREACHABLE = ("Max retries exceeded", "Failed to establish", "timed out",
                "401 Client Error", "403 Client Error")


def _short_infra(exc: BaseException) -> str:
    text = str(exc)
    if "Max retries exceeded" in text or "Failed to establish" in text:
        return "server not reachable (connection refused or timed out)"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return redact_uri(str(message).strip().splitlines()[0])[:300] if message else \
        type(exc).__name__


def _run_info(run: Any) -> RunInfo:
    data = run.data
    return RunInfo(run_id=run.info.run_id, name=run.info.run_name or "",
                   experiment_id=run.info.experiment_id,
                   metrics={k: _unsaturated(v) for k, v in data.metrics.items()},
                   params=dict(data.params), tags=dict(data.tags),
                   artifact_uri=run.info.artifact_uri, start_time=run.info.start_time or 0,
                   model_id=_model_id(run))


def _unsaturated(value: float) -> float:
    """MLflow's SQL stores save an infinite metric as +-sys.float_info.max: read it back
    as infinite, so an rmse of -inf cannot pass as a very good model."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def _model_id(run: Any) -> str | None:
    outputs = getattr(run, "outputs", None)
    models = getattr(outputs, "model_outputs", None) or []
    return models[-1].model_id if models else None


def _logged_model_of(source: str) -> str | None:
    """The logged model id of a version registered from `models:/m-...`, else None."""
    prefix = "models:/"
    rest = source[len(prefix):] if source.startswith(prefix) else ""
    return rest if rest.startswith("m-") and "/" not in rest and "@" not in rest else None


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _expired(lease: str) -> bool:
    try:
        return int(lease.rsplit(":", 1)[1]) < time.time()
    except (IndexError, ValueError):
        return True


def _v(version: str | None) -> str:
    return f"v{version}" if version else "no version"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence MLflow's stage deprecation and registration chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def download_one(repo: Any, path: str, local: Path) -> None:
    """One file from an artifact repository, in one request.

    MLflow's public download_artifacts lists the path first to learn whether it is a
    folder, doubling the requests; `_download_file` is the one-file download every
    artifact store implements. It is private: tests/test_registry_download.py fails
    first if MLflow renames it.
    """
    repo._download_file(path, str(local))


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="gate-")
