"""Whose predictions a comparison uses: the gate's own, computed in the sandbox
(gate.sandbox) from the very model folder it would promote, loaded as serving loads it;
else (no sandbox can be made here, or serving cannot load it: marked unverified) the
ones the run logged; Production's from the cache kept at its promotion when its digest
vouches for them. The gate's own process never parses a model file.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gate import contract
from gate import sandbox
from gate.evidence import binding
from gate.evidence import evalset
from gate.evidence import loaders
from gate.evidence import modelfile
from gate.evidence import modelrequirements
from gate.evidence import served
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
    unsandboxed: str = ""       # why no sandbox could be made here, when that is why not
    # the model's recorded requirements the gate's environment (the sandbox's) does not meet
    unmet: str = ""

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
    folder: Path | None         # its downloaded files, when serving can load it (pyfunc)
    digest: ModelDigest | None = None       # of every file of the model folder
    why_not: str = ""           # why the sandbox cannot score it, when folder is None
    label: str = "model"        # names it (and its run or version) in errors
    unmet: tuple[modelrequirements.Unmet, ...] = ()     # of its recorded requirements


def run_model(store: Store, config: Config, model_id: str | None, dest: Path,
              label: str) -> Model | None:
    """The candidate's whole model folder, digested (the digest is what promotion
    checks again), its MLmodel checked: what serving loads is what the gate scores."""
    if not model_id:
        return None
    files = binding.fetch_model(store, store.logged_model_location(model_id), dest, label)
    model = _model_in(config, files, label) if files is not None else None
    if model is None:
        raise InputError(f"{label} cannot be downloaded")
    return model


def _model_in(config: Config, files: binding.Files, label: str) -> Model | None:
    """The model in downloaded files, described from its MLmodel (nothing of the model
    itself is parsed in the gate's process); None when they hold no MLmodel."""
    dest = files.folder
    if not (dest / "MLmodel").is_file():
        return None
    mlmodel = modelfile.read_mlmodel(dest, label)
    info = modelfile.describe(mlmodel, label)
    served.check(mlmodel, label)
    pyfunc = mlmodel["flavors"].get(served.PYFUNC)
    if pyfunc is None or not pyfunc.get("loader_module"):
        return Model(info, None, files.digest, "no python_function loader: serving cannot "
                     "load it either", label)
    return Model(info, dest, files.digest, label=label, unmet=modelrequirements.unmet(dest))


def sandbox_limits(environ: Mapping[str, str] = os.environ) -> sandbox.Limits:
    """The sandbox's limits, tightened (or loosened) by GATE_SANDBOX_CPU / _WALL /
    _MEMORY_MB: a runner that knows its models may say so without a config change."""
    found: dict[str, Any] = {}
    for name, field, kind in (("GATE_SANDBOX_CPU", "cpu_seconds", int),
                              ("GATE_SANDBOX_WALL", "wall_seconds", float),
                              ("GATE_SANDBOX_MEMORY_MB", "memory_bytes", int)):
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise InputError(f"{name}={raw[:40]!r} is not a number") from None
        found[field] = value * 1024 * 1024 if field == "memory_bytes" else value
    try:
        return sandbox.Limits(**found)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def unsandboxed(model: Model | None) -> str | None:
    """Why this model's predictions cannot be computed in a sandbox here (None: they
    can, or there is no model); asked before its run's logged predictions are read."""
    if model is None or model.folder is None:
        return None
    found = sandbox.probe()
    return None if found.ok else found.why


def warning(*sides: Side | None) -> tuple[str, ...]:
    """The report's first lines: a model not scored for want of a sandbox, or scored with
    other packages than it was recorded with."""
    whys = {side.unsandboxed for side in sides if side is not None and side.unsandboxed}
    # the report keeps 200 characters of a first line: the end must survive the cut
    lines = [f"no sandbox could be made here ({_cut(why, 140)}): predictions unverified"
             for why in sorted(whys)]
    lines += [f"{side.role}'s recorded requirements not met here ({_cut(side.unmet, 110)}): "
              "scored with the gate's packages" for side in sides
              if side is not None and side.unmet]
    return tuple(lines)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def begin(model: Model | None, warm: sandbox.Pending | None = None) -> sandbox.Pending | None:
    """The sandbox loading this model now, so that the caller's other work (the rows,
    the other model) overlaps its start: `warm` when it was started on the model's
    folder before the files came. None when the model is not scored in a sandbox."""
    if model is None or model.folder is None or unsandboxed(model) is not None:
        return None
    if warm is not None and warm.folder == model.folder.resolve():
        warm.load(model.label)
        return warm
    return sandbox.start(model.folder, label=model.label, limits=sandbox_limits())


def predictions(model: Model | None, logged: rowsource.RunEvaluation | None,
                chosen: evalset.EvalRows, task: str, role: str, who: str,
                pending: sandbox.Pending | None = None) -> Predicted:
    """One model's outputs on the chosen rows: computed in the sandbox as serving
    computes them, else (no sandbox here, no pyfunc) its logged predictions lined up
    with the chosen rows. A model that fails in the sandbox is exit 2, never a
    fallback to what it logged."""
    flavor = model.info.key if model else ""
    digest = model.digest if model else None
    no_sandbox = unsandboxed(model)
    if model is not None and model.folder is not None and no_sandbox is None:
        supplied = _supplied_columns(model.info, chosen, logged)
        if supplied:
            rows, added = supplied
            outputs, method = _score(model, rows, task, who, pending)
            # the run chose those values: a column equal to the label scores perfectly
            return Predicted(outputs, Side(
                role, flavor, False, "computed on columns only the run supplied "
                f"({', '.join(added)[:120]}): not verified; pin [eval] data that has them "
                f"to verify ({method})", digest=digest))
        outputs, method = _score(model, chosen, task, who, pending)
        unmet = modelrequirements.describe(model.unmet)
        how = f"computed by the gate, {method}" + (
            f"; with the gate's packages, not its recorded {unmet}" if unmet else "")
        return Predicted(outputs, Side(role, flavor, True, how, digest=digest, unmet=unmet))
    why = (f"no sandbox could be made here: {no_sandbox}" if no_sandbox else model.why_not) \
        if model else "no logged model"
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
                                   digest=digest, unsandboxed=no_sandbox or ""))


def _supplied_columns(info: modelfile.ModelFile, chosen: evalset.EvalRows,
                      logged: rowsource.RunEvaluation | None
                      ) -> tuple[evalset.EvalRows, list[str]] | None:
    """A model needing features the chosen rows lack (a new feature, by its signature)
    is scored on the chosen rows extended with the run's own values of those columns,
    when its logged rows line up with the chosen ones; None when nothing is missing."""
    from dataclasses import replace

    missing = [c for c in info.input_columns if c not in chosen.features.columns]
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
                         files: binding.Files | None,
                         pending: sandbox.Pending | None = None) -> Predicted:
    """The champion scored on the chosen rows, from its files as checked against its
    digest (`binding.champion_files`; None: they are gone); `logged` is its run's
    evaluation when it was read already (else it is read here if the model needs it)."""
    model = champion_model(config, champion, files)
    if model is None:
        raise Fallback(f"the model files of {champion.label} are gone")
    if (model.folder is None or unsandboxed(model)) and logged is None:
        logged = rowsource.run_evaluation(store, champion.run, work / "champion-logged",
                                          f"{champion.label}'s run")
    return predictions(model, logged, chosen, task, "champion", champion.label, pending)


def champion_model(config: Config, champion: Champion,
                   files: binding.Files | None) -> Model | None:
    """The champion's model in its checked files; None when they are gone."""
    label = f"champion {config.model.name} {champion.label}"
    return _model_in(config, files, label) if files is not None else None


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


def _score(model: Model, chosen: evalset.EvalRows, task: str, who: str,
           pending: sandbox.Pending | None = None) -> tuple[loaders.Outputs, str]:
    """The model's predictions on the eval features (never the labels) in the sandbox;
    its crash, limit or malformed answer is InputError (exit 2), never a fallback."""
    assert model.folder is not None
    features = chosen.features
    columns = list(model.info.input_columns or features.columns)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise Fallback(f"the eval rows lack {', '.join(map(str, missing[:10]))}, which "
                       f"{who} needs")
    if not columns:
        raise Fallback(f"the eval rows have no feature columns to score {who} on")
    if pending is None:
        pending = sandbox.start(model.folder, label=model.label, limits=sandbox_limits())
    try:
        got = pending.result(features[columns], task)
    except InputError as exc:
        missing = [item.name for item in model.unmet if item.installed is None]
        if not missing:
            raise
        raise InputError(f"{exc} (it records {', '.join(missing[:5])}, not installed beside "
                         "the gate: install the model's requirements there)") from None
    finally:
        pending.close()
    return loaders.Outputs(got.values, got.proba, got.classes), got.method


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
