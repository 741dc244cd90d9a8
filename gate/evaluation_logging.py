"""`gate.log_evaluation`: log what the gate's paired comparison needs, from any trainer.

One call after training, inside the MLflow run (or with `run_id=`). It writes the
evaluation contract of `gate.contract` (Parquet eval rows, per-row predictions, class
probabilities, a manifest, tags) and, unless told not to, the task's usual metrics.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from gate import contract
from gate.errors import InputError

REGRESSION_METRICS = ("rmse", "mae", "r2")
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1")
PROBA_METRICS = ("log_loss", "roc_auc")


def log_evaluation(y_true: Any, predictions: Any, *, features: Any = None,
                   proba: Any = None, classes: Sequence[Any] | None = None,
                   task: str | None = None, row_ids: Any = None, target: str = "target",
                   run_id: str | None = None, log_metrics: bool = True) -> dict[str, Any]:
    """Log one evaluation of a model for the gate; return the manifest written.

    y_true       labels of the eval rows (regression targets or class labels)
    predictions  the model's prediction per row (values, or predicted class labels)
    features     the eval rows' features (DataFrame or 2-D array); optional when the
                 gate.toml pins `[eval] data`, but without them the gate cannot score
                 the model itself on these rows
    proba        (n, k) class probabilities, columns in `classes` order (classifiers)
    classes      the k class labels; default: the sorted labels seen
    task         "regression" | "binary" | "multiclass"; default: classification when
                 `proba` is given, else regression
    row_ids      stable ids of the eval rows (unique), to line them up with a pinned set
    """
    import numpy as np
    import pandas as pd

    y = np.asarray(y_true).reshape(-1)
    pred = np.asarray(predictions).reshape(-1)
    n = len(y)
    if n == 0:
        raise InputError("log_evaluation: y_true is empty")
    if len(pred) != n:
        raise InputError(f"log_evaluation: {len(pred)} predictions for {n} labels")
    frame = _features(features, n)
    if target in frame.columns:
        raise InputError(f"log_evaluation: the features already have a {target!r} column")
    probabilities, class_list = _proba(proba, classes, y, pred, n)
    task = task or (_class_task(class_list) if probabilities is not None
                    else contract.REGRESSION)
    if task not in contract.TASKS:
        raise InputError(f"log_evaluation: task must be one of {', '.join(contract.TASKS)}")
    if task == contract.REGRESSION and not np.all(np.isfinite(pred.astype(float))):
        raise InputError("log_evaluation: predictions have non-finite values")
    if task != contract.REGRESSION and not class_list:
        class_list = sorted(set(y.tolist()) | set(pred.tolist()))
    rows = frame.assign(**{target: y})
    if row_ids is not None:
        ids = np.asarray(row_ids).reshape(-1)
        if len(ids) != n or len(set(ids.tolist())) != n:
            raise InputError("log_evaluation: row_ids must be unique, one per row")
        rows.insert(0, contract.ROW_ID_COLUMN, ids)
    predicted = pd.DataFrame({contract.PREDICTION_COLUMN: pred})
    if probabilities is not None:
        for j, label in enumerate(class_list):
            predicted[f"{contract.PROBA_PREFIX}{label}"] = probabilities[:, j]
    manifest = {"contract": contract.VERSION, "task": task, "target": target,
                "classes": [_plain(c) for c in class_list], "rows": n,
                "features": [str(c) for c in frame.columns],
                "row_ids": row_ids is not None, "proba": probabilities is not None}
    metrics = _metrics(task, y, pred, probabilities, class_list) if log_metrics else {}
    _log(rows, predicted, manifest, metrics, run_id)
    return manifest


def _features(features: Any, n: int) -> Any:
    import pandas as pd

    if features is None:
        return pd.DataFrame(index=range(n))
    frame = features if isinstance(features, pd.DataFrame) else pd.DataFrame(features)
    if len(frame) != n:
        raise InputError(f"log_evaluation: {len(frame)} feature rows for {n} labels")
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _proba(proba: Any, classes: Sequence[Any] | None, y: Any, pred: Any,
           n: int) -> tuple[Any, list[Any]]:
    import numpy as np

    class_list = list(classes) if classes is not None else []
    if proba is None:
        return None, class_list
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:     # a binary classifier's probability of the positive class
        p = np.column_stack((1.0 - p, p))
    if p.ndim != 2 or p.shape[0] != n:
        raise InputError(f"log_evaluation: proba must be (n, k) with n = {n}, not {p.shape}")
    if not class_list:
        class_list = sorted(set(y.tolist()) | set(pred.tolist()))
    if len(class_list) != p.shape[1]:
        raise InputError(f"log_evaluation: {p.shape[1]} probability columns for "
                         f"{len(class_list)} classes; pass classes=")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("log_evaluation: probabilities must be finite and in [0, 1]")
    return p, class_list


def _class_task(classes: list[Any]) -> str:
    return contract.BINARY if len(classes) <= 2 else contract.MULTICLASS


def _plain(value: Any) -> Any:
    """numpy scalars to JSON's int or str."""
    item = value.item() if hasattr(value, "item") else value
    return item if isinstance(item, (int, str)) and not isinstance(item, bool) else str(item)


def _metrics(task: str, y: Any, pred: Any, proba: Any,
             classes: list[Any]) -> dict[str, float]:
    from gate.stats import engine as stats

    names: tuple[str, ...]
    if task == contract.REGRESSION:
        names, scores = REGRESSION_METRICS, pred.astype(float)
    else:
        names = CLASSIFICATION_METRICS + (PROBA_METRICS if proba is not None else ())
        scores = stats.ClassScores(labels=pred, proba=proba, classes=tuple(classes))
    values = {}
    # multiclass averages of per-class scores: macro, as sklearn's reports lead with
    average = "macro" if task == contract.MULTICLASS else None
    for name in names:
        spec = stats.MetricSpec(name, stats.known_direction(name) or "higher",
                                average=average if name in ("f1", "roc_auc") else None)
        try:
            values[name] = stats.evaluate(spec, y, scores)
        except InputError:
            continue        # undefined here (e.g. r2 of a constant target): not logged
    return values


def _log(rows: Any, predicted: Any, manifest: dict[str, Any], metrics: dict[str, float],
         run_id: str | None) -> None:
    import mlflow

    from gate.evidence.evalset import sha256_file

    active = mlflow.active_run()
    run_id = run_id or (active.info.run_id if active else None)
    if not run_id:
        raise InputError("log_evaluation: no active MLflow run; call it inside "
                         "mlflow.start_run() or pass run_id=")
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory(prefix="gate-") as tmp:
        folder = Path(tmp, contract.FOLDER)
        folder.mkdir()
        rows_path = Path(tmp, contract.EVAL_ROWS)
        rows.to_parquet(rows_path, index=False)
        predicted.to_parquet(Path(tmp, contract.PREDICTIONS), index=False)
        Path(tmp, contract.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        digest = sha256_file(rows_path)
        client.log_artifacts(run_id, str(folder), artifact_path=contract.FOLDER)
    tags = {contract.TAG_CONTRACT: str(contract.VERSION), contract.TAG_TASK: manifest["task"],
            contract.TAG_TARGET: manifest["target"],
            contract.TAG_EVAL_ROWS: str(manifest["rows"]),
            contract.TAG_EVAL_DIGEST: digest[:16]}
    if os.environ.get("GITHUB_ACTIONS") == "true":
        tags[contract.TAG_CI] = "true"      # what `gate prune` recognises CI runs by
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
