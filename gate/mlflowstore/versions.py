"""Model versions as the gate reads them: the registered model, its versions (newest
first, aliases filled in, from bounded searches) and what an alias points at.

A base of `registry.Registry`, kept apart so each class holds one job.
"""
from __future__ import annotations

from typing import Any

from gate.core.domain import VersionInfo
from gate.errors import InputError, echo
from gate.mlflowstore.session import Session, name_filter

VERSIONS_PAGE = 1000     # model versions per search request


class VersionReads:
    session: Session

    @property
    def uri_safe(self) -> str:
        return self.session.uri_safe

    def is_registered(self, name: str) -> bool:
        return self.registered_model(name) is not None

    def registered_model(self, name: str) -> Any:
        client = self.session.client
        return self.session.or_none(f"model {name!r}", lambda: client.get_registered_model(name),
                                    not_there=("RESOURCE_DOES_NOT_EXIST",))

    def versions(self, name: str, newest: int | None = None) -> list[VersionInfo]:
        """The model's versions, newest first, with aliases filled in; with `newest`,
        only that many, from one bounded search whatever the model's history."""
        registered = self.registered_model(name)
        if registered is None:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        found: list[Any] = []
        token = None
        with self.session.errors(f"versions of model {name!r}"):
            while True:
                page = self.session.client.search_model_versions(
                    name_filter(name), order_by=["version_number DESC"],
                    max_results=min(newest or VERSIONS_PAGE, VERSIONS_PAGE),
                    page_token=token)
                found.extend(mv for mv in page if mv.name == name)
                token = page.token
                if not token or (newest is not None and len(found) >= newest):
                    break
        infos = [VersionInfo(version=str(mv.version), run_id=mv.run_id,
                             aliases=tuple(sorted(by_version.get(str(mv.version), []))),
                             stage=mv.current_stage or "None", tags=dict(mv.tags or {}),
                             created=int(mv.creation_timestamp or 0),
                             source=mv.source or "") for mv in found]
        infos.sort(key=lambda v: int(v.version), reverse=True)
        return infos[:newest] if newest is not None else infos

    def version(self, name: str, version: str) -> VersionInfo:
        with self.session.errors(f"model {name!r} version {echo(version)}"):
            mv = self.session.client.get_model_version(name, version)
        return VersionInfo(version=str(mv.version), run_id=mv.run_id or "",
                           aliases=tuple(mv.aliases or ()),
                           stage=mv.current_stage or "None", tags=dict(mv.tags or {}),
                           created=int(mv.creation_timestamp or 0), source=mv.source or "")

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version `alias` points at, no stage fallback; None when it is not set.
        InputError when there is no model `name`."""
        registered = self.registered_model(name)
        if registered is None:
            raise InputError(f"model {name!r} not found in {self.uri_safe}")
        version = dict(registered.aliases or {}).get(alias)
        return None if version is None else str(version)
