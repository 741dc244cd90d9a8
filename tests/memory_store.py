"""An in-memory model store: the ports of `gate.core.ports`, backed by plain data.

Runs, registered models, versions, aliases and tags live in dicts; artifacts are real
files under a folder, so the gate's own readers parse what a trainer would have logged.
Like pip-tools' FakeRepository: the real verdict logic runs against it in milliseconds.
The messages of the writes' checks are the MLflow registry's, so tests read the same.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping, Sequence

from gate import contract
from gate.core.config import ModelConfig
from gate.core.ports import Store
from gate.core.domain import Champion, RunInfo, StoredFile, VersionInfo
from gate.errors import InfraError, InputError

LEGACY_STAGE = "Production"


@dataclass
class Version:
    """One registered model version, as the store keeps it (mutable: it is the state)."""

    name: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    stage: str = "None"
    created: int = 0


@dataclass
class RegisteredModel:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Version] = field(default_factory=dict)


class MemoryArtifacts:
    """Artifact locations are folders under the store's root; a fetch copies files."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.fetched: list[tuple[str, str]] = []     # (location, path), in order

    def fetch(self, location: str, paths: Sequence[str], dest: str) -> Path | None:
        base = Path(location)
        for path in paths:
            self.fetched.append((location, path))
            source = base.joinpath(*PurePosixPath(path).parts)
            if not source.is_file():
                return None
            local = Path(dest, *PurePosixPath(path).parts)
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, local)
        return Path(dest)

    def list_files(self, location: str) -> list[StoredFile]:
        base = Path(location)
        if not base.is_dir():
            return []
        return [StoredFile(path.relative_to(base).as_posix(), path.stat().st_size)
                for path in sorted(base.rglob("*")) if path.is_file()]

    def log_file(self, run_id: str, local: Path, folder: str) -> None:
        if self.store.refuse_uploads:
            raise InfraError(f"writing artifacts of run {run_id}: refused")
        target = Path(self.store.run(run_id).artifact_uri, folder, local.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)


class MemoryPromotions:
    """The writes, with the checks the MLflow registry's promotions make."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        # called inside the lease, before the move: a test's concurrent promotion
        self.before_move: Callable[[], None] | None = None
        # called as the lease is taken, before anything of the move: a test's rewrite
        # of the candidate's files after its check
        self.on_lock: Callable[[], None] | None = None

    def check_unchanged(self, model: ModelConfig, expected: str | None) -> None:
        current = self.store.champion_version(model)
        if current != expected:
            raise InfraError(f"Production of {model.name!r} moved from {_named(expected)} to "
                             f"{_named(current)} while the gate ran; nothing was promoted, "
                             "re-run the gate against the new champion")

    def register(self, name: str, run: RunInfo) -> str:
        if not run.model_id:
            raise InputError(f"run {run.run_id} logged no model: nothing to register")
        registered = self.store.models.setdefault(name, RegisteredModel(name))
        existing = [int(v.version) for v in registered.versions.values()
                    if v.source == f"models:/{run.model_id}"]
        if existing:
            return str(min(existing))
        version = str(len(registered.versions) + 1)
        registered.versions[version] = Version(name, version, run.run_id,
                                               f"models:/{run.model_id}",
                                               created=next(self.store.clock))
        return version

    def move_champion(self, model: ModelConfig, version: str, expected: str | None,
                      tags: Mapping[str, str], stamp: str = contract.V_PROMOTED_AT) -> None:
        if self.before_move is not None:
            self.before_move()
        self.check_unchanged(model, expected)
        registered = self.store.models[model.name]
        entry = registered.versions[version]
        entry.tags.update(tags)
        registered.aliases[model.alias] = version
        if model.stage:
            entry.stage = model.stage
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        entry.tags[stamp] = now
        registered.tags[contract.M_CHAMPION] = version

    @contextlib.contextmanager
    def promotion_lock(self, name: str) -> Iterator[None]:
        tags = self.store.models[name].tags
        if contract.LOCK_TAG in tags:
            raise InfraError(f"another promotion of {name!r} is in progress")
        token = uuid.uuid4().hex
        tags[contract.LOCK_TAG] = token
        try:
            if self.on_lock is not None:
                self.on_lock()
            yield
        finally:
            if tags.get(contract.LOCK_TAG) == token:
                del tags[contract.LOCK_TAG]

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        self.store.models[name].versions[version].tags.update(tags)

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        run = self.store.run(run_id)
        self.store.runs[run_id] = replace(run, tags={**run.tags, **tags})


class MemoryHoldouts:
    """Sealed holdouts: runs of experiments named here (ids "holdout-N")."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.experiments: dict[str, str] = {}
        self.finished: set[str] = set()

    def find(self, experiment: str, sha256: str) -> list[str]:
        found = self.experiments.get(experiment)
        runs = [run for run in self.store.runs.values() if found is not None and
                run.experiment_id == found and run.tags.get(contract.TAG_HOLDOUT_SHA) == sha256]
        return [run.run_id for run in sorted(runs, key=lambda r: r.start_time, reverse=True)]

    def start(self, experiment: str, name: str, tags: Mapping[str, str]) -> str:
        if self.store.refuse_uploads:
            raise InfraError(f"creating a run in experiment {experiment!r}: refused")
        found = self.experiments.setdefault(experiment, f"holdout-{len(self.experiments) + 1}")
        run = self.store.add_run({}, tags)
        self.store.runs[run.run_id] = replace(run, name=name, experiment_id=found)
        return run.run_id

    def finish(self, run_id: str) -> None:
        self.finished.add(run_id)


class MemoryStore:
    """A model store in memory: implements `gate.core.ports.Store`."""

    def __init__(self, root: Path, uri: str = "memory://gate-tests") -> None:
        self.root = root
        self.uri = uri
        self.runs: dict[str, RunInfo] = {}
        self.models: dict[str, RegisteredModel] = {}
        self.logged_models: dict[str, Path] = {}
        self.model_runs: dict[str, RunInfo] = {}    # logged models gated by --model-id
        self.clock = itertools.count(1)
        self.refuse_uploads = False
        self.artifacts = MemoryArtifacts(self)
        self.promotions = MemoryPromotions(self)
        self.holdouts = MemoryHoldouts(self)

    @property
    def uri_safe(self) -> str:
        return self.uri

    # -- building the state ----------------------------------------------------------
    def add_run(self, metrics: Mapping[str, float], tags: Mapping[str, str] = {},
                params: Mapping[str, str] = {}, model_id: str | None = None) -> RunInfo:
        run_id = uuid.uuid4().hex
        folder = self.root / "runs" / run_id
        folder.mkdir(parents=True)
        run = RunInfo(run_id=run_id, name=f"run-{len(self.runs) + 1}", experiment_id="1",
                      metrics=dict(metrics), params=dict(params), tags=dict(tags),
                      artifact_uri=str(folder), start_time=next(self.clock),
                      model_id=model_id)
        self.runs[run_id] = run
        return run

    def add_logged_model(self) -> tuple[str, Path]:
        model_id = f"m-{uuid.uuid4().hex}"
        folder = self.root / "models" / model_id
        folder.mkdir(parents=True)
        self.logged_models[model_id] = folder
        return model_id, folder

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.models[name].aliases[alias] = version

    def delete_version(self, name: str, version: str) -> None:
        registered = self.models[name]
        del registered.versions[version]
        registered.aliases = {a: v for a, v in registered.aliases.items() if v != version}

    # -- the reads -------------------------------------------------------------------
    def run(self, run_id: str) -> RunInfo:
        if run_id not in self.runs:
            raise InputError(f"run '{run_id[:100]}' not found in {self.uri}")
        return self.runs[run_id]

    def logged_model(self, model_id: str) -> RunInfo:
        """A logged model as a candidate: one the store holds under `model_runs`
        (added with `add_logged_model(run=...)`), else not there."""
        if model_id not in self.model_runs:
            raise InputError(f"logged model '{model_id[:100]}' not found in {self.uri}")
        return self.model_runs[model_id]

    def champion(self, model: ModelConfig) -> Champion | None:
        found = self._champion_version(model)
        if found is None:
            return None
        version, found_by = found
        entry = self.models[model.name].versions[version]
        run = self.runs.get(entry.run_id)
        info = run if run is not None else RunInfo(
            run_id=entry.run_id, name="", experiment_id="", metrics={}, params={}, tags={},
            artifact_uri="")
        return Champion(version=version, run=info, found_by=found_by, tags=dict(entry.tags),
                        source=entry.source, run_deleted=run is None)

    def missing_champion(self, model: ModelConfig) -> str | None:
        registered = self.models.get(model.name)
        if registered is None:
            return None
        last = registered.tags.get(contract.M_CHAMPION)
        if last is None:
            promoted = [v.version for v in self.versions(model.name)
                        if contract.V_PROMOTED_AT in v.tags]
            if not promoted:
                return None
            last = promoted[0]
        return (f"Production had versions; the '{model.alias}' alias is gone (the last "
                f"version the gate promoted, v{last}, was deleted or the alias removed)")

    def is_registered(self, name: str) -> bool:
        return name in self.models

    def champion_version(self, model: ModelConfig) -> str | None:
        found = self._champion_version(model)
        return found[0] if found else None

    def _champion_version(self, model: ModelConfig) -> tuple[str, str] | None:
        registered = self.models.get(model.name)
        if registered is None:
            return None
        if model.alias in registered.aliases:
            return registered.aliases[model.alias], "alias"
        stage = model.stage or LEGACY_STAGE
        staged = [int(v.version) for v in registered.versions.values() if v.stage == stage]
        return (str(max(staged)), "stage") if staged else None

    def versions(self, name: str, newest: int | None = None) -> list[VersionInfo]:
        registered = self.models.get(name)
        if registered is None:
            return []
        infos = [self._info(registered, v) for v in registered.versions.values()]
        infos.sort(key=lambda v: int(v.version), reverse=True)
        return infos[:newest] if newest is not None else infos

    def version(self, name: str, version: str) -> VersionInfo:
        registered = self.models.get(name)
        if registered is None or version not in registered.versions:
            raise InputError(f"model {name!r} version {version[:20]} not found")
        return self._info(registered, registered.versions[version])

    @staticmethod
    def _info(registered: RegisteredModel, entry: Version) -> VersionInfo:
        aliases = tuple(sorted(a for a, v in registered.aliases.items() if v == entry.version))
        return VersionInfo(version=entry.version, run_id=entry.run_id, aliases=aliases,
                           stage=entry.stage, tags=dict(entry.tags), created=entry.created,
                           source=entry.source)

    def alias_version(self, name: str, alias: str) -> str | None:
        registered = self.models.get(name)
        if registered is None:
            raise InputError(f"model {name!r} not found in {self.uri}")
        return registered.aliases.get(alias)

    def model_location(self, name: str, version: str, source: str = "") -> str | None:
        entry = self.models[name].versions.get(version)
        source = source or (entry.source if entry else "")
        return self.logged_model_location(source.removeprefix("models:/"))

    def logged_model_location(self, model_id: str) -> str | None:
        folder = self.logged_models.get(model_id)
        return str(folder) if folder is not None else None

    def baseline(self, name: str, spec: str) -> Champion:
        if spec[:1] in "vV" and spec[1:].isdigit():
            info = self.version(name, spec[1:])
            entry = self.models[name].versions[info.version]
            return Champion(version=info.version, run=self.run(info.run_id),
                            found_by="version", tags=info.tags, source=entry.source)
        return Champion(version="", run=self.run(spec), found_by="run")


def _named(version: str | None) -> str:
    return f"v{version}" if version else "no version"


def log_regressor(store: MemoryStore, estimator: Any, train: tuple[Any, Any],
                  evaluation: tuple[Any, Any], target: str = "target",
                  tags: Mapping[str, str] = {}) -> RunInfo:
    """Fit `estimator`, log it as a skops sklearn model and its evaluation as
    `gate.log_evaluation` would (manifest, eval rows, predictions, tags, metrics)."""
    import json

    import numpy as np
    import pandas as pd
    import skops.io
    import yaml
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from gate.evidence.evalset import sha256_file

    X_train, y_train = train
    X_eval, y_eval = evaluation
    estimator.fit(X_train, y_train)
    predicted = np.asarray(estimator.predict(X_eval))
    model_id, model_dir = store.add_logged_model()
    skops.io.dump(estimator, model_dir / "model.skops")
    columns = [{"name": str(c), "type": "double"} for c in X_eval.columns]
    (model_dir / "MLmodel").write_text(yaml.safe_dump({
        # as mlflow.sklearn.log_model records them: serving loads the file with these
        "flavors": {"sklearn": {"serialization_format": "skops",
                                "pickled_model": "model.skops",
                                "skops_trusted_types": skops.io.get_untrusted_types(
                                    file=model_dir / "model.skops")},
                    "python_function": {"loader_module": "mlflow.sklearn",
                                        "model_path": "model.skops"}},
        "signature": {"inputs": json.dumps(columns)}}))

    y = np.asarray(y_eval, dtype=float)
    metrics = {"rmse": float(np.sqrt(mean_squared_error(y, predicted))),
               "mae": float(mean_absolute_error(y, predicted)),
               "r2": float(r2_score(y, predicted))}
    run = store.add_run(metrics, model_id=model_id)
    folder = Path(run.artifact_uri, contract.FOLDER)
    folder.mkdir(parents=True)
    rows = pd.DataFrame(X_eval).reset_index(drop=True).assign(**{target: y})
    rows.to_parquet(Path(run.artifact_uri, contract.EVAL_ROWS), index=False)
    pd.DataFrame({contract.PREDICTION_COLUMN: predicted}).to_parquet(
        Path(run.artifact_uri, contract.PREDICTIONS), index=False)
    manifest = {"contract": contract.VERSION, "task": contract.REGRESSION, "target": target,
                "classes": [], "rows": len(rows), "features": [str(c) for c in rows.columns
                                                               if c != target],
                "row_ids": False, "proba": False}
    Path(run.artifact_uri, contract.MANIFEST).write_text(json.dumps(manifest))
    digest = sha256_file(Path(run.artifact_uri, contract.EVAL_ROWS))
    logged = {contract.TAG_CONTRACT: str(contract.VERSION), contract.TAG_TASK: "regression",
              contract.TAG_TARGET: target, contract.TAG_EVAL_ROWS: str(len(rows)),
              contract.TAG_EVAL_DIGEST: digest[:16], "git.commit": "0" * 40, **tags}
    store.runs[run.run_id] = replace(run, tags=logged)
    return store.runs[run.run_id]


def as_store(store: MemoryStore) -> Store:
    return store        # mypy (tests/memory_store.py is checked with it) vouches for this


def diabetes_split() -> dict[str, Any]:
    """scikit-learn's diabetes set split as the reference trainer splits it."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    frame = load_diabetes(as_frame=True).frame
    X, y = frame.drop(columns="target"), frame["target"]
    X_train, X_eval, y_train, y_eval = train_test_split(X, y, test_size=0.2, random_state=42)
    return {"train": (X_train, y_train), "eval": (X_eval, y_eval)}
