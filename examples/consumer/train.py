"""A team's own trainer: plain MLflow and scikit-learn, no import of the gate.

Breast-cancer diagnosis (bundled with scikit-learn, offline). The model is logged in
skops format, so the gate loads it without unpickling and scores the pinned eval set
(gate.toml [eval]) itself. Its rows are the held-out quarter of a fixed split
(data/eval.csv); the trainer never fits on them.

    python train.py                 # MLflow's default store, or MLFLOW_TRACKING_URI
    model-gate check --run-id RUN --promote
"""
from __future__ import annotations

import argparse
import os
import sys

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# a model that sees only these two is clearly worse (accuracy ~0.89 instead of ~0.98)
WEAK_FEATURES = ["mean radius", "mean texture"]


def split() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """A fixed split: every retrain is judged on the same held-out rows."""
    data = load_breast_cancer(as_frame=True)
    X_train, X_eval, y_train, y_eval = train_test_split(
        data.data, data.target, test_size=0.25, random_state=42, stratify=data.target)
    return X_train, X_eval, y_train, y_eval


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="consumer-classifier")
    p.add_argument("--worse", action="store_true", help="train on two features only")
    p.add_argument("--write-eval", metavar="PATH",
                   help="write the held-out rows as CSV (how data/eval.csv was made)")
    args = p.parse_args(argv)

    X_train, X_eval, y_train, y_eval = split()
    if args.write_eval:
        rows = X_eval.assign(target=y_eval)
        rows.to_csv(args.write_eval, index=False, float_format="%.17g")
        return 0
    features = WEAK_FEATURES if args.worse else list(X_train.columns)
    # the model takes every column and keeps its own: the gate scores the rows as they are
    select = ColumnTransformer([("keep", "passthrough", features)], remainder="drop")
    model = make_pipeline(select, StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X_train, y_train)

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"features": len(features), "model": "logistic_regression"})
        # the first model is held to gate.toml's bounds by what its run logged; later
        # ones are compared with Production on predictions the gate computes itself
        mlflow.log_metric("accuracy", float(model.score(X_eval, y_eval)))
        mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops", skops_trusted_types=[],
            signature=infer_signature(X_train, model.predict(X_train)))
    print(f"run_id={run.info.run_id}")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:     # the reusable workflow reads the run id from the train step's outputs
        with open(output, "a", encoding="utf-8") as out:
            out.write(f"run_id={run.info.run_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
