"""Speed of the gate, as ratios against a peer measured in the same run.

1. The gate's decision (candidate and champion lookup, champion re-score on the
   candidate's eval rows, paired bootstrap, verdict) against MLflow's native path
   (`mlflow.models.evaluate` of both models on the same rows, then
   `validate_evaluation_results`), on the same real `mlflow server` and data.
2. The paired bootstrap's cost against eval rows (1k, 10k, 100k) at 2000 resamples.
3. One in-process `gate check` against history: 10 versus 10,000 runs in the
   experiment, then 1 versus 500 versions of the model.

    python -m bench.gate_speed            # full run, ~3-5 min on 2 busy cores
    python -m bench.gate_speed --quick    # a tiny version for smoke tests
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from bench.common import log, machine, median_time, migrated_store, table
from tests.servers import mlflow_server

ROOT = Path(__file__).resolve().parent.parent
ALIAS = "production"


@dataclass(frozen=True)
class Model:
    """A registered model with a champion (v1) and a seed-only candidate run, both in
    an experiment of the model's name."""

    label: str
    name: str
    config_path: Path
    champion_run: str
    candidate_run: str
    eval_rows: int


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the bench, and put the old ones back."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def quiet() -> None:
    import mlflow  # noqa: F401  (it sets its loggers to INFO when imported)

    for name in ("mlflow", "alembic", "urllib3", "git", "shap"):
        logging.getLogger(name).setLevel(logging.WARNING)


def train(experiment: str, *args: str) -> str:
    """The reference trainer, in-process; returns the run id."""
    import train_model

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        out = Path(tmp, "train.json")
        code = train_model.main([*args, "--experiment", experiment, "--json", str(out)])
        if code != 0:
            raise RuntimeError(f"train_model {' '.join(args)} exited {code}")
        return json.loads(out.read_text())["run_id"]


def gate_check(model: Model, out_dir: Path, *extra: str) -> int:
    """One `gate check` through the CLI entry, report and JSON to out_dir."""
    from gate import cli

    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["check", "--run-id", model.candidate_run, "--config",
                         str(model.config_path), "--json", str(out_dir / "verdict.json"),
                         "--summary", str(out_dir / "summary.md"), *extra])
    if code not in (0, 1):
        raise RuntimeError(f"gate check exited {code}")
    return code


def setup_model(work: Path, label: str, name: str, data: Sequence[str]) -> Model:
    """Train a champion (seed 0), make it Production with the gate, and a candidate."""
    from mlflow import MlflowClient

    config = work / f"{name}.toml"
    config.write_text((ROOT / "gate.toml").read_text().replace(
        'name = "diabetes-regressor"', f'name = "{name}"'))
    champion = train(name, *data, "--seed", "0")
    candidate = train(name, *data, "--seed", "1")
    log(f"{name}: trained; promoting the champion")
    gate_check(Model(label, name, config, champion, champion, 0), work, "--promote")
    verdict = json.loads((work / "verdict.json").read_text())
    if verdict.get("promoted_version") != "1":
        raise RuntimeError(f"champion of {name} was not promoted: {verdict.get('status')}")
    rows = MlflowClient().get_run(candidate).data.tags.get("gate.eval_rows", "0")
    return Model(label, name, config, champion, candidate, int(rows))


def friedman_csv(path: Path, rows: int) -> Path:
    import pandas as pd
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=rows, n_features=10, noise=1.0, random_state=0)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(y=y)
    frame.to_csv(path, index=False)
    return path


# -- 1. the decision against MLflow's native path ------------------------------------

def gate_decision(uri: str, model: Model) -> Callable[[], Any]:
    from gate import config as config_mod
    from gate import evidence
    from gate.decide import decide
    from gate.registry import Registry

    cfg = config_mod.load(model.config_path)
    registry = Registry(uri)

    def run() -> Any:
        candidate = registry.run(model.candidate_run)
        champion = registry.champion(cfg.model)
        gathered = evidence.gather(registry, cfg, candidate, champion)
        if not gathered.evidence.paired:
            raise RuntimeError(f"the gate fell back: {gathered.evidence.fallback_reason}")
        return decide(cfg, gathered.evidence)
    return run


def native_decision(uri: str, model: Model) -> Callable[[], Any]:
    """What a team writes with MLflow alone: evaluate both models on the candidate's
    eval rows, then validate; the thresholds mirror gate.toml's metrics."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    client = MlflowClient(uri)
    run = client.get_run(model.candidate_run)
    target = run.data.tags["gate.target"]
    model_id = run.outputs.model_outputs[-1].model_id
    thresholds = {
        "root_mean_squared_error": MetricThreshold(threshold=70.0, greater_is_better=False),
        "mean_absolute_error": MetricThreshold(min_relative_change=0.0,
                                               greater_is_better=False),
        "r2_score": MetricThreshold(threshold=0.2, greater_is_better=True),
    }
    mlflow.set_experiment("bench-native-evaluate")

    def evaluate(uri: str, data: Any) -> Any:
        return mlflow.models.evaluate(
            uri, data, targets=target, model_type="regressor",
            # explainability (SHAP) off: the native path at its fastest
            evaluator_config={"log_model_explainability": False})

    def run_native() -> bool:
        with tempfile.TemporaryDirectory() as tmp:
            rows = client.download_artifacts(model.candidate_run, "gate/eval_rows.csv", tmp)
            data = pd.read_csv(rows)
        # evaluate prints a link to each run it creates
        with contextlib.redirect_stdout(io.StringIO()):
            candidate = evaluate(f"models:/{model_id}", data)
            champion = evaluate(f"models:/{model.name}@{ALIAS}", data)
        try:
            mlflow.validate_evaluation_results(thresholds, candidate, champion)
        except ModelValidationFailedException:
            return False
        return True
    return run_native


@contextlib.contextmanager
def counting_requests() -> Iterator[list[str]]:
    """Every HTTP request made inside the block (MLflow's client uses requests)."""
    import requests

    seen: list[str] = []
    original = requests.Session.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"{method} {url}")
        return original(self, method, url, *args, **kwargs)

    requests.Session.request = request     # type: ignore[method-assign]
    try:
        yield seen
    finally:
        requests.Session.request = original    # type: ignore[method-assign]


def compare_paths(uri: str, models: Sequence[Model], repeats: int) -> list[list[Any]]:
    rows = []
    for model in models:
        gate, native = gate_decision(uri, model), native_decision(uri, model)
        log(f"decision {model.label}: warming up")
        # the counted calls also warm up: imports, connections, MLflow's lazy caches
        with counting_requests() as gate_calls:
            gate()
        with counting_requests() as native_calls:
            native()
        gate_times, native_times = [], []
        for _ in range(repeats):      # interleaved, so load spikes hit both
            gate_times.append(median_time(gate, 1)[0])
            native_times.append(median_time(native, 1)[0])
        g, n = statistics.median(gate_times), statistics.median(native_times)
        log(f"decision {model.label}: gate {g:.2f}s, native {n:.2f}s")
        rows.append([model.label, model.eval_rows, repeats, f"{g:.3f}", spread(gate_times),
                     len(gate_calls), f"{n:.3f}", spread(native_times), len(native_calls),
                     f"{n / g:.1f}x"])
    return rows


def spread(times: Sequence[float]) -> str:
    return f"{min(times):.2f}-{max(times):.2f}"


# -- 2. bootstrap cost against eval rows --------------------------------------------

def bootstrap_cost(sizes: Sequence[int], resamples: int, repeats: int) -> list[list[Any]]:
    from gate import stats

    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        y = rng.normal(150, 75, n)
        champion = y + rng.normal(0, 55, n)
        candidate = champion + rng.normal(0, 10, n)

        def one(metric: str = "rmse") -> None:
            stats.paired_bootstrap(metric, "higher" if metric == "r2" else "lower", y,
                                   champion, candidate, confidence=0.95,
                                   resamples=resamples, seed=0)

        def three() -> None:     # as the gate does it: one set of resamples for all
            stats.paired_bootstraps([("rmse", "lower"), ("mae", "lower"), ("r2", "higher")],
                                    y, champion, candidate, confidence=0.95,
                                    resamples=resamples, seed=0)
        one_time, _ = median_time(one, repeats)
        three_time, _ = median_time(three, repeats)
        log(f"bootstrap {n} rows: {one_time:.3f}s one metric, {three_time:.3f}s three")
        rows.append([f"{n:,}", resamples, f"{1000 * one_time:.0f}",
                     f"{1000 * three_time:.0f}"])
    return rows


# -- 3. one gate check against history ----------------------------------------------

def add_runs(store_uri: str, experiment_id: str, count: int) -> None:
    """Runs shaped like the trainer's (3 metrics, 11 params, 4 tags), no artifacts."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=store_uri)
    now = int(time.time() * 1000)
    params = {"model": "random_forest", "n_estimators": "50", "max_depth": "None",
              "min_samples_leaf": "1", "learning_rate": "0.1", "alpha": "1.0",
              "drop_columns": "", "test_size": "0.2", "split_seed": "42", "n_rows": "442"}
    for i in range(count):
        run = client.create_run(experiment_id, start_time=now, run_name=f"history-{i}",
                                tags={"gate.target": "target", "gate.eval_rows": "89",
                                      "gate.data_digest": f"{i:016x}",
                                      "gate.eval_digest": f"{i:016x}"})
        client.log_batch(run.info.run_id,
                         metrics=[Metric("rmse", 55.0 + i % 7, now, 0),
                                  Metric("mae", 44.0 + i % 5, now, 0),
                                  Metric("r2", 0.4 + (i % 3) / 100, now, 0)],
                         params=[Param(k, v) for k, v in {**params, "seed": str(i)}.items()])
        if (i + 1) % 1000 == 0:
            log(f"  {i + 1}/{count} runs")


def add_versions(store_uri: str, name: str, run_id: str, count: int) -> None:
    """More versions of the champion's logged model, each tagged as once promoted."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    model_id = client.get_run(run_id).outputs.model_outputs[-1].model_id
    for i in range(count):
        client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, model_id=model_id,
            tags={"gate.status": "passed", "gate.promoted_at": "2024-01-01T00:00:00+00:00",
                  "gate.champion_version": "1", "gate.commit": f"{i:040x}",
                  "gate.metrics": json.dumps({"rmse": 55.0 + i % 7, "mae": 44.0,
                                              "r2": 0.4})},
            await_creation_for=0)
        if (i + 1) % 100 == 0:
            log(f"  {i + 1}/{count} versions")


def history_cost(history_uri: str, small: Model, many_runs: Model, many_versions: Model,
                 work: Path, runs: int, versions: int, repeats: int) -> list[list[Any]]:
    """`gate check` on models side by side in one store: a small one (10 runs in its
    experiment, 1 version), one whose experiment gets `runs` runs, one that gets
    `versions` versions; timed interleaved, so a load spike on the shared machine hits
    all of them. The small one is also timed before any history exists. With one model
    in all three roles (--quick), it is timed before and after. History is written
    through `history_uri` (the server's SQLite file directly, when it is ours)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    models = list({m.name: m for m in (small, many_runs, many_versions)}.values())
    for model in models:
        add_runs(history_uri, experiment_of(client, model), 8)    # 10 runs each
    gate_check(small, work)     # warm
    _, fresh = median_time(lambda: gate_check(small, work), repeats)
    log(f"history: {statistics.median(fresh):.2f}s before any history; "
        f"adding {runs - 10} runs")
    add_runs(history_uri, experiment_of(client, many_runs), runs - 10)
    log(f"history: adding {versions - 1} versions")
    add_versions(history_uri, many_versions.name, many_versions.champion_run, versions - 1)
    times: dict[str, list[float]] = {m.name: [] for m in models}
    for model in models[1:]:
        gate_check(model, work)     # warm
    for _ in range(repeats):
        for model in models:
            times[model.name].append(median_time(lambda: gate_check(model, work), 1)[0])

    if len(models) == 1:
        base = statistics.median(fresh)
        labels = [(small, f"{runs:,} runs, {versions} versions (one model)")]
    else:
        base = statistics.median(times[small.name])
        labels = [(small, "10 runs, 1 version"), (many_runs, f"{runs:,} runs, 1 version"),
                  (many_versions, f"10 runs, {versions} versions")]
    rows: list[list[Any]] = [["10 runs, 1 version, before the history was added",
                              f"{statistics.median(fresh):.3f}", spread(fresh),
                              f"{statistics.median(fresh) / base:.2f}x"]]
    for model, label in labels:
        value = statistics.median(times[model.name])
        rows.append([label, f"{value:.3f}", spread(times[model.name]),
                     f"{value / base:.2f}x"])
    return rows


def experiment_of(client: Any, model: Model) -> str:
    return client.get_run(model.champion_run).info.experiment_id


# -- the run ------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny version for smoke tests")
    p.add_argument("--repeats", type=int, help="timed repetitions per figure (default 5)")
    p.add_argument("--runs", type=int, help="runs in the big experiment (default 10000)")
    p.add_argument("--versions", type=int, help="versions of the big model (default 500)")
    p.add_argument("--tracking-uri",
                   help="use this MLflow instead of starting a server (history goes "
                   "through it too, which is slower)")
    p.add_argument("--store-template", type=Path,
                   help="a migrated empty SQLite store to copy (skips ~10 s of migrations)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 5)
    runs = max(10, args.runs or (20 if quick else 10_000))
    versions = max(1, args.versions or (3 if quick else 500))
    quiet()
    started = time.perf_counter()
    header = machine()
    with tempfile.TemporaryDirectory(prefix="gate-speed-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        # MLflow's deprecation and signature chatter; scoped, so a caller keeps its filters
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        if args.tracking_uri:
            uri = history_uri = args.tracking_uri
        else:
            store = migrated_store(work / "mlflow.db", args.store_template)
            uri = stack.enter_context(mlflow_server(work, store))
            history_uri = f"sqlite:///{store}"
        stack.enter_context(environment(MLFLOW_TRACKING_URI=uri))
        # names unique per run, so a shared server (the test suite's) takes it twice
        tag = uuid.uuid4().hex[:6]
        log(f"MLflow at {uri}; training champions and candidates")
        models = [setup_model(work, "diabetes", f"speed-diabetes-{tag}", [])]
        if not quick:
            csv = friedman_csv(work / "friedman.csv", 5000)
            models.append(setup_model(work, "friedman1", f"speed-friedman-{tag}",
                                      ["--data", str(csv), "--target", "y"]))
        decisions = compare_paths(uri, models, repeats)
        boot = bootstrap_cost((1000, 10_000) if quick else (1000, 10_000, 100_000),
                              200 if quick else 2000, 1 if quick else 3)
        if quick:
            many_runs = many_versions = models[0]
        else:
            many_runs = setup_model(work, "runs", f"history-runs-{tag}", [])
            many_versions = setup_model(work, "versions", f"history-versions-{tag}", [])
        history = history_cost(history_uri, models[0], many_runs, many_versions, work,
                               runs, versions, repeats)
    print(report(header, raw, decisions, boot, history, time.perf_counter() - started))
    return 0


def report(header: str, argv: Sequence[str], decisions: list[list[Any]],
           boot: list[list[Any]], history: list[list[Any]], seconds: float) -> str:
    command = " ".join(["python -m bench.gate_speed", *argv])
    return "\n".join([
        "## Gate speed", "", f"Measured {header}.", f"Command: `{command}`", "",
        "### Decision: the gate against MLflow's native path", "",
        "Median seconds per decision on one real `mlflow server` (SQLite, served "
        "artifacts). Gate: candidate and champion lookup, `evidence.gather` (downloads the "
        "eval rows, predictions and champion model, re-scores, bootstraps rmse, mae, r2) "
        "and `decide`. Native: download the same eval rows, `mlflow.models.evaluate` of "
        "both models, `validate_evaluation_results`. Target: >= 4x.", "",
        table(["data", "eval rows", "repeats", "gate (s)", "gate min-max", "gate requests",
               "native (s)", "native min-max", "native requests", "native / gate"],
              decisions),
        "### Paired bootstrap against eval rows", "",
        table(["eval rows", "resamples", "one metric (ms)", "rmse + mae + r2 (ms)"], boot),
        "### One `gate check` against history", "",
        "In-process `gate.cli.main(['check', ...])` with the JSON and the summary written "
        "to a temp dir, against the same server. Three models side by side in one store, "
        "timed interleaved. Target: flat (within 1.3x).", "",
        table(["history", "median (s)", "min-max (s)", "vs 10 runs, 1 version"], history),
        f"Wall time of the whole bench: {seconds:.0f} s.", ""])


if __name__ == "__main__":
    raise SystemExit(main())
