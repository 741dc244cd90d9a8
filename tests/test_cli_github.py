"""`gate check` in a GitHub Actions environment, against the local GitHub-like API:
one sticky comment, step outputs, annotations, and a verdict GitHub cannot change."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.commands.cli import main
from tests.conftest import train
from tests.fake_github import FAKE_TOKEN, FakeGitHub

REPO = "acme/models"
WORSE = ("--drop-columns", "bmi,s5")


@pytest.fixture
def actions(local_store: Path, monkeypatch: pytest.MonkeyPatch):
    with FakeGitHub() as api:
        event = local_store / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 7,
                                                      "head": {"sha": "ab" * 20}}}))
        for key, value in {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": FAKE_TOKEN,
                           "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": api.url,
                           "GITHUB_EVENT_PATH": str(event),
                           "GITHUB_EVENT_NAME": "pull_request",
                           "GITHUB_OUTPUT": str(local_store / "output"),
                           "GITHUB_STEP_SUMMARY": str(local_store / "summary.md"),
                           "GATE_GITHUB_MAX_WAIT": "2",
                           "MLFLOW_TRACKING_PASSWORD": "mlflow-pass-123",
                           "AWS_SECRET_ACCESS_KEY": "aws-secret-key-456"}.items():
            monkeypatch.setenv(key, value)
        yield api


def outputs(path: Path) -> dict[str, str]:
    """Parse GITHUB_OUTPUT's `name<<DELIM` blocks and `name=value` lines."""
    values, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if "<<" not in lines[i]:            # the trainer's plain `run_id=...`
            name, value = lines[i].split("=", 1)
            values[name], i = value, i + 1
            continue
        name, delim = lines[i].split("<<", 1)
        end = lines.index(delim, i + 1)
        values[name] = "\n".join(lines[i + 1:end])
        i = end + 1
    return values


def test_pr_check_comments_once_and_updates_in_place(actions: FakeGitHub, local_store: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    base = train()
    assert main(["check", "--run-id", base, "--promote", "--comment"]) == 0
    comments = actions.comments(REPO, 7)
    assert len(comments) == 1 and "First model" in comments[0]["body"]
    assert comments[0]["body"].startswith("<!-- model-gate:diabetes-regressor -->")

    Path("output").unlink()
    worse = train(*WORSE)
    assert main(["check", "--run-id", worse, "--comment", "--json", "v.json"]) == 1
    comments = actions.comments(REPO, 7)
    assert len(comments) == 1 and "Blocked" in comments[0]["body"]
    assert [r.method for r in actions.writes()] == ["POST", "PATCH"]

    out = outputs(Path("output"))
    assert out["verdict"] == "blocked" and out["passed"] == "false"
    assert out["candidate_run_id"] == worse and out["champion_version"] == "1"
    assert out["promoted_version"] == ""
    assert "rmse" in out["failed_metrics"].splitlines()
    stdout = capsys.readouterr().out
    assert "::error title=rmse failed::" in stdout
    assert "Blocked" in Path("summary.md").read_text()

    # the same body again: nothing is written
    assert main(["check", "--run-id", worse, "--comment"]) == 1
    assert len(actions.writes()) == 2


def test_github_down_changes_nothing_but_a_warning(actions: FakeGitHub, local_store: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    actions.fail_next(502, times=50)
    run_id = train()
    assert main(["check", "--run-id", run_id, "--comment", "--json", "v.json"]) == 0
    captured = capsys.readouterr()
    assert "::warning::PR comment not posted (the verdict stands)" in captured.out
    assert json.loads(Path("v.json").read_text())["status"] == "first_model"
    assert "First model" in Path("summary.md").read_text()
    assert actions.comments(REPO, 7) == []


def test_push_event_posts_no_comment(actions: FakeGitHub, local_store: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    Path("event.json").write_text(json.dumps({"ref": "refs/heads/main"}))
    assert main(["check", "--run-id", train(), "--comment"]) == 0
    assert actions.requests == []


def test_secrets_never_printed(actions: FakeGitHub, local_store: Path,
                               capsys: pytest.CaptureFixture) -> None:
    run_id = train()
    main(["check", "--run-id", run_id, "--comment", "--json", "v.json"])
    captured = capsys.readouterr()
    masked = [line for line in captured.out.splitlines() if line.startswith("::add-mask::")]
    secrets = (FAKE_TOKEN, "mlflow-pass-123", "aws-secret-key-456")
    assert {"::add-mask::" + secret for secret in secrets} <= set(masked)
    rest = "\n".join(line for line in captured.out.splitlines() if line not in masked)
    for secret in secrets:
        for text in (rest, captured.err, Path("summary.md").read_text(),
                     Path("v.json").read_text(), Path("output").read_text(),
                     actions.comments(REPO, 7)[0]["body"]):
            assert secret not in text


def test_skip_reports_skipped(actions: FakeGitHub, local_store: Path,
                              capsys: pytest.CaptureFixture) -> None:
    assert main(["skip", "--reason", "fork PR: no secrets"]) == 0
    assert "::notice title=model gate::Model gate skipped" in capsys.readouterr().out
    assert "Skipped" in Path("summary.md").read_text()
    assert outputs(Path("output"))["verdict"] == "skipped"
