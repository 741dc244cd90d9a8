"""`gate status` and `gate rollback`: the champion, its history, and the way back."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping, TextIO

from gate import contract
from gate.delivery import deliver
from gate.delivery.outputs import Message, plain, step_outputs
from gate.core.config import Config
from gate.commands import errors
from gate.errors import InfraError, InputError
from gate.commands.check import metrics_from_tag, actor
from gate.core.domain import VersionInfo
from gate.core.ports import Store
from gate.evidence import binding
from gate.evidence.workdir import temp_dir

HISTORY_ROWS = 20


def status(registry: Store, config: Config, out: TextIO, json_path: str | None) -> int:
    model = config.model
    deliver.preflight(deliver.Targets(json_path=json_path), {})
    # the newest rows and one more, to know whether older ones exist: one bounded search
    versions = registry.versions(model.name, newest=HISTORY_ROWS + 1)
    if not versions:
        raise InputError(f"model {model.name!r} has no versions in {registry.uri_safe}")
    champion = registry.champion_version(model)
    # only the champion's files are downloaded and checked (one download); the other
    # rows say whether a digest was recorded, which `verify` checks on demand
    bound, unread = _champion_binding(registry, model.name, champion, versions)
    metric_names = [rule.name for rule in config.metrics]
    rows = [_row(info, champion, metric_names,
                 _files_cell(info, bound if info.version == champion else None,
                             bool(unread) and info.version == champion))
            for info in versions[:HISTORY_ROWS]]
    header = ["version", "aliases", "gate", "files", "promoted at", "replaced", "commit",
              *metric_names]
    text = (f"Model {model.name}: Production (@{model.alias}) is "
            f"{'v' + champion if champion else 'not set'}\n\n"
            + _table(header, [[r[h] for h in header] for r in rows])
            + ("\n(older versions not shown)\n" if len(versions) > HISTORY_ROWS else "")
            + ("\nUNVERIFIED: the gate could not compute that version's predictions (no "
               "sandbox): its numbers are the run's own claims" if any(
                   "UNVERIFIED" in r["gate"] for r in rows) else "")
            + "\nfiles: the champion's are checked against the digest recorded at its "
              "promotion; others show whether one was recorded (`gate verify` checks one)\n"
            + (f"{unread}\n" if unread else ""))
    # a terminal table: no markdown, so no job summary and no step outputs
    document = {"model_name": model.name, "champion_version": champion, "versions": rows}
    deliver.send(Message(plain(text), data=document), deliver.Targets(json_path=json_path),
                 model.name, out)
    if bound is not None and bound.problem is not None:
        raise InputError(f"Production {bound.problem}")
    return 0


def _champion_binding(registry: Store, name: str, champion: str | None,
                      versions: list[VersionInfo]) -> tuple[binding.Binding | None, str]:
    """The champion's files against its digest; when the store cannot give them (the
    table is read from the registry alone), a line saying so instead."""
    if champion is None:
        return None, ""
    info = next((v for v in versions if v.version == champion), None) or \
        registry.version(name, champion)
    try:
        with temp_dir() as tmp:
            return binding.check_version(registry, name, champion, info.tags, info.source,
                                         Path(tmp)), ""
    except InfraError as exc:
        return None, errors.error_line(f"v{champion}'s model files were not checked: {exc}")


def rollback(registry: Store, config: Config, reason: str | None, out: TextIO,
             targets: deliver.Targets = deliver.Targets()) -> int:
    """Move Production back to the version the current champion replaced."""
    model = config.model
    current = registry.champion_version(model)
    if current is None:
        raise InputError(f"model {model.name!r} has no Production version to roll back")
    info = registry.version(model.name, current)
    previous = info.tags.get(contract.V_CHAMPION, "none")
    if previous in ("", "none"):
        raise InputError(f"{model.name} v{current} records no previous champion; choose one "
                         "with `gate promote --version N --force --reason TEXT`")
    target = registry.version(model.name, previous)   # it must still exist
    with temp_dir() as tmp:     # its files first: never roll back to bytes nobody judged
        bound = binding.check_version(registry, model.name, previous, target.tags,
                                      target.source, Path(tmp))
    if bound.problem is not None:
        raise InputError(f"rollback refused, Production stays v{current}: {bound.problem}")
    unchecked = f" ({bound.unrecorded_note})" if bound.recorded is None else ""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with registry.promotions.promotion_lock(model.name):
        registry.promotions.move_champion(
            model, previous, current,
            {contract.V_RESTORED_FROM: current, contract.V_RESTORED_BY: actor()},
            stamp=contract.V_RESTORED_AT)
    registry.promotions.tag_version(model.name, current, {
        contract.V_ROLLED_BACK_AT: now,
        contract.V_ROLLBACK_REASON: (reason or "none given")[:500],
        contract.V_ROLLED_BACK_BY: actor()})
    line = (f"Rolled back {model.name}: Production (@{model.alias}) moved from "
            f"v{current} to v{previous}{unchecked}\n")
    # The action's outputs: the version now in Production and the one it replaced.
    document = {"passed": True, "status": "rolled_back", "model_name": model.name,
                "champion_version": current, "promoted_version": previous,
                "reason": reason or None}
    markdown = (f"Rolled back `{model.name}`: Production (`@{model.alias}`) moved from "
                f"v{current} to v{previous}\n")
    deliver.send(Message(plain(line, markdown), data=document, outputs=step_outputs(document)),
                 targets, model.name, out)
    return 0


def _row(info: VersionInfo, champion: str | None, metrics: list[str],
         files: str) -> dict[str, Any]:
    values = metrics_from_tag(info.tags.get(contract.V_METRICS))
    marker = " ◀" if info.version == champion else ""
    row = {"version": f"v{info.version}{marker}", "aliases": ",".join(info.aliases) or "-",
           "gate": info.tags.get(contract.V_STATUS, "-") + _fate(info.tags) +
           (" (UNVERIFIED)" if info.tags.get(contract.V_VERIFIED) == "false" else ""),
           "files": files,
           "promoted at": info.tags.get(contract.V_PROMOTED_AT, "-"),
           "replaced": _version_cell(info.tags.get(contract.V_CHAMPION)),
           "commit": info.tags.get(contract.V_COMMIT, "-")[:10]}
    for name in metrics:
        value = values.get(name)
        row[name] = f"{value:.4f}" if value is not None else "-"
    return row


def _fate(tags: Mapping[str, str]) -> str:
    """What happened to a version after its promotion, newest last."""
    events = sorted((tags[key], word) for key, word in
                    ((contract.V_ROLLED_BACK_AT, "rolled back"),
                     (contract.V_RESTORED_AT, "restored")) if key in tags)
    return f" ({', '.join(word for _, word in events)})" if events else ""


def _files_cell(info: VersionInfo, bound: binding.Binding | None, unread: bool) -> str:
    """The model files' mark: checked (the champion), else whether a digest is recorded."""
    if contract.V_MODEL_SHA not in info.tags:
        return "no digest"
    if unread:
        return "not checked"
    if bound is None:
        return "digest"
    if bound.matches:
        return "checked"
    return "GONE" if bound.files is None else "CHANGED"


def _version_cell(version: str | None) -> str:
    """A version for the status table: `-` when there is none."""
    return f"v{version}" if version and version != "none" else "-"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines) + "\n"
