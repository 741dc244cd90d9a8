"""gate.ci, the helpers the workflows call: a reviewed SHA against the pull request's
head, and the `paths` filter, against the local GitHub-like API."""
from __future__ import annotations

from pathlib import Path

import pytest

from gate.commands import ci
from tests import fake_github as fake_module
from tests.fake_github import FakeGitHub
from tests.test_github import parse_outputs

fake_github = fake_module.fake_github        # the fixture, for this module

REPO = "acme/models"
HEAD = "c" * 40


def _env(fake: FakeGitHub, tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_API_URL": fake.url, "GITHUB_TOKEN": fake.token,
            "GITHUB_REPOSITORY": REPO, "GITHUB_OUTPUT": str(tmp_path / "output")}


def _outputs(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "output"
    return parse_outputs(path.read_text()) if path.exists() else {}


def test_the_reviewed_sha_is_the_head(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.add_pull(REPO, 4, head_sha=HEAD, head_ref="idea", head_repo="them/models")
    assert ci.main(["verify-head", "--pr", "4", "--sha", HEAD], _env(fake_github, tmp_path)) == 0
    assert _outputs(tmp_path) == {"head_sha": HEAD, "head_ref": "idea",
                                  "head_repo": "them/models"}


@pytest.mark.parametrize("sha, state, message", [
    ("d" * 40, "open", "has head cccccccccccc, not the reviewed dddddddddddd"),
    (HEAD, "closed", "is closed"),
    ("c" * 12, "open", "full 40-character"),
    (HEAD.upper() + "0", "open", "full 40-character"),
])
def test_anything_but_the_open_head_is_refused(fake_github: FakeGitHub, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str], sha: str,
                                               state: str, message: str) -> None:
    fake_github.add_pull(REPO, 4, head_sha=HEAD, state=state)
    assert ci.main(["verify-head", "--pr", "4", "--sha", sha], _env(fake_github, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("gate: error: ") and message in err and err.count("\n") == 1
    assert _outputs(tmp_path) == {}


def test_an_unknown_pull_request_is_a_github_error(fake_github: FakeGitHub,
                                                   tmp_path: Path) -> None:
    assert ci.main(["verify-head", "--pr", "5", "--sha", HEAD], _env(fake_github, tmp_path)) == 3


@pytest.mark.parametrize("path, patterns, expected", [
    ("gate/decide.py", ["gate/**"], True),
    ("gate/templates/report.md.j2", ["gate/**"], True),
    ("gate.toml", ["gate/**"], False),
    ("README.md", ["**/*.py"], False),
    ("bench/x.py", ["**/*.py"], True),
    ("x.py", ["**/*.py"], True),
    ("data/a/b.csv", ["data/*"], False),        # * stays inside one directory
    ("data/b.csv", ["data/*"], True),
    ("docs/a.md", ["**", "!**/*.md"], False),   # the last matching pattern decides
    ("docs/a.py", ["**", "!**/*.md"], True),
    ("requirements-dev.txt", ["requirements?dev.txt"], True),
])
def test_paths_follow_github_filter_patterns(path: str, patterns: list[str],
                                             expected: bool) -> None:
    assert ci.matches(path, patterns) is expected


@pytest.mark.parametrize("files, model", [
    (["README.md", "docs/setup.md"], "false"),
    (["README.md", "train_model.py"], "true"),
])
def test_changed_says_whether_the_model_is_touched(fake_github: FakeGitHub, tmp_path: Path,
                                                   files: list[str], model: str) -> None:
    fake_github.add_pull(REPO, 6, head_sha=HEAD, files=files)
    env = _env(fake_github, tmp_path)
    assert ci.main(["changed", "--pr", "6", "--paths", "gate/**\ntrain_model.py\n"], env) == 0
    assert _outputs(tmp_path)["model"] == model


def test_tag_run_refuses_what_is_not_a_run_id_or_sha(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "output")}
    assert ci.main(["tag-run", "--run-id", "x; rm -rf /", "--commit", HEAD], env) == 2
    assert ci.main(["tag-run", "--run-id", "a" * 32, "--commit", "main"], env) == 2
    assert "not an MLflow run id" in capsys.readouterr().err


# --- the config diff a pull request proposes, in the report ------------------------------

def test_the_config_diff_is_shown_as_an_inert_code_block(tmp_path: Path) -> None:
    from gate.delivery.deliver import CONFIG_DIFF_LINES, with_config_diff
    from gate.report.markdown import Report

    diff = tmp_path / "config.diff"
    diff.write_text("-max = 70.0\n+max = 700.0 # ```` <img src=x> @team\n" +
                    "+x = 1\n" * (CONFIG_DIFF_LINES + 5))
    report = with_config_diff(Report("# verdict\n", "# short\n"), str(diff))
    for text in (report.markdown, report.without_details):
        fence = "`````diff"
        assert fence in text and text.rstrip().endswith("`````")
        assert "changes the gate's config" in text and "base branch's config" in text
        assert "... 7 more lines" in text      # 2 + N + 5 lines, N shown
    assert with_config_diff(Report("a", "b"), None) == Report("a", "b")
    diff.write_text("")
    assert with_config_diff(Report("a", "b"), str(diff)).markdown == "a"


def test_an_unreadable_config_diff_is_bad_input(tmp_path: Path) -> None:
    from gate.delivery.deliver import with_config_diff
    from gate.errors import InputError
    from gate.report.markdown import Report

    with pytest.raises(InputError, match="--config-diff"):
        with_config_diff(Report("a", "b"), str(tmp_path / "missing.diff"))
