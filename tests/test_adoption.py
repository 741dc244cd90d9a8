"""Adopting the gate as a new team would (issue #24): MLflow's own default store, the model
name from gate.toml, a mistyped one, and the command-line friction a first user met."""
from __future__ import annotations

import re

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from gate import contract
from gate.commands.cli import main
from tests.conftest import store_rows_toml, ROOT, train

MODEL = "diabetes-regressor"
WORSE = ("--drop-columns", "bmi,s5")
BETTER = ("--n-estimators", "50", "--max-depth", "4", "--min-samples-leaf", "5")


def client() -> MlflowClient:
    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def check(run_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--run-id", run_id, "--json", "v.json", *extra])
    return code, json.loads(Path("v.json").read_text())


def one_line(err: str) -> str:
    line = err.strip()
    assert line and "\n" not in line and "Traceback" not in line, err
    return line


# -- MLflow's defaults ---------------------------------------------------------------

def test_no_tracking_uri_searches_mlflows_default_store_and_says_so(
        tmp_path: Path, empty_store: Path) -> None:
    """A trainer that set no URI logged to MLflow's default store; the gate looks there,
    and a run it cannot find is one line naming the store and why it is that one."""
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING",
                                                                    "GITHUB_"))}
    env.pop("CI", None)
    done = subprocess.run([sys.executable, "-m", "gate", "check", "--run-id", "abc"],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"run 'abc' not found in sqlite:///{tmp_path}/mlflow.db" in line
    assert "(MLFLOW_TRACKING_URI is not set: MLflow's default store)" in line
    assert not (tmp_path / "mlruns.db").exists()


def test_the_store_named_in_messages_is_redacted() -> None:
    from gate.mlflowstore.registry import Registry
    from gate.mlflowstore.tracking import DEFAULT_NOTE, store_note

    registry = Registry("http://alice:s3cret@127.0.0.1:9/", note="why")
    assert registry.where == "http://127.0.0.1:9/ (why)"
    assert store_note({}) == DEFAULT_NOTE
    assert store_note({"MLFLOW_TRACKING_URI": "http://x"}) == ""


def test_ci_still_refuses_a_missing_tracking_uri() -> None:
    from gate.errors import InputError
    from gate.mlflowstore.tracking import resolve_tracking_uri

    with pytest.raises(InputError, match="MLFLOW_TRACKING_URI is not set"):
        resolve_tracking_uri({"GITHUB_ACTIONS": "true"})


def test_a_run_on_another_store_names_the_store_searched(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--run-id", "0" * 32]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"not found in sqlite:///{local_store}/mlruns.db" in line
    assert "MLflow's default store" not in line      # the URI was set


# -- the model name ------------------------------------------------------------------

def test_model_name_comes_from_gate_toml(local_store: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    check(train("--n-estimators", "30"), "--promote")
    check(train(*BETTER), "--promote")
    assert main(["rollback", "--reason", "latency"]) == 0
    assert main(["promote", "--version", "2"]) == 0
    assert main(["status"]) == 0
    assert "Production (@production) is v2" in capsys.readouterr().out
    for command in ("status", "promote", "rollback", "check"):
        text = " ".join(_help(command).split())
        assert "[--model-name MODEL_NAME]" in text and "overrides [model] name" in text


def _help(command: str) -> str:
    from gate.commands.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return str(sub.choices[command].format_help())     # type: ignore[attr-defined]


@pytest.mark.parametrize("argv", [["status"], ["rollback"], ["promote", "--version", "1"],
                                  ["check", "--run-id", "x"]])
def test_missing_config_when_the_name_is_needed_is_one_line(
        local_store: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    Path("gate.toml").unlink()
    assert main(argv) == 2
    assert "gate.toml: config file not found" in one_line(capsys.readouterr().err)


def test_unreadable_config_is_one_line(local_store: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    Path("gate.toml").write_bytes(b"\xff\xfe[model]")
    assert main(["status"]) == 2
    assert "not UTF-8" in one_line(capsys.readouterr().err)


def test_mistyped_model_name_is_exit_2_and_registers_nothing(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = train()
    typo = "diabets-regressor"
    said = (f"model '{typo}' is not registered (gate.toml names '{MODEL}'); "
            "check --model-name")
    code, verdict = check(run_id, "--model-name", typo)
    assert code == 2 and verdict["status"] == "error" and verdict["error"] == said
    assert one_line(capsys.readouterr().err).endswith(said)
    assert check(run_id, "--model-name", typo, "--promote")[0] == 2
    assert main(["promote", "--model-name", typo, "--run-id", run_id]) == 2
    assert client().search_registered_models() == []
    # the config's own name, never registered yet, is a first model as before; so is a
    # plainly different name: a new model on purpose, not a typo
    for name in ([], ["--model-name", "churn-classifier"], ["--model-name", f"test-{MODEL}"]):
        code, verdict = check(run_id, *name)
        assert code == 0 and verdict["status"] == "first_model"


# -- friction ------------------------------------------------------------------------

def test_against_a_run_names_a_baseline_not_production(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = train("--n-estimators", "30")
    code, verdict = check(train(*WORSE), "--against", base, "--summary", "s.md")
    assert code == 1 and verdict["paired"] and verdict["champion_found_by"] == "run"
    summary = Path("s.md").read_text()
    assert f"**Compared with** run {base}" in summary and "Production run" not in summary
    assert "Baseline →<br>candidate" in summary
    assert not any("promoted before the gate" in note for note in verdict["notes"])
    assert verdict["eval_set"]["source"] == f"run {base}'s eval rows (unchecked)"
    out = capsys.readouterr().out
    assert f"baseline    run {base}" in out and "production  " not in out
    assert "baseline -> candidate" in out


def test_a_local_check_names_promote(local_store: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert check(train())[0] == 0
    out = capsys.readouterr().out
    assert "run it with --promote to promote it" in out and "main branch" not in out


def test_rollback_keeps_the_original_promotion_time(local_store: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    check(train("--n-estimators", "30"), "--promote")
    first = client().get_model_version(MODEL, "1").tags
    check(train(*BETTER), "--promote")
    assert main(["rollback"]) == 0
    tags = client().get_model_version(MODEL, "1").tags
    assert tags[contract.V_PROMOTED_AT] == first[contract.V_PROMOTED_AT]
    assert tags[contract.V_ACTOR] == first[contract.V_ACTOR]
    assert contract.V_RESTORED_AT in tags and tags[contract.V_RESTORED_FROM] == "2"
    capsys.readouterr()
    assert main(["status", "--json", "status.json"]) == 0
    rows = {r["version"].split()[0]: r for r in
            json.loads(Path("status.json").read_text())["versions"]}
    assert rows["v1"]["promoted at"] == first[contract.V_PROMOTED_AT]
    assert rows["v1"]["gate"] == "first_model (restored)"
    assert rows["v2"]["gate"] == "passed (rolled back)"


def test_an_unread_champion_model_is_not_called_missing(tmp_path: Path) -> None:
    """The report said "v1: no logged model" for a skops champion whose model it never
    read: predictions cached at its promotion, or logged metrics compared."""
    from sklearn.linear_model import LinearRegression, Ridge

    from gate.commands.check import run_gate
    from gate.core import config as config_mod
    from gate.delivery.deliver import Targets
    from tests.memory_store import MemoryStore, log_regressor

    store = MemoryStore(tmp_path / "store")
    cfg = config_mod.parse(store_rows_toml(), str(ROOT / "gate.toml"))
    train_rows, eval_rows = _diabetes_split()
    first = log_regressor(store, Ridge(alpha=1.0), train_rows, eval_rows)
    run_gate(store, cfg, first.run_id, promote=True, targets=Targets())
    v1 = store.models[MODEL].versions["1"]

    def report(name: str) -> str:
        candidate = log_regressor(store, LinearRegression(), train_rows, eval_rows)
        summary = tmp_path / f"{name}.md"
        run_gate(store, cfg, candidate.run_id, promote=False,
                 targets=Targets(summary_path=str(summary)))
        return summary.read_text()

    del v1.tags[contract.V_FLAVOR]      # promoted by a gate that did not record it
    cached = report("cached")
    # the model's files are digested (in parentheses), its MLmodel is not read
    assert re.search(r"v1 `model not read( \(files sha256:[0-9a-f]+…\))?, verified: cached at "
                     r"its promotion", cached), cached
    assert "no logged model" not in cached
    v1.tags[contract.V_FLAVOR] = "sklearn:skops"
    Path(first.artifact_uri, contract.EVAL_ROWS).unlink()     # nothing left to pair on
    fallback = report("fallback")
    assert "v1 `sklearn / skops, unverified: logged metrics only`" in fallback


def _diabetes_split() -> tuple[Any, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_eval, y_train, y_eval = train_test_split(X, y, test_size=0.2, random_state=42)
    return (X_train, y_train), (X_eval, y_eval)


# -- LoggedModel candidates ----------------------------------------------------------

def _pin_holdout(folder: Path) -> tuple[Any, Any]:
    """A held-out set pinned in gate.toml; the rest to train on."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    holdout = frame.sample(150, random_state=1)
    holdout.to_csv(folder / "holdout.csv", index=False)
    text = Path("gate.toml").read_text().replace("min = 0.2", "min = 0.1")
    Path("gate.toml").write_text(text + '\n[eval]\ndata = "holdout.csv"\ntarget = "target"\n')
    return frame.drop(index=holdout.index), holdout


def _log_model_alone(estimator: Any, rows: tuple[Any, Any]) -> str:
    """A model logged with no run (MLflow 3), its metrics on the holdout logged to it."""
    import mlflow
    import numpy as np

    from gate.evidence.loaders import TRUSTED_TYPES

    train_frame, holdout = rows
    X, y = train_frame.drop(columns="target"), train_frame["target"]
    estimator.fit(X, y)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("logged-models")
    info = mlflow.sklearn.log_model(estimator, name="ridge", serialization_format="skops",
                                    skops_trusted_types=list(TRUSTED_TYPES),
                                    input_example=X.head(2))
    assert mlflow.active_run() is None and info.run_id is None
    error = estimator.predict(holdout.drop(columns="target")) - holdout["target"]
    rmse = float(np.sqrt(np.mean(error ** 2)))
    r2 = 1 - float(np.mean(error ** 2) / np.var(holdout["target"]))
    mlflow.log_metrics({"rmse": rmse, "mae": float(np.mean(np.abs(error))), "r2": r2},
                       model_id=info.model_id)
    mlflow.end_run()        # logging a model's metrics started a run of its own
    assert client().get_logged_model(info.model_id).source_run_id is None
    return str(info.model_id)


def test_a_logged_model_without_a_run_is_gated_and_promoted_by_its_id(
        local_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.linear_model import LinearRegression, Ridge

    rows = _pin_holdout(local_store)
    first = _log_model_alone(Ridge(alpha=1.0), rows)
    code = main(["check", "--model-id", first, "--promote", "--json", "v.json"])
    verdict = json.loads(Path("v.json").read_text())
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1")
    assert verdict["candidate_run_id"] is None and verdict["candidate_model_id"] == first
    assert verdict["verified"] is True
    v1 = client().get_model_version(MODEL, "1")
    assert v1.source == f"models:/{first}" and not v1.run_id

    worse = _log_model_alone(Ridge(alpha=1000.0), rows)
    code = main(["check", "--model-id", f"models:/{worse}", "--json", "v.json"])
    verdict = json.loads(Path("v.json").read_text())
    assert code == 1 and verdict["paired"] and verdict["champion_verified"] is True

    better = _log_model_alone(LinearRegression(), rows)
    assert main(["promote", "--model-id", better, "--json", "v.json"]) == 0
    assert json.loads(Path("v.json").read_text())["promoted_version"] == "2"
    code = main(["check", "--model-id", better, "--promote", "--json", "v.json"])
    assert code == 0 and json.loads(Path("v.json").read_text())["promoted_version"] is None
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 2

    capsys.readouterr()
    assert main(["check", "--model-id", "m-0123456789abcdef", "--promote"]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"logged model 'm-0123456789abcdef' not found in sqlite:///{local_store}" in line
    assert len(client().search_model_versions(f"name = '{MODEL}'")) == 2


@pytest.mark.parametrize("given, typo", [
    ("diabets-regressor", True), ("daibetes-regressor", True), ("diabetes_regresor", True),
    ("diabetes-regressor-v2", False), ("test-diabetes-regressor", False),
    ("churn-classifier", False), ("x" * 10_000, False)])
def test_a_typo_is_two_edits_at_most(given: str, typo: bool) -> None:
    from gate.commands.naming import typo_of

    assert typo_of(given, MODEL) is typo
