"""Bring a fresh gate server's users and permissions to the intended state; safe to re-run.

    python deploy/bootstrap.py [--experiment NAME] [--model-name NAME]
                               [--holdout-experiment NAME]

Environment (passwords are read from here only, and never printed):
    MLFLOW_TRACKING_URI           the server, e.g. https://mlflow.example.com
    GATE_ADMIN_USERNAME           default "admin"
    GATE_ADMIN_INITIAL_PASSWORD   the password the server first started with
                                  (MLFLOW_AUTH_ADMIN_PASSWORD); unused once rotated
    GATE_ADMIN_PASSWORD           the admin's replacement password
    GATE_CI_PR_PASSWORD           for `ci-pr`: logs runs, reads the registry
    GATE_CI_PROMOTER_PASSWORD     for `ci-promoter`: also registers versions, moves aliases
    GATE_CI_GATE_PASSWORD         optional, for `ci-gate`: the identity of a pull request's
                                  gate job, which reads what the gate reads and the sealed
                                  holdout, and writes nothing; no user without it

It rotates the admin password, creates the experiments and the registered model (so that
no CI user becomes their owner by creating them first), creates or re-keys the CI users
and sets their grants to exactly the table below: READ on the sealed holdout experiment
(`gate holdout publish`) for the gate's identities, and no grant at all for `ci-pr`, whose
credential the pull request's trainer holds (one it got by creating the experiment first
is revoked). Re-running with new passwords rotates them. Exit codes: 0 done, 2 bad input,
3 server unreachable or refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import requests

TIMEOUT = 15
API2 = "/api/2.0/mlflow"
API3 = "/api/3.0/mlflow"
CI_PR, CI_PROMOTER, CI_GATE = "ci-pr", "ci-promoter", "ci-gate"
PASSWORD_ENV = {CI_PR: "GATE_CI_PR_PASSWORD", CI_PROMOTER: "GATE_CI_PROMOTER_PASSWORD"}
# users created only when their password is set
OPTIONAL_PASSWORD_ENV = {CI_GATE: "GATE_CI_GATE_PASSWORD"}
HOLDOUT_EXPERIMENT = "model-gate-holdout"     # gate.contract.HOLDOUT_EXPERIMENT
NO_GRANT = ""       # the user holds no grant of its own on the resource
# With default_permission = NO_PERMISSIONS (deploy/basic_auth.ini) these grants are all a
# CI user can do. EDIT on the model is the least that registers versions (CreateModelVersion
# needs update on the model) and moves aliases (SetRegisteredModelAlias needs update); MANAGE
# would add deleting versions and re-granting, which the gate never needs.
# The sealed holdout: whoever runs `gate check` reads it; ci-pr, the trainer's credential,
# may not (NO_PERMISSIONS by default; NO_GRANT revokes one it got by creating it first).
GRANTS: Mapping[str, Mapping[str, str]] = {
    CI_PR: {"experiment": "EDIT", "registered_model": "READ", "holdout": NO_GRANT},
    CI_PROMOTER: {"experiment": "EDIT", "registered_model": "EDIT", "holdout": "READ"},
    CI_GATE: {"experiment": "READ", "registered_model": "READ", "holdout": "READ"},
}


Say = Callable[[str], object]


class BootstrapError(Exception):
    exit_code = 3


class UsageError(BootstrapError):
    exit_code = 2


@dataclass(frozen=True)
class Settings:
    uri: str
    admin: str
    admin_initial: str | None
    admin_password: str
    passwords: Mapping[str, str]
    experiment: str
    model: str
    holdout_experiment: str = HOLDOUT_EXPERIMENT


class Server:
    """The few REST calls bootstrap needs, as one identity; errors never echo a password."""

    def __init__(self, uri: str, username: str, password: str) -> None:
        self.uri = uri.rstrip("/")
        self.username = username
        self.session = requests.Session()
        self.session.auth = (username, password)

    def call(self, method: str, path: str, ok: Sequence[int] = (200,),
             **kwargs: object) -> requests.Response:
        try:
            resp = self.session.request(method, self.uri + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise BootstrapError(f"cannot reach MLflow at {self.uri}: "
                                 f"{type(exc).__name__}") from None
        if resp.status_code in ok:
            return resp
        if resp.status_code == 401:
            raise BootstrapError(f"MLflow refused the password of {self.username!r}")
        if resp.status_code == 403:
            raise BootstrapError(_refusal(resp, self.uri, self.username, method, path))
        raise BootstrapError(f"{method} {path} failed with HTTP {resp.status_code}: "
                             f"{_error_message(resp)}")

    def authenticates(self) -> bool:
        return self.call("GET", f"{API2}/users/current", ok=(200, 401)).status_code == 200


# MLflow's security middleware answers these plain-text 403s before any permission check
# (mlflow/server/security_utils.py, INVALID_HOST_MSG and CORS_BLOCKED_MSG).
_HOST_REFUSED = "Invalid Host header"
_ORIGIN_REFUSED = "Cross-origin request blocked"


def _refusal(resp: requests.Response, uri: str, username: str, method: str, path: str) -> str:
    if resp.text.startswith(_HOST_REFUSED):
        return (f"MLflow at {uri} refused the request's Host header (its --allowed-hosts "
                f"check, not a permission): add the name clients use to MLFLOW_PUBLIC_URL or "
                f"MLFLOW_EXTRA_ALLOWED_HOSTS in deploy/.env, and make a reverse proxy pass "
                f"it on (nginx: proxy_set_header Host $host)")
    if resp.text.startswith(_ORIGIN_REFUSED):
        return (f"MLflow at {uri} refused the request's Origin header (its "
                f"--cors-allowed-origins check, not a permission)")
    return f"{username!r} lacks permission for {method} {path}"


def _error_message(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("message", ""))[:200]
    except ValueError:
        return resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""


def settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="model-gate",
                        help="experiment CI logs runs to (default: model-gate)")
    parser.add_argument("--model-name", default="diabetes-regressor",
                        help="registered model the gate promotes (default: diabetes-regressor)")
    parser.add_argument("--holdout-experiment", default=HOLDOUT_EXPERIMENT,
                        help=f"the sealed holdouts' experiment (default: {HOLDOUT_EXPERIMENT})")
    args = parser.parse_args(argv)
    required = ["MLFLOW_TRACKING_URI", "GATE_ADMIN_PASSWORD", *PASSWORD_ENV.values()]
    missing = [name for name in required if not environ.get(name)]
    if missing:
        raise UsageError(f"set {', '.join(missing)} in the environment")
    return Settings(
        uri=environ["MLFLOW_TRACKING_URI"],
        admin=environ.get("GATE_ADMIN_USERNAME") or "admin",
        admin_initial=environ.get("GATE_ADMIN_INITIAL_PASSWORD") or None,
        admin_password=environ["GATE_ADMIN_PASSWORD"],
        passwords={user: environ[var] for user, var in
                   {**PASSWORD_ENV, **OPTIONAL_PASSWORD_ENV}.items() if environ.get(var)},
        experiment=args.experiment, model=args.model_name,
        holdout_experiment=args.holdout_experiment,
    )


def admin_session(cfg: Settings, say: Say) -> Server:
    """The admin, logged in with the replacement password, rotating to it if needed."""
    admin = Server(cfg.uri, cfg.admin, cfg.admin_password)
    if admin.authenticates():
        say(f"{cfg.admin}: password already rotated")
        return admin
    if not cfg.admin_initial:
        raise BootstrapError(f"MLflow refused GATE_ADMIN_PASSWORD for {cfg.admin!r}, and "
                             "GATE_ADMIN_INITIAL_PASSWORD is not set to rotate from")
    initial = Server(cfg.uri, cfg.admin, cfg.admin_initial)
    if not initial.authenticates():
        raise BootstrapError(f"MLflow refused both GATE_ADMIN_PASSWORD and "
                             f"GATE_ADMIN_INITIAL_PASSWORD for {cfg.admin!r}")
    # Changing one's own password must present the current one (MLflow's self-service rule).
    initial.call("PATCH", f"{API2}/users/update-password",
                 json={"username": cfg.admin, "password": cfg.admin_password,
                       "current_password": cfg.admin_initial})
    if not admin.authenticates():
        raise BootstrapError(f"the new password of {cfg.admin!r} does not work after rotation")
    say(f"{cfg.admin}: password rotated")
    return admin


def ensure_experiment(admin: Server, name: str, say: Say) -> str:
    resp = admin.call("GET", f"{API2}/experiments/get-by-name", ok=(200, 404),
                      params={"experiment_name": name})
    if resp.status_code == 200:
        experiment = resp.json()["experiment"]
        if experiment.get("lifecycle_stage") == "deleted":
            raise UsageError(f"experiment {name!r} is deleted: restore it or pick another name")
        say(f"experiment {name!r}: exists (id {experiment['experiment_id']})")
        return str(experiment["experiment_id"])
    created = admin.call("POST", f"{API2}/experiments/create", json={"name": name})
    experiment_id = str(created.json()["experiment_id"])
    say(f"experiment {name!r}: created (id {experiment_id})")
    return experiment_id


def ensure_model(admin: Server, name: str, say: Say) -> None:
    resp = admin.call("GET", f"{API2}/registered-models/get", ok=(200, 404),
                      params={"name": name})
    if resp.status_code == 200:
        say(f"registered model {name!r}: exists")
        return
    admin.call("POST", f"{API2}/registered-models/create", json={"name": name})
    say(f"registered model {name!r}: created")


def ensure_user(admin: Server, username: str, password: str, say: Say) -> int:
    """Create the user, or reset its password if the desired one does not work; its id."""
    resp = admin.call("GET", f"{API2}/users/get", ok=(200, 404),
                      params={"username": username})
    if resp.status_code == 404:
        user = admin.call("POST", f"{API2}/users/create",
                          json={"username": username, "password": password}).json()["user"]
        say(f"{username}: created")
        return int(user["id"])
    user = resp.json()["user"]
    if Server(admin.uri, username, password).authenticates():
        say(f"{username}: exists, password current")
    else:
        admin.call("PATCH", f"{API2}/users/update-password",
                   json={"username": username, "password": password})
        say(f"{username}: password reset")
    if user.get("is_admin"):
        admin.call("PATCH", f"{API2}/users/update-admin",
                   json={"username": username, "is_admin": False})
        say(f"{username}: admin rights removed")
    return int(user["id"])


def direct_grants(admin: Server, username: str, user_id: int) -> dict[tuple[str, str], str]:
    """The user's own grants: (resource_type, resource_id) -> permission."""
    rows = admin.call("GET", f"{API3}/users/permissions/list",
                      params={"username": username}).json()["permissions"]
    # Grants made through the per-user API live in a synthetic role named after the user id;
    # grants from shared roles are left alone.
    own = f"__user_{user_id}__"
    return {(r["resource_type"], r["resource_pattern"]): r["permission"]
            for r in rows if r["role_name"] == own}


def ensure_grants(admin: Server, username: str, user_id: int,
                  wanted: Mapping[tuple[str, str], str], say: Say) -> None:
    have = direct_grants(admin, username, user_id)
    for (rtype, rid), permission in wanted.items():
        current = have.get((rtype, rid))
        label = f"{username}: {permission or 'no grant'} on {rtype} {rid!r}"
        if current == (permission or None):
            say(f"{label}: unchanged")
            continue
        body = {"username": username, "resource_type": rtype, "resource_id": rid}
        if current is not None:
            admin.call("POST", f"{API3}/users/permissions/revoke", json=body)
        if permission == NO_GRANT:
            say(f"{label}: revoked {current}")
            continue
        admin.call("POST", f"{API3}/users/permissions/grant",
                   json={**body, "permission": permission})
        say(f"{label}: {'changed from ' + current if current else 'granted'}")


def bootstrap(cfg: Settings, say: Say = print) -> None:
    admin = admin_session(cfg, say)
    experiment_id = ensure_experiment(admin, cfg.experiment, say)
    holdout_id = ensure_experiment(admin, cfg.holdout_experiment, say)
    ensure_model(admin, cfg.model, say)
    resources = {"experiment": ("experiment", experiment_id),
                 "registered_model": ("registered_model", cfg.model),
                 "holdout": ("experiment", holdout_id)}
    for username, grants in GRANTS.items():
        if username not in cfg.passwords:
            say(f"{username}: skipped ({OPTIONAL_PASSWORD_ENV[username]} is not set)")
            continue
        user_id = ensure_user(admin, username, cfg.passwords[username], say)
        wanted = {resources[what]: perm for what, perm in grants.items()}
        ensure_grants(admin, username, user_id, wanted, say)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        bootstrap(settings(argv, os.environ))
    except BootstrapError as exc:
        print(f"bootstrap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
