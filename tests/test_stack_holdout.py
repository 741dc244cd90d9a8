"""The sealed holdout on the deployed stack: PostgreSQL, S3 (moto), basic-auth MLflow.

The admin publishes it to the experiment bootstrap sealed; a pull request's credential
(`ci-pr`, which its trainer holds) is refused it with HTTP 403, whether through the gate
or a direct download; the gate's identities (`ci-promoter`, `ci-gate`) read it, and the
verdict is paired on its rows. Shares the session's stack with tests/test_stack.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pytest
from mlflow import MlflowClient

import train_model
from gate.commands.cli import main as gate
from tests.conftest import store_rows_toml
from tests.stack import EXPERIMENT, HOLDOUT_EXPERIMENT, MODEL, REPO, Stack, bootstrapped  # noqa: F401,E501
from tests.verdicts import IN_PROCESS, read_verdict

NAME = "diabetes-sealed"
# What the tests share, in order: the holdout's run and rows, the config pinning it.
SEALED: dict[str, str] = {}

Login = Callable[[str], None]


@pytest.fixture
def login(bootstrapped: Stack, monkeypatch: pytest.MonkeyPatch) -> Login:  # noqa: F811
    """The process as one user, with the variables a workflow step sets; no S3 keys."""
    passwords = {"admin": bootstrapped.passwords.admin, "ci-pr": bootstrapped.passwords.ci_pr,
                 "ci-promoter": bootstrapped.passwords.ci_promoter,
                 "ci-gate": bootstrapped.passwords.ci_gate}

    def as_user(username: str) -> None:
        env = bootstrapped.client_env(username, passwords[username])
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                    "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.setenv(key, env[key])
        dropped = ["MLFLOW_S3_ENDPOINT_URL", "GITHUB_ACTIONS"]
        for key in [k for k in os.environ if k.startswith("AWS_")] + dropped:
            monkeypatch.delenv(key, raising=False)
    return as_user


def check(tmp_path: Path, run_id: str, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "verdict.json"
    code = gate(["check", "--run-id", run_id, "--config", SEALED["config"], "--json",
                 str(out), *extra])
    return code, read_verdict(out, IN_PROCESS)


def train(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "train.json"
    assert train_model.main([*args, "--experiment", EXPERIMENT, "--json", str(out)]) == 0
    return json.loads(out.read_text())["run_id"]


def test_admin_publishes_the_holdout(bootstrapped: Stack, login: Login, tmp_path: Path,  # noqa: F811,E501
                                     tmp_path_factory: pytest.TempPathFactory,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from sklearn.datasets import load_diabetes

    rows = load_diabetes(as_frame=True).frame.sample(n=150, random_state=11)
    path = tmp_path / "sealed.parquet"
    rows.to_parquet(path, index=False)
    login("admin")
    argv = ["holdout", "publish", str(path), "--target", "target", "--name", NAME]
    assert gate(argv) == 0
    lines = capsys.readouterr().out
    assert gate(argv) == 0                          # again: the same run
    assert capsys.readouterr().out.splitlines()[1:] == lines.splitlines()[1:]
    home = tmp_path_factory.mktemp("sealed")
    config = home / "gate.toml"
    config.write_text(store_rows_toml() + "\n" + lines)
    data = next(line for line in lines.splitlines() if line.startswith("data = "))
    SEALED.update(config=str(config), rows=str(len(rows)), uri=json.loads(data[7:]))
    SEALED["run"] = SEALED["uri"].split("/")[1]
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(HOLDOUT_EXPERIMENT).experiment_id])
    assert [r.info.run_id for r in runs] == [SEALED["run"]]


def test_pr_credential_is_refused_the_holdout(bootstrapped: Stack, login: Login,  # noqa: F811
                                              tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    login("ci-pr")
    SEALED["candidate"] = train(tmp_path, "--model", "ridge", "--alpha", "0.1")
    capfd.readouterr()
    code, verdict = check(tmp_path, SEALED["candidate"])
    err = capfd.readouterr().err
    assert code == 3 and verdict["status"] == "error"
    assert err.count("\n") == 1 and "HTTP 403" in err and "ci-pr" in err, err
    assert "the sealed holdout is read by the gate's own user" in err
    assert "Traceback" not in err
    # nor can the trainer fetch the file itself, or publish over it
    with pytest.raises(Exception, match="403"):
        MlflowClient().download_artifacts(SEALED["run"], f"holdout/{NAME}.parquet",
                                          str(tmp_path))
    rows = tmp_path / "mine.csv"
    rows.write_text("x,t\n1,2\n")
    capfd.readouterr()
    assert gate(["holdout", "publish", str(rows), "--target", "t", "--name", NAME]) == 3
    err = capfd.readouterr().err
    assert "HTTP 403" in err and "ci-pr" in err, err


def test_gate_identities_are_paired_on_the_holdout(bootstrapped: Stack, login: Login,  # noqa: F811,E501
                                                   tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    login("ci-promoter")
    champion = MlflowClient().get_registered_model(MODEL).aliases.get("production")
    if champion is None:        # run alone: main promotes the first model on the holdout
        code, verdict = check(tmp_path, train(tmp_path, "--n-estimators", "10"), "--promote")
        assert code == 0 and verdict["status"] == "first_model", capfd.readouterr().err
        assert verdict["eval_set"]["source"] == f"sealed holdout {NAME}"
    login("ci-gate")
    code, verdict = check(tmp_path, SEALED["candidate"])
    assert code in (0, 1), capfd.readouterr().err
    assert verdict["paired"] and verdict["champion_version"]
    assert verdict["eval_set"]["source"] == f"sealed holdout {NAME}"
    assert verdict["eval_set"]["rows"] == int(SEALED["rows"])
