"""Where a command's output goes. Each destination sends its part of a Message (the
report, the JSON document, the step outputs, the annotations) and builds nothing;
adding one (GitLab merge-request notes, a Slack webhook) is a class here and a line in
`for_targets`, nothing elsewhere.

A GitHub or webhook failure is a warning: it never changes the verdict or the exit code.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, TextIO

from gate import github
from gate.core.redaction import scrub
from gate.delivery import webhook
from gate.delivery.outputs import Message
from gate.errors import GateError, InputError, echo
from gate.report.markdown import marker


class Destination(Protocol):
    def send(self, message: Message) -> None: ...


@dataclass(frozen=True)
class Terminal:
    """stdout: plain text for a terminal or a CI log."""

    out: TextIO

    def send(self, message: Message) -> None:
        self.out.write(message.report.text or message.report.markdown)


@dataclass(frozen=True)
class JsonFile:
    path: str

    def send(self, message: Message) -> None:
        if message.data is not None:
            write_json(self.path, message.data)


@dataclass(frozen=True)
class JobSummary:
    path: str

    def send(self, message: Message) -> None:
        if message.report.markdown:     # a terminal table has no place in the summary
            github.write_summary(message.report.markdown, self.path)


@dataclass(frozen=True)
class StepOutputs:
    path: str

    def send(self, message: Message) -> None:
        if message.outputs:
            github.write_outputs(message.outputs, self.path)


@dataclass(frozen=True)
class Annotations:
    """::error / ::notice lines the runner turns into annotations on the run."""

    out: TextIO

    def send(self, message: Message) -> None:
        for line in message.annotations:
            print(line, file=self.out)


@dataclass(frozen=True)
class PullRequestComment:
    """One sticky comment per model on the pull request, posted or updated."""

    model_name: str
    pr: int | None
    out: TextIO
    environ: Mapping[str, str]

    def send(self, message: Message) -> None:
        environ, report = self.environ, message.report
        if not report.markdown:
            return
        try:
            pr = github.pr_number(environ.get("GITHUB_EVENT_PATH"), self.pr)
            if pr is None:
                print("gate: not a pull request: no comment posted", file=sys.stderr)
                return
            token = environ.get("GITHUB_TOKEN", "")
            repo = environ.get("GITHUB_REPOSITORY", "")
            if not token or not repo:
                raise InputError("GITHUB_TOKEN and GITHUB_REPOSITORY are needed")
            client = github.GitHubClient(
                environ.get("GITHUB_API_URL", "https://api.github.com"), token,
                max_wait=max_wait(environ),
                graphql_url=environ.get("GITHUB_GRAPHQL_URL") or None)
            body = github.fit_comment(report.markdown, report.without_details)
            action = client.upsert_comment(repo, pr, body, marker(self.model_name))
        except GateError as exc:
            # GitHub's answer may quote a URL or a header: redacted like every error line
            why = scrub(f"PR comment not posted (the verdict stands): {exc}", environ)
            print(github.warning(why), file=self.out)
            return
        print(f"gate: PR #{pr} comment {action}", file=sys.stderr)


DEFAULT_WEBHOOK_ENV = "GATE_WEBHOOK_URL"
WEBHOOK_TIMEOUT = 10.0      # seconds, connect and read together: a dead hook costs 2 x this
WEBHOOK_RETRY_PAUSE = 1.0


@dataclass(frozen=True)
class Webhook:
    """The team's channel (a Slack incoming webhook, or one that takes its format): one
    JSON POST per verdict, tried twice; a failure is a one-line warning, never a verdict.
    The URL is a secret (it posts to the channel): no line ever shows it."""

    url: str
    pr: int | None
    environ: Mapping[str, str]

    def send(self, message: Message) -> None:
        data = message.data
        if data is None or not webhook.notifies(data):
            return
        environ = self.environ
        try:
            number = github.pr_number(environ.get("GITHUB_EVENT_PATH"), self.pr)
        except GateError:       # the comment's destination reports a bad event file
            number = None
        links = webhook.Links(ui=webhook.ui_base(environ.get("MLFLOW_TRACKING_URI", "")),
                              pull_request=webhook.pull_request_url(environ, number),
                              pr_number=number)
        # the message was redacted in deliver.send; the links are new text: again
        body = scrub(json.dumps(webhook.payload(data, links)), environ).replace(self.url, "***")
        failure = post_json(self.url, body.encode("utf-8"), webhook_timeout(environ))
        if failure:
            print(f"gate: warning: webhook not delivered ({failure}); the verdict stands",
                  file=sys.stderr)


def post_json(url: str, body: bytes, timeout: float) -> str | None:
    """POST `body`, retrying once after a refused or dropped connection, a timeout, a
    429 or a 5xx; None when delivered, else why not, in words that never quote the URL
    (requests' own messages do)."""
    import requests

    why = ""
    for attempt in range(2):
        if attempt:
            time.sleep(WEBHOOK_RETRY_PAUSE)
        try:
            # connect and read share the budget, so one try never takes longer than it
            answer = requests.post(url, data=body, timeout=(timeout * 0.3, timeout * 0.7),
                                   headers={"Content-Type": "application/json"},
                                   allow_redirects=False)
        except requests.Timeout:
            why = f"no answer within {timeout:g} s"
            continue
        except requests.ConnectionError:
            why = "connection failed"
            continue
        except requests.RequestException as exc:
            return f"not sent: {type(exc).__name__}"
        if answer.status_code < 300:
            return None
        why = f"HTTP {answer.status_code}"
        if answer.status_code != 429 and answer.status_code < 500:
            return why      # the hook refuses this message: trying again changes nothing
    return f"{why}, tried twice"


def webhook_timeout(environ: Mapping[str, str]) -> float:
    """Seconds one try may take: GATE_WEBHOOK_TIMEOUT, at most (and by default) 10."""
    try:
        wanted = float(environ.get("GATE_WEBHOOK_TIMEOUT", WEBHOOK_TIMEOUT))
    except ValueError:
        return WEBHOOK_TIMEOUT
    return min(WEBHOOK_TIMEOUT, wanted) if wanted > 0 else WEBHOOK_TIMEOUT


def for_targets(targets: Any, model_name: str, out: TextIO,
                environ: Mapping[str, str] = os.environ) -> list[Destination]:
    """The destinations the flags (`targets`) and the environment ask for, in delivery
    order: the one place that chooses them, for every command."""
    found: list[Destination] = [Terminal(out)]
    if targets.json_path:
        found.append(JsonFile(targets.json_path))
    if targets.summary_path:
        found.append(JobSummary(targets.summary_path))
    if environ.get("GITHUB_OUTPUT"):
        found.append(StepOutputs(environ["GITHUB_OUTPUT"]))
    if environ.get("GITHUB_ACTIONS") == "true":
        found.append(Annotations(out))
    if targets.comment:
        found.append(PullRequestComment(model_name, targets.pr, out, environ))
    if environ.get(targets.webhook_env):
        found.append(Webhook(environ[targets.webhook_env], targets.pr, environ))
    return found


def write_json(path: str | None, data: Mapping[str, Any]) -> None:
    if not path:
        return
    try:
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--json {echo(path)}: cannot write: {exc.strerror}") from None


def max_wait(environ: Mapping[str, str]) -> float:
    """Seconds the comment may spend retrying GitHub (GATE_GITHUB_MAX_WAIT, default 120)."""
    try:
        return max(0.0, float(environ.get("GATE_GITHUB_MAX_WAIT", github.DEFAULT_MAX_WAIT)))
    except ValueError:
        return github.DEFAULT_MAX_WAIT
