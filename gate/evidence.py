"""Gather the evidence for a verdict: both models scored on rows the candidate did not pick.

Rows: the pinned `[eval] data`, else Production's eval rows (checked against the digest
recorded at its promotion), else, for a first model, the candidate's own. Predictions:
computed by the gate from the model file wherever a safe loader exists, else the run's
logged ones, marked unverified. When no pairing is possible the logged metrics are
the fallback, and the reason travels with the evidence into the report and the JSON.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate import contract, evalset, loaders, modelfile
from gate.config import Config
from gate.decide import Evidence, PairedStat
from gate.domain import Champion, RunInfo
from gate.errors import InputError
from gate.registry import Registry, temp_dir


class Fallback(Exception):
    """No paired comparison is possible on these rows; says why."""


@dataclass(frozen=True)
class Side:
    """How one model's numbers were obtained, for the report and the JSON."""

    role: str                   # "candidate" | "champion"
    model: str = ""             # "flavor / format", "" when the run logged no model
    flavor_key: str = ""        # flavor:format
    verified: bool = False      # predictions computed by the gate (now or at promotion)
    how: str = ""               # "computed by the gate", "cached at promotion", "logged"

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model or None, "verified": self.verified, "predictions": self.how}


@dataclass(frozen=True)
class Rows:
    """Which rows the comparison used, and what promotion records about them."""

    source: str                 # "pinned eval set ...", "Production v3's eval rows", ...
    count: int
    sha256: str
    uri: str = ""               # the rows file's artifact URI when they live in a run
    target: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.count, "sha256": self.sha256}


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


@dataclass(frozen=True)
class RunEvaluation:
    """What a run logged under the evaluation contract: claims, until checked."""

    rows: evalset.EvalRows
    predictions: evalset.LoggedPredictions | None
    task: str
    uri: str                    # the rows file's artifact URI
    target: str


@dataclass(frozen=True)
class Model:
    info: modelfile.ModelFile
    folder: Path | None         # downloaded files when a safe loader can read it
    loaded: loaders.Loaded | None = None    # a skops file, loaded when it was vetted


def gather(registry: Registry, config: Config, candidate: RunInfo,
           champion: Champion | None) -> Gathered:
    notes = list(_lineage_notes(candidate, champion))
    data_changed = any(note.startswith("eval data changed") for note in notes)
    base = {"candidate_run_id": candidate.run_id, "candidate_metrics": candidate.metrics}
    if champion is not None:
        base.update(champion_version=champion.version or champion.label,
                    champion_metrics=champion.run.metrics)
        if champion.found_by == "stage":
            notes.append(f"champion v{champion.version} found by the legacy "
                         f"'{config.model.stage or 'Production'}' stage: no "
                         f"'{config.model.alias}' alias is set")
    with temp_dir() as tmp:
        work = Path(tmp)
        cand_model = _run_model(registry, config, candidate.model_id, work / "candidate-model",
                                f"candidate model of run {candidate.run_id}")
        flavor = cand_model.info.key if cand_model else ""
        cand_side = Side("candidate", cand_model.info.description if cand_model else "",
                         flavor)
        try:
            cand_eval = _run_evaluation(registry, candidate, work / "candidate",
                                        f"run {candidate.run_id}")
            rows, chosen = _chosen_rows(registry, config, champion, cand_eval, work, notes)
        except Fallback as why:
            return _fallback(base, str(why), notes, candidate, cand_side, flavor,
                             data_changed)
        notes.extend(_rows_differ(chosen, cand_eval, rows))
        task = _task(config, chosen)
        try:
            cand_out, cand_side = _predictions(cand_model, cand_eval, chosen, task, cand_side,
                                               config, "the candidate")
        except Fallback as why:
            return _fallback(base, str(why), notes, candidate, cand_side, flavor,
                             data_changed, rows)
        cache = _cache_bytes(cand_out) if cand_side.verified else None
        common = {"notes": tuple(notes), "eval_rows": rows.count, "data_changed": data_changed,
                  "candidate": cand_side, "rows": rows, "cache": cache}
        verified = {"candidate_verified": cand_side.verified, "candidate_flavor": flavor}
        if champion is None:
            computed = _computed_metrics(config, chosen.y, cand_out, task)
            return Gathered(Evidence(**base, **verified, candidate_computed=computed),
                            **common)
        champ_side = Side("champion")
        try:
            champ_out, champ_side = _champion_predictions(registry, config, champion, chosen,
                                                          task, work, notes)
            paired = _paired(config, chosen.y, champ_out, cand_out, task)
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


# -- rows ------------------------------------------------------------------------

def _chosen_rows(registry: Registry, config: Config, champion: Champion | None,
                 cand_eval: RunEvaluation | None, work: Path,
                 notes: list[str]) -> tuple[Rows, evalset.EvalRows]:
    if config.eval.data:
        chosen = _pinned_rows(config)
        return Rows(f"pinned eval set {config.eval.data}", len(chosen), chosen.sha256,
                    target=config.eval.target), chosen
    if champion is not None:
        return _champion_rows(registry, champion, work / "champion", notes)
    if cand_eval is None:
        raise Fallback(f"the candidate run logged no evaluation ({contract.MANIFEST} or "
                       f"{contract.LEGACY_EVAL_ROWS}) and no [eval] data is pinned")
    notes.append("first model: its own eval rows are used (nothing to compare against)")
    return Rows("the candidate's own eval rows", len(cand_eval.rows), cand_eval.rows.sha256,
                cand_eval.uri, cand_eval.target), cand_eval.rows


def _pinned_rows(config: Config) -> evalset.EvalRows:
    path = config.eval.path(config.source)
    what = f"[eval] data {config.eval.data} (in {config.source})"
    if not path.is_file():
        raise InputError(f"{what}: file not found")
    rows = evalset.eval_rows(path, config.eval.target, what, config.eval.row_id or None)
    expected = config.eval.digest.removeprefix("sha256:")
    if expected and rows.sha256 != expected:
        raise InputError(f"{what}: content differs from eval.digest (sha256 {rows.sha256[:16]}"
                         f"... is not {expected[:16]}...)")
    return rows


def _champion_rows(registry: Registry, champion: Champion, work: Path,
                   notes: list[str]) -> tuple[Rows, evalset.EvalRows]:
    """Production's eval rows: those recorded at its promotion, checked against their
    digest; for a version promoted before digests were recorded, its run's own."""
    tags = champion.tags
    label = champion.label
    recorded_uri, recorded_sha = tags.get(contract.V_EVAL_URI), tags.get(contract.V_EVAL_SHA)
    target = tags.get(contract.V_EVAL_TARGET, "")
    if recorded_uri and recorded_sha and target:
        parent, _, name = recorded_uri.rpartition("/")
        what = f"{label}'s eval rows ({name})"
        if registry.fetch(parent, (name,), str(work)) is None:
            raise InputError(f"{what} recorded at its promotion are gone from {parent}")
        rows = evalset.eval_rows(work / name, target, what)
        if rows.sha256 != recorded_sha:
            raise InputError(f"{what} changed after its promotion (sha256 {rows.sha256[:12]}"
                             f"... is not the recorded {recorded_sha[:12]}...): refusing to "
                             "compare on them; pin [eval] data, or promote again")
        return Rows(f"Production {label}'s eval rows", len(rows), rows.sha256, recorded_uri,
                    target), rows
    logged = _run_evaluation(registry, champion.run, work, f"{label}'s run")
    if logged is None:
        raise Fallback(f"{label} logged no eval rows and no [eval] data is pinned")
    notes.append(f"Production {label}'s eval rows are not tamper-evident: it was promoted "
                 "before the gate recorded their digest")
    return Rows(f"Production {label}'s eval rows (unchecked)", len(logged.rows),
                logged.rows.sha256, logged.uri, logged.target), logged.rows


def _rows_differ(chosen: evalset.EvalRows, cand_eval: RunEvaluation | None,
                 rows: Rows) -> list[str]:
    if cand_eval is None or cand_eval.rows.sha256 == chosen.sha256:
        return []
    logged = cand_eval.rows
    return [f"eval set differs: the candidate logged {len(logged)} eval rows; the gate "
            f"compared on {rows.source} ({rows.count} rows) and ignored the candidate's"]


def _run_evaluation(registry: Registry, run: RunInfo, work: Path,
                    label: str) -> RunEvaluation | None:
    """The evaluation a run logged under the contract (or contract 0), or None."""
    base = run.artifact_uri.rstrip("/")
    if registry.fetch(base, (contract.MANIFEST,), str(work)) is not None:
        manifest = evalset.read_manifest(work / contract.MANIFEST,
                                         f"{label}: {contract.MANIFEST}")
        files = (contract.EVAL_ROWS, contract.PREDICTIONS)
        if registry.fetch(base, files, str(work)) is None:
            raise InputError(f"{label}: {contract.MANIFEST} is there but "
                             f"{' or '.join(files)} is missing")
        rows = evalset.eval_rows(work / contract.EVAL_ROWS, manifest["target"],
                                 f"{label}: {contract.EVAL_ROWS}")
        predictions = evalset.logged_predictions(
            work / contract.PREDICTIONS, len(rows), f"{label}: {contract.PREDICTIONS}",
            manifest.get("classes", []))
        return RunEvaluation(rows, predictions, manifest["task"],
                             f"{base}/{contract.EVAL_ROWS}", manifest["target"])
    target = run.tags.get(contract.TAG_TARGET)
    if not target:
        return None
    legacy = (contract.LEGACY_EVAL_ROWS, contract.LEGACY_PREDICTIONS)
    if registry.fetch(base, legacy, str(work)) is None:
        return None
    rows = evalset.eval_rows(work / contract.LEGACY_EVAL_ROWS, target,
                             f"{label}: {contract.LEGACY_EVAL_ROWS}", row_id=None)
    predictions = evalset.logged_predictions(work / contract.LEGACY_PREDICTIONS, len(rows),
                                             f"{label}: {contract.LEGACY_PREDICTIONS}")
    return RunEvaluation(rows, predictions, contract.REGRESSION,
                         f"{base}/{contract.LEGACY_EVAL_ROWS}", target)


# -- models and their predictions ---------------------------------------------------

def _run_model(registry: Registry, config: Config, model_id: str | None, dest: Path,
               label: str) -> Model | None:
    if not model_id:
        return None
    return _model_at(registry, config, registry.logged_model_location(model_id), dest, label,
                     missing=f"{label} cannot be downloaded")


def _model_at(registry: Registry, config: Config, location: str | None, dest: Path,
              label: str, missing: str) -> Model | None:
    """MLmodel, and the model file when a safe loader reads it; untrusted skops types
    are refused (exit 2) before anything of the file is built."""
    if location is None or registry.fetch(location, ("MLmodel",), str(dest)) is None:
        if missing:
            raise InputError(missing)
        return None
    info = modelfile.describe(modelfile.read_mlmodel(dest, label), label)
    if info.data is None or info.loader is None or not loaders.available(info):
        return Model(info, None)
    if registry.fetch(location, (info.data,), str(dest)) is None:
        raise InputError(f"{label}: MLmodel names {info.data!r}, which is not there")
    if info.format == "skops":
        # skops audits the types against the trusted list before it builds anything, so
        # loading is the vetting: one parse of the file where vet-then-load took two
        return Model(info, dest, loaders.load(dest, info, config.model.all_trusted_types,
                                              label))
    loaders.vet(dest, info, config.model.all_trusted_types, label)
    return Model(info, dest)


def _predictions(model: Model | None, logged: RunEvaluation | None,
                 chosen: evalset.EvalRows, task: str, side: Side, config: Config,
                 who: str) -> tuple[loaders.Outputs, Side]:
    """One model's outputs on the chosen rows: computed when it loads safely, else its
    logged predictions lined up with the chosen rows."""
    if model is not None and model.folder is not None:
        label = f"{who} ({model.info.description})"
        loaded = model.loaded or loaders.load(model.folder, model.info,
                                              config.model.all_trusted_types, label)
        outputs = _score(loaded, model.info, chosen, task, who)
        return outputs, Side(side.role, side.model, side.flavor_key, True,
                             "computed by the gate from the model file")
    why = "no safe loader for " + model.info.description if model else "no logged model"
    if logged is None or logged.predictions is None:
        raise Fallback(f"{who}'s predictions cannot be computed ({why}) and it logged none")
    index, mismatch = evalset.align(chosen, logged.rows)
    if index is None:
        raise Fallback(f"{who}'s predictions cannot be computed ({why}) and its logged "
                       f"ones are not on the eval set: {mismatch}")
    p = logged.predictions
    outputs = loaders.Outputs(p.values[index], None if p.proba is None else p.proba[index],
                              p.classes)
    return outputs, Side(side.role, side.model, side.flavor_key, False,
                         f"logged by the run, unverified ({why})")


def _champion_predictions(registry: Registry, config: Config, champion: Champion,
                          chosen: evalset.EvalRows, task: str, work: Path,
                          notes: list[str]) -> tuple[loaders.Outputs, Side]:
    label = f"champion {config.model.name} {champion.label}"
    cached = _cached(registry, champion, chosen, work / "cache", notes)
    flavor = champion.tags.get(contract.V_FLAVOR, "")
    if cached is not None:
        return cached, Side("champion", flavor.replace(":", " / "), flavor, True,
                            "cached at its promotion (digest checked)")
    location = registry.logged_model_location(champion.run.model_id) \
        if champion.found_by == "run" and champion.run.model_id else \
        registry.model_location(config.model.name, champion.version, champion.source) \
        if champion.version else None
    model = _model_at(registry, config, location, work / "champion-model", label, missing="")
    if model is None:
        raise Fallback(f"the model files of {champion.label} are gone")
    side = Side("champion", model.info.description, model.info.key)
    logged = None
    if model.folder is None:
        logged = _run_evaluation(registry, champion.run, work / "champion-logged",
                                 f"{champion.label}'s run")
    return _predictions(model, logged, chosen, task, side, config, champion.label)


def _cached(registry: Registry, champion: Champion, chosen: evalset.EvalRows, work: Path,
            notes: list[str]) -> loaders.Outputs | None:
    """The champion's predictions kept at its promotion, if its version's tags vouch for
    them and they were made on these very rows."""
    sha = champion.tags.get(contract.V_PREDICTIONS_SHA)
    if not sha or champion.tags.get(contract.V_EVAL_SHA) != chosen.sha256:
        return None
    base = champion.run.artifact_uri.rstrip("/")
    if registry.fetch(base, (contract.CACHED_PREDICTIONS,), str(work)) is None:
        return None
    path = work / contract.CACHED_PREDICTIONS
    if evalset.sha256_file(path) != sha:
        notes.append(f"{champion.label}'s cached predictions do not match their recorded "
                     "digest: ignored, the model is scored again")
        return None
    p = evalset.logged_predictions(path, len(chosen), f"{champion.label}'s cached predictions")
    return loaders.Outputs(p.values, p.proba, p.classes)


def _score(loaded: loaders.Loaded, info: modelfile.ModelFile, chosen: evalset.EvalRows,
           task: str, who: str) -> loaders.Outputs:
    import numpy as np

    features = chosen.features
    columns = list(info.input_columns or loaded.feature_names or features.columns)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise Fallback(f"the eval rows lack {', '.join(map(str, missing[:10]))}, which "
                       f"{who} needs")
    if not columns:
        raise Fallback(f"the eval rows have no feature columns to score {who} on")
    try:
        outputs = loaded.outputs(features[columns])
    except Exception as exc:  # a model's predict raises anything on unexpected input
        text = str(exc).strip().splitlines()
        raise Fallback(f"{who} could not predict the eval rows: "
                       f"{(text[0] if text else type(exc).__name__)[:200]}") from None
    if len(outputs) != len(chosen):
        raise InputError(f"{who} returned {len(outputs)} predictions for {len(chosen)} rows")
    if task == contract.REGRESSION and \
            not np.all(np.isfinite(np.asarray(outputs.values, dtype=float))):
        raise InputError(f"{who} predicted non-finite values on the eval rows")
    return outputs


# -- statistics -----------------------------------------------------------------------

def _task(config: Config, chosen: evalset.EvalRows) -> str:
    from gate import stats

    if not any(stats.is_classification(rule.name) for rule in config.metrics):
        return contract.REGRESSION
    return contract.BINARY if len(set(chosen.y.tolist())) <= 2 else contract.MULTICLASS


def _scores(outputs: loaders.Outputs, task: str) -> Any:
    import numpy as np

    from gate import stats

    if task == contract.REGRESSION:
        return np.asarray(outputs.values, dtype=float)
    return stats.ClassScores(labels=np.asarray(outputs.values), proba=outputs.proba,
                             classes=tuple(outputs.classes))


def _rules(config: Config) -> list[Any]:
    from gate import stats

    return [rule.spec() if hasattr(rule, "spec") else (rule.name, rule.direction)
            for rule in config.metrics if stats.supports(rule.name)]


def _paired(config: Config, y: Any, champion: loaders.Outputs, candidate: loaders.Outputs,
            task: str) -> dict[str, PairedStat]:
    from gate import stats

    rules = _rules(config)
    if not rules:
        return {}
    compare = config.compare
    y_true = y.astype(float) if task == contract.REGRESSION else y
    return stats.paired_bootstraps(rules, y_true, _scores(champion, task),
                                   _scores(candidate, task), confidence=compare.confidence,
                                   resamples=compare.resamples, seed=compare.seed)


def _computed_metrics(config: Config, y: Any, outputs: loaders.Outputs,
                      task: str) -> dict[str, float]:
    from gate import stats

    y_true = y.astype(float) if task == contract.REGRESSION else y
    scores = _scores(outputs, task)
    values = {}
    for rule in config.metrics:
        if stats.supports(rule.name):
            values[rule.name] = stats.score(rule.name, y_true, scores)
    return values


def _cache_bytes(outputs: loaders.Outputs) -> bytes:
    import pandas as pd

    frame = pd.DataFrame({contract.PREDICTION_COLUMN: outputs.values})
    if outputs.proba is not None:
        for j, label in enumerate(outputs.classes):
            frame[f"{contract.PROBA_PREFIX}{label}"] = outputs.proba[:, j]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def cache_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- lineage ----------------------------------------------------------------------------

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
