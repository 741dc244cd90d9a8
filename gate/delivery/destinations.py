"""Where a rendered report goes. Each destination receives the report, the verdict and
its JSON; adding one (GitLab merge-request notes, a Slack webhook) is a class here and a
line in `for_targets`, nothing elsewhere.

A GitHub failure is a warning: it never changes the verdict or the exit code.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, TextIO

from gate import github
from gate.core.decide import Verdict
from gate.errors import GateError, InputError
from gate.report.markdown import Report, marker


class Destination(Protocol):
    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Terminal:
    """stdout: plain text for a terminal or a CI log."""

    out: TextIO

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        self.out.write(report.text or report.markdown)


@dataclass(frozen=True)
class JsonFile:
    path: str

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        from gate.delivery.deliver import write_json

        write_json(self.path, data)


@dataclass(frozen=True)
class JobSummary:
    path: str

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        github.write_summary(report.markdown, self.path)


@dataclass(frozen=True)
class StepOutputs:
    path: str

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        from gate.delivery.deliver import step_outputs

        github.write_outputs(step_outputs(data), self.path)


@dataclass(frozen=True)
class Annotations:
    """::error / ::notice lines the runner turns into annotations on the run."""

    out: TextIO

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        for line in annotation_lines(verdict) if verdict else []:
            print(line, file=self.out)


@dataclass(frozen=True)
class PullRequestComment:
    """One sticky comment per model on the pull request, posted or updated."""

    model_name: str
    pr: int | None
    out: TextIO
    environ: Mapping[str, str]

    def send(self, report: Report, verdict: Verdict | None,
             data: Mapping[str, Any]) -> None:
        environ = self.environ
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
            print(github.warning(f"PR comment not posted (the verdict stands): {exc}"),
                  file=self.out)
            return
        print(f"gate: PR #{pr} comment {action}", file=sys.stderr)


def for_targets(targets: Any, model_name: str, out: TextIO,
                environ: Mapping[str, str] = os.environ) -> list[Destination]:
    """The destinations a check's flags and environment ask for, in delivery order."""
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
    return found


def annotation_lines(verdict: Verdict) -> list[str]:
    failures = [(f"{m.name} {m.status}", f"{m.name}: {m.reason}")
                for m in verdict.metrics if m.status in ("failed", "error")]
    lines = github.error_annotations(failures)
    if verdict.status == "first_model":
        lines.append(github.notice("No Production version yet: first model",
                                   title="model gate"))
    return lines


def max_wait(environ: Mapping[str, str]) -> float:
    """Seconds the comment may spend retrying GitHub (GATE_GITHUB_MAX_WAIT, default 120)."""
    try:
        return max(0.0, float(environ.get("GATE_GITHUB_MAX_WAIT", github.DEFAULT_MAX_WAIT)))
    except ValueError:
        return github.DEFAULT_MAX_WAIT
