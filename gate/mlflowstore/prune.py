"""Retention for a tracking server that CI fills: old CI runs that back no model version.

A run is pruned only when all of these hold: it is a CI run (tag `gate.ci = true`, which
`gate.log_evaluation` sets only inside GitHub Actions, or a `github.*` tag from
before it existed), it started more than
`older_than_days` ago, no registered model version was made from it, and it is not among
the `keep` newest CI runs of its experiment. Without `yes` nothing is deleted.

MLflow's delete is a soft delete: the run leaves the UI and searches, and `mlflow gc`
on the server purges its rows and artifacts later (see deploy/README.md).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate import contract
from gate.errors import InputError
from gate.mlflowstore.session import mlflow_errors

if TYPE_CHECKING:
    import mlflow

# runs logged by the reference trainer under GitHub Actions before gate.ci existed
LEGACY_CI_PREFIX = "github."
PAGE = 1000


def is_ci_run(tags: Mapping[str, str]) -> bool:
    """The contract's own tag, from any trainer in any CI; else the legacy github.* tags."""
    return tags.get(contract.TAG_CI) == "true" or \
        any(key.startswith(LEGACY_CI_PREFIX) for key in tags)


@dataclass(frozen=True)
class PrunedRun:
    run_id: str
    experiment_id: str
    name: str
    started: dt.datetime
    age_days: float


@dataclass(frozen=True)
class PruneReport:
    older_than_days: float
    keep: int
    dry_run: bool
    runs: tuple[PrunedRun, ...]     # deleted, or in a dry run those that would be
    kept_registered: int            # old CI runs kept because a model version uses them
    kept_newest: int                # old CI runs kept by `keep`
    not_ci: int                     # runs left alone because CI did not make them

    def lines(self) -> list[str]:
        verb = "would delete" if self.dry_run else "deleted"
        head = (f"prune: {verb} {len(self.runs)} CI run(s) older than "
                f"{self.older_than_days:g} days; kept {self.kept_registered} backing a model "
                f"version and {self.kept_newest} among the newest {self.keep}; "
                f"ignored {self.not_ci} non-CI run(s)")
        rows = [f"  {r.run_id}  experiment {r.experiment_id}  "
                f"{r.started:%Y-%m-%d}  {r.age_days:.0f}d  {r.name}" for r in self.runs]
        tail = ["prune: dry run, nothing deleted; add --yes to delete"] \
            if self.dry_run and self.runs else []
        return [head, *rows, *tail]


def prune_at(tracking_uri: str, experiments: Sequence[str], older_than_days: float,
             keep: int, yes: bool) -> PruneReport:
    """`prune` on the tracking server at `tracking_uri` (its registry too)."""
    from mlflow import MlflowClient

    return prune(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri),
                 experiments, older_than_days, keep, yes)


def prune(client: mlflow.MlflowClient, experiments: Sequence[str], older_than_days: float,
          keep: int, yes: bool, now: dt.datetime | None = None) -> PruneReport:
    """List (and with `yes`, delete) the prunable runs of the experiments, named or by id.

    Run it as a user who sees every model version on the server (the admin): a version
    the user cannot read would not protect its run.
    """
    if not math.isfinite(older_than_days) or older_than_days < 0:
        raise InputError(f"--older-than must be a number of days >= 0, not {older_than_days}")
    if keep < 0:
        raise InputError(f"--keep must be >= 0, not {keep}")
    if not experiments:
        raise InputError("prune needs at least one experiment")
    now = now or dt.datetime.now(dt.timezone.utc)
    cutoff_ms = (now - dt.timedelta(days=older_than_days)).timestamp() * 1000

    with mlflow_errors(client.tracking_uri, "listing runs and model versions"):
        experiment_ids = [_experiment_id(client, e) for e in experiments]
        backing = _registered_run_ids(client)
        runs = list(_runs(client, experiment_ids))

    chosen: list[PrunedRun] = []
    kept_registered = kept_newest = not_ci = 0
    newest_seen: dict[str, int] = {}
    for run in runs:  # newest first, per experiment
        if not is_ci_run(run.data.tags):
            not_ci += 1
            continue
        experiment_id = run.info.experiment_id
        rank = newest_seen.get(experiment_id, 0)
        newest_seen[experiment_id] = rank + 1
        started = int(run.info.start_time or 0)
        if started >= cutoff_ms:
            continue
        if run.info.run_id in backing:
            kept_registered += 1
        elif rank < keep:
            kept_newest += 1
        else:
            chosen.append(_pruned(run, now))

    if yes:
        _delete(client, chosen)
    return PruneReport(older_than_days=older_than_days, keep=keep, dry_run=not yes,
                       runs=tuple(chosen), kept_registered=kept_registered,
                       kept_newest=kept_newest, not_ci=not_ci)


def _experiment_id(client: mlflow.MlflowClient, name_or_id: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name_or_id)
    if found is None and name_or_id.isdigit():
        try:
            found = client.get_experiment(name_or_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    if found is None:
        raise InputError(f"experiment {name_or_id!r} not found")
    return str(found.experiment_id)


def _registered_run_ids(client: mlflow.MlflowClient) -> set[str]:
    run_ids: set[str] = set()
    token = None
    while True:
        page = client.search_model_versions(max_results=PAGE, page_token=token)
        run_ids.update(mv.run_id for mv in page if mv.run_id)
        token = page.token
        if not token:
            return run_ids


def _runs(client: mlflow.MlflowClient, experiment_ids: Iterable[str]) -> Iterator[Any]:
    from mlflow.entities import ViewType

    for experiment_id in experiment_ids:
        token = None
        while True:
            page = client.search_runs([experiment_id], run_view_type=ViewType.ACTIVE_ONLY,
                                      max_results=PAGE, page_token=token,
                                      order_by=["attributes.start_time DESC"])
            yield from page
            token = page.token
            if not token:
                break


def _pruned(run: Any, now: dt.datetime) -> PrunedRun:
    started = dt.datetime.fromtimestamp(int(run.info.start_time or 0) / 1000, dt.timezone.utc)
    return PrunedRun(run_id=run.info.run_id, experiment_id=str(run.info.experiment_id),
                     name=run.info.run_name or "", started=started,
                     age_days=(now - started).total_seconds() / 86400)


def _delete(client: mlflow.MlflowClient, runs: Sequence[PrunedRun]) -> None:
    for done, run in enumerate(runs):
        with mlflow_errors(client.tracking_uri,
                           f"deleting run {run.run_id} ({done} of {len(runs)} deleted before)",
                           needs="MANAGE on the experiment: run prune as the admin"):
            client.delete_run(run.run_id)
