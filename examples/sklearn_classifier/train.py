"""A scikit-learn classifier, logged for the gate without train_model.py.

Breast-cancer diagnosis (bundled with scikit-learn, offline): a scaled logistic
regression, logged in skops format so the gate can load it without unpickling and
compute its predictions itself (`verified: true` in the verdict).

    export PYTHONPATH=.     # from the repository root: `import gate` finds it
    python examples/sklearn_classifier/train.py --json train.json
    python -m gate check --config examples/sklearn_classifier/gate.toml \\
        --run-id "$(jq -r .run_id train.json)" --promote
"""
from __future__ import annotations

import argparse
import json
import os
from importlib.metadata import version

import mlflow
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gate

# a model that sees only these two is clearly worse (accuracy 0.89 instead of 0.99)
WEAK_FEATURES = ["mean radius", "mean texture"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="example-sklearn-classifier")
    p.add_argument("--worse", action="store_true",
                   help=f"train on {' and '.join(WEAK_FEATURES)} only, to see a block")
    p.add_argument("--json", metavar="PATH", help='write {"run_id": ...} here')
    args = p.parse_args(argv)

    data = load_breast_cancer(as_frame=True)
    # a fixed split: every retrain is evaluated on the same rows
    X_train, X_eval, y_train, y_eval = train_test_split(
        data.data, data.target, test_size=0.25, random_state=42, stratify=data.target)
    columns = WEAK_FEATURES if args.worse else list(data.data.columns)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(X_train[columns], y_train)

    # the gate's default store when MLFLOW_TRACKING_URI is not set; MLflow's "View run"
    # line would print a user:password@ in the URI into the CI log
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # no set_tracking_uri: MLFLOW_TRACKING_URI, else MLflow's default store, as the gate
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"features": len(columns), "model": "logistic_regression"})
        mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops",
            # skops refuses every type not trusted; these models need none beyond its own
            skops_trusted_types=[],
            signature=infer_signature(X_train[columns], model.predict(X_train[columns])),
            # explicit, or MLflow spends seconds inferring them
            pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in
                              ("scikit-learn", "skops", "numpy", "pandas")])
        # every feature column, so any later model can be scored on these rows
        gate.log_evaluation(y_eval, model.predict(X_eval[columns]), features=X_eval,
                            proba=model.predict_proba(X_eval[columns]),
                            classes=list(model.classes_), row_ids=X_eval.index,
                            target="diagnosis")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"run_id": run.info.run_id}, out)
    print(f"run_id={run.info.run_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
