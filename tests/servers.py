"""Local servers for the tests and the benches: free ports, child processes that are
always stopped (with the workers they fork), readiness waits, and a real `mlflow server`
on a SQLite store."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

import requests

BIN = Path(sys.executable).parent
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(cmd: list[str], log: Path, stop: int = signal.SIGTERM,
            **kwargs: object) -> Iterator[subprocess.Popen]:
    """A child in its own process group, so teardown reaches workers it forked, too."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        stop_group(proc, stop)


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass


def wait_ready(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str,
               timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s: {tail(log)}")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return requests.get(url, timeout=2).status_code < 500
        except requests.RequestException:  # refused, or accepted but not answering yet
            return False
    return ready


# MLflow's job runner (huey consumers for its GenAI jobs) is on by default: 7 more
# processes, ~1.7 GB and ~30 CPU-seconds at every start, 15 s of both cores here. The
# gate never submits a job, and deploy/docker-compose.yml turns it off as well.
NO_JOB_RUNNER = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def mlflow_server(home: Path, store: Path, workers: int = 1,
                  env: Mapping[str, str] | None = None) -> Iterator[str]:
    """A real `mlflow server` on a free 127.0.0.1 port: the SQLite `store` (migrate it
    beforehand and it starts in seconds), artifacts served from `home`, log in
    `home/server.log`; `env` is added to an environment cleared of MLFLOW_* and AWS_*
    (with MLflow's job runner off, as deployed)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{store}",
           "--artifacts-destination", str(home / "artifacts"), "--workers", str(workers)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    log = home / "server.log"
    with process(cmd, log, env={**clean, **NO_JOB_RUNNER, **(env or {})}, cwd=home) as proc:
        wait_ready(http_ok(f"{url}/health"), proc, log, "mlflow server")
        yield url
