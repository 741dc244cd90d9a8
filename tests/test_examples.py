"""The trainers in examples/ (none uses train_model.py), each gated end to end against a
real `mlflow server`: the trainer runs as its own process, as a user's would, and the
gate reads the example's own gate.toml. First model promoted, a clearly worse one
blocked with nothing promoted; paired and verified, every model scored in the gate's
sandbox."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gate.commands.cli import main
from tests.conftest import ROOT
from tests.verdicts import IN_PROCESS, read_verdict

EXAMPLES = ROOT / "examples"
PYFUNC_EXPERIMENT = "test-examples-custom-pyfunc"
PYFUNC_CONFIG = EXAMPLES / "custom_pyfunc" / "gate.toml"


@pytest.fixture
def server(mlflow_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The shared server, for the trainers (subprocesses) and the gate (in-process)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    return mlflow_server


def train(example: str, experiment: str, out: Path, *args: str,
          env: dict[str, str] | None = None) -> str:
    """Run examples/<example>/train.py as a user would; return its run id."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    done = subprocess.run([sys.executable, str(EXAMPLES / example / "train.py"),
                           "--experiment", experiment, *args, "--json", str(out)],
                          env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())["run_id"]


@pytest.fixture(scope="module")
def pyfunc_runs(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A good and a clearly worse custom pyfunc run, trained once for the tests below."""
    out = tmp_path_factory.mktemp("pyfunc")
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    return {"good": train("custom_pyfunc", PYFUNC_EXPERIMENT, out / "good.json", env=env),
            "worse": train("custom_pyfunc", PYFUNC_EXPERIMENT, out / "worse.json", "--worse",
                           env=env)}


def check(config: Path, run_id: str, model: str, out: Path,
          *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--config", str(config), "--model-name", model,
                 "--run-id", run_id, "--promote", "--new-model", "--json", str(out), *extra])
    return code, read_verdict(out, IN_PROCESS)


def alias_version(server: str, model: str) -> str | None:
    try:
        aliases = MlflowClient(server).get_registered_model(model).aliases
    except MlflowException:
        return None         # never registered
    return str(aliases["production"]) if "production" in aliases else None


@pytest.mark.parametrize(("example", "worse"), [
    ("sklearn_classifier", ("--worse",)),
    ("lightgbm_booster", ("--rounds", "3")),
])
def test_a_loadable_model_is_verified_and_paired(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], example: str,
        worse: tuple[str, ...]) -> None:
    config = EXAMPLES / example / "gate.toml"
    model, experiment = f"test-examples-{example}", f"test-examples-{example}"

    first = train(example, experiment, tmp_path / "first.json")
    code, verdict = check(config, first, model, tmp_path / "v1.json")
    assert code == 0, capsys.readouterr().err
    assert verdict["status"] == "first_model" and verdict["promoted_version"] == "1"
    assert verdict["verified"] is True

    bad = train(example, experiment, tmp_path / "worse.json", *worse)
    code, verdict = check(config, bad, model, tmp_path / "v2.json")
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    assert verdict["status"] == "blocked" and verdict["promoted_version"] is None
    # both models scored by the gate itself on the same rows, not on their own claims
    assert verdict["paired"] is True and verdict["fallback_reason"] is None
    assert verdict["verified"] is True and verdict["champion_verified"] is True
    failed = [m for m in verdict["metrics"] if m["status"] == "failed"]
    # blocked by the comparison with Production, not only by an absolute bound
    assert failed and all(m["worsening"] > m["allowance"] and m["ci_low"] > 0
                          for m in failed)
    assert alias_version(server, model) == "1"


def test_a_custom_pyfunc_is_scored_in_the_sandbox_and_verified(
        server: str, pyfunc_runs: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    model = "test-examples-custom-pyfunc"
    code, verdict = check(PYFUNC_CONFIG, pyfunc_runs["good"], model, tmp_path / "v1.json")
    assert code == 0, capsys.readouterr().err
    assert verdict["status"] == "first_model" and verdict["promoted_version"] == "1"
    assert verdict["verified"] is True      # #28: computed in the sandbox, no longer logged
    assert verdict["candidate_model"]["model"] == "python_function / cloudpickle"

    code, verdict = check(PYFUNC_CONFIG, pyfunc_runs["worse"], model, tmp_path / "v2.json",
                          "--summary", str(tmp_path / "summary.md"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert verdict["status"] == "blocked" and verdict["promoted_version"] is None
    # same rows (Production's), both computed by the gate: paired, verified
    assert verdict["paired"] is True
    assert verdict["verified"] is True and verdict["champion_verified"] is True
    summary = (tmp_path / "summary.md").read_text()
    assert "predictions unverified" not in summary
    assert alias_version(server, model) == "1"


def test_require_verified_and_allowed_flavors_keep_a_custom_pyfunc_out(
        server: str, pyfunc_runs: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = pyfunc_runs["good"]
    text = PYFUNC_CONFIG.read_text()

    strict = tmp_path / "strict.toml"
    strict.write_text(text.replace("seed = 0", "seed = 0\nrequire_verified = true"))
    model = "test-examples-pyfunc-strict"
    code, verdict = check(strict, run, model, tmp_path / "strict.json")
    # #28: the pyfunc is scored in the sandbox, so require_verified no longer keeps it out
    assert code == 0, capsys.readouterr().err
    assert verdict["verified"] is True and verdict["promoted_version"] == "1"
    assert alias_version(server, model) == "1"

    only_lgb = tmp_path / "only-lightgbm.toml"
    only_lgb.write_text(text.replace('alias = "production"',
                                     'alias = "production"\nallowed_flavors = ["lightgbm"]'))
    model = "test-examples-pyfunc-flavors"
    code, verdict = check(only_lgb, run, model, tmp_path / "flavors.json")
    assert code == 1, capsys.readouterr().err
    assert any("allowed_flavors" in reason for reason in verdict["blocked_by"])
    assert alias_version(server, model) is None
