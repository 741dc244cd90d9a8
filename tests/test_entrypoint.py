"""The server image's entrypoint and files, without a Docker engine.

deploy/entrypoint.py turns GATE_* settings into `mlflow server` flags; the Host and Origin
lists are checked here with MLflow's own matching functions, and live through a reverse
proxy in tests/test_reverse_proxy.py. The image's files are copied the way Docker's COPY
copies them, from a checkout made under umask 027, and read as the image's user.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.server.security_utils import is_allowed_host_header, should_block_cors_request

from tests.stack import ENTRYPOINT, REPO, entrypoint_module, server_env

DEPLOY = REPO / "deploy"
IMAGE_UID = 10001
ep = entrypoint_module()


def configure(**env: str) -> object:
    return ep.settings({"GATE_PUBLIC_URL": "https://mlflow.example.com", **env})


@pytest.mark.parametrize(("env", "hosts", "origins"), [
    ({}, ["mlflow.example.com", "localhost:5000", "127.0.0.1:5000"],
     ["https://mlflow.example.com"]),
    # a non-default public port: nginx's $host drops it, a browser's Host keeps it
    ({"GATE_PUBLIC_URL": "https://mlflow.example.com:8443", "GATE_PUBLISHED_PORT": "8080"},
     ["mlflow.example.com", "mlflow.example.com:8443", "localhost:8080", "localhost:5000",
      "127.0.0.1:8080", "127.0.0.1:5000"], ["https://mlflow.example.com:8443"]),
    # browsers lowercase the name and leave a default port out of Host and Origin
    ({"GATE_PUBLIC_URL": "HTTPS://MLflow.Example.com:443/"},
     ["mlflow.example.com", "localhost:5000", "127.0.0.1:5000"],
     ["https://mlflow.example.com"]),
    ({"GATE_EXTRA_ALLOWED_HOSTS": "mlflow:5000, ,10.0.0.7:5000",
      "GATE_EXTRA_CORS_ORIGINS": "https://notebooks.example.com"},
     ["mlflow.example.com", "localhost:5000", "127.0.0.1:5000", "mlflow:5000", "10.0.0.7:5000"],
     ["https://mlflow.example.com", "https://notebooks.example.com"]),
])
def test_hosts_and_origins_follow_the_public_url(env: dict[str, str], hosts: list[str],
                                                 origins: list[str]) -> None:
    cfg = configure(**env)
    assert ep.allowed_hosts(cfg) == hosts
    assert ep.cors_origins(cfg) == origins


def test_mlflow_accepts_what_users_send_and_refuses_the_rest() -> None:
    cfg = configure(GATE_PUBLISHED_PORT="5001")
    hosts, origins = ep.allowed_hosts(cfg), ep.cors_origins(cfg)
    for host in ("mlflow.example.com", "127.0.0.1:5001", "localhost:5001", "127.0.0.1:5000"):
        assert is_allowed_host_header(hosts, host), host
    for host in ("attacker.example", "mlflow.example.com.attacker.example", "127.0.0.1:5002"):
        assert not is_allowed_host_header(hosts, host), host
    # The issue as MLflow's own code states it: without the flag the UI's POST is blocked.
    assert should_block_cors_request("https://mlflow.example.com", "POST", None)
    assert not should_block_cors_request("https://mlflow.example.com", "POST", origins)
    assert should_block_cors_request("https://attacker.example", "POST", origins)


def test_the_command_holds_every_server_flag() -> None:
    out = subprocess.run([sys.executable, str(ENTRYPOINT), "--print"], capture_output=True,
                         text=True, timeout=60,
                         env={"PATH": os.environ["PATH"], "GATE_PUBLIC_URL": "https://m.example"})
    assert out.returncode == 0, out.stderr
    args = shlex.split(out.stdout)
    assert args[:4] == [sys.executable, "-m", "mlflow", "server"]
    flags = {flag: value for flag, value in zip(args[4:], args[5:] + [""])
             if flag.startswith("--") and not value.startswith("--")}
    assert args.count("--serve-artifacts") == 1 and "--serve-artifacts" not in flags
    assert flags["--app-name"] == "basic-auth"
    assert (flags["--host"], flags["--port"], flags["--workers"]) == ("0.0.0.0", "5000", "4")
    assert flags["--backend-store-uri"] == "postgresql+psycopg://mlflow@postgres:5432/mlflow"
    assert flags["--artifacts-destination"] == "s3://mlflow-artifacts/mlartifacts"
    assert flags["--allowed-hosts"] == "m.example,localhost:5000,127.0.0.1:5000"
    assert flags["--cors-allowed-origins"] == "https://m.example"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "set GATE_PUBLIC_URL"),
    ({"GATE_PUBLIC_URL": "mlflow.example.com"}, "must be http(s)://NAME[:PORT]"),
    ({"GATE_PUBLIC_URL": "https://mlflow.example.com/mlflow"}, "must have no path"),
    ({"GATE_PUBLIC_URL": "https://mlflow.example.com:port"}, "bad port"),
    ({"GATE_PUBLIC_URL": "https://admin:s3cret-pw@mlflow.example.com"},
     "must not hold credentials"),
    ({"GATE_PUBLIC_URL": "https://x.example", "GATE_EXTRA_ALLOWED_HOSTS": "a.example,*"},
     "GATE_EXTRA_ALLOWED_HOSTS must not contain '*'"),
    ({"GATE_PUBLIC_URL": "https://x.example", "GATE_WORKERS": "four"},
     "GATE_WORKERS must be a whole number"),
    ({"GATE_PUBLIC_URL": "https://x.example", "GATE_LISTEN_PORT": "0"},
     "GATE_LISTEN_PORT must be positive"),
    ({"GATE_PUBLIC_URL": "https://x.example"}, "set MLFLOW_AUTH_CONFIG_PATH"),
    ({"GATE_PUBLIC_URL": "https://x.example", "MLFLOW_AUTH_CONFIG_PATH": "/nonexistent.ini"},
     "cannot read MLFLOW_AUTH_CONFIG_PATH /nonexistent.ini"),
])
def test_bad_settings_exit_2_with_one_line(env: dict[str, str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert ep.main([], env) == 2
    out, err = capsys.readouterr()
    assert err.startswith("entrypoint: error: ") and message in err, err
    assert len(err.splitlines()) == 1 and "s3cret" not in err and not out


def test_unreachable_database_exits_3_without_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndatabase_uri = postgresql+psycopg://mlflow@127.0.0.1:9/auth\n")
    monkeypatch.setattr(ep, "DB_WAIT_SECONDS", 0.0)
    env = {"GATE_PUBLIC_URL": "https://x.example", "MLFLOW_AUTH_CONFIG_PATH": str(ini),
           "PGPASSWORD": "pg-s3cret"}
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret")
    assert ep.main([], env) == 3
    err = capsys.readouterr().err
    assert err.startswith("entrypoint: error: cannot reach PostgreSQL at 127.0.0.1:9"), err
    assert len(err.splitlines()) == 1 and "s3cret" not in err


def test_usage() -> None:
    assert ep.main(["--bogus"], {}) == 2


def test_stack_runs_the_server_with_the_deployed_environment(tmp_path: Path) -> None:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    mlflow = services["mlflow"]
    # The image's entrypoint holds the flags: compose adds none of its own.
    assert "command" not in mlflow and "entrypoint" not in mlflow
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "/opt/gate/entrypoint.py"]' in dockerfile
    image_env = set(re.findall(r"^\s*(?:ENV\s+)?([A-Z_]+)=", dockerfile, re.MULTILINE))
    deployed = set(mlflow["environment"]) | (image_env & {"MLFLOW_AUTH_CONFIG_PATH"})
    tested = set(server_env(tmp_path / "auth.ini", 1234, 5432, "pw", "http://s3", "admin-pw"))
    tested = {key for key in tested if key in deployed or key.startswith(("GATE_", "MLFLOW_",
                                                                          "AWS_", "PG"))}
    # Listening on 127.0.0.1 and a free port is the only thing the tests set differently.
    assert tested - deployed == {"GATE_LISTEN_HOST", "GATE_LISTEN_PORT"}
    assert deployed - tested == set()


# --- the image's files, as Docker's COPY lays them out from a umask-027 checkout ---------

def _copies(dockerfile: str) -> Iterator[tuple[dict[str, str], list[str], str]]:
    """(flags, sources, destination) of every COPY; continuation lines joined."""
    for line in dockerfile.replace("\\\n", " ").splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            flags = dict(word[2:].split("=", 1) for word in words[1:] if word.startswith("--"))
            paths = [word for word in words[1:] if not word.startswith("--")]
            yield flags, paths[:-1], paths[-1]


def _copy_like_docker(context: Path, root: Path) -> list[Path]:
    """COPY keeps each file's mode from the build context unless --chmod says otherwise;
    missing parent directories are made 0755 and everything is owned by root."""
    copied = []
    for flags, sources, dest in _copies((context / "Dockerfile").read_text()):
        for source in sources:
            target = root / dest.lstrip("/")
            if dest.endswith("/"):
                target = target / Path(source).name
            for parent in reversed(target.relative_to(root).parents):
                (root / parent).mkdir(mode=0o755, exist_ok=True)
            shutil.copyfile(context / source, target)
            mode = int(flags["chmod"], 8) if "chmod" in flags else \
                (context / source).stat().st_mode & 0o7777
            os.chmod(target, mode)
            copied.append(target)
    return copied


def test_image_files_are_readable_from_a_umask_027_checkout() -> None:
    # Runs as root, like the stack tests (CI is root): reading as uid 10001 needs it.
    root = Path(tempfile.mkdtemp(prefix="gate-image-"))
    try:
        os.chmod(root, 0o755)
        context = root / "checkout"
        # How git (or cp) writes files on a hardened host: group may read, others may not.
        subprocess.run(["sh", "-c", f"umask 027 && mkdir {context} && cp -R {DEPLOY}/. {context}"],
                       check=True, timeout=60)
        assert (context / "entrypoint.py").stat().st_mode & 0o777 == 0o640
        image = root / "image"
        image.mkdir(mode=0o755)
        copied = _copy_like_docker(context, image)
        # The server reads its auth policy and runs the entrypoint; bootstrap runs from it too.
        assert {p.relative_to(image).as_posix() for p in copied} >= {
            "etc/mlflow/basic_auth.ini", "opt/gate/entrypoint.py", "opt/gate/bootstrap.py"}
        needed = [p for p in copied if p.name != "requirements-server.txt"]  # read by root
        read = subprocess.run(["cat", *map(str, needed)], user=IMAGE_UID, group=IMAGE_UID,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        assert read.returncode == 0, read.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- minio-init ---------------------------------------------------------------------------

def test_minio_init_refuses_a_secret_that_mc_would_read_as_a_flag() -> None:
    secret = "-Kx9" + "a" * 40  # what secrets.token_urlsafe returns one time in 64
    env = {"PATH": "/usr/bin:/bin", "MINIO_ROOT_USER": "minio-root",
           "MINIO_ROOT_PASSWORD": "0123abcd", "MLFLOW_S3_ACCESS_KEY": "mlflow",
           "MLFLOW_S3_SECRET_KEY": secret, "MLFLOW_BUCKET": "mlflow-artifacts"}
    result = subprocess.run(["sh", str(DEPLOY / "minio-init.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "MLFLOW_S3_SECRET_KEY starts with '-'" in result.stderr and "token_hex" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_env_example_makes_hex_secrets() -> None:
    text = (DEPLOY / ".env.example").read_text()
    assert "secrets.token_hex(" in text and "token_urlsafe(" not in text
