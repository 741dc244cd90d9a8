"""Gather the evidence for a verdict: both models scored on rows the candidate did not pick.

Which rows is `gate.rowsource`'s job, whose predictions `gate.scoring`'s; here they are
put together, and when no pairing is possible the logged metrics are the fallback, with
the reason travelling into the report and the JSON.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate import contract
from gate.evidence import rows as rowsource
from gate.evidence import scoring
from gate.core.config import Config
from gate.core.decide import Evidence
from gate.core.domain import Champion, RunInfo
from gate.mlflowstore.registry import Registry, temp_dir
from gate.evidence.rows import Fallback, Rows
from gate.evidence.scoring import Side

__all__ = ["Fallback", "Gathered", "Rows", "Side", "cache_digest", "gather"]


@dataclass(frozen=True)
class Gathered:
    evidence: Evidence
    notes: tuple[str, ...]
    eval_rows: int | None
    data_changed: bool
    candidate: Side = field(default_factory=lambda: Side("candidate"))
    champion: Side | None = None
    rows: Rows | None = None
    # the gate's own predictions of the candidate on `rows`, as Parquet: kept at
    # promotion so the next check can skip re-scoring this model
    cache: bytes | None = None


def gather(registry: Registry, config: Config, candidate: RunInfo,
           champion: Champion | None) -> Gathered:
    notes = list(_lineage_notes(candidate, champion))
    data_changed = any(note.startswith("eval data changed") for note in notes)
    base: dict[str, Any] = {"candidate_run_id": candidate.run_id,
                            "candidate_metrics": candidate.metrics}
    if champion is not None:
        base.update(champion_version=champion.version or champion.label,
                    champion_metrics=champion.run.metrics)
        if champion.found_by == "stage":
            notes.append(f"champion v{champion.version} found by the legacy "
                         f"'{config.model.stage or 'Production'}' stage: no "
                         f"'{config.model.alias}' alias is set")
    with temp_dir() as tmp:
        work = Path(tmp)
        cand_model = scoring.run_model(registry, config, candidate.model_id,
                                       work / "candidate-model",
                                       f"candidate model of run {candidate.run_id}")
        flavor = cand_model.info.key if cand_model else ""
        cand_side = Side("candidate", cand_model.info.description if cand_model else "",
                         flavor)
        try:
            cand_eval = rowsource.run_evaluation(registry, candidate, work / "candidate",
                                                 f"run {candidate.run_id}")
            rows, chosen = rowsource.chosen_rows(registry, config, champion, cand_eval, work, notes)
        except Fallback as why:
            return _fallback(base, str(why), notes, candidate, cand_side, flavor,
                             data_changed)
        notes.extend(rowsource.rows_differ(chosen, cand_eval, rows))
        task = scoring.task_of(config, chosen)
        try:
            cand_out, cand_side = scoring.predictions(cand_model, cand_eval, chosen, task,
                                                      cand_side, config, "the candidate")
        except Fallback as why:
            return _fallback(base, str(why), notes, candidate, cand_side, flavor,
                             data_changed, rows)
        cache = scoring.cache_bytes(cand_out) if cand_side.verified else None
        common: dict[str, Any] = {"notes": tuple(notes), "eval_rows": rows.count,
                                  "data_changed": data_changed, "candidate": cand_side,
                                  "rows": rows, "cache": cache}
        verified: dict[str, Any] = {"candidate_verified": cand_side.verified,
                                    "candidate_flavor": flavor}
        if champion is None:
            computed = scoring.computed_metrics(config, chosen.y, cand_out, task)
            return Gathered(Evidence(**base, **verified, candidate_computed=computed),
                            **common)
        champ_side = Side("champion")
        try:
            champ_out, champ_side = scoring.champion_predictions(registry, config, champion, chosen,
                                                                 task, work, notes)
            paired = scoring.paired(config, chosen.y, champ_out, cand_out, task)
        except Fallback as why:
            return _fallback(base, str(why), notes, candidate, cand_side, flavor,
                             data_changed, rows, champ_side)
    unpaired = [rule.name for rule in config.metrics if rule.name not in paired]
    if unpaired:
        notes.append(f"no per-row scorer for {', '.join(unpaired)}: logged values compared")
    evidence = Evidence(**base, **verified, paired=paired,
                        champion_verified=champ_side.verified)
    return Gathered(evidence, **{**common, "notes": tuple(notes)}, champion=champ_side)


def _fallback(base: dict[str, Any], reason: str, notes: list[str], candidate: RunInfo,
              cand_side: Side, flavor: str, data_changed: bool, rows: Rows | None = None,
              champ_side: Side | None = None) -> Gathered:
    notes.append(f"compared logged metrics (not the same rows): {reason}")
    champion_known = base.get("champion_version") is not None
    evidence = Evidence(**base, fallback_reason=reason, candidate_verified=False,
                        champion_verified=False if champion_known else None,
                        candidate_flavor=flavor)
    how = "logged metrics only"
    return Gathered(evidence, tuple(notes), rows.count if rows else _rows_tag(candidate),
                    data_changed, Side("candidate", cand_side.model, flavor, False, how),
                    Side("champion", champ_side.model if champ_side else "", "", False, how)
                    if champion_known else None, rows)


def cache_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lineage_notes(candidate: RunInfo, champion: Champion | None) -> list[str]:
    if champion is None:
        return []
    notes = []
    for tag, what in ((contract.TAG_EVAL_DIGEST, "eval data"),
                      (contract.TAG_DATA_DIGEST, "training data"),
                      (contract.TAG_DVC_MD5, "DVC-tracked data")):
        old, new = champion.run.tags.get(tag), candidate.tags.get(tag)
        if old and new and old != new:
            notes.append(f"{what} changed since champion {champion.label} "
                         f"({old[:12]} -> {new[:12]})")
    return notes


def _rows_tag(candidate: RunInfo) -> int | None:
    value = candidate.tags.get(contract.TAG_EVAL_ROWS, "")
    # str.isdigit accepts "²"; a tag is the run's text, so only plain ASCII digits count
    return int(value) if value.isascii() and value.isdigit() and len(value) < 12 else None
