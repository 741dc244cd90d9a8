"""The shared MLflow server's entrypoint: every `mlflow server` flag, in one place.

    python deploy/entrypoint.py            # auth database if missing, then exec mlflow server
    python deploy/entrypoint.py --print    # print the server command only

The server image runs this (deploy/Dockerfile) and so do the stack tests (tests/stack.py):
the server under test is the deployed one. Settings come from the environment:

    GATE_PUBLIC_URL             required: the URL people and CI use, https://mlflow.example.com
    GATE_PUBLISHED_PORT         the port published on the host (default: the listen port)
    GATE_EXTRA_ALLOWED_HOSTS    more Host headers to answer, comma-separated (mlflow:5000)
    GATE_EXTRA_CORS_ORIGINS     more browser origins allowed to write, comma-separated
    GATE_LISTEN_HOST            default 0.0.0.0
    GATE_LISTEN_PORT            default 5000
    GATE_WORKERS                default 4
    GATE_BACKEND_STORE_URI      default postgresql+psycopg://mlflow@postgres:5432/mlflow
    GATE_ARTIFACTS_DESTINATION  default s3://mlflow-artifacts/mlartifacts
    MLFLOW_AUTH_CONFIG_PATH     the basic-auth ini; its database_uri names the auth database
    PGPASSWORD                  the database password (never in a URI: `ps` would show it)

Exit codes before the server starts: 2 bad settings, 3 the database is unreachable or
refused to create the auth database. Errors are one line and never print a password.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

DEFAULT_BACKEND = "postgresql+psycopg://mlflow@postgres:5432/mlflow"
DEFAULT_ARTIFACTS = "s3://mlflow-artifacts/mlartifacts"
DEFAULT_PORTS = {"http": 80, "https": 443}
# The compose file starts MLflow once PostgreSQL is healthy, but a restart or a host reboot
# can race it: wait this long for the database before giving up (and letting Docker retry).
DB_WAIT_SECONDS = 60.0

Say = Callable[[str], object]


class EntrypointError(Exception):
    exit_code = 3


class SettingsError(EntrypointError):
    exit_code = 2


@dataclass(frozen=True)
class Settings:
    public: SplitResult
    listen_host: str
    listen_port: int
    published_port: int
    workers: int
    backend_store_uri: str
    artifacts_destination: str
    extra_hosts: tuple[str, ...]
    extra_origins: tuple[str, ...]


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def _listed(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in environ.get(name, "").split(",") if item.strip())
    # A bare "*" switches MLflow's check off altogether; that is never what a deployment wants.
    if "*" in items:
        raise SettingsError(f"{name} must not contain '*': it turns the check off")
    return items


def _public_url(raw: str) -> SplitResult:
    if not raw:
        raise SettingsError("set GATE_PUBLIC_URL (MLFLOW_PUBLIC_URL in deploy/.env) to the URL "
                            "people and CI use, e.g. https://mlflow.example.com")
    url = urlsplit(raw.strip())
    try:
        url.port  # urlsplit parses lazily: reading the port is what checks it
    except ValueError:
        raise SettingsError(f"GATE_PUBLIC_URL has a bad port: {raw!r}") from None
    if url.scheme not in DEFAULT_PORTS or not url.hostname or "*" in url.hostname:
        raise SettingsError(f"GATE_PUBLIC_URL must be http(s)://NAME[:PORT], got {raw!r}")
    if url.username or url.password:
        raise SettingsError("GATE_PUBLIC_URL must not hold credentials")
    if url.path.strip("/") or url.query or url.fragment:
        # MLflow's --static-prefix would be needed, and the gate has never been run that way.
        raise SettingsError(f"GATE_PUBLIC_URL must have no path, got {raw!r}")
    return url


def settings(environ: Mapping[str, str]) -> Settings:
    listen_port = _int(environ, "GATE_LISTEN_PORT", 5000)
    return Settings(
        public=_public_url(environ.get("GATE_PUBLIC_URL", "")),
        listen_host=environ.get("GATE_LISTEN_HOST") or "0.0.0.0",
        listen_port=listen_port,
        published_port=_int(environ, "GATE_PUBLISHED_PORT", listen_port),
        workers=_int(environ, "GATE_WORKERS", 4),
        backend_store_uri=environ.get("GATE_BACKEND_STORE_URI") or DEFAULT_BACKEND,
        artifacts_destination=environ.get("GATE_ARTIFACTS_DESTINATION") or DEFAULT_ARTIFACTS,
        extra_hosts=_listed(environ, "GATE_EXTRA_ALLOWED_HOSTS"),
        extra_origins=_listed(environ, "GATE_EXTRA_CORS_ORIGINS"),
    )


def _explicit_port(url: SplitResult) -> int | None:
    return url.port if url.port not in (None, DEFAULT_PORTS[url.scheme]) else None


def allowed_hosts(cfg: Settings) -> list[str]:
    """Every Host header the server answers; MLflow matches each one exactly.

    --allowed-hosts replaces MLflow's defaults (localhost on any port, private networks)
    instead of adding to them, so the local names are listed here again, with their ports.
    """
    name = cfg.public.hostname or ""
    port = _explicit_port(cfg.public)
    # nginx's $host drops the port, browsers send it when it is not the default: take both.
    hosts = [name] + ([f"{name}:{port}"] if port else [])
    for local in ("localhost", "127.0.0.1"):
        # published: curl or a proxy on the host; listen: the health check, `compose exec`
        hosts += [f"{local}:{cfg.published_port}", f"{local}:{cfg.listen_port}"]
    return list(dict.fromkeys([*hosts, *cfg.extra_hosts]))


def cors_origins(cfg: Settings) -> list[str]:
    """Origins whose browsers may write (POST, PATCH, DELETE): the public URL's own.

    Browsers send Origin even on same-origin POSTs, and MLflow refuses a writing request
    from any origin it does not list (localhost excepted), so without this the UI at the
    public name can read but not create a user, a grant or a tag.
    """
    port = _explicit_port(cfg.public)
    own = f"{cfg.public.scheme}://{cfg.public.hostname}" + (f":{port}" if port else "")
    return list(dict.fromkeys([own, *cfg.extra_origins]))


def server_command(cfg: Settings) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--app-name", "basic-auth",
        "--host", cfg.listen_host, "--port", str(cfg.listen_port),
        "--workers", str(cfg.workers),
        "--backend-store-uri", cfg.backend_store_uri,
        "--artifacts-destination", cfg.artifacts_destination, "--serve-artifacts",
        "--allowed-hosts", ",".join(allowed_hosts(cfg)),
        "--cors-allowed-origins", ",".join(cors_origins(cfg)),
    ]


def auth_database_uri(environ: Mapping[str, str]) -> str:
    path = environ.get("MLFLOW_AUTH_CONFIG_PATH")
    if not path:
        raise SettingsError("set MLFLOW_AUTH_CONFIG_PATH to the basic-auth ini")
    parser = configparser.ConfigParser()
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
        return parser["mlflow"]["database_uri"]
    except OSError as exc:
        raise SettingsError(f"cannot read MLFLOW_AUTH_CONFIG_PATH {path}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    except (configparser.Error, KeyError):
        raise SettingsError(f"{path} has no [mlflow] database_uri") from None


def ensure_auth_database(uri: str, say: Say, wait: float | None = None) -> bool:
    """Create the auth database named by `uri` when it is missing; True if it was created.

    The postgres image's init scripts run only on an empty volume and only if uid 999 can
    read them, so the auth database is made here, at every start, instead. Needs CREATEDB
    (the postgres image's POSTGRES_USER is a superuser) only when the database is missing.
    """
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if not url.drivername.startswith("postgresql"):
        return False  # sqlite and friends create their file on first use
    if not url.database:
        raise SettingsError("the auth database_uri names no database")
    # The maintenance database: present on every PostgreSQL, open to every role by default.
    params = {"host": url.host, "port": url.port, "user": url.username, "dbname": "postgres",
              "connect_timeout": 5}
    if url.password:
        params["password"] = url.password
    params = {key: value for key, value in params.items() if value is not None}
    where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"
    deadline = time.monotonic() + (DB_WAIT_SECONDS if wait is None else wait)
    while True:
        try:
            with psycopg.connect(autocommit=True, **params) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (url.database,)).fetchone()
                if found:
                    say(f"auth database {url.database!r}: exists")
                    return False
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(
                        sql.Identifier(url.database)))
                except psycopg.errors.DuplicateDatabase:
                    # Another replica starting at the same moment won the race.
                    say(f"auth database {url.database!r}: exists")
                    return False
                say(f"auth database {url.database!r}: created")
                return True
        except psycopg.errors.InsufficientPrivilege:
            raise EntrypointError(
                f"auth database {url.database!r} is missing and user {url.username!r} may not "
                f"create it (needs CREATEDB): create it once as the database owner") from None
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                # libpq's messages name host, user and database, never the password.
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no answer"
                raise EntrypointError(f"cannot reach {where}: {reason}") from None
            time.sleep(2)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args not in ([], ["--print"]):
        print("usage: entrypoint.py [--print]", file=sys.stderr)
        return 2
    try:
        cfg = settings(env)
        command = server_command(cfg)
        if args == ["--print"]:
            print(shlex.join(command))
            return 0
        ensure_auth_database(auth_database_uri(env), print)
    except EntrypointError as exc:
        print(f"entrypoint: error: {exc}", file=sys.stderr)
        return exc.exit_code
    sys.stdout.flush()
    # exec, not a child: mlflow becomes PID 1 and gets Docker's SIGTERM itself.
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
