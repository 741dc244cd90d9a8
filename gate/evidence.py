"""Gather the evidence for a verdict: both models scored on the candidate's eval rows.

The champion is re-scored on the rows the candidate logged, so both numbers come
from the same data; when that is impossible the logged metrics are the fallback,
and the reason travels with the evidence into the report and the JSON.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate import modelfile
from gate.config import Config
from gate.decide import Evidence, PairedStat
from gate.errors import InputError
from gate.registry import Champion, Registry, RunInfo, temp_dir

EVAL_ROWS = "gate/eval_rows.csv"
PREDICTIONS = "gate/predictions.csv"


@dataclass(frozen=True)
class Gathered:
    evidence: Evidence
    notes: tuple[str, ...]
    eval_rows: int | None
    data_changed: bool


class Fallback(Exception):
    """The champion cannot be re-scored on the candidate's rows; says why."""


def gather(registry: Registry, config: Config, candidate: RunInfo,
           champion: Champion | None) -> Gathered:
    notes = list(_lineage_notes(candidate, champion))
    data_changed = any(note.startswith("eval data changed") for note in notes)
    base = {"candidate_run_id": candidate.run_id, "candidate_metrics": candidate.metrics}
    if champion is None:
        return Gathered(Evidence(**base), tuple(notes), _rows(candidate), data_changed)
    logged = {"champion_version": champion.version,
              "champion_metrics": champion.run.metrics}
    if champion.found_by == "stage":
        notes.append(f"champion v{champion.version} found by the legacy "
                     f"'{config.model.stage or 'Production'}' stage: no "
                     f"'{config.model.alias}' alias is set")
    try:
        paired, rows = _paired(registry, config, candidate, champion)
    except Fallback as why:
        reason = str(why)
        notes.append(f"compared logged metrics (not the same rows): {reason}")
        return Gathered(Evidence(**base, **logged, fallback_reason=reason), tuple(notes),
                        _rows(candidate), data_changed)
    unpaired = [rule.name for rule in config.metrics if rule.name not in paired]
    if unpaired:
        notes.append(f"no per-row scorer for {', '.join(unpaired)}: logged values compared")
    return Gathered(Evidence(**base, **logged, paired=paired), tuple(notes), rows,
                    data_changed)


def _paired(registry: Registry, config: Config, candidate: RunInfo,
            champion: Champion) -> tuple[dict[str, PairedStat], int]:
    import pandas as pd

    from gate import stats

    target = candidate.tags.get("gate.target")
    if not target:
        raise Fallback("the candidate run has no gate.target tag (not logged by the "
                       "reference trainer?)")
    with temp_dir() as tmp:
        # straight from the run's artifact_uri: a GET per file, no run or model lookups
        if registry.fetch(candidate.artifact_uri, (EVAL_ROWS, PREDICTIONS), tmp) is None:
            raise Fallback(f"the candidate run has no {EVAL_ROWS} and {PREDICTIONS}")
        rows = pd.read_csv(Path(tmp, EVAL_ROWS))
        predictions = pd.read_csv(Path(tmp, PREDICTIONS))
        loaded = _champion_model(registry, config, champion, Path(tmp, "champion"))
    if target not in rows.columns or "prediction" not in predictions.columns \
            or len(rows) != len(predictions):
        raise Fallback("the candidate's eval artifacts are malformed "
                       f"({len(rows)} rows, {len(predictions)} predictions)")
    champion_pred = _predict(loaded, rows.drop(columns=[target]), champion.version)
    y_true = rows[target].to_numpy(dtype=float)
    candidate_pred = predictions["prediction"].to_numpy(dtype=float)
    compare = config.compare
    rules = [(rule.name, rule.direction) for rule in config.metrics
             if stats.supports(rule.name)]
    paired = stats.paired_bootstraps(rules, y_true, champion_pred, candidate_pred,
                                     confidence=compare.confidence,
                                     resamples=compare.resamples, seed=compare.seed) \
        if rules else {}
    return paired, len(rows)


def _champion_model(registry: Registry, config: Config, champion: Champion,
                    dest: Path) -> modelfile.LoadedModel:
    label = f"champion {config.model.name} v{champion.version}"
    location = registry.model_location(config.model.name, champion.version, champion.source)
    model_dir = _model_files(registry, location, dest, label)
    if model_dir is None:
        raise Fallback(f"the model files of champion v{champion.version} are gone")
    return modelfile.load(model_dir, config.model.all_trusted_types, label)


def vet_candidate_model(registry: Registry, config: Config, candidate: RunInfo) -> None:
    """Refuse a candidate whose model file asks for types the gate does not trust.

    Only the file's type list is read (nothing of it is built or run), so a hostile
    model is stopped before it can be registered or promoted.
    """
    if not candidate.model_id:
        return
    label = f"candidate model of run {candidate.run_id}"
    with temp_dir() as tmp:
        location = registry.logged_model_location(candidate.model_id)
        model_dir = _model_files(registry, location, Path(tmp), label)
        if model_dir is None:
            raise InputError(f"the model of run {candidate.run_id} cannot be downloaded")
        modelfile.vet(model_dir, config.model.all_trusted_types, label)


def _model_files(registry: Registry, location: str | None, dest: Path,
                 label: str) -> Path | None:
    """MLmodel and the skops file it names, into `dest`; the rest of the model's folder
    (environment files, examples) is not needed. None when either is missing."""
    if location is None:
        return None
    if registry.fetch(location, ("MLmodel",), str(dest)) is None:
        return None
    name = modelfile.skops_file(modelfile.read_mlmodel(dest), label)
    return registry.fetch(location, (name,), str(dest))


def _predict(loaded: modelfile.LoadedModel, features: Any, version: str) -> Any:
    import numpy as np

    columns = list(loaded.input_columns) or list(features.columns)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise Fallback(f"the candidate's eval rows lack {', '.join(missing)}, which "
                       f"champion v{version} needs")
    try:
        predicted = np.asarray(loaded.estimator.predict(features[columns]), dtype=float)
    except (ValueError, TypeError) as exc:
        raise Fallback(f"champion v{version} could not predict the candidate's eval rows: "
                       f"{str(exc).splitlines()[0][:200]}") from None
    if not np.all(np.isfinite(predicted)):
        raise InputError(f"champion v{version} predicted non-finite values on the eval rows")
    return predicted


def _lineage_notes(candidate: RunInfo, champion: Champion | None) -> list[str]:
    if champion is None:
        return []
    notes = []
    for tag, what in (("gate.eval_digest", "eval data"), ("gate.data_digest", "training data"),
                      ("dvc.md5", "DVC-tracked data")):
        old, new = champion.run.tags.get(tag), candidate.tags.get(tag)
        if old and new and old != new:
            notes.append(f"{what} changed since champion v{champion.version} "
                         f"({old[:12]} -> {new[:12]})")
    return notes


def _rows(candidate: RunInfo) -> int | None:
    value = candidate.tags.get("gate.eval_rows", "")
    return int(value) if value.isdigit() else None
