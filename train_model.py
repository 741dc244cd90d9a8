"""Reference trainer: fit a scikit-learn regressor and log everything the gate needs.

With no data flags it trains on scikit-learn's bundled diabetes data set (offline).
It logs params, metrics (rmse, mae, r2), the model (skops, explicit trusted types,
signature, input example), the evaluation the gate needs through the public helper
`gate.log_evaluation`, digests of the data, and GitHub Actions context as tags.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping, Sequence

from gate import contract
from gate.errors import GateError, InfraError, InputError
from gate.mlflowstore.s3 import storage_error
from gate.mlflowstore.session import OLD_SERVER, predates_logged_models
from gate.evidence.loaders import TRUSTED_TYPES
from gate.mlflowstore.tracking import apply_client_defaults, resolve_tracking_uri

DEFAULT_EXPERIMENT = "model-gate"


@dataclass(frozen=True)
class Dataset:
    frame: Any          # pandas.DataFrame: features plus the target column
    target: str
    source: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="CSV file with features and the target column")
    p.add_argument("--target", help="name of the target column in --data")
    p.add_argument("--experiment",
                   default=os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    p.add_argument("--run-name")
    p.add_argument("--model", choices=("random_forest", "gradient_boosting", "ridge"),
                   default="random_forest")
    p.add_argument("--n-estimators", type=int, default=50)
    p.add_argument("--max-depth", type=int, default=None)
    p.add_argument("--min-samples-leaf", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=0.1, help="gradient_boosting only")
    p.add_argument("--alpha", type=float, default=1.0, help="ridge only")
    p.add_argument("--drop-columns", default="", help="comma-separated features to leave out")
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--split-seed", type=int, default=42,
                   help="keep it fixed so every run is evaluated on the same rows")
    p.add_argument("--seed", type=int, default=42, help="the model's random seed")
    p.add_argument("--json", metavar="PATH", help="write run_id and metrics here")
    args = p.parse_args(argv)
    if bool(args.data) != bool(args.target):
        p.error("--data and --target go together")
    if not 0 < args.test_size < 1:
        p.error("--test-size must be between 0 and 1")
    return args


def load_dataset(args: argparse.Namespace) -> Dataset:
    import pandas as pd

    if not args.data:
        from sklearn.datasets import load_diabetes

        bunch = load_diabetes(as_frame=True)
        return Dataset(bunch.frame, "target", "sklearn:diabetes")
    try:
        frame = pd.read_csv(args.data)
    except (OSError, ValueError) as exc:
        raise InputError(f"--data {args.data}: cannot read CSV: {exc}") from None
    if args.target not in frame.columns:
        raise InputError(f"--target {args.target!r} is not a column of {args.data}")
    numeric = frame.select_dtypes("number")
    if args.target not in numeric.columns or numeric.shape[1] < 2:
        raise InputError(f"--data {args.data}: needs a numeric target and numeric features")
    if len(numeric) < 20:
        raise InputError(f"--data {args.data}: {len(numeric)} rows is too few to train")
    return Dataset(numeric.dropna(), args.target, args.data)


def build_model(args: argparse.Namespace) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge

    if args.model == "ridge":
        return Ridge(alpha=args.alpha)
    if args.model == "gradient_boosting":
        return GradientBoostingRegressor(n_estimators=args.n_estimators,
                                         max_depth=args.max_depth or 3,
                                         min_samples_leaf=args.min_samples_leaf,
                                         learning_rate=args.learning_rate,
                                         random_state=args.seed)
    return RandomForestRegressor(n_estimators=args.n_estimators, max_depth=args.max_depth,
                                 min_samples_leaf=args.min_samples_leaf,
                                 random_state=args.seed, n_jobs=1)


def frame_digest(frame: Any) -> str:
    """A content digest of a DataFrame, stable across processes."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    head = ",".join(map(str, frame.columns)).encode()
    return hashlib.sha256(head + hashed.tobytes()).hexdigest()[:16]


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {"rmse": float(mean_squared_error(y_true, y_pred) ** 0.5),
            "mae": float(mean_absolute_error(y_true, y_pred)),
            "r2": float(r2_score(y_true, y_pred))}


def github_tags(environ: Mapping[str, str]) -> dict[str, str]:
    """Commit, branch, PR and workflow run from the GitHub Actions environment."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return {}
    event: dict[str, Any] = {}
    try:
        event = json.loads(Path(environ.get("GITHUB_EVENT_PATH", "")).read_text())
    except (OSError, ValueError):
        pass
    pr = event.get("pull_request") or {}
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repo = environ.get("GITHUB_REPOSITORY", "")
    tags = {
        # the PR head, not the merge commit GitHub checks out
        "git.commit": (pr.get("head") or {}).get("sha") or environ.get("GITHUB_SHA", ""),
        "git.branch": environ.get("GITHUB_HEAD_REF") or environ.get("GITHUB_REF_NAME", ""),
        "github.repository": repo,
        "github.actor": environ.get("GITHUB_ACTOR", ""),
        "github.event": environ.get("GITHUB_EVENT_NAME", ""),
        "github.pr": str(pr.get("number", "")),
    }
    if repo and environ.get("GITHUB_RUN_ID"):
        tags["github.run_url"] = f"{server}/{repo}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return {key: value for key, value in tags.items() if value}


def dvc_md5(data_path: str | None) -> str | None:
    """The md5 DVC recorded for the data file, if a .dvc file sits beside it."""
    if not data_path:
        return None
    try:
        text = Path(data_path + ".dvc").read_text()
    except OSError:
        return None
    match = re.search(r"^\s*-?\s*md5:\s*([0-9a-f]{32})", text, re.MULTILINE)
    return match.group(1) if match else None


def train(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature
    from sklearn.model_selection import train_test_split

    from gate import log_evaluation

    data = load_dataset(args)
    dropped = [c.strip() for c in args.drop_columns.split(",") if c.strip()]
    unknown = [c for c in dropped if c not in data.frame.columns or c == data.target]
    if unknown:
        raise InputError(f"--drop-columns: {', '.join(unknown)} is not a feature column")
    features = data.frame.drop(columns=[data.target])
    X_train, X_eval, y_train, y_eval = train_test_split(
        features, data.frame[data.target], test_size=args.test_size,
        random_state=args.split_seed)
    kept = [c for c in features.columns if c not in dropped]
    model = build_model(args).fit(X_train[kept], y_train)
    predictions = model.predict(X_eval[kept])
    metrics = regression_metrics(y_eval, predictions)

    tags = {contract.TAG_DATA_SOURCE: data.source,
            contract.TAG_DATA_DIGEST: frame_digest(data.frame), **github_tags(os.environ)}
    if md5 := dvc_md5(args.data):
        tags[contract.TAG_DVC_MD5] = md5
    params = {"model": args.model, "n_estimators": args.n_estimators,
              "max_depth": args.max_depth, "min_samples_leaf": args.min_samples_leaf,
              "learning_rate": args.learning_rate, "alpha": args.alpha,
              "drop_columns": ",".join(dropped), "test_size": args.test_size,
              "split_seed": args.split_seed, "seed": args.seed, "n_rows": len(data.frame)}

    uri = resolve_tracking_uri()
    mlflow.set_tracking_uri(uri)
    artifacts = ""      # the run's artifact root: names the bucket if S3 fails
    try:
        mlflow.set_experiment(args.experiment)
        with mlflow.start_run(run_name=args.run_name) as run:
            artifacts = run.info.artifact_uri
            mlflow.set_tags(tags)
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            # every feature, dropped ones too, so Production can be scored on these rows;
            # the dataset's index is a stable row id
            log_evaluation(y_eval.to_numpy(), predictions, features=X_eval,
                           row_ids=X_eval.index.to_numpy(), target=data.target,
                           task=contract.REGRESSION, log_metrics=False)
            mlflow.sklearn.log_model(
                model, name="model", serialization_format="skops",
                skops_trusted_types=list(TRUSTED_TYPES),
                signature=infer_signature(X_train[kept].head(5), predictions[:5]),
                input_example=X_train[kept].head(3),
                # explicit, or mlflow spends seconds inferring them in a subprocess
                pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in
                                  ("scikit-learn", "skops", "numpy", "pandas")])
    except MlflowException as exc:
        if predates_logged_models(exc):
            raise InfraError(f"MLflow at {_safe(uri)} {OLD_SERVER}: this MLflow "
                             f"{mlflow.__version__} client cannot log a model there; log it "
                             "with an MLflow 2 client, or upgrade the server") from None
        raise storage_error(exc, artifacts) or InfraError(
            f"MLflow at {_safe(uri)} refused the run: "
            f"{str(exc.message).splitlines()[0]}") from None
    except OSError as exc:
        raise storage_error(exc, artifacts) or InfraError(
            f"cannot reach MLflow at {_safe(uri)}: {type(exc).__name__}") from None
    except Exception as exc:    # boto3's own errors, when the client writes to S3 itself
        raise storage_error(exc, artifacts) or exc
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "metrics": metrics, "eval_rows": len(y_eval)}


def _safe(uri: str) -> str:
    from gate.core.redaction import redact_uri

    return redact_uri(uri)


def write_outputs(result: dict[str, Any], json_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as out:
            out.write(f"run_id={result['run_id']}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    apply_client_defaults()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    _mask_secrets()
    try:
        result = train(args)
        write_outputs(result, args.json)
    except GateError as exc:
        _error(str(exc))
        return exc.exit_code
    except Exception as exc:  # MLflow's messages quote the tracking URI, credentials too
        _error(f"{type(exc).__name__}: {exc}")
        return 3
    metrics = " ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
    print(f"run_id={result['run_id']} {metrics}")
    return 0


def _mask_secrets() -> None:
    """In GitHub Actions, have the runner mask every credential this step holds (S3 keys
    in direct mode too) before MLflow or boto3 can print anything, as the gate does."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from gate import github
    from gate.core.redaction import secrets_in

    for line in github.mask_lines(secrets_in(os.environ)):
        print(line, flush=True)


def _error(message: str) -> None:
    """One line on stderr, with no user:password@ (MLflow's own messages carry one)."""
    from gate.core.redaction import scrub

    line = " ".join(scrub(message, os.environ).split())
    print(f"train_model: error: {line}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
