"""deploy/bootstrap.py against the real stack: users, grants, rotation, idempotence."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
import requests

from tests.stack import (  # noqa: F401
    AUTH_CACHE_TTL, BOOTSTRAP, EXPERIMENT, HOLDOUT_EXPERIMENT, MODEL, Stack, bootstrapped)

CI_USERS = ("ci-pr", "ci-promoter")


def state(live: Stack) -> dict[str, object]:
    """Every user, with admin flag and every grant: what a second run must not change."""
    admin = live.admin()
    users = admin.get(f"{live.tracking_uri}/api/2.0/mlflow/users/list", timeout=10)
    users.raise_for_status()
    snapshot: dict[str, object] = {}
    for user in users.json()["users"]:
        grants = admin.get(f"{live.tracking_uri}/api/3.0/mlflow/users/permissions/list",
                           params={"username": user["username"]}, timeout=10)
        grants.raise_for_status()
        snapshot[user["username"]] = (
            user["is_admin"],
            sorted((g["role_name"], g["resource_type"], g["resource_pattern"], g["permission"])
                   for g in grants.json()["permissions"]),
        )
    return snapshot


def effective(live: Stack, username: str, rtype: str, rid: str) -> str:
    resp = live.admin().get(f"{live.tracking_uri}/api/3.0/mlflow/users/permissions/get",
                            params={"username": username, "resource_type": rtype,
                                    "resource_id": rid}, timeout=10)
    resp.raise_for_status()
    return resp.json()["permission"]


def logs_in(live: Stack, username: str, password: str) -> bool:
    resp = requests.get(f"{live.tracking_uri}/api/2.0/mlflow/users/current",
                        auth=(username, password), timeout=10)
    return resp.status_code == 200


def refused(live: Stack, username: str, password: str) -> bool:
    """Refused by every worker: wait out the credential cache a worker may still hold."""
    time.sleep(AUTH_CACHE_TTL + 0.5)
    return not any(logs_in(live, username, password) for _ in range(4))


def experiment_id(live: Stack, name: str = EXPERIMENT) -> str:
    resp = live.admin().get(f"{live.tracking_uri}/api/2.0/mlflow/experiments/get-by-name",
                            params={"experiment_name": name}, timeout=10)
    resp.raise_for_status()
    return resp.json()["experiment"]["experiment_id"]


def assert_no_password(live: Stack, result: subprocess.CompletedProcess[str]) -> None:
    for password in dataclasses.astuple(live.passwords):
        assert password not in result.stdout + result.stderr


def test_second_run_changes_nothing(bootstrapped: Stack) -> None:  # noqa: F811
    before = state(bootstrapped)
    result = bootstrapped.run_bootstrap()
    assert result.returncode == 0, result.stderr
    assert state(bootstrapped) == before
    assert "admin: password already rotated" in result.stdout
    assert "created" not in result.stdout and "granted" not in result.stdout
    # 3 users x (experiment, registered model, holdout experiment)
    assert result.stdout.count(": unchanged") == 9
    assert_no_password(bootstrapped, result)


def test_users_hold_least_privilege(bootstrapped: Stack) -> None:  # noqa: F811
    exp = experiment_id(bootstrapped)
    assert {user: (effective(bootstrapped, user, "experiment", exp),
                   effective(bootstrapped, user, "registered_model", MODEL))
            for user in CI_USERS} == {"ci-pr": ("EDIT", "READ"), "ci-promoter": ("EDIT", "EDIT")}
    snapshot = state(bootstrapped)
    assert not any(snapshot[user][0] for user in CI_USERS)


def test_only_the_gate_identities_read_the_sealed_holdout(bootstrapped: Stack) -> None:  # noqa: F811,E501
    exp, holdout = experiment_id(bootstrapped), experiment_id(bootstrapped, HOLDOUT_EXPERIMENT)
    assert {user: (effective(bootstrapped, user, "experiment", exp),
                   effective(bootstrapped, user, "registered_model", MODEL))
            for user in ("ci-promoter", "ci-gate")} == {"ci-promoter": ("EDIT", "EDIT"),
                                                        "ci-gate": ("READ", "READ")}
    assert effective(bootstrapped, "ci-promoter", "experiment", holdout) == "READ"
    assert effective(bootstrapped, "ci-gate", "experiment", holdout) == "READ"
    # ci-pr, the trainer's credential, holds no grant: the server's default denies it
    own = state(bootstrapped)["ci-pr"]
    assert not any(grant[2] == holdout for grant in own[1])
    refused_read = requests.get(f"{bootstrapped.tracking_uri}/api/2.0/mlflow/experiments/get",
                                params={"experiment_id": holdout},
                                auth=("ci-pr", bootstrapped.passwords.ci_pr), timeout=10)
    assert refused_read.status_code == 403


def test_a_holdout_experiment_ci_pr_created_first_is_taken_back(bootstrapped: Stack) -> None:  # noqa: F811,E501
    """Anyone may create an experiment and own it: bootstrap revokes ci-pr's ownership of
    the holdout experiment, whoever created it. Without GATE_CI_GATE_PASSWORD, no ci-gate."""
    pr = ("ci-pr", bootstrapped.passwords.ci_pr)
    created = requests.post(f"{bootstrapped.tracking_uri}/api/2.0/mlflow/experiments/create",
                            json={"name": "squatted-holdout"}, auth=pr, timeout=10)
    assert created.status_code == 200, created.text
    squatted = created.json()["experiment_id"]
    assert effective(bootstrapped, "ci-pr", "experiment", squatted) == "MANAGE"
    env = bootstrapped.bootstrap_env()
    del env["GATE_CI_GATE_PASSWORD"]
    result = subprocess.run([sys.executable, str(BOOTSTRAP), "--experiment", EXPERIMENT,
                             "--model-name", MODEL, "--holdout-experiment", "squatted-holdout"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"ci-pr: no grant on experiment '{squatted}': revoked MANAGE" in result.stdout
    assert "ci-gate: skipped (GATE_CI_GATE_PASSWORD is not set)" in result.stdout
    assert effective(bootstrapped, "ci-promoter", "experiment", squatted) == "READ"
    read = requests.get(f"{bootstrapped.tracking_uri}/api/2.0/mlflow/experiments/get",
                        params={"experiment_id": squatted}, auth=pr, timeout=10)
    assert read.status_code == 403
    assert_no_password(bootstrapped, result)


def test_admin_password_is_replaced(bootstrapped: Stack) -> None:  # noqa: F811
    assert logs_in(bootstrapped, "admin", bootstrapped.passwords.admin)
    assert refused(bootstrapped, "admin", bootstrapped.passwords.admin_initial)


def test_rerun_with_a_new_password_rotates_it(bootstrapped: Stack) -> None:  # noqa: F811
    old = bootstrapped.passwords
    rotated = dataclasses.replace(old, ci_pr=old.ci_pr + "-next")
    try:
        result = dataclasses.replace(bootstrapped, passwords=rotated).run_bootstrap()
        assert result.returncode == 0, result.stderr
        assert "ci-pr: password reset" in result.stdout
        assert logs_in(bootstrapped, "ci-pr", rotated.ci_pr)
        assert refused(bootstrapped, "ci-pr", old.ci_pr)
    finally:
        assert bootstrapped.run_bootstrap().returncode == 0
    assert logs_in(bootstrapped, "ci-pr", old.ci_pr)


def test_wrong_admin_passwords_exit_3_without_echo(bootstrapped: Stack) -> None:  # noqa: F811
    wrong = dataclasses.replace(bootstrapped.passwords, admin="not-it-1", admin_initial="not-it-2")
    result = dataclasses.replace(bootstrapped, passwords=wrong).run_bootstrap()
    assert result.returncode == 3
    assert "refused both GATE_ADMIN_PASSWORD and GATE_ADMIN_INITIAL_PASSWORD" in result.stderr
    assert "not-it" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("missing", ["GATE_ADMIN_PASSWORD", "GATE_CI_PR_PASSWORD"])
def test_missing_password_variable_exits_2(missing: str) -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "GATE_ADMIN_PASSWORD": "a",
           "GATE_CI_PR_PASSWORD": "b", "GATE_CI_PROMOTER_PASSWORD": "c"}
    del env[missing]
    result = subprocess.run([sys.executable, str(BOOTSTRAP)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert missing in result.stderr


def test_unreachable_server_exits_3() -> None:
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "GATE_ADMIN_PASSWORD": "a",
           "GATE_CI_PR_PASSWORD": "b", "GATE_CI_PROMOTER_PASSWORD": "c"}
    result = subprocess.run([sys.executable, str(BOOTSTRAP)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 3
    assert result.stderr.startswith("bootstrap: error: cannot reach MLflow at http://127.0.0.1:9")
