"""Fixtures that start real things: a local MLflow store, a real `mlflow server`."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# tests run in-process and in subprocesses; both must find the package
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                         os.environ.get("PYTHONPATH")]))

_ENV_TO_CLEAR = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_EXPERIMENT_NAME", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY",
                 "GITHUB_OUTPUT", "GITHUB_EVENT_PATH", "GITHUB_TOKEN", "GITHUB_REPOSITORY",
                 "GITHUB_SHA", "GITHUB_ACTOR", "GITHUB_ENV", "GITHUB_EVENT_NAME",
                 "GITHUB_HEAD_REF", "GITHUB_REF_NAME", "GITHUB_RUN_ID", "GITHUB_API_URL",
                 "GATE_WEBHOOK_URL", "GITHUB_SERVER_URL")


# Two marks sort the suite; `scripts/test.sh --fast` leaves both out. They are set here from
# the fixtures a test uses (directly or through another fixture) and from its file, so a
# new test is sorted without a decorator.
# `server`: a real `mlflow server`, the PostgreSQL stack, an S3 endpoint or a browser.
SERVER_FIXTURES = frozenset({
    "mlflow_server",    # a real `mlflow server` (test_workflows' story, test_examples, ...)
    "bootstrapped",     # the PostgreSQL + mlflow[auth] stack (tests/stack.py)
    "direct",           # moto_server and gate subprocesses (test_s3_direct)
    "pages",            # Chromium rendering the report (test_report_browser)
    "webhook_server",   # a real `mlflow server` that delivers registry webhooks (test_relay)
    "mlflow2_server",   # the last MLflow 2 server, from its own venv (test_mlflow2)
})
SERVER_FILES = frozenset({"test_cli_server.py"})    # the gate as a process against a URL
# `slow`: trains and gates against a real MLflow sqlite store (seconds a test), or runs
# the benchmarks.
SLOW_FIXTURES = frozenset({"empty_store", "local_store"})
SLOW_FILES = frozenset({"test_bench_smoke.py"})


def store_rows_toml() -> str:
    """The shipped gate.toml without its [eval] section (the pinned set and `require`):
    what the tests of the store's own rows (Production's recorded rows, a first model's)
    run on. The shipped config itself runs README's flow (test_cli_local) and the stacks."""
    text = (ROOT / "gate.toml").read_text()
    head = text[:text.index("\n[eval]\n")]
    # the comment block that introduces [eval] goes with it
    lines = head.rstrip("\n").split("\n")
    while lines and lines[-1].startswith("#"):
        lines.pop()
    return "\n".join(lines).rstrip("\n") + "\n"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVER_FIXTURES or item.path.name in SERVER_FILES:
            item.add_marker(pytest.mark.server)
        elif fixtures & SLOW_FIXTURES or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit a tracking URI or a GitHub context from the shell."""
    for key in _ENV_TO_CLEAR:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    # nor MLflow's process-wide tracking URI that an earlier test's gate set
    # (point_mlflow_at): MlflowClient() would talk to that test's long-gone server
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        monkeypatch.setattr(utils, "_tracking_uri", None)


@pytest.fixture(autouse=True)
def ctrl_c_as_a_terminal_gives_it(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with Python's own Ctrl-C handler and SIGINT unblocked, as a
    process started from a terminal has them (children inherit an ignored or blocked
    SIGINT). Something a test runs in this worker process (seen in full-suite runs
    only) can leave SIGINT ignored; it is put back and named in the warnings summary."""
    _restore_sigint(f"before {request.node.nodeid}")
    yield
    _restore_sigint(f"after {request.node.nodeid}")


def _restore_sigint(when: str) -> None:
    import signal

    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if handler is not signal.default_int_handler or blocked:
        import warnings

        # in the warnings summary: which test (or fixture before it) changed it
        warnings.warn(f"SIGINT {'blocked' if blocked else handler} {when}: put back")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty sqlite store: MLflow's migrations take ~10 s, run them once."""
    from mlflow.tracking._tracking_service.utils import _get_store

    path = tmp_path_factory.mktemp("store") / "mlruns.db"
    _get_store(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Path:
    """A fresh working directory where the gate uses its embedded sqlite store."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_store, tmp_path / "mlruns.db")
    # MLflow caches stores by URI within a process, so the relative default
    # (sqlite:///mlruns.db) would keep pointing at the first test's directory
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns.db")
    (tmp_path / "gate.toml").write_text(store_rows_toml())
    return tmp_path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Iterator[str]:
    """A real `mlflow server` on a free 127.0.0.1 port, SQLite backend, served artifacts."""
    import shutil

    home = tmp_path_factory.mktemp("mlflow-server")
    store = Path(shutil.copy(empty_store, home / "mlflow.db"))  # migrated: starts in seconds
    with servers.mlflow_server(home, store) as url:
        yield url


def train(*args: str) -> str:
    """Train in-process with the reference trainer; return the run id."""
    import json
    import tempfile

    import train_model

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "train.json")
        code = train_model.main(["--n-estimators", "10", *args, "--json", str(out)])
        assert code == 0, f"train_model exited {code}"
        return json.loads(out.read_text())["run_id"]
