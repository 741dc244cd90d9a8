"""Reading runs and model versions from MLflow, answering questions in the gate's words.

Aliases are the primary mechanism; the legacy stage is read as a fallback. The writes
live in `promotion` (`registry.promotions`), artifact transfers in `artifacts`
(`registry.artifacts`), the client and error mapping in `session`. Together they
implement `gate.core.ports.Store`.
"""
from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

from gate import contract
from gate.mlflowstore.artifacts import Artifacts
from gate.mlflowstore.holdouts import Holdouts
from gate.core.config import ModelConfig
from gate.core.domain import Champion, RunInfo, VersionInfo, logged_model_of
from gate.errors import InputError, echo
from gate.mlflowstore.session import Session, mlflow_errors, name_filter  # noqa: F401
from gate.mlflowstore.promotion import Promotions
from gate.mlflowstore.versions import VersionReads

if TYPE_CHECKING:
    from gate.core import ports

LEGACY_STAGE = "Production"

# what an MLflow 2 client records of the models a run logged (mlflow.utils.mlflow_tags)
MODEL_HISTORY_TAG = "mlflow.log-model.history"
RUNS_SCHEME = "runs:/"


__all__ = ["Registry", "Champion", "RunInfo", "VersionInfo", "mlflow_errors"]


class Registry(VersionReads):
    """The gate's view of one tracking server: reads here, `promotions` for the writes,
    `artifacts` for files, `holdouts` for sealed eval sets."""

    def __init__(self, tracking_uri: str, note: str = "") -> None:
        """`note`: why this store, for messages that name it (e.g. MLflow's default)."""
        self.session = Session(tracking_uri)
        self.uri = tracking_uri
        self.note = note
        self.artifacts = Artifacts(self.session)
        self.promotions = Promotions(self.session, self)
        self.holdouts = Holdouts(self.session)

    @property
    def client(self) -> Any:
        """The MlflowClient, for a caller with a question the gate has no words for."""
        return self.session.client

    @property
    def where(self) -> str:
        """The store, redacted, and why it is this one: for "not found" messages."""
        return self.uri_safe + (f" ({self.note})" if self.note else "")

    def run(self, run_id: str) -> RunInfo:
        client = self.session.client
        what = f"run '{echo(run_id)}'"      # an id can be 10 KB of junk
        run = self.session.or_none(what, lambda: client.get_run(run_id))
        if run is None:     # a trainer and the gate on different stores, most often
            raise InputError(f"{what} not found in {self.where}")
        return _run_info(run)

    def logged_model(self, model_id: str) -> RunInfo:
        client = self.session.client
        what = f"logged model '{echo(model_id)}'"
        found = self.session.or_none(what, lambda: client.get_logged_model(model_id))
        if found is None:
            raise InputError(f"{what} not found in {self.where}")
        source = found.source_run_id
        # a source run deleted since: the model stands alone, as one logged without a run
        run = self.session.or_none(f"{what}'s run {source}", lambda: client.get_run(source),
                                   not_there=("RESOURCE_DOES_NOT_EXIST",)) if source else None
        return _model_info(found, run)

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
            with self.session.errors(f"model {model.name!r} version {version}"):
                mv = self.session.client.get_model_version(model.name, version)
        # a champion whose run was garbage-collected is still the champion: comparing
        # against it and forcing past it must keep working
        client = self.session.client
        run = self.session.or_none(f"model {model.name!r} version {mv.version}",
                                   lambda: client.get_run(mv.run_id),
                                   not_there=("RESOURCE_DOES_NOT_EXIST",)) \
            if mv.run_id else None
        info = _run_info(run) if run is not None else RunInfo(
            run_id=mv.run_id or "", name="", experiment_id="", metrics={}, params={},
            tags={}, artifact_uri="")
        model_id = logged_model_of(mv.source or "")
        if not mv.run_id and model_id:     # registered from a logged model with no run
            info = self.logged_model(model_id)
        return Champion(version=str(mv.version), run=info, found_by=found_by,
                        tags=dict(mv.tags or {}), source=mv.source or "",
                        run_deleted=bool(mv.run_id) and run is None)

    def missing_champion(self, model: ModelConfig) -> str | None:
        """Why there is no champion although the gate promoted one before (its version
        was deleted, and the alias with it); None when the model never had one."""
        registered = self.registered_model(model.name)
        if registered is None:
            return None
        last = (registered.tags or {}).get(contract.M_CHAMPION)
        if last is None:    # promoted before the gate kept M_CHAMPION
            promoted = [v.version for v in self.versions(model.name)
                        if contract.V_PROMOTED_AT in v.tags]
            if not promoted:
                return None
            last = promoted[0]
        return (f"Production had versions; the '{model.alias}' alias is gone (the last "
                f"version the gate promoted, v{last}, was deleted or the alias removed)")

    def _version_by_alias(self, model: ModelConfig) -> Any:
        # a missing alias is INVALID_PARAMETER_VALUE, a missing model "does not exist"
        def by_alias() -> Any:
            return self.session.client.get_model_version_by_alias(model.name, model.alias)

        return self.session.or_none(f"model {model.name!r} alias {model.alias!r}", by_alias)

    def champion_version(self, model: ModelConfig) -> str | None:
        found = self._champion_version(model)
        return found[0] if found else None

    def _champion_version(self, model: ModelConfig) -> tuple[str, str] | None:
        registered = self.registered_model(model.name)
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

    def model_location(self, name: str, version: str, source: str = "") -> str | None:
        """Where a version's model files are stored; None if the registry cannot say."""
        model_id = logged_model_of(source)
        if model_id:    # one request, where the registry's download URI costs two
            return self.logged_model_location(model_id)
        client = self.session.client
        location = self.session.or_none(
            f"model {name!r} version {version}",
            lambda: client.get_model_version_download_uri(name, version)) or None
        if location and location.startswith(RUNS_SCHEME):   # registered from a 2.x run
            return self.logged_model_location(location)
        return location

    def logged_model_location(self, model_id: str) -> str | None:
        """Where an MLflow 3 logged model's files are stored; None if it is gone. A
        `runs:/` model (logged by an MLflow 2 client) is its own location."""
        if model_id.startswith(RUNS_SCHEME):
            # the run's own artifact location: MLflow 3 resolves a runs:/ URI through the
            # logged-models API, which a 2.x server does not have
            run_id, _, path = model_id[len(RUNS_SCHEME):].strip("/").partition("/")
            run = self.run(run_id)
            return f"{run.artifact_uri.rstrip('/')}/{path}" if path else run.artifact_uri
        client = self.session.client
        found = self.session.or_none(f"logged model {model_id}",
                                     lambda: client.get_logged_model(model_id))
        return (found.artifact_location or None) if found else None

    def baseline(self, name: str, spec: str) -> Champion:
        """`--against`: a version (`vN`) of `name`, or any run, as the comparison's champion."""
        if spec[:1] in "vV" and spec[1:].isascii() and spec[1:].isdigit():
            version = spec[1:]
            with self.session.errors(f"model {name!r} version {version}"):
                mv = self.session.client.get_model_version(name, version)
                model_id = None if mv.run_id else logged_model_of(mv.source or "")
                # a version registered from a logged model with no run is that model
                info = self.logged_model(model_id) if model_id else \
                    _run_info(self.session.client.get_run(mv.run_id or ""))
            return Champion(version=str(mv.version), run=info, found_by="version",
                            tags=dict(mv.tags or {}), source=mv.source or "")
        return Champion(version="", run=self.run(spec), found_by="run")


def _run_info(run: Any) -> RunInfo:
    data = run.data
    return RunInfo(run_id=run.info.run_id, name=run.info.run_name or "",
                   experiment_id=run.info.experiment_id,
                   metrics={k: _unsaturated(v) for k, v in data.metrics.items()},
                   params=dict(data.params), tags=dict(data.tags),
                   artifact_uri=run.info.artifact_uri, start_time=run.info.start_time or 0,
                   model_id=_model_id(run))


def _model_info(model: Any, run: Any) -> RunInfo:
    """A logged model in the shape of a run (see `ports.Reads.logged_model`): the
    latest value of each of its metrics, its source run's tags under its own."""
    latest: dict[str, tuple[int, int, float]] = {}
    for m in model.metrics or []:
        mark = (m.step or 0, m.timestamp or 0, m.value)
        if m.key not in latest or mark[:2] >= latest[m.key][:2]:
            latest[m.key] = mark
    tags = {**(run.data.tags if run is not None else {}), **(model.tags or {})}
    return RunInfo(run_id=run.info.run_id if run is not None else "", name=model.name or "",
                   experiment_id=str(model.experiment_id or ""),
                   metrics={k: _unsaturated(v[2]) for k, v in latest.items()},
                   params=dict(model.params or {}), tags=tags,
                   artifact_uri=run.info.artifact_uri if run is not None
                   else model.artifact_location or "",
                   start_time=int(model.creation_timestamp or 0), model_id=model.model_id)


def _unsaturated(value: float) -> float:
    """MLflow's SQL stores save an infinite metric as +-sys.float_info.max: read it back
    as infinite, so an rmse of -inf cannot pass as a very good model."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def _model_id(run: Any) -> str | None:
    """The run's last logged model: its MLflow 3 id, else (a run an MLflow 2 client logged,
    which has no logged model) the `runs:/` URI of its last model, from the run's
    model history tag: the store resolves either."""
    outputs = getattr(run, "outputs", None)
    models = getattr(outputs, "model_outputs", None) or []
    if models:
        return str(models[-1].model_id)
    try:
        history = json.loads(run.data.tags.get(MODEL_HISTORY_TAG) or "[]")
        path = str(history[-1]["artifact_path"]) if isinstance(history, list) else ""
    except (ValueError, RecursionError, IndexError, KeyError, TypeError):
        return None
    return f"runs:/{run.info.run_id}/{path.strip('/')}" if path.strip("/") else None


if TYPE_CHECKING:
    def _is_a_store(registry: Registry) -> ports.Store:
        return registry     # mypy checks that the registry implements the ports
