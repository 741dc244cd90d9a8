"""The direct mode: clients write and read artifacts in S3 themselves.

The set-up most MLflow + MinIO guides show: `mlflow server --no-serve-artifacts
--default-artifact-root s3://...` on PostgreSQL, and every client given
MLFLOW_S3_ENDPOINT_URL and AWS keys. Here moto_server is the S3 endpoint, with IAM
authentication on, so wrong keys are refused as MinIO refuses them; the server holds no
S3 keys at all. The trainer and the gate run as separate processes from a venv that has
only requirements.txt installed (tests/client_venv.py), as a CI job has.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from tests.client_venv import client_python
from tests.servers import BIN, NO_JOB_RUNNER, free_port, http_ok, process, wait_ready
from tests.stack import (REGION, START_TIMEOUT, _create_databases, _moto_command,
                         postgres)
from tests.verdicts import read_verdict

REPO = Path(__file__).resolve().parent.parent
BUCKET = "gate-direct"
EXPERIMENT = "model-gate"
# Pull requests log to their own experiment, under a prefix their keys may write (README)
PR_EXPERIMENT, PR_PREFIX = "model-gate-pr", "pr"
MODEL = "diabetes-regressor"
CONFIG = str(REPO / "gate.toml")
CLIENT_TIMEOUT = 180
# What a client or the server must not inherit from the shell that runs the tests
_DROP = ("MLFLOW_", "AWS_", "GITHUB_", "PG")
# The state the story builds up, test by test: run ids
STORY: dict[str, str] = {}


@dataclass(frozen=True)
class Direct:
    tracking_uri: str
    s3_endpoint: str
    access_key: str         # "ci": all of S3, as most guides hand out
    secret_key: str
    pr_keys: tuple[str, str]    # "ci-pr": read the bucket, write under pr/ only
    workdir: Path
    python: Path

    def env(self, **changes: str | None) -> dict[str, str]:
        """A CI step's environment: tracking URI, S3 endpoint and keys; `changes` set or,
        with None, remove variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
        env.update({
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            # hermetic: no credentials from this machine's files or an instance role
            "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-credentials"),
            "AWS_CONFIG_FILE": str(self.workdir / "no-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(REPO),
        })
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(self, args: list[str], **changes: str | None) -> subprocess.CompletedProcess[str]:
        return self.run_together([args], **changes)[0]

    def run_together(self, commands: list[list[str]],
                     **changes: str | None) -> list[subprocess.CompletedProcess[str]]:
        """Client processes started at once (a fault's trainer and gate are independent,
        and most of their time is importing MLflow), each waited for in turn."""
        procs = [subprocess.Popen([str(self.python), *args], env=self.env(**changes),
                                  cwd=self.workdir, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in commands]
        done = []
        for proc in procs:
            try:
                out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
            finally:
                proc.kill()     # no-op once it exited; on a timeout, no orphan is left
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done

    def pr_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.pr_keys[0], "AWS_SECRET_ACCESS_KEY": self.pr_keys[1]}

    def s3(self, keys: tuple[str, str] | None = None):  # -> botocore S3 client (untyped)
        key, secret = keys or (self.access_key, self.secret_key)
        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name=REGION,
                            aws_access_key_id=key, aws_secret_access_key=secret)


# The policy README.md recommends for a pull request's keys in the direct mode
PR_POLICY = [
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{BUCKET}"]},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [f"arn:aws:s3:::{BUCKET}/*"]},
    {"Effect": "Allow", "Action": ["s3:PutObject"],
     "Resource": [f"arn:aws:s3:::{BUCKET}/{PR_PREFIX}/*"]},
]
USERS = {"ci": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}], "ci-pr": PR_POLICY}


def _s3_users(s3_url: str) -> dict[str, tuple[str, str]]:
    """IAM users with S3 policies, then moto's authentication on for every request."""
    # the next calls go unauthenticated (there is no user yet); all later ones are
    # checked: unknown key, wrong secret, missing permission
    calls = str(3 * len(USERS)).encode()
    requests.post(f"{s3_url}/moto-api/reset-auth", data=calls, timeout=10).raise_for_status()
    iam = boto3.client("iam", endpoint_url=s3_url, region_name=REGION,
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    keys = {}
    for user, statements in USERS.items():
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
    return keys


@pytest.fixture(scope="module")
def direct() -> Iterator[Direct]:
    python = client_python()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-direct-")))
        s3_port, s3_log = free_port(), workdir / "moto.log"
        s3_url = f"http://127.0.0.1:{s3_port}"
        moto = stack.enter_context(process(_moto_command(s3_port), s3_log))
        pg_super, db_password = secrets.token_hex(12), secrets.token_hex(12)
        pg_port = stack.enter_context(postgres(pg_super))
        wait_ready(http_ok(s3_url), moto, s3_log, "moto_server", START_TIMEOUT)
        _create_databases(pg_port, pg_super, db_password)
        users = _s3_users(s3_url)
        boto3.client("s3", endpoint_url=s3_url, region_name=REGION,
                     aws_access_key_id=users["ci"][0],
                     aws_secret_access_key=users["ci"][1]).create_bucket(Bucket=BUCKET)

        port = free_port()
        # the server never touches the bucket: no S3 keys, no endpoint, no boto3 needed
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
        env.update({"PGPASSWORD": db_password, **NO_JOB_RUNNER})
        cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"postgresql+psycopg://mlflow@127.0.0.1:{pg_port}/mlflow",
               "--no-serve-artifacts", "--default-artifact-root", f"s3://{BUCKET}/artifacts",
               "--workers", "1"]
        log = workdir / "mlflow.log"
        url = f"http://127.0.0.1:{port}"
        server = stack.enter_context(process(cmd, log, env=env, cwd=workdir))
        wait_ready(http_ok(f"{url}/health"), server, log, "mlflow server", START_TIMEOUT)
        yield Direct(url, s3_url, *users["ci"], users["ci-pr"], workdir, python)


def train(live: Direct, *args: str, experiment: str = EXPERIMENT,
          **changes: str | None) -> str:
    out = live.workdir / "train.json"
    out.unlink(missing_ok=True)
    result = live.run([str(REPO / "train_model.py"), "--n-estimators", "10", *args,
                       "--experiment", experiment, "--json", str(out)], **changes)
    assert result.returncode == 0, result.stderr[-3000:]
    _no_secret(live, result)
    return json.loads(out.read_text())["run_id"]


def gate(live: Direct, *args: str, **changes: str | None) -> tuple[int, dict, str]:
    """Run `python -m gate ARGS --config gate.toml --json`; exit code, JSON, stderr."""
    out = live.workdir / "gate.json"
    out.unlink(missing_ok=True)
    json_args = ["--json", str(out)] if args[0] in ("check", "status") else []
    result = live.run(["-m", "gate", *args, "--config", CONFIG, *json_args], **changes)
    _no_secret(live, result)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.returncode, read_verdict(out, result), result.stderr


def _no_secret(live: Direct, result: subprocess.CompletedProcess[str]) -> None:
    printed = [line for line in (result.stdout + result.stderr).splitlines()
               if not line.startswith("::add-mask::")]
    assert not any(secret in line for line in printed
                   for secret in (live.secret_key, live.pr_keys[1]))


def _keys(live: Direct, bucket: str = BUCKET) -> list[str]:
    pages = live.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_the_endpoint_authorises_s3_actions_as_s3_and_minio_do(direct: Direct) -> None:
    """The recommended PR policy grants s3:GetObject and s3:ListBucket: S3 and MinIO
    allow HEAD and ListObjectsV2 with those. An endpoint that checks the API operation
    instead (moto 5.2.6) would fail every later test here for a reason not the gate's."""
    pr = direct.s3(direct.pr_keys)
    key = f"{PR_PREFIX}/probe/endpoint.txt"
    pr.put_object(Bucket=BUCKET, Key=key, Body=b"probe")
    try:
        pr.head_object(Bucket=BUCKET, Key=key)
        pr.list_objects_v2(Bucket=BUCKET, Prefix=f"{PR_PREFIX}/probe/")
    except Exception as exc:  # botocore's ClientError, shown with the endpoint's version
        from importlib.metadata import version
        pytest.fail(f"the S3 endpoint (moto {version('moto')}) refuses HEAD or ListObjectsV2 "
                    f"to keys holding s3:GetObject and s3:ListBucket: {exc}")
    finally:
        direct.s3().delete_object(Bucket=BUCKET, Key=key)


def test_the_client_venv_holds_only_requirements_txt(direct: Direct) -> None:
    probe = ("import importlib.util as u; "
             "print([m for m in ('boto3', 'pytest', 'moto', 'psycopg', 'hypothesis') "
             "if u.find_spec(m)])")
    result = direct.run(["-c", probe])
    assert result.stdout.strip() == "['boto3']", result.stderr


def test_main_promotes_the_first_model(direct: Direct) -> None:
    run_id = STORY["champion"] = train(direct)
    code, verdict, err = gate(direct, "check", "--run-id", run_id, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "first_model", "1"), err
    # the server serves no artifacts: the files went from the trainer to the bucket
    keys = _keys(direct)
    assert any(run_id in key and "/gate/predictions." in key for key in keys)
    assert any(key.endswith("/model.skops") for key in keys)


def test_pr_check_downloads_both_models_from_s3(direct: Direct) -> None:
    log = direct.workdir / "moto.log"
    before = log.stat().st_size
    run_id = STORY["pr"] = train(direct, "--model", "ridge", "--alpha", "0.1",
                                 GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request",
                                 GITHUB_REPOSITORY="acme/models")
    code, verdict, err = gate(direct, "check", "--run-id", run_id)
    assert (code, verdict["status"], verdict["champion_version"]) == (0, "passed", "1"), err
    assert verdict["paired"] is True
    # the gate scored both models itself, from model files it fetched from the bucket
    fetched = log.read_text(errors="replace")[before:]
    assert fetched.count("model.skops HTTP") >= 2, fetched[-2000:]


def test_main_promotes_a_better_model_rolls_back_and_reports(direct: Direct) -> None:
    run_id = train(direct, "--model", "gradient_boosting", "--n-estimators", "50",
                   "--max-depth", "2")
    code, verdict, err = gate(direct, "check", "--run-id", run_id, "--promote")
    assert (code, verdict["status"], verdict["promoted_version"]) == (0, "passed", "2"), err

    code, _, err = gate(direct, "rollback", "--model-name", MODEL, "--reason", "direct mode")
    assert code == 0, err
    code, status, err = gate(direct, "status", "--model-name", MODEL)
    assert code == 0, err
    assert status["champion_version"] == "1" and len(status["versions"]) == 2


def test_pr_keys_write_their_prefix_and_cannot_touch_production(direct: Direct) -> None:
    from botocore.exceptions import ClientError
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=direct.tracking_uri).create_experiment(
        PR_EXPERIMENT, artifact_location=f"s3://{BUCKET}/{PR_PREFIX}")
    run_id = train(direct, "--model", "ridge", "--alpha", "0.1", experiment=PR_EXPERIMENT,
                   **direct.pr_env())
    assert any(key.startswith(f"{PR_PREFIX}/") and run_id in key for key in _keys(direct))
    code, verdict, err = gate(direct, "check", "--run-id", run_id, **direct.pr_env())
    assert (code, verdict["status"], verdict["champion_version"]) == (0, "passed", "1"), err

    production = [key for key in _keys(direct)
                  if key.endswith("/model.skops") and not key.startswith(f"{PR_PREFIX}/")]
    assert production
    with pytest.raises(ClientError, match="AccessDenied"):
        direct.s3(direct.pr_keys).put_object(Bucket=BUCKET, Key=production[0], Body=b"x")


def test_prune_deletes_the_old_pr_run_only(direct: Direct) -> None:
    result = direct.run(["-m", "gate", "prune", "--older-than", "0", "--experiment",
                         EXPERIMENT, "--yes"])
    assert result.returncode == 0, result.stderr
    assert STORY["pr"] in result.stdout and STORY["champion"] not in result.stdout


def test_ci_masks_the_s3_secret_first(direct: Direct) -> None:
    token = "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(24)
    # the trainer masks before it reads its data: a bad --data path is enough to see it
    results = direct.run_together([
        ["-m", "gate", "status", "--model-name", MODEL, "--config", CONFIG],
        [str(REPO / "train_model.py"), "--data", "missing.csv", "--target", "y"],
    ], GITHUB_ACTIONS="true", AWS_SESSION_TOKEN=token)
    assert [r.returncode for r in results] == [0, 2], results[1].stderr
    for result in results:
        masks = [line for line in result.stdout.splitlines() if line.startswith("::add-mask::")]
        assert {f"::add-mask::{direct.secret_key}", f"::add-mask::{token}"} <= set(masks)
        assert result.stdout.index("::add-mask::") == 0
        _no_secret(direct, result)
        assert token not in result.stdout.replace(f"::add-mask::{token}", "") + result.stderr


# -- faults: exit 3 with one line naming the bucket, for the trainer and the gate alike ----

def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("gate: error:", "train_model: error:")), \
        err[-3000:]
    return lines[0]


# The gate's first S3 request is a HEAD, whose 403 carries no error code: it cannot tell
# a wrong key from a missing permission, and says so; the trainer's PUT can.
@pytest.mark.parametrize("fault, changes, trainer_says, gate_says", [
    ("no credentials", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
     "no AWS credentials", "no AWS credentials"),
    ("wrong secret", {"AWS_SECRET_ACCESS_KEY": "Wr0ng" + "x" * 35},
     "secret key does not match", "access denied (HTTP 403): wrong keys"),
    ("unknown key", {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWNUNKNOWN00"},
     "access key is unknown", "access denied (HTTP 403): wrong keys"),
    ("endpoint down", {"MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:{free}"},
     "not reachable", "not reachable"),
])
def test_s3_fault_is_exit_3_in_one_line(direct: Direct, fault: str,
                                        changes: dict[str, str | None], trainer_says: str,
                                        gate_says: str) -> None:
    changes = {k: v.format(free=free_port()) if v else v for k, v in changes.items()}
    trained, checked = direct.run_together([
        [str(REPO / "train_model.py"), "--n-estimators", "5", "--experiment", EXPERIMENT],
        ["-m", "gate", "check", "--run-id", STORY["champion"], "--config", CONFIG],
    ], **changes)
    for result, says in ((trained, trainer_says), (checked, gate_says)):
        line = _one_error_line(result.stderr)
        assert result.returncode == 3 and BUCKET in line and says in line, (fault, line)
        _no_secret(direct, result)
        wrong = changes.get("AWS_SECRET_ACCESS_KEY")
        assert not wrong or wrong not in result.stdout + result.stderr


def test_missing_bucket_is_exit_3_naming_it(direct: Direct) -> None:
    import mlflow

    doomed = "gate-direct-doomed"
    direct.s3().create_bucket(Bucket=doomed)
    client = mlflow.MlflowClient(tracking_uri=direct.tracking_uri)
    client.create_experiment("doomed", artifact_location=f"s3://{doomed}/artifacts")
    out = direct.workdir / "doomed.json"
    trained = direct.run([str(REPO / "train_model.py"), "--n-estimators", "5",
                          "--experiment", "doomed", "--json", str(out)])
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = json.loads(out.read_text())["run_id"]
    # someone deletes the bucket, files and all
    s3 = direct.s3()
    for key in _keys(direct, doomed):
        s3.delete_object(Bucket=doomed, Key=key)
    s3.delete_bucket(Bucket=doomed)

    results = direct.run_together([
        [str(REPO / "train_model.py"), "--n-estimators", "5", "--experiment", "doomed"],
        ["-m", "gate", "check", "--run-id", run_id, "--config", CONFIG],
    ])
    for result in results:
        line = _one_error_line(result.stderr)
        assert result.returncode == 3 and doomed in line and "does not exist" in line, line
