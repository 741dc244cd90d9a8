"""gate.prune on a real MLflow store (sqlite in tmp): what is listed, kept and deleted."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from gate.errors import InputError
from gate.mlflowstore.prune import prune

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
CI_TAGS = {"github.event": "pull_request", "github.repository": "acme/models"}


def make_run(client: MlflowClient, experiment_id: str, days_old: float, name: str,
             ci: bool = True) -> str:
    started = NOW - dt.timedelta(days=days_old)
    run = client.create_run(experiment_id, start_time=int(started.timestamp() * 1000),
                            tags=CI_TAGS if ci else {}, run_name=name)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One store with named runs of known age, the cases prune must tell apart.

    Built once: creating an MLflow schema takes seconds, copying the file does not.
    """
    path = tmp_path_factory.mktemp("prune") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    exp = client.create_experiment("model-gate")
    runs = {name: make_run(client, exp, days, name) for name, days in
            [("fresh", 1), ("newest_old", 40), ("registered", 50), ("old_a", 60), ("old_b", 90)]}
    runs["manual"] = make_run(client, exp, 100, "manual", ci=False)
    client.create_registered_model("diabetes-regressor")
    client.create_model_version("diabetes-regressor", source="file:///nowhere/model",
                                run_id=runs["registered"])
    return path, runs


@pytest.fixture
def filled(template: tuple[Path, dict[str, str]], tmp_path: Path) -> dict[str, str]:
    return template[1]


@pytest.fixture
def client(template: tuple[Path, dict[str, str]], tmp_path: Path) -> MlflowClient:
    uri = f"sqlite:///{shutil.copy(template[0], tmp_path / 'mlflow.db')}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def active(client: MlflowClient) -> set[str]:
    exp = client.get_experiment_by_name("model-gate").experiment_id
    runs = client.search_runs([exp], run_view_type=ViewType.ACTIVE_ONLY)
    return {r.info.run_name for r in runs}


def test_dry_run_lists_without_deleting(client: MlflowClient, filled: dict[str, str]) -> None:
    report = prune(client, ["model-gate"], older_than_days=30, keep=2, yes=False, now=NOW)
    # Newest first: fresh (rank 0) is recent, newest_old (rank 1) is kept by keep=2.
    assert [r.name for r in report.runs] == ["old_a", "old_b"]
    assert (report.kept_registered, report.kept_newest, report.not_ci) == (1, 1, 1)
    assert report.dry_run
    assert active(client) == set(filled)
    assert "add --yes to delete" in report.lines()[-1]


def test_yes_deletes_only_the_listed_runs(client: MlflowClient, filled: dict[str, str]) -> None:
    report = prune(client, ["model-gate"], older_than_days=30, keep=0, yes=True, now=NOW)
    assert {r.name for r in report.runs} == {"newest_old", "old_a", "old_b"}
    assert active(client) == {"fresh", "registered", "manual"}
    assert report.lines()[0].startswith("prune: deleted 3 CI run(s) older than 30 days")


@pytest.mark.parametrize("days, keep, expected", [
    (0, 0, {"fresh", "newest_old", "old_a", "old_b"}),
    (60, 0, {"old_b"}),                # exactly 60 days old is not older than 60
    (90.5, 0, set()),
    (30, 10, set()),                   # keep covers every CI run
])
def test_age_and_keep_boundaries(client: MlflowClient, filled: dict[str, str], days: float,
                                 keep: int, expected: set[str]) -> None:
    report = prune(client, ["model-gate"], older_than_days=days, keep=keep, yes=False, now=NOW)
    assert {r.name for r in report.runs} == expected


def test_experiment_by_id_and_several(client: MlflowClient, filled: dict[str, str]) -> None:
    other = client.create_experiment("other")
    make_run(client, other, 45, "other_old")
    exp_id = client.get_experiment_by_name("model-gate").experiment_id
    report = prune(client, [exp_id, "other"], older_than_days=30, keep=1, yes=False, now=NOW)
    # keep applies per experiment: the only run of "other" is its newest.
    assert {r.name for r in report.runs} == {"newest_old", "old_a", "old_b"}


def test_deleted_runs_are_not_counted_again(client: MlflowClient,
                                            filled: dict[str, str]) -> None:
    prune(client, ["model-gate"], older_than_days=30, keep=0, yes=True, now=NOW)
    again = prune(client, ["model-gate"], older_than_days=30, keep=0, yes=True, now=NOW)
    assert again.runs == ()


@pytest.mark.parametrize("kwargs, message", [
    ({"experiments": ["missing"]}, "experiment 'missing' not found"),
    ({"older_than_days": -1.0}, "--older-than must be a number of days >= 0"),
    ({"older_than_days": float("nan")}, "--older-than must be a number of days >= 0"),
    ({"keep": -2}, "--keep must be >= 0"),
    ({"experiments": []}, "at least one experiment"),
])
def test_bad_input_is_an_input_error(client: MlflowClient, filled: dict[str, str],
                                     kwargs: dict[str, object], message: str) -> None:
    args = {"experiments": ["model-gate"], "older_than_days": 30.0, "keep": 0, **kwargs}
    with pytest.raises(InputError, match=message):
        prune(client, yes=True, now=NOW, **args)
    assert active(client) == set(filled)


def test_cli_dry_run_then_yes(client: MlflowClient, filled: dict[str, str],
                              monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m gate prune` end to end: days count from now, so the 40-day-old run is
    older than 30 days whatever today's date is."""
    from gate.commands.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    # The fixture's runs were dated against NOW; today they are all older than that.
    assert main(["prune", "--older-than", "30", "--keep", "2"]) == 0
    out = capsys.readouterr().out
    assert "would delete 2 CI run(s)" in out and "add --yes to delete" in out
    assert active(client) == set(filled)

    assert main(["prune", "--older-than", "30", "--keep", "2", "--yes"]) == 0
    assert "deleted 2 CI run(s)" in capsys.readouterr().out
    assert active(client) == {"fresh", "newest_old", "registered", "manual"}


def test_cli_bad_input_is_exit_2_one_line(client: MlflowClient, filled: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from gate.commands.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    assert main(["prune", "--older-than", "30", "--experiment", "nope", "--yes"]) == 2
    err = capsys.readouterr().err
    assert err == "gate: error: experiment 'nope' not found\n"
    assert active(client) == set(filled)
