"""`gate verify models:/NAME@ALIAS`: are the files a deployment is about to serve the
ones the gate judged and promoted?

The version's model files are downloaded and digested, and compared with the digest
the promoter recorded on it (`gate.model_sha256`); a deployment step runs this before
it serves. Exit 0 only when they match and the gate promoted the version; 1 when the
files differ or the gate never verified it (a result, on stdout); 2 for a bad
reference, an unknown model, version or alias; 3 for the infrastructure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gate import contract
from gate.core.domain import VersionInfo
from gate.core.ports import Store
from gate.delivery import deliver
from gate.delivery.outputs import Message, plain
from gate.errors import InputError, echo
from gate.evidence import binding
from gate.evidence.workdir import temp_dir

PREFIX = "models:/"
# what gate.status says of a version the gate itself promoted
PROMOTED = ("passed", "first_model", "forced")


@dataclass(frozen=True)
class Reference:
    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.name}@{self.alias}" if self.alias else \
            f"{PREFIX}{self.name}/{self.version}"


def parse(reference: str) -> Reference:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION`; InputError for anything else."""
    usage = "expected models:/NAME@ALIAS or models:/NAME/VERSION"
    if not reference.startswith(PREFIX):
        raise InputError(f"{echo(reference)}: not a model reference ({usage})")
    rest = reference[len(PREFIX):]
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if name and alias and "/" not in alias:
            return Reference(name, alias=alias)
    else:
        name, _, version = rest.rpartition("/")
        if name and version.isascii() and version.isdigit() and len(version) < 12:
            return Reference(name, version=str(int(version)))
    raise InputError(f"{echo(reference)}: not a model reference ({usage})")


@dataclass(frozen=True)
class Verification:
    reference: Reference
    info: VersionInfo
    bound: binding.Binding

    @property
    def promoted(self) -> bool:
        tags = self.info.tags
        return tags.get(contract.V_STATUS) in PROMOTED and contract.V_PROMOTED_AT in tags

    @property
    def verified(self) -> bool:
        return self.promoted and self.bound.matches

    @property
    def line(self) -> str:
        label = f"{self.reference.name} v{self.info.version}"
        if self.verified:
            digest = self.bound.files.digest.short if self.bound.files else ""
            return (f"verified: {label} files match {digest}… (promoted by the gate at "
                    f"{self.info.tags.get(contract.V_PROMOTED_AT)})")
        return f"NOT verified: {self._why(label)}"

    def _why(self, label: str) -> str:
        status = self.info.tags.get(contract.V_STATUS)
        if self.bound.problem is not None:
            return self.bound.problem
        if self.bound.recorded is None:
            return (f"{label} has no model digest recorded by the gate (promoted before "
                    "digests, or never by the gate)")
        if not self.promoted:
            return (f"{label} was never promoted by the gate (gate.status "
                    f"{(status or 'unset')[:40]!r}); its files match what it judged")
        return f"{label}: files do not match"       # unreachable: for completeness

    def document(self) -> dict[str, Any]:
        files = self.bound.files
        return {"reference": self.reference.text, "model_name": self.reference.name,
                "version": self.info.version, "verified": self.verified,
                "promoted_by_gate": self.promoted,
                "gate_status": self.info.tags.get(contract.V_STATUS),
                "promoted_at": self.info.tags.get(contract.V_PROMOTED_AT),
                "recorded_digest": self.bound.recorded,
                "digest": files.digest.value if files else None,
                "changed_files": list(self.bound.changed), "line": self.line}


def verify(registry: Store, reference: str, out: TextIO, json_path: str | None) -> int:
    targets = deliver.Targets(json_path=json_path)
    deliver.preflight(targets, {})
    ref = parse(reference)
    version = ref.version
    if ref.alias is not None:
        version = registry.alias_version(ref.name, ref.alias)
        if version is None:
            raise InputError(f"model {ref.name!r} has no alias {ref.alias!r}")
    assert version is not None
    info = registry.version(ref.name, version)
    with temp_dir() as tmp:
        bound = binding.check_version(registry, ref.name, info.version, info.tags,
                                      info.source, Path(tmp))
    result = Verification(ref, info, bound)
    deliver.send(Message(plain(result.line + "\n"), data=result.document()), targets,
                 ref.name, out)
    return 0 if result.verified else 1
