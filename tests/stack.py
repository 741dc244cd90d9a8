"""The shared-server stack, for real: PostgreSQL, an S3 endpoint and `mlflow server`.

It mirrors deploy/docker-compose.yml on one machine: PostgreSQL holds the tracking, registry
and auth databases, `moto_server` stands in for MinIO (MinIO is not installable here), and
the server image's own entrypoint (deploy/entrypoint.py, every `mlflow server` flag) starts
basic-auth MLflow with 2 workers, proxying artifacts to the bucket. PostgreSQL starts without
the auth database, as on a volume whose init scripts never ran: the entrypoint creates it.
Everything binds 127.0.0.1 on free ports and lives in temp dirs; only the server process gets
S3 credentials, as in the deployment, so clients prove they need none.

One stack per pytest session however many test modules use it: `stack` is memoised here
and torn down through `config.add_cleanup`, because a session fixture imported into two
modules would otherwise be started twice.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import boto3
import psycopg
import pytest
import requests

from tests.servers import NO_JOB_RUNNER, free_port, http_ok, process, wait_ready

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = REPO / "deploy" / "bootstrap.py"
ENTRYPOINT = REPO / "deploy" / "entrypoint.py"
# The name the server is deployed under; the tests reach it through tests/reverse_proxy.py.
PUBLIC_URL = "https://mlflow.example.test"
BIN = Path(sys.executable).parent
BUCKET = "mlflow-artifacts"
REGION = "us-east-1"
EXPERIMENT = "model-gate"
HOLDOUT_EXPERIMENT = "model-gate-holdout"
MODEL = "diabetes-regressor"
# Generous: the machine is shared, and three Python processes import MLflow at once.
START_TIMEOUT = 300.0
AUTH_CACHE_TTL = 3
# Extra environment for the mlflow server (bench/load.py sets the SQLAlchemy pool size).
SERVER_ENV: dict[str, str] = {}
# Variables that would point a client at another server, store or identity.
_CLIENT_ENV_DROP = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "GITHUB_ACTIONS", "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY", "GITHUB_EVENT_PATH", "GITHUB_TOKEN",
)


@dataclass(frozen=True)
class Passwords:
    admin_initial: str
    admin: str
    ci_pr: str
    ci_promoter: str
    ci_gate: str


@dataclass(frozen=True)
class Stack:
    tracking_uri: str
    s3_endpoint: str
    bucket: str
    pg_port: int
    passwords: Passwords
    workdir: Path
    started_in: float
    public_url: str = PUBLIC_URL
    db_password: str = ""
    pg_superuser_password: str = ""

    def s3(self):  # -> botocore S3 client; boto3 ships no type for it
        return boto3.client(
            "s3", endpoint_url=self.s3_endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def bucket_keys(self) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def client_env(self, username: str | None, password: str | None) -> dict[str, str]:
        """Environment for a CI client process: tracking URI and credentials, nothing of S3."""
        env = {k: v for k, v in os.environ.items()
               if k not in _CLIENT_ENV_DROP and not k.startswith("AWS_")}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if username is not None and password is not None:
            env["MLFLOW_TRACKING_USERNAME"] = username
            env["MLFLOW_TRACKING_PASSWORD"] = password
        env["PYTHONPATH"] = str(REPO)
        return env

    def bootstrap_env(self) -> dict[str, str]:
        env = self.client_env(None, None)
        env.update({
            "GATE_ADMIN_INITIAL_PASSWORD": self.passwords.admin_initial,
            "GATE_ADMIN_PASSWORD": self.passwords.admin,
            "GATE_CI_PR_PASSWORD": self.passwords.ci_pr,
            "GATE_CI_PROMOTER_PASSWORD": self.passwords.ci_promoter,
            "GATE_CI_GATE_PASSWORD": self.passwords.ci_gate,
        })
        return env

    def run_bootstrap(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(BOOTSTRAP), "--experiment", EXPERIMENT, "--model-name", MODEL],
            env=self.bootstrap_env(), cwd=self.workdir, capture_output=True, text=True,
            timeout=120,
        )

    def admin(self) -> requests.Session:
        session = requests.Session()
        session.auth = ("admin", self.passwords.admin)
        return session


def entrypoint_module() -> ModuleType:
    """deploy/entrypoint.py as a module (deploy/ is not a package: the image copies files)."""
    spec = importlib.util.spec_from_file_location("gate_deploy_entrypoint", ENTRYPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while the class is being made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pg_bin() -> Path:
    """The PostgreSQL server binaries: $GATE_PG_BIN, the newest Debian cluster, or PATH."""
    if os.environ.get("GATE_PG_BIN"):
        return Path(os.environ["GATE_PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL server binaries not found: run .ci/stack-setup.sh as root")


def _as_postgres() -> dict[str, object]:
    # initdb and postgres refuse to run as root, and CI runs as root.
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@contextmanager
def postgres(superuser_password: str) -> Iterator[int]:
    """A throwaway cluster on a free port; yields the port. Durability is off: tests only."""
    pg_bin = _pg_bin()
    # Not under pytest's tmp dir: that one is 0700 root, out of the postgres user's reach.
    root = Path(tempfile.mkdtemp(prefix="gate-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pw"
        pwfile.write_text(superuser_password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        data, log = root / "data", root / "postgres.log"
        subprocess.run(
            [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
             f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, timeout=120, **_as_postgres(),
        )
        port = free_port()
        cmd = [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
               "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        with process(cmd, log, signal.SIGINT, **_as_postgres()) as proc:
            wait_ready(lambda: _pg_ready(port, superuser_password), proc, log, "PostgreSQL",
                       START_TIMEOUT)
            yield port
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _pg_ready(port: int, password: str) -> bool:
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                             password=password, dbname="postgres", connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _create_databases(port: int, superuser_password: str, owner_password: str,
                      auth_database: bool = True) -> None:
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                         password=superuser_password, dbname="postgres",
                         autocommit=True) as conn:
        # CREATEDB: what deploy/entrypoint.py needs to create a missing auth database (the
        # postgres image makes POSTGRES_USER a superuser, which includes it).
        conn.execute(f"CREATE ROLE mlflow LOGIN CREATEDB PASSWORD '{owner_password}'")
        conn.execute("CREATE DATABASE mlflow OWNER mlflow")
        if auth_database:
            conn.execute("CREATE DATABASE mlflow_auth OWNER mlflow")


def _moto_command(port: int) -> list[str]:
    return [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]


def server_env(auth_ini: Path, port: int, pg_port: int, db_password: str, s3_url: str,
               admin_initial: str, public_url: str = PUBLIC_URL) -> dict[str, str]:
    """The environment deploy/docker-compose.yml gives the mlflow service, for this machine:
    the same variables (tests/test_entrypoint.py holds the two lists together), local values,
    and the Dockerfile's MLFLOW_AUTH_CONFIG_PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "MLFLOW_", "PG", "GATE_"))}
    env.update({
        "GATE_PUBLIC_URL": public_url,
        # No NAT here: the published port is the one the server listens on.
        "GATE_PUBLISHED_PORT": str(port),
        "GATE_EXTRA_ALLOWED_HOSTS": "mlflow:5000",
        "GATE_EXTRA_CORS_ORIGINS": "",
        "GATE_WORKERS": "2",
        # As deployed: no password in a URI (it would show in `ps`), libpq reads PGPASSWORD.
        "GATE_BACKEND_STORE_URI": f"postgresql+psycopg://mlflow@127.0.0.1:{pg_port}/mlflow",
        "GATE_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/mlartifacts",
        # The image listens on 0.0.0.0:5000; tests keep to loopback and a free port.
        "GATE_LISTEN_HOST": "127.0.0.1",
        "GATE_LISTEN_PORT": str(port),
        "PGPASSWORD": db_password,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_initial,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        **NO_JOB_RUNNER,
        **SERVER_ENV,
    })
    return env


def auth_ini_for(workdir: Path, pg_port: int) -> Path:
    """The deployed basic_auth.ini with only the database address and the cache TTL swapped:
    the tests exercise its policy."""
    auth_ini = workdir / "basic_auth.ini"
    text = (REPO / "deploy" / "basic_auth.ini").read_text()
    text = _with_setting(text, "database_uri",
                         f"postgresql+psycopg://mlflow@127.0.0.1:{pg_port}/mlflow_auth")
    # Short, so tests can watch a rotated password expire from the other worker's cache.
    auth_ini.write_text(_with_setting(text, "auth_cache_ttl_seconds", str(AUTH_CACHE_TTL)))
    return auth_ini


@contextmanager
def mlflow_server(workdir: Path, pg_port: int, db_password: str, s3_url: str,
                  admin_initial: str, public_url: str = PUBLIC_URL) -> Iterator[str]:
    """The server as the image runs it: deploy/entrypoint.py, which execs `mlflow server`."""
    port = free_port()
    env = server_env(auth_ini_for(workdir, pg_port), port, pg_port, db_password, s3_url,
                     admin_initial, public_url)
    url = f"http://127.0.0.1:{port}"
    log = workdir / "mlflow.log"
    with process([sys.executable, str(ENTRYPOINT)], log, env=env, cwd=workdir) as proc:
        wait_ready(http_ok(f"{url}/health"), proc, log, "mlflow server", START_TIMEOUT)
        yield url


def _with_setting(ini: str, key: str, value: str) -> str:
    lines = [f"{key} = {value}" if line.split("=")[0].strip() == key else line
             for line in ini.splitlines()]
    assert f"{key} = {value}" in lines, f"{key} missing from deploy/basic_auth.ini"
    return "\n".join(lines) + "\n"


@contextmanager
def running_stack() -> Iterator[Stack]:
    started = time.monotonic()
    passwords = Passwords(*(secrets.token_urlsafe(16) for _ in range(5)))
    pg_super, db_password = secrets.token_hex(12), secrets.token_hex(12)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-stack-")))
        # moto starts while initdb runs: the two are independent.
        s3_port, s3_log = free_port(), workdir / "moto.log"
        s3_url = f"http://127.0.0.1:{s3_port}"
        moto = stack.enter_context(process(_moto_command(s3_port), s3_log))
        pg_port = stack.enter_context(postgres(pg_super))
        wait_ready(http_ok(s3_url), moto, s3_log, "moto_server", START_TIMEOUT)
        # No auth database: deploy/entrypoint.py must create it (tests/test_reverse_proxy.py).
        _create_databases(pg_port, pg_super, db_password, auth_database=False)
        boto3.client("s3", endpoint_url=s3_url, region_name=REGION,
                     aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
        url = stack.enter_context(
            mlflow_server(workdir, pg_port, db_password, s3_url, passwords.admin_initial))
        yield Stack(url, s3_url, BUCKET, pg_port, passwords, workdir,
                    time.monotonic() - started, PUBLIC_URL, db_password, pg_super)


_SHARED: dict[str, Stack] = {}
_FAILED: list[str] = []


def shared_stack(config: pytest.Config) -> Stack:
    if _FAILED:
        # Fail every later test fast instead of paying the start-up again.
        raise RuntimeError(f"the stack failed to start earlier: {_FAILED[0]}")
    if "stack" not in _SHARED:
        manager = running_stack()
        try:
            _SHARED["stack"] = manager.__enter__()
        except Exception as exc:
            _FAILED.append(str(exc)[:2000])
            raise
        config.add_cleanup(lambda: manager.__exit__(None, None, None))
    return _SHARED["stack"]


@pytest.fixture(scope="session")
def bootstrapped(request: pytest.FixtureRequest) -> Stack:
    """The stack after deploy/bootstrap.py: admin rotated, ci-pr, ci-promoter and ci-gate
    exist."""
    live = shared_stack(request.config)
    if "bootstrapped" not in _SHARED:
        result = live.run_bootstrap()
        assert result.returncode == 0, result.stdout + result.stderr
        _SHARED["bootstrapped"] = live
    return live
