"""A custom `mlflow.pyfunc` model, logged for the gate without train_model.py.

Wine cultivars (bundled with scikit-learn, offline), three classes named by strings.
The model is a `PythonModel` saved with cloudpickle: loading it runs its code, so the
gate loads it only in its sandbox and computes its predictions there (`verified: true`).
Where no sandbox can be made, it compares the predictions this script logs with
`gate.log_evaluation`, marked unverified (`verified: false`), and blocks them when
promoting unless `[compare] require_verified = false`.

    export PYTHONPATH=.     # from the repository root: `import gate` finds it
    python examples/custom_pyfunc/train.py --json train.json
    python examples/custom_pyfunc/train.py --worse --json worse.json
"""
from __future__ import annotations

import argparse
import json
import os
from importlib.metadata import version
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gate

# a model that sees only this one is clearly worse (accuracy 0.70 instead of 0.98)
WEAK_FEATURES = ["color_intensity"]


class Cultivar(mlflow.pyfunc.PythonModel):
    """Names the cultivar: the kind of post-processing that makes a model custom."""

    def __init__(self, pipeline: Any, columns: list[str], names: list[str]) -> None:
        self.pipeline = pipeline
        self.columns = columns
        self.names = np.asarray(names)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> Any:
        return self.names[self.pipeline.predict(model_input[self.columns])]

    def predict_proba(self, model_input: pd.DataFrame) -> Any:
        return self.pipeline.predict_proba(model_input[self.columns])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="example-custom-pyfunc")
    p.add_argument("--worse", action="store_true",
                   help=f"use only {', '.join(WEAK_FEATURES)}, to see a block")
    p.add_argument("--json", metavar="PATH", help='write {"run_id": ...} here')
    args = p.parse_args(argv)

    data = load_wine(as_frame=True)
    # a fixed split: every retrain is evaluated on the same rows
    X_train, X_eval, y_train, y_eval = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42, stratify=data.target)
    columns = WEAK_FEATURES if args.worse else list(data.data.columns)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(X_train[columns], y_train)
    names = [str(name) for name in data.target_names]
    model = Cultivar(pipeline, columns, names)
    predicted = model.predict(None, X_eval)

    # the gate's default store when MLFLOW_TRACKING_URI is not set; MLflow's "View run"
    # line would print a user:password@ in the URI into the CI log
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # no set_tracking_uri: MLFLOW_TRACKING_URI, else MLflow's default store, as the gate
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"features": len(columns), "model": "logistic_regression"})
        mlflow.pyfunc.log_model(
            name="model", python_model=model,
            signature=infer_signature(X_eval, predicted), input_example=X_eval.head(3),
            # explicit, or MLflow spends seconds inferring them
            pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in
                              ("mlflow", "scikit-learn", "numpy", "pandas")])
        # the gate uses these predictions as they are: log them for every eval row, with
        # the class probabilities, labels as the model names them
        gate.log_evaluation(np.asarray(names)[y_eval.to_numpy()], predicted, features=X_eval,
                            proba=model.predict_proba(X_eval), classes=names,
                            row_ids=X_eval.index, target="cultivar")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"run_id": run.info.run_id}, out)
    print(f"run_id={run.info.run_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
