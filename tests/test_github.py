"""gate.github against a local fake of GitHub's REST API, and the runner's file formats."""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from gate import github
from gate.errors import ConfigError, InfraError, InputError
from gate.github import (
    COMMENT_LIMIT, GitHubClient, GitHubError, error_annotations, fit_comment, head_sha,
    mask_lines, notice, pr_number, warning, write_outputs, write_summary,
)
from tests import fake_github as fake_module
from tests.fake_github import FakeGitHub
from tests.servers import free_port

fake_github = fake_module.fake_github        # the fixture, for this module

REPO = "acme/models"
PR = 7
MARKER = "<!-- model-gate:diabetes-regressor -->"


class Waits(list):
    """An injected sleep that records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def make_client(fake_github: FakeGitHub,
                waits: Waits) -> Callable[..., GitHubClient]:
    def make(**kw: Any) -> GitHubClient:
        options: dict[str, Any] = {"timeout": 2, "max_wait": 60, "sleep": waits,
                                   "jitter": lambda: 0.0}
        options.update(kw)
        url = options.pop("url", fake_github.url)
        token = options.pop("token", fake_github.token)
        return GitHubClient(url, token, **options)
    return make


def bodies(fake: FakeGitHub) -> list[tuple[str, str]]:
    return [(c["user"]["login"], c["body"]) for c in fake.comments(REPO, PR)]


# --- the sticky comment -----------------------------------------------------------------

def test_first_post_creates_one_comment_with_the_marker_first(fake_github, make_client):
    assert make_client().upsert_comment(REPO, PR, "## Gate passed", MARKER) == "created"
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\n## Gate passed")]
    assert [(r.method, r.path) for r in fake_github.writes()] == \
        [("POST", f"/repos/{REPO}/issues/{PR}/comments")]
    listing = [r for r in fake_github.requests if r.path.endswith("/comments")][0]
    assert listing.query["per_page"] == "100"
    assert listing.headers["x-github-api-version"] == "2022-11-28"
    assert listing.headers["accept"] == "application/vnd.github+json"


def test_update_in_place_patches_and_adds_nothing(fake_github, make_client):
    client = make_client()
    client.upsert_comment(REPO, PR, "first", MARKER)
    comment_id = fake_github.comments(REPO, PR)[0]["id"]
    assert client.upsert_comment(REPO, PR, "second", MARKER) == "updated"
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\nsecond")]
    assert fake_github.writes()[-1].method == "PATCH"
    assert fake_github.writes()[-1].path == f"/repos/{REPO}/issues/comments/{comment_id}"


@pytest.mark.parametrize("stored", [
    f"{MARKER}\nsame report",
    f"{MARKER}\r\nsame report",         # GitHub may give CRLF back
    f"{MARKER}\nsame report\n",
])
def test_unchanged_body_writes_nothing(fake_github, make_client, stored):
    fake_github.add_comment(REPO, PR, stored, login="gate-bot")
    assert make_client().upsert_comment(REPO, PR, "same report", MARKER) == "unchanged"
    assert fake_github.writes() == []


def test_a_body_that_already_starts_with_the_marker_keeps_one_marker(fake_github, make_client):
    make_client().upsert_comment(REPO, PR, f"{MARKER}\nreport", MARKER)
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\nreport")]


@pytest.mark.parametrize("others, pages", [
    (0, 1),
    (99, 1),        # ours is the 100th: still one page
    (100, 2),
    (260, 3),       # 261 comments: ours alone on the third page
    (305, 4),
])
def test_every_page_is_read_and_ours_found_on_the_last(fake_github, make_client,
                                                       others, pages):
    for i in range(others):
        fake_github.add_comment(REPO, PR, f"comment {i}", login=f"user{i % 7}")
    ours = fake_github.add_comment(REPO, PR, f"{MARKER}\nold", login="gate-bot")
    assert make_client().upsert_comment(REPO, PR, "new", MARKER) == "updated"
    listed = [r.query.get("page", "1") for r in fake_github.requests
              if r.method == "GET" and r.path.endswith("/comments")]
    assert listed == [str(p) for p in range(1, pages + 1)]
    assert len(fake_github.comments(REPO, PR)) == others + 1
    assert [r.path for r in fake_github.writes()] == [f"/repos/{REPO}/issues/comments/{ours}"]


@pytest.mark.parametrize("login, body", [
    ("other-gate[bot]", "<!-- model-gate:diabetes-regressor-v2 -->\nanother bot"),
    ("gate-bot", "<!-- model-gate:diabetes-regressor-v2 -->\nanother model"),
    ("other-gate[bot]", f"{MARKER}\nanother bot, exact marker"),
    ("someone", f"{MARKER}\na person quoting our marker"),
    ("gate-bot", f"> quoted\n{MARKER}\nmarker not on the first line"),
    ("gate-bot", f" {MARKER}\nleading space"),
    ("gate-bot", f"{MARKER} trailing text\nmarker line differs"),
])
def test_comments_that_are_not_ours_are_left_alone(fake_github, make_client, login, body):
    theirs = fake_github.add_comment(REPO, PR, body, login=login)
    assert make_client().upsert_comment(REPO, PR, "report", MARKER) == "created"
    comments = {c["id"]: c for c in fake_github.comments(REPO, PR)}
    assert comments[theirs]["body"] == body
    assert len(comments) == 2
    assert [r.method for r in fake_github.writes()] == ["POST"]


def test_installation_token_comments_as_the_actions_bot():
    with FakeGitHub(installation=True) as fake:
        client = GitHubClient(fake.url, fake.token, sleep=Waits())
        fake.add_comment(REPO, PR, f"{MARKER}\nby a user", login="gate-bot")
        assert client.upsert_comment(REPO, PR, "one", MARKER) == "created"
        assert client.upsert_comment(REPO, PR, "two", MARKER) == "updated"
        assert bodies(fake)[1] == ("github-actions[bot]", f"{MARKER}\ntwo")
        assert bodies(fake)[0] == ("gate-bot", f"{MARKER}\nby a user")


def test_a_given_login_skips_the_user_lookup(fake_github, make_client):
    make_client(login="gate-bot").upsert_comment(REPO, PR, "x", MARKER)
    assert "/user" not in [r.path for r in fake_github.requests]


@pytest.mark.parametrize("repo, marker", [
    ("acme", MARKER), ("acme/models/x", MARKER), ("acme/../x?", MARKER),
    (REPO, ""), (REPO, f"{MARKER}\nsecond line"),
])
def test_bad_repo_or_marker_is_an_input_error(make_client, repo, marker):
    with pytest.raises(InputError):
        make_client().upsert_comment(repo, PR, "x", marker)


def test_a_link_to_another_host_does_not_get_the_token(make_client):
    with FakeGitHub(link_base="http://127.0.0.2:9") as fake:
        for i in range(150):
            fake.add_comment(REPO, PR, f"c{i}")
        client = GitHubClient(fake.url, fake.token, sleep=Waits())
        with pytest.raises(GitHubError, match="refusing to send the token"):
            client.upsert_comment(REPO, PR, "x", MARKER)


# --- size -------------------------------------------------------------------------------

@pytest.mark.parametrize("full_len, short_len, limit, expect", [
    (100, 50, 100, "full"),             # equality boundary: fits
    (101, 50, 100, "short"),
    (101, 100, 100, "short"),
    (600, 400, 300, "truncated"),
    (600, 400, 20, "note only"),        # a limit below the note still holds
    (COMMENT_LIMIT + 1, COMMENT_LIMIT, COMMENT_LIMIT, "short"),
    (300000, 200000, COMMENT_LIMIT, "truncated"),
])
def test_fit_comment_prefers_full_then_short_then_truncated(full_len, short_len, limit, expect):
    full = ("f" * 9 + "\n") * (full_len // 10) + "f" * (full_len % 10)
    short = ("s" * 9 + "\n") * (short_len // 10) + "s" * (short_len % 10)
    fitted = fit_comment(full, short, limit)
    assert len(fitted) <= limit
    if expect == "full":
        assert fitted == full
    elif expect == "short":
        assert fitted == short
    elif expect == "note only":
        assert fitted and github.TRUNCATION_NOTE.strip().startswith(fitted)
    else:
        assert fitted.endswith(github.TRUNCATION_NOTE)
        assert short.startswith(fitted[:-len(github.TRUNCATION_NOTE)])


def test_truncation_closes_an_open_code_fence():
    short = "# Report\n```mermaid\n" + "xychart-beta\n" * 10000
    fitted = fit_comment(short + "details", short, 2000)
    assert len(fitted) <= 2000
    fences = [line for line in fitted.splitlines() if line.startswith("```")]
    assert len(fences) % 2 == 0
    assert fitted.endswith(github.TRUNCATION_NOTE)


def test_a_fitted_body_with_its_marker_is_accepted(fake_github, make_client):
    huge = "| row |\n" * 20000
    body = fit_comment(huge, huge, COMMENT_LIMIT - len(MARKER) - 1)
    assert make_client().upsert_comment(REPO, PR, body, MARKER) == "created"
    assert len(fake_github.comments(REPO, PR)[0]["body"]) <= COMMENT_LIMIT


def test_a_body_over_the_limit_is_refused_with_422_and_not_retried(fake_github, make_client,
                                                                   waits):
    with pytest.raises(GitHubError, match="422.*too long") as caught:
        make_client().upsert_comment(REPO, PR, "x" * COMMENT_LIMIT, MARKER)
    assert caught.value.status == 422
    assert isinstance(caught.value, InfraError) and caught.value.exit_code == 3
    assert waits == [] and fake_github.comments(REPO, PR) == []


# --- retries ----------------------------------------------------------------------------

SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                        "before you try again.",
             "documentation_url": "https://docs.github.com/rest/overview/rate-limits"}


# A POST that met a 5xx may have landed: after the wait the client looks, then posts
# again with a fresh backoff, so its waits restart where a GET's keep doubling.
@pytest.mark.parametrize("fault, expected_waits, post_waits", [
    ({"status": 500}, [0.5], None),
    ({"status": 502, "times": 2}, [0.5, 1.0], [0.5, 0.5]),
    ({"status": 503, "times": 3}, [0.5, 1.0, 2.0], [0.5, 0.5, 1.0]),
    ({"status": 503, "headers": {"Retry-After": "7"}}, [7.0], None),
    ({"status": 429, "headers": {"Retry-After": "3"}}, [3.0], None),
    ({"status": 429, "headers": {"Retry-After": "2"}, "times": 2}, [2.0, 2.0], None),
    ({"status": 429}, [60.0], None),
    ({"status": 403, "body": SECONDARY}, [60.0], None),
    ({"status": 403, "body": SECONDARY, "headers": {"Retry-After": "5"}}, [5.0], None),
    ({"status": 403, "headers": {"Retry-After": "4"}}, [4.0], None),
], ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else "")
@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_retried_answers_then_success(fake_github, make_client, waits, fault,
                                      expected_waits, post_waits, method):
    if method == "PATCH":
        fake_github.add_comment(REPO, PR, f"{MARKER}\nold", login="gate-bot")
    fake_github.fail_next(method=method, **fault)
    outcome = make_client(max_wait=300).upsert_comment(REPO, PR, "report", MARKER)
    assert outcome == ("updated" if method == "PATCH" else "created")
    assert waits == (post_waits if method == "POST" and post_waits else expected_waits)
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\nreport")]


def test_primary_rate_limit_waits_until_the_reset(fake_github, make_client, waits):
    reset = int(time.time()) + 10
    fake_github.fail_next(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
                          {"message": "API rate limit exceeded"})
    make_client().upsert_comment(REPO, PR, "report", MARKER)
    assert len(waits) == 1 and 9.0 <= waits[0] <= 11.5


@pytest.mark.parametrize("status, body", [
    (403, {"message": "Resource not accessible by integration"}),
    (404, {"message": "Not Found"}),
    (401, {"message": "Bad credentials"}),
    (422, {"message": "Validation Failed"}),
])
def test_refusals_are_not_retried(fake_github, make_client, waits, status, body):
    fake_github.fail_next(status, body=body, method="POST")
    with pytest.raises(GitHubError, match=f"POST .* answered {status}: {body['message']}"):
        make_client().upsert_comment(REPO, PR, "report", MARKER)
    assert waits == []


def test_a_dropped_connection_is_retried(fake_github, make_client, waits):
    fake_github.drop_next(method="GET")
    assert make_client().upsert_comment(REPO, PR, "report", MARKER) == "created"
    assert waits == [0.5]


def test_a_read_timeout_is_retried(fake_github, make_client, waits):
    fake_github.delay_next(0.5, method="GET")
    assert make_client(timeout=0.15).upsert_comment(REPO, PR, "report", MARKER) == "created"
    assert waits == [0.5]


def test_a_post_whose_answer_was_lost_is_not_posted_twice(fake_github, make_client, waits):
    fake_github.delay_next(0.5, method="POST")       # GitHub creates it, the answer is late
    assert make_client(timeout=0.15).upsert_comment(REPO, PR, "report", MARKER) == "created"
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\nreport")]
    assert [r.method for r in fake_github.writes()] == ["POST"]


def test_a_post_refused_with_5xx_is_posted_again_after_looking(fake_github, make_client):
    fake_github.fail_next(502, method="POST")
    assert make_client().upsert_comment(REPO, PR, "report", MARKER) == "created"
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\nreport")]
    lists = [r for r in fake_github.requests if r.method == "GET" and "comments" in r.path]
    assert len(lists) == 2          # once to find, once more before posting again


def test_connection_refused_gives_up_within_the_budget(make_client, waits):
    client = make_client(url=f"http://127.0.0.1:{free_port()}", max_wait=5)
    with pytest.raises(GitHubError, match="unreachable: GET /user.*gave up"):
        client.upsert_comment(REPO, PR, "report", MARKER)
    assert waits == [0.5, 1.0, 2.0]       # the next (4 s) would pass 5 s in all
    assert sum(waits) <= 5


@pytest.mark.parametrize("fault, max_wait, expected_waits", [
    ({"status": 502, "times": 99}, 10, [0.5, 1.0, 2.0, 4.0]),
    ({"status": 429, "headers": {"Retry-After": "120"}}, 60, []),
    ({"status": 403, "body": SECONDARY, "times": 99}, 100, [60.0]),
    ({"status": 429, "headers": {"Retry-After": "0"}, "times": 99}, 60, [0.0] * 7),
])
def test_giving_up_after_max_wait_is_a_github_error(fake_github, make_client, waits,
                                                    fault, max_wait, expected_waits):
    fake_github.fail_next(**fault)
    with pytest.raises(GitHubError, match="gave up") as caught:
        make_client(max_wait=max_wait).upsert_comment(REPO, PR, "report", MARKER)
    assert caught.value.status == fault["status"]
    assert waits == expected_waits
    assert sum(waits) <= max_wait
    assert fake_github.comments(REPO, PR) == []


def test_jitter_spreads_the_backoff(fake_github, make_client, waits):
    fake_github.fail_next(500, times=3)
    make_client(jitter=lambda: 1.0).upsert_comment(REPO, PR, "report", MARKER)
    assert waits == [1.0, 2.0, 4.0]


def test_every_request_has_a_timeout(monkeypatch, fake_github):
    seen: list[Any] = []
    real = github.requests.Session.request

    def spy(self: Any, method: str, url: str, **kw: Any) -> Any:
        seen.append(kw.get("timeout"))
        return real(self, method, url, **kw)

    monkeypatch.setattr(github.requests.Session, "request", spy)
    GitHubClient(fake_github.url, fake_github.token, timeout=3).upsert_comment(
        REPO, PR, "r", MARKER)
    assert seen and all(t == 3 for t in seen)


# --- the token --------------------------------------------------------------------------

def _texts(exc: BaseException) -> list[str]:
    out = []
    while exc is not None:
        out += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.mark.parametrize("scenario", ["bad_token", "too_long", "gives_up", "refused",
                                      "echoed", "forbidden"])
def test_the_token_never_appears(fake_github, waits, caplog, capsys, scenario):
    caplog.set_level(logging.DEBUG)
    token = fake_github.token
    url, body = fake_github.url, "report"
    if scenario == "bad_token":
        token = "ghp_WrongTokenAlsoSecret0987654321"
    elif scenario == "too_long":
        body = "x" * (COMMENT_LIMIT + 10)
    elif scenario == "gives_up":
        fake_github.fail_next(502, times=99)
    elif scenario == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    elif scenario == "echoed":
        fake_github.fail_next(400, body={"message": f"token {token} is odd"})
    elif scenario == "forbidden":
        fake_github.fail_next(403, body={"message": "Must have admin rights"}, method="POST")
    client = GitHubClient(url, token, max_wait=3, sleep=waits)
    with pytest.raises(GitHubError) as caught:
        client.upsert_comment(REPO, PR, body, MARKER)
    out, err = capsys.readouterr()
    for text in _texts(caught.value) + [repr(client), caplog.text, out, err]:
        assert token not in text
        assert "Authorization" not in text and "Bearer" not in text
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("token", ["", "   ", "ghp_abc\nX-Evil: 1", "ghp_tab\tsecret"])
def test_unusable_tokens_are_config_errors_that_do_not_quote_them(token):
    with pytest.raises(ConfigError) as caught:
        GitHubClient("http://127.0.0.1:9", token)
    assert token.strip() == "" or token not in str(caught.value)
    assert "secret" not in str(caught.value)


# --- runner files -----------------------------------------------------------------------

def parse_outputs(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the runner does."""
    values, lines = {}, iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        name, delimiter = line.split("<<", 1)
        collected = []
        for item in lines:
            if item == delimiter:
                break
            collected.append(item)
        else:
            raise AssertionError(f"unterminated heredoc for {name}")
        values[name] = "\n".join(collected)
    return values


def test_outputs_use_a_fresh_random_delimiter_and_keep_multiline_values(tmp_path: Path):
    path = tmp_path / "output"
    path.write_text("run_id<<EOF\nabc\nEOF\n")
    values = {"verdict": "blocked", "passed": "false", "failed_metrics": "rmse\nr2\n",
              "champion_version": "", "note": "a=b\nname<<EOF\nc"}
    write_outputs(values, str(path))
    text = path.read_text()
    assert parse_outputs(text) == {"run_id": "abc", **values}
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f-]{36})$", text, re.M)
    assert len(set(delimiters)) == len(values)


def test_outputs_refuse_a_value_holding_the_delimiter(tmp_path: Path, monkeypatch):
    fixed = uuid.UUID(int=1)
    monkeypatch.setattr(github.uuid, "uuid4", lambda: fixed)
    with pytest.raises(InputError, match="delimiter"):
        write_outputs({"x": f"a\nghadelimiter_{fixed}\nb"}, str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["", "has space", "a<<b", "new\nline", "1starts"])
def test_outputs_refuse_bad_names(tmp_path: Path, name):
    with pytest.raises(InputError):
        write_outputs({name: "v"}, str(tmp_path / "o"))


def test_summary_appends_and_none_paths_are_no_ops(tmp_path: Path):
    path = tmp_path / "summary.md"
    write_summary("# One", str(path))
    write_summary("# Two\n", str(path))
    assert path.read_text() == "# One\n# Two\n"
    write_summary("x", None)
    write_outputs({"x": "y"}, None)


# --- workflow commands ------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    (error_annotations([("rmse", "worse by 3.1")])[0], "::error title=rmse::worse by 3.1"),
    (error_annotations([("a:b,c%", "x%y\r\nz: w, v")])[0],
     "::error title=a%3Ab%2Cc%25::x%25y%0D%0Az: w, v"),
    (notice("First model: promoted", title="Model gate"),
     "::notice title=Model gate::First model: promoted"),
    (notice("100% new\nline"), "::notice::100%25 new%0Aline"),
    (warning("comment failed: 502"), "::warning::comment failed: 502"),
    (warning("::error::injected"), "::warning::::error::injected"),
])
def test_workflow_commands_are_escaped(line, expected):
    assert line == expected
    assert "\n" not in line and "\r" not in line


@pytest.mark.parametrize("count, limit, shown, omitted", [
    (0, 10, 0, 0), (1, 10, 1, 0), (10, 10, 10, 0), (11, 10, 9, 2), (25, 10, 9, 16),
    (3, 1, 0, 3),
])
def test_annotations_never_exceed_the_limit(count, limit, shown, omitted):
    failures = [(f"m{i}", f"failed {i}") for i in range(count)]
    lines = error_annotations(failures, limit)
    assert len(lines) == min(count, limit)
    assert lines[:shown] == [f"::error title=m{i}::failed {i}" for i in range(shown)]
    if omitted:
        assert lines[-1].startswith("::error title=More failures::")
        assert f"{omitted} more" in lines[-1]


@pytest.mark.parametrize("secrets, expected", [
    (["s3cr3t-token"], ["::add-mask::s3cr3t-token"]),
    (["abc", "", "    "], []),                       # under 4 characters: not masked
    (["abcd"], ["::add-mask::abcd"]),
    (["line-one\nline-two\r\nxy"], ["::add-mask::line-one", "::add-mask::line-two"]),
    (["p%ss%word", "p%ss%word"], ["::add-mask::p%25ss%25word"]),
])
def test_mask_lines(secrets, expected):
    assert mask_lines(secrets) == expected


# --- the event file ---------------------------------------------------------------------

PULL = {"action": "synchronize", "number": 42,
        "pull_request": {"number": 42, "head": {"sha": "a" * 40}, "merge_commit_sha": "m" * 40}}
PUSH = {"ref": "refs/heads/main", "after": "b" * 40, "head_commit": {"id": "b" * 40}}
ISSUE_COMMENT = {"issue": {"number": 9, "pull_request": {"url": "x"}}}
ISSUE_ONLY = {"issue": {"number": 9}}


@pytest.mark.parametrize("event, explicit, number, sha", [
    (PULL, None, 42, "a" * 40),
    (PULL, 5, 5, "a" * 40),
    (PUSH, None, None, "fallback"),
    (PUSH, 5, 5, "fallback"),
    (ISSUE_COMMENT, None, 9, "fallback"),
    (ISSUE_ONLY, None, None, "fallback"),
    (None, None, None, "fallback"),
    (None, 3, 3, "fallback"),
])
def test_pr_number_and_head_sha(tmp_path: Path, event, explicit, number, sha):
    path = None
    if event is not None:
        path = str(tmp_path / "event.json")
        Path(path).write_text(json.dumps(event))
    assert pr_number(path, explicit) == number
    assert head_sha(path, "fallback") == sha


@pytest.mark.parametrize("content", [None, "{not json"])
def test_unreadable_event_files_are_input_errors(tmp_path: Path, content):
    path = tmp_path / "event.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match="event file"):
        pr_number(str(path), None)


def test_explicit_pr_must_be_positive():
    with pytest.raises(InputError, match="--pr"):
        pr_number(None, 0)


def test_a_netrc_entry_does_not_replace_the_token(fake_github, make_client, tmp_path: Path,
                                                  monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-the-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert make_client().upsert_comment(REPO, PR, "report", MARKER) == "created"


# --- round two: App tokens, minimized comments, the retry budget -----------------------

def test_an_app_token_finds_its_own_comment_through_graphql_viewer():
    # /user is 403 for installation tokens; the App's bot is not github-actions[bot]
    with FakeGitHub(installation=True, app_login="gate-app[bot]") as fake:
        for _ in range(3):
            GitHubClient(fake.url, fake.token, sleep=Waits()).upsert_comment(
                REPO, PR, "report", MARKER)
        assert bodies(fake) == [("gate-app[bot]", f"{MARKER}\nreport")]
        assert [r.method for r in fake.writes()] == ["POST"]
        assert any(r.path == "/graphql" for r in fake.requests)


def test_without_graphql_an_installation_token_is_the_actions_bot():
    with FakeGitHub(installation=True, graphql=False) as fake:
        client = GitHubClient(fake.url, fake.token, sleep=Waits())
        assert client.login() == "github-actions[bot]"
        client.upsert_comment(REPO, PR, "one", MARKER)
        assert client.upsert_comment(REPO, PR, "two", MARKER) == "updated"


def test_the_graphql_url_of_enterprise_server_sits_beside_the_rest_api():
    client = GitHubClient("https://ghe.example.com/api/v3", "ghs_x")
    assert client.graphql_url == "https://ghe.example.com/api/graphql"
    assert GitHubClient("https://api.github.com", "ghs_x").graphql_url == \
        "https://api.github.com/graphql"


def test_a_minimized_comment_is_left_alone_and_a_new_one_posted(fake_github, make_client):
    client = make_client()
    client.upsert_comment(REPO, PR, "passed", MARKER)
    hidden = fake_github.comments(REPO, PR)[0]["id"]
    fake_github.minimize(hidden)
    assert client.upsert_comment(REPO, PR, "blocked", MARKER) == "created"
    assert bodies(fake_github) == [("gate-bot", f"{MARKER}\npassed"),
                                   ("gate-bot", f"{MARKER}\nblocked")]
    # the new one is the sticky one from now on
    assert client.upsert_comment(REPO, PR, "passed again", MARKER) == "updated"
    assert bodies(fake_github)[0] == ("gate-bot", f"{MARKER}\npassed")
    assert bodies(fake_github)[1] == ("gate-bot", f"{MARKER}\npassed again")


def test_a_graphql_error_is_a_github_error(fake_github, make_client):
    make_client().upsert_comment(REPO, PR, "one", MARKER)
    fake_github.fail_next(200, body={"errors": [{"message": "Something went wrong"}]},
                          method="POST")
    with pytest.raises(GitHubError, match="GraphQL: Something went wrong"):
        make_client().upsert_comment(REPO, PR, "two", MARKER)


def test_the_default_budget_waits_out_one_secondary_rate_limit(fake_github, waits):
    fake_github.fail_next(403, body=SECONDARY, method="POST")
    client = GitHubClient(fake_github.url, fake_github.token, sleep=waits,
                          jitter=lambda: 0.0)
    assert client.upsert_comment(REPO, PR, "report", MARKER) == "created"
    assert waits[-1] == github.SECONDARY_RATE_LIMIT_WAIT
    assert github.DEFAULT_MAX_WAIT > github.SECONDARY_RATE_LIMIT_WAIT
    from gate.delivery.deliver import _max_wait
    assert _max_wait({}) == github.DEFAULT_MAX_WAIT


def test_pull_request_head_and_files(fake_github, make_client):
    files = [f"docs/page{i}.md" for i in range(150)] + ["gate/decide.py"]
    fake_github.add_pull(REPO, 9, head_sha="a" * 40, head_ref="idea", files=files)
    client = make_client()
    pull = client.pull_request(REPO, 9)
    assert pull["head"]["sha"] == "a" * 40 and pull["state"] == "open"
    assert client.pull_request_files(REPO, 9) == files
    with pytest.raises(GitHubError, match="404"):
        client.pull_request(REPO, 10)
