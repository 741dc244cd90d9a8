"""Gather the evidence for a verdict: both models scored on rows the candidate did not pick.

Which rows is `rows`' job, whose predictions `scoring`'s; here they are put together,
and when no pairing is possible the logged metrics are the fallback, with the reason
travelling into the report and the JSON. The store is reached only through
`gate.core.ports`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate import contract
from gate import sandbox
from gate.evidence import leakage
from gate.evidence import binding
from gate.evidence import rows as rowsource
from gate.evidence import scoring
from gate.evidence import slicing
from gate.core.config import Config
from gate.core.decide import Evidence
from gate.core.domain import Champion, RunInfo
from gate.core.ports import Store
from gate.evidence.modeldigest import ModelDigest
from gate.evidence.rows import Fallback, Rows
from gate.evidence.scoring import PredictionsFile, Side
from gate.evidence.workdir import temp_dir

__all__ = ["DigestChange", "Fallback", "Gathered", "PredictionsFile", "Rows", "Side",
           "gather"]


@dataclass(frozen=True)
class Gathered:
    evidence: Evidence
    notes: tuple[str, ...]
    eval_rows: int | None
    data_changed: bool          # the eval data digest differs from the champion's
    candidate: Side = field(default_factory=lambda: Side("candidate"))
    champion: Side | None = None
    rows: Rows | None = None
    # the gate's own predictions of the candidate on `rows`: kept at promotion so the
    # next check can skip re-scoring this model
    cache: PredictionsFile | None = None
    # what the report must say in its first lines, beside whose predictions: rows the
    # candidate chose itself, a score that looks like leakage
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DigestChange:
    """A data digest the candidate's run tags differently from the champion's."""

    tag: str
    what: str                   # "eval data", "training data", ...
    champion: str               # the champion's label, "v3" or "run ..."
    old: str
    new: str

    @property
    def note(self) -> str:
        return (f"{self.what} changed since champion {self.champion} "
                f"({self.old[:12]} -> {self.new[:12]})")


def gather(store: Store, config: Config, candidate: RunInfo, champion: Champion | None,
           champion_missing: str | None = None,
           warm: sandbox.Pending | None = None) -> Gathered:
    """`champion_missing`: why there is no champion although there was one (None if
    there never was, or there is one). `warm`: a sandbox started on an empty folder
    before the candidate was known (`gate.evidence.warm`): its files go there."""
    rowsource.require_unchosen(config, champion, champion_missing)
    changes = digest_changes(candidate, champion)
    data_changed = any(change.tag == contract.TAG_EVAL_DIGEST for change in changes)
    notes = [change.note for change in changes]
    base: dict[str, Any] = {"candidate_run_id": candidate.run_id,
                            "candidate_metrics": candidate.metrics,
                            "champion_missing": champion_missing}
    if champion is not None:
        base.update(champion_version=champion.version or champion.label,
                    champion_metrics=champion.run.metrics)
        if champion.found_by == "stage":
            notes.append(f"champion v{champion.version} found by the legacy "
                         f"'{config.model.stage or 'Production'}' stage: no "
                         f"'{config.model.alias}' alias is set")
    with temp_dir() as tmp, contextlib.ExitStack() as sandboxes:
        work = Path(tmp)
        # the champion's files first: nothing of a champion whose bytes changed since
        # its promotion is used, its rows and cached predictions included
        champ_files: binding.Files | None = None
        if champion is not None:
            champ_files, bound = binding.champion_files(store, config.model.name, champion,
                                                        work / "champion-model")
            notes.extend(bound)
        cand_model = scoring.run_model(store, config, candidate.model_id,
                                       warm.folder if warm else work / "candidate-model",
                                       f"candidate model of run {candidate.run_id}")
        # loading while the rows are fetched (and, when nothing vouches for its cached
        # predictions, the champion too): sandboxes stopped however this ends
        cand_sandbox = scoring.begin(cand_model, warm)
        if cand_sandbox is not None:
            sandboxes.callback(cand_sandbox.close)
        champ_sandbox = None
        if champion is not None and not champion.tags.get(contract.V_PREDICTIONS_SHA):
            champ_sandbox = scoring.begin(scoring.champion_model(config, champion,
                                                                 champ_files))
            if champ_sandbox is not None:
                sandboxes.callback(champ_sandbox.close)
        flavor = cand_model.info.key if cand_model else ""
        digest = cand_model.digest if cand_model else None
        # said first even when the comparison falls back to logged metrics
        no_sandbox = scoring.warning(Side("candidate", unsandboxed=scoring.unsandboxed(
            cand_model) or ""))
        slicing.check_inputs(config.slices, cand_model, "the candidate's model")
        try:
            cand_eval = rowsource.run_evaluation(store, candidate, work / "candidate",
                                                 f"run {candidate.run_id}")
            chosen = rowsource.chosen_rows(store, config, champion, cand_eval, work)
        except Fallback as why:
            return _fallback(base, str(why), tuple(notes), candidate, champion, flavor,
                             data_changed,
                             digest=digest, warnings=no_sandbox)
        rows, eval_rows = chosen.rows, chosen.eval_rows
        notes.extend(chosen.notes)
        notes.extend(rowsource.rows_differ(eval_rows, cand_eval, rows))
        # read before scoring, and withheld from it: bad slice input stops here (exit 2)
        sliced = slicing.columns_of(config.slices, eval_rows)
        eval_rows = slicing.withheld(config.slices, eval_rows)
        task = scoring.task_of(config, eval_rows)
        try:
            cand = scoring.predictions(cand_model, cand_eval, eval_rows, task, "candidate",
                                       "the candidate", cand_sandbox)
        except Fallback as why:
            return _fallback(base, str(why), tuple(notes), candidate, champion, flavor,
                             data_changed, rows,
                             digest=digest, warnings=no_sandbox)
        common: dict[str, Any] = {
            "eval_rows": rows.count, "data_changed": data_changed, "candidate": cand.side,
            "rows": rows,
            "cache": PredictionsFile.of(cand.outputs) if cand.side.verified else None,
            "warnings": scoring.warning(cand.side) + own_rows_warning(rows)}
        verified: dict[str, Any] = {"candidate_verified": cand.side.verified,
                                    "candidate_flavor": cand.side.flavor}
        if champion is None:
            computed = scoring.computed_metrics(config, eval_rows.y, cand.outputs, task)
            return Gathered(Evidence(**base, **verified, candidate_computed=computed),
                            tuple(notes), **common)
        champ, cache_notes = scoring.cached_predictions(
            store, champion, eval_rows, work / "cache",
            champ_files.digest if champ_files else None)
        notes.extend(cache_notes)
        try:
            if champ is None:
                champ = scoring.champion_predictions(store, config, champion, eval_rows, task,
                                                     work, chosen.champion_eval, champ_files,
                                                     champ_sandbox)
            paired, slices = slicing.paired(config, eval_rows.y, champ.outputs, cand.outputs,
                                            task, sliced)
        except Fallback as why:
            return _fallback(base, str(why), tuple(notes), candidate, champion, flavor,
                             data_changed, rows,
                             digest=digest, warnings=no_sandbox)
    unpaired = [rule.name for rule in config.metrics if rule.name not in paired]
    if unpaired:
        notes.append(f"no per-row scorer for {', '.join(unpaired)}: logged values compared")
    evidence = Evidence(**base, **verified, paired=paired,
                        champion_verified=champ.side.verified, slices=slices)
    common["warnings"] = scoring.warning(cand.side, champ.side) + \
        own_rows_warning(rows) + leakage_warnings(config, candidate, paired)
    return Gathered(evidence, tuple(notes), **common, champion=champ.side)


def own_rows_warning(rows: Rows) -> tuple[str, ...]:
    if rows.source != rowsource.OWN_ROWS:
        return ()
    return ("eval rows chosen by the candidate itself (no [eval] data pinned, no champion): "
            "pin [eval] data; [eval] require = true refuses this",)


def leakage_warnings(config: Config, candidate: RunInfo,
                     paired: dict[str, Any]) -> tuple[str, ...]:
    """The leakage rule on the primary metric (gate.evidence.leakage)."""
    name = config.primary_metric
    stat = paired.get(name)
    rule = next((r for r in config.metrics if r.name == name), None)
    logged = candidate.metrics.get(name)
    if stat is None or rule is None or not leakage.suspicious(rule.direction, stat, logged):
        return ()
    assert logged is not None       # suspicious() needs the logged value
    return (leakage.note(name, stat, logged),)


def _fallback(base: dict[str, Any], reason: str, notes: tuple[str, ...], candidate: RunInfo,
              champion: Champion | None, flavor: str, data_changed: bool,
              rows: Rows | None = None, digest: ModelDigest | None = None,
              warnings: tuple[str, ...] = ()) -> Gathered:
    champion_known = champion is not None
    # the champion's model was not read: its flavor as recorded at its promotion, if any
    champ_flavor = champion.tags.get(contract.V_FLAVOR, "") if champion else ""
    evidence = Evidence(**base, fallback_reason=reason, candidate_verified=False,
                        champion_verified=False if champion_known else None,
                        candidate_flavor=flavor)
    how = "logged metrics only"
    return Gathered(evidence,
                    (*notes, f"compared logged metrics (not the same rows): {reason}"),
                    rows.count if rows else _rows_tag(candidate), data_changed,
                    Side("candidate", flavor, False, how, digest=digest),
                    Side("champion", champ_flavor, False, how, model_read=bool(champ_flavor))
                    if champion_known else None, rows, warnings=warnings)


def digest_changes(candidate: RunInfo, champion: Champion | None) -> tuple[DigestChange, ...]:
    """The data digests (eval, training, DVC) both runs tag, where they differ."""
    if champion is None:
        return ()
    changes = []
    for tag, what in ((contract.TAG_EVAL_DIGEST, "eval data"),
                      (contract.TAG_DATA_DIGEST, "training data"),
                      (contract.TAG_DVC_MD5, "DVC-tracked data")):
        old, new = champion.run.tags.get(tag), candidate.tags.get(tag)
        if old and new and old != new:
            changes.append(DigestChange(tag, what, champion.label, old, new))
    return tuple(changes)


def _rows_tag(candidate: RunInfo) -> int | None:
    value = candidate.tags.get(contract.TAG_EVAL_ROWS, "")
    # str.isdigit accepts "²"; a tag is the run's text, so only plain ASCII digits count
    return int(value) if value.isascii() and value.isdigit() and len(value) < 12 else None
