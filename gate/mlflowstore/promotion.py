"""Promotion: register a run's model, move Production to it under a lease, tag it.

MLflow has no compare-and-set, so every move re-reads Production first and takes a
lease (a registered-model tag written, then read back after a settle); the alias is read
back after it moved, since `set_registered_model_alias` is last-writer-wins.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
import warnings
from typing import Any, Iterator, Mapping, Protocol

from gate import contract
from gate.core.config import ModelConfig
from gate.core.domain import RunInfo
from gate.errors import InfraError, InputError
from gate.mlflowstore.session import EDIT, Session, name_filter, quote

LOCK_TAG = contract.LOCK_TAG

CHAMPION_TAG = contract.M_CHAMPION     # registered-model tag: the version last promoted

LOCK_TTL = 30           # seconds a crashed promotion blocks the next (GATE_LOCK_TTL)

LOCK_SETTLE = 0.5       # seconds for a concurrent lock write to land before re-reading


class Checks(Protocol):
    """The reads a write checks against (the registry answers them)."""

    def registered_model(self, name: str) -> Any: ...

    def champion_version(self, model: ModelConfig) -> str | None: ...


class Promotions:
    """The registry's writes; `reads` answers what they check against."""

    def __init__(self, session: Session, reads: Checks) -> None:
        self.reads = reads
        self.session = session
        self.client = session.client

    def register(self, name: str, run: RunInfo) -> str:
        """The run's model as a version of `name`; the same model never becomes two."""
        if not run.model_id:
            raise InputError(f"run {run.run_id} logged no model: nothing to register")
        what = f"run {run.run_id}" if run.run_id else f"logged model {run.model_id}"
        wanted = name_filter(name) + (f" and run_id = '{quote(run.run_id)}'"
                                      if run.run_id else "")
        with self.session.errors(f"registering {what} as model {name!r}", EDIT):
            existing = [mv for mv in self.client.search_model_versions(wanted)
                        if mv.name == name and same_model(mv, run)]
            if existing:
                return str(min(int(mv.version) for mv in existing))
            if self.reads.registered_model(name) is None:
                self.client.create_registered_model(name)
            if run.model_id.startswith("runs:/"):     # logged by an MLflow 2 client
                mv = self.client.create_model_version(name, source=run.model_id,
                                                      run_id=run.run_id, await_creation_for=60)
            else:
                mv = self.client.create_model_version(
                    name, source=f"models:/{run.model_id}", run_id=run.run_id or None,
                    model_id=run.model_id, await_creation_for=60)
        return str(mv.version)

    def move_champion(self, model: ModelConfig, version: str, expected: str | None,
                      tags: Mapping[str, str], stamp: str = contract.V_PROMOTED_AT) -> None:
        """Point the alias (and stage) at `version` if the champion is still `expected`.

        Tags describing the decision go on first; the alias moves last, and is read
        back because set_registered_model_alias is last-writer-wins.
        """
        self.check_unchanged(model, expected)
        with self.session.errors(f"promoting model {model.name!r} v{version}", EDIT):
            for key, value in tags.items():
                self.client.set_model_version_tag(model.name, version, key, value)
            self.client.set_registered_model_alias(model.name, model.alias, version)
            if model.stage:
                with _quiet():
                    self.client.transition_model_version_stage(
                        model.name, version, model.stage, archive_existing_versions=False)
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            after = self.reads.champion_version(model)
            if after != version:
                raise InfraError(f"another promotion of {model.name!r} won the race: "
                                 f"Production is {_named(after)}, not v{version}")
            self.client.set_model_version_tag(model.name, version, stamp, now)
            # survives the version's deletion: a vanished alias is then told from none
            self.client.set_registered_model_tag(model.name, CHAMPION_TAG, version)

    @contextlib.contextmanager
    def promotion_lock(self, name: str) -> Iterator[None]:
        """Hold a lease on moving Production of `name`.

        MLflow has no compare-and-set, so two promotions write their token to a
        registered-model tag, wait for writes in flight to land, and only the one
        whose token survived goes on; a crashed holder's lease expires. The lease is
        released on every way out, Ctrl-C during the settle included.
        """
        ttl = float(os.environ.get("GATE_LOCK_TTL", LOCK_TTL))
        token = f"{uuid.uuid4().hex}:{int(time.time() + ttl)}"
        with self.session.errors(f"locking model {name!r} for promotion", EDIT):
            held = (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG)
            if held and not _expired(held):
                raise InfraError(f"another promotion of {name!r} is in progress (or crashed "
                                 f"less than {ttl:.0f} s ago); nothing was promoted, re-run "
                                 "the gate after it finishes")
        try:
            with self.session.errors(f"locking model {name!r} for promotion", EDIT):
                self.client.set_registered_model_tag(name, LOCK_TAG, token)
                time.sleep(LOCK_SETTLE)
                if (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG) != token:
                    raise InfraError(f"another promotion of {name!r} took the lock first; "
                                     "nothing was promoted, re-run the gate against it")
            yield
        finally:
            self._release(name, token)

    def _release(self, name: str, token: str) -> None:
        # release only our own lease: an expired one may have been taken over. A second
        # Ctrl-C here is let through: the lease then expires after its TTL.
        with contextlib.suppress(Exception):
            if (self.client.get_registered_model(name).tags or {}).get(LOCK_TAG) == token:
                self.client.delete_registered_model_tag(name, LOCK_TAG)

    def check_unchanged(self, model: ModelConfig, expected: str | None) -> None:
        """Raise InfraError if Production is no longer the version the gate compared to."""
        current = self.reads.champion_version(model)
        if current != expected:
            raise InfraError(f"Production of {model.name!r} moved from {_named(expected)} to "
                             f"{_named(current)} while the gate ran; nothing was promoted, "
                             "re-run the gate against the new champion")

    def tag_version(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        with self.session.errors(f"tagging model {name!r} v{version}", EDIT):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

    def tag_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self.session.errors(f"tagging run {run_id!r}",
                                 "EDIT on the run's experiment (the log-runs user has it)"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)


def same_model(mv: Any, run: RunInfo) -> bool:
    """Whether version `mv` holds the candidate's model: the same logged model where the
    version names one, else (registered from a run's path) the same run."""
    source = mv.source or ""
    model_id = getattr(mv, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None)
    if model_id:
        return bool(model_id == run.model_id)
    return bool(run.run_id) and mv.run_id == run.run_id


def _expired(lease: str) -> bool:
    try:
        return int(lease.rsplit(":", 1)[1]) < time.time()
    except (IndexError, ValueError):
        return True


def _named(version: str | None) -> str:
    """A version for an error message: `no version` when there is none."""
    return f"v{version}" if version else "no version"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence MLflow's stage deprecation and registration chatter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
