"""Whose predictions a comparison uses: the gate's own, computed from the very model file
it would promote through a safe loader, else (marked unverified) the ones the run logged;
Production's from the cache kept at its promotion when its digest vouches for them.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate import contract
from gate.evidence import binding
from gate.evidence import evalset
from gate.evidence import loaders
from gate.evidence import modelfile
from gate.evidence import rows as rowsource
from gate.core.config import Config
from gate.stats.paired import PairedStat
from gate.core.domain import Champion
from gate.errors import InputError
from gate.core.ports import Store
from gate.evidence.modeldigest import ModelDigest
from gate.evidence.rows import Fallback


@dataclass(frozen=True)
class Side:
    """How one model's numbers were obtained, for the report and the JSON."""

    role: str                   # "candidate" | "champion"
    flavor: str = ""            # flavor:format, "" when the run logged no model
    verified: bool = False      # predictions computed by the gate (now or at promotion)
    how: str = ""               # "computed by the gate", "cached at promotion", "logged"
    # the gate read the model's MLmodel (or a tag recorded when it did): an empty flavor
    # then means no logged model; otherwise it is only not known
    model_read: bool = True
    digest: ModelDigest | None = None   # of every file of its model, as the gate read them

    @property
    def model(self) -> str:
        """`flavor / format`, for people."""
        return self.flavor.replace(":", " / ")

    def as_json(self) -> dict[str, Any]:
        return {"model": self.model or None, "verified": self.verified, "predictions": self.how,
                "digest": self.digest.value if self.digest else None}


@dataclass(frozen=True)
class Predicted:
    """One model's outputs on the chosen rows, and how they were obtained."""

    outputs: loaders.Outputs
    side: Side


@dataclass(frozen=True)
class PredictionsFile:
    """The gate's own predictions of a model as Parquet, with their digest: kept at its
    promotion so the next check can skip scoring it again."""

    data: bytes
    sha256: str

    @classmethod
    def of(cls, outputs: loaders.Outputs) -> PredictionsFile:
        data = _parquet(outputs)
        return cls(data, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class Model:
    info: modelfile.ModelFile
    folder: Path | None         # downloaded files when a safe loader can read it
    loaded: loaders.Loaded | None = None    # loaded with its files, when a loader reads it
    digest: ModelDigest | None = None       # of every file of the model folder


def run_model(store: Store, config: Config, model_id: str | None, dest: Path,
              label: str) -> Model | None:
    """The candidate's whole model folder, digested (the digest is what promotion
    checks again), and loaded when a safe loader reads it."""
    if not model_id:
        return None
    files = binding.fetch_model(store, store.logged_model_location(model_id), dest, label)
    model = _model_in(config, files, label) if files is not None else None
    if model is None:
        raise InputError(f"{label} cannot be downloaded")
    return model


def _model_in(config: Config, files: binding.Files, label: str) -> Model | None:
    """The model in downloaded files, loaded when a safe loader reads it (untrusted
    skops types are refused, exit 2, before anything of the file is built); None when
    they hold no MLmodel."""
    dest = files.folder
    if not (dest / "MLmodel").is_file():
        return None
    info = modelfile.describe(modelfile.read_mlmodel(dest, label), label)
    if info.data is None or info.loader is None or not loaders.available(info):
        return Model(info, None, digest=files.digest)
    if not (dest / info.data).exists():
        raise InputError(f"{label}: MLmodel names {info.data!r}, which is not there")
    # loaded here, before anything is registered: skops audits the types against the
    # trusted list before it builds anything, so loading is the vetting (one parse)
    trusted = loaders.TRUSTED_TYPES + config.model.trusted_types
    return Model(info, dest, loaders.load(dest, info, trusted, label), files.digest)


def predictions(model: Model | None, logged: rowsource.RunEvaluation | None,
                chosen: evalset.EvalRows, task: str, role: str, who: str) -> Predicted:
    """One model's outputs on the chosen rows: computed when it loads safely, else its
    logged predictions lined up with the chosen rows."""
    flavor = model.info.key if model else ""
    digest = model.digest if model else None
    if model is not None and model.folder is not None:
        loaded = model.loaded
        assert loaded is not None     # a model with its files is loaded with them
        supplied = _supplied_columns(loaded, model.info, chosen, logged)
        if supplied:
            rows, added = supplied
            outputs = _score(loaded, model.info, rows, task, who)
            # the run chose those values: a column equal to the label scores perfectly
            return Predicted(outputs, Side(
                role, flavor, False, "computed on columns only the run supplied "
                f"({', '.join(added)[:120]}): not verified; pin [eval] data that has "
                "them to verify", digest=digest))
        outputs = _score(loaded, model.info, chosen, task, who)
        return Predicted(outputs, Side(role, flavor, True,
                                       "computed by the gate from the model file",
                                       digest=digest))
    why = "no safe loader for " + model.info.description if model else "no logged model"
    if logged is None:
        raise Fallback(f"{who}'s predictions cannot be computed ({why}) and it logged none")
    index, mismatch = evalset.align(chosen, logged.rows)
    if index is None:
        raise Fallback(f"{who}'s predictions cannot be computed ({why}) and its logged "
                       f"ones are not on the eval set: {mismatch}")
    p = logged.predictions
    outputs = loaders.Outputs(p.values[index], None if p.proba is None else p.proba[index],
                              p.classes)
    return Predicted(outputs, Side(role, flavor, False, f"logged by the run, unverified ({why})",
                                   digest=digest))


def _supplied_columns(loaded: loaders.Loaded, info: modelfile.ModelFile,
                      chosen: evalset.EvalRows, logged: rowsource.RunEvaluation | None
                      ) -> tuple[evalset.EvalRows, list[str]] | None:
    """A model needing features the chosen rows lack (a new feature) is scored on the
    chosen rows extended with the run's own values of those columns, when its logged
    rows line up with the chosen ones; None when nothing is missing."""
    from dataclasses import replace

    needed = list(info.input_columns or loaded.feature_names)
    missing = [c for c in needed if c not in chosen.features.columns]
    if not missing or logged is None:
        return None
    if any(c not in logged.rows.features.columns for c in missing):
        return None
    index, _ = evalset.align(chosen, logged.rows)
    if index is None:
        return None
    extra = logged.rows.features[missing].iloc[index].reset_index(drop=True)
    features = chosen.features.reset_index(drop=True).join(extra)
    return replace(chosen, features=features), [str(c) for c in missing]


def champion_predictions(store: Store, config: Config, champion: Champion,
                         chosen: evalset.EvalRows, task: str, work: Path,
                         logged: rowsource.RunEvaluation | None,
                         files: binding.Files | None) -> Predicted:
    """The champion scored on the chosen rows, from its files as checked against its
    digest (`binding.champion_files`; None: they are gone); `logged` is its run's
    evaluation when it was read already (else it is read here if the model needs it)."""
    label = f"champion {config.model.name} {champion.label}"
    model = _model_in(config, files, label) if files is not None else None
    if model is None:
        raise Fallback(f"the model files of {champion.label} are gone")
    if model.folder is None and logged is None:
        logged = rowsource.run_evaluation(store, champion.run, work / "champion-logged",
                                          f"{champion.label}'s run")
    return predictions(model, logged, chosen, task, "champion", champion.label)


def cached_predictions(store: Store, champion: Champion, chosen: evalset.EvalRows,
                       work: Path, digest: ModelDigest | None = None
                       ) -> tuple[Predicted | None, tuple[str, ...]]:
    """The champion's predictions kept at its promotion, if its version's tags vouch for
    them and they were made on these very rows; and a note when they were refused.
    Called only after its model files were checked against their digest (`digest`)."""
    sha = champion.tags.get(contract.V_PREDICTIONS_SHA)
    if not sha or champion.tags.get(contract.V_EVAL_SHA) != chosen.sha256:
        return None, ()
    base = champion.run.artifact_uri.rstrip("/")
    if store.artifacts.fetch(base, (contract.CACHED_PREDICTIONS,), str(work)) is None:
        return None, ()
    path = work / contract.CACHED_PREDICTIONS
    if evalset.sha256_file(path) != sha:
        return None, (f"{champion.label}'s cached predictions do not match their recorded "
                      "digest: ignored, the model is scored again",)
    p = evalset.logged_predictions(path, len(chosen), f"{champion.label}'s cached predictions")
    flavor = champion.tags.get(contract.V_FLAVOR, "")
    side = Side("champion", flavor, True, "cached at its promotion (digest checked)",
                digest=digest, model_read=bool(flavor))
    return Predicted(loaders.Outputs(p.values, p.proba, p.classes), side), ()


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


def task_of(config: Config, chosen: evalset.EvalRows) -> str:
    from gate.stats import engine as stats

    if not any(stats.is_classification(rule.name) for rule in config.metrics):
        return contract.REGRESSION
    return contract.BINARY if len(set(chosen.y.tolist())) <= 2 else contract.MULTICLASS


def _scores(outputs: loaders.Outputs, task: str) -> Any:
    import numpy as np

    from gate.stats import engine as stats

    if task == contract.REGRESSION:
        try:
            return np.asarray(outputs.values, dtype=float)
        except (TypeError, ValueError):
            raise InputError("the predictions are not numeric, and the configured metrics "
                             "compare numbers") from None
    return stats.ClassScores(labels=np.asarray(outputs.values), proba=outputs.proba,
                             classes=tuple(outputs.classes))


def _labels(y: Any, task: str) -> Any:
    """The eval rows' labels as the metrics take them: numbers for regression."""
    if task != contract.REGRESSION:
        return y
    try:
        return y.astype(float)
    except (TypeError, ValueError):
        raise InputError("the eval rows' label column is not numeric, and the configured "
                         "metrics are regression metrics") from None


def _rules(config: Config) -> list[Any]:
    from gate.stats import engine as stats

    return [rule.spec() for rule in config.metrics if stats.supports(rule.name)]


def paired(config: Config, y: Any, champion: loaders.Outputs, candidate: loaders.Outputs,
           task: str) -> dict[str, PairedStat]:
    from gate.stats import engine as stats

    rules = _rules(config)
    if not rules:
        return {}
    compare = config.compare
    y_true = _labels(y, task)
    return stats.paired_bootstraps(rules, y_true, _scores(champion, task),
                                   _scores(candidate, task), confidence=compare.confidence,
                                   resamples=compare.resamples, seed=compare.seed)


def computed_metrics(config: Config, y: Any, outputs: loaders.Outputs,
                     task: str) -> dict[str, float]:
    from gate.stats import engine as stats

    y_true = _labels(y, task)
    scores = _scores(outputs, task)
    return {rule.name: stats.evaluate(rule.spec(), y_true, scores)
            for rule in config.metrics if stats.supports(rule.name)}


def _parquet(outputs: loaders.Outputs) -> bytes:
    import pandas as pd

    frame = pd.DataFrame({contract.PREDICTION_COLUMN: outputs.values})
    if outputs.proba is not None:
        for j, label in enumerate(outputs.classes):
            frame[f"{contract.PROBA_PREFIX}{label}"] = outputs.proba[:, j]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()
