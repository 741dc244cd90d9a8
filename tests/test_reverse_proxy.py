"""The deployed server behind a reverse proxy: the Host and Origin checks as users meet them.

The stack runs deploy/entrypoint.py (the image's entrypoint) with its public URL set to
PUBLIC_URL; tests/reverse_proxy.py stands in for nginx on 127.0.0.1 and forwards with the
Host header a real proxy would send. Also here: the auth database the entrypoint created,
because the stack's PostgreSQL started without one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from mlflow import MlflowClient

from tests.reverse_proxy import ReverseProxy
from tests.stack import (  # noqa: F401
    MODEL, PUBLIC_URL, Stack, bootstrapped, entrypoint_module)

PUBLIC_HOST = urlsplit(PUBLIC_URL).hostname or ""
UNKNOWN_HOST = "attacker.example"
USERS_CREATE = "/ajax-api/2.0/mlflow/users/create"
USERS_DELETE = "/ajax-api/2.0/mlflow/users/delete"
CURRENT_USER = "/api/2.0/mlflow/users/current"


@pytest.fixture
def public(bootstrapped: Stack) -> Iterator[ReverseProxy]:  # noqa: F811
    """nginx with `proxy_set_header Host $host`, behind a browser at the public URL."""
    with ReverseProxy(bootstrapped.tracking_uri, PUBLIC_HOST) as proxy:
        yield proxy


def browser_headers(origin: str) -> dict[str, str]:
    # What a browser adds to the UI's own fetch() POST, same-origin included.
    return {"Origin": origin, "Referer": f"{origin}/", "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "cors", "X-Requested-With": "XMLHttpRequest"}


def test_browser_at_the_public_url_can_write(bootstrapped: Stack,  # noqa: F811
                                             public: ReverseProxy) -> None:
    admin = bootstrapped.admin()
    headers = browser_headers(PUBLIC_URL)
    created = admin.post(public.url + USERS_CREATE, headers=headers, timeout=30,
                         json={"username": "ui-made", "password": "ui-made-Pw-12345"})
    assert created.status_code == 200, created.text
    deleted = admin.delete(public.url + USERS_DELETE, headers=headers, timeout=30,
                           json={"username": "ui-made"})
    assert deleted.status_code == 200, deleted.text
    # deploy/README.md's checklist verifies this with a read-only POST: the same guard.
    searched = admin.post(public.url + "/ajax-api/2.0/mlflow/experiments/search",
                          headers=headers, json={"max_results": 1}, timeout=30)
    assert searched.status_code == 200, searched.text


def test_browser_at_another_origin_still_cannot_write(bootstrapped: Stack,  # noqa: F811
                                                      public: ReverseProxy) -> None:
    resp = bootstrapped.admin().post(
        public.url + USERS_CREATE, headers=browser_headers("https://attacker.example"),
        json={"username": "evil", "password": "evil-Pw-12345"}, timeout=30)
    assert resp.status_code == 403
    assert "Cross-origin request blocked" in resp.text


def _local_hosts(live: Stack) -> list[str]:
    port = urlsplit(live.tracking_uri).port
    return [f"127.0.0.1:{port}", f"localhost:{port}"]


@pytest.mark.parametrize("which", ["public name", "127.0.0.1:PORT", "localhost:PORT"])
def test_every_name_of_the_server_answers(bootstrapped: Stack, which: str) -> None:  # noqa: F811
    # 127.0.0.1:PORT is what nginx sends without proxy_set_header, and what curl on the host
    # sends; localhost:PORT the same by name.
    host = {"public name": PUBLIC_HOST, "127.0.0.1:PORT": _local_hosts(bootstrapped)[0],
            "localhost:PORT": _local_hosts(bootstrapped)[1]}[which]
    with ReverseProxy(bootstrapped.tracking_uri, host) as proxy:
        resp = bootstrapped.admin().get(proxy.url + CURRENT_USER, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["username"] == "admin"


def test_an_unknown_host_is_refused(bootstrapped: Stack) -> None:  # noqa: F811
    with ReverseProxy(bootstrapped.tracking_uri, UNKNOWN_HOST) as proxy:
        resp = bootstrapped.admin().get(proxy.url + CURRENT_USER, timeout=30)
        health = requests.get(proxy.url + "/health", timeout=30)
    assert resp.status_code == 403
    assert "Invalid Host header" in resp.text
    # Why a container can look healthy while refusing everyone: /health skips the check.
    assert health.status_code == 200


def test_ci_client_works_through_the_proxy(bootstrapped: Stack, public: ReverseProxy,  # noqa: F811,E501
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci-pr")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", bootstrapped.passwords.ci_pr)
    assert MlflowClient(tracking_uri=public.url).get_registered_model(MODEL).name == MODEL


def test_bootstrap_names_the_host_check_not_a_permission(bootstrapped: Stack) -> None:  # noqa: F811,E501
    with ReverseProxy(bootstrapped.tracking_uri, UNKNOWN_HOST) as proxy:
        result = dataclasses.replace(bootstrapped, tracking_uri=proxy.url).run_bootstrap()
    assert result.returncode == 3
    err = result.stderr
    assert err.startswith("bootstrap: error:") and len(err.strip().splitlines()) == 1, err
    assert "Host header" in err and "--allowed-hosts" in err and "not a permission" in err
    assert "lacks permission" not in err


def test_start_created_the_missing_auth_database(bootstrapped: Stack,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    log = (bootstrapped.workdir / "mlflow.log").read_text()
    assert "auth database 'mlflow_auth': created" in log
    # MLflow then put its users there, the admin among them.
    with psycopg.connect(host="127.0.0.1", port=bootstrapped.pg_port, user="mlflow",
                         password=bootstrapped.db_password, dbname="mlflow_auth") as conn:
        users = {row[0] for row in conn.execute("SELECT username FROM users")}
    assert {"admin", "ci-pr", "ci-promoter"} <= users

    # Every later start finds it and changes nothing.
    monkeypatch.setenv("PGPASSWORD", bootstrapped.db_password)
    said: list[str] = []
    uri = f"postgresql+psycopg://mlflow@127.0.0.1:{bootstrapped.pg_port}/mlflow_auth"
    assert entrypoint_module().ensure_auth_database(uri, said.append, wait=0) is False
    assert said == ["auth database 'mlflow_auth': exists"]


def test_a_role_without_createdb_is_told_what_to_do(bootstrapped: Stack) -> None:  # noqa: F811
    with psycopg.connect(host="127.0.0.1", port=bootstrapped.pg_port, user="postgres",
                         password=bootstrapped.pg_superuser_password, dbname="postgres",
                         autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN PASSWORD 'plain-s3cret'")
    uri = f"postgresql+psycopg://plain:plain-s3cret@127.0.0.1:{bootstrapped.pg_port}/other_auth"
    ep = entrypoint_module()
    with pytest.raises(ep.EntrypointError, match="may not create it .needs CREATEDB.") as err:
        ep.ensure_auth_database(uri, print, wait=0)
    assert "s3cret" not in str(err.value)
