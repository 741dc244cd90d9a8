"""Deliver a command's output: which destinations (flags and environment), checked
before any work (preflight), then sent (stdout, job summary, JSON, step outputs,
annotations, PR comment).

A GitHub failure here is a warning: it never changes the verdict or the exit code.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, TextIO

from gate.core.redaction import scrub
from gate.delivery import destinations
from gate.core.decide import Verdict
from gate.delivery.destinations import max_wait as _max_wait  # noqa: F401 (its old home)
from gate.delivery.outputs import Message, annotation_lines, step_outputs
from gate.errors import InfraError, InputError, echo
from gate.report.markdown import Report

CONFIG_DIFF_LINES = 200     # a longer diff is cut: the comment has a size limit


@dataclass(frozen=True)
class Targets:
    json_path: str | None = None
    summary_path: str | None = None
    comment: bool = False
    pr: int | None = None
    config_diff: str | None = None
    # the variable holding the team's webhook URL ([notify] webhook_url_env)
    webhook_env: str = destinations.DEFAULT_WEBHOOK_ENV


def targets_from(args: Any, environ: Mapping[str, str] = os.environ,
                 webhook_env: str = destinations.DEFAULT_WEBHOOK_ENV) -> Targets:
    summary = getattr(args, "summary", None) or environ.get("GITHUB_STEP_SUMMARY") or None
    return Targets(json_path=getattr(args, "json", None), summary_path=summary,
                   comment=bool(getattr(args, "comment", False)),
                   pr=getattr(args, "pr", None),
                   config_diff=getattr(args, "config_diff", None), webhook_env=webhook_env)


def preflight(targets: Targets, environ: Mapping[str, str] = os.environ) -> None:
    """Fail before any work, and above all before anything is registered, when a
    destination cannot be written: a promotion whose verdict cannot be delivered leaves
    the workflow red with Production already moved.

    A path the user passed is bad input (exit 2); a file the runner provides is
    infrastructure (exit 3)."""
    summary_flag = targets.summary_path != environ.get("GITHUB_STEP_SUMMARY")
    for path, label, error in (
            (targets.json_path, "--json", InputError),
            (targets.summary_path, "--summary" if summary_flag else "$GITHUB_STEP_SUMMARY",
             InputError if summary_flag else InfraError),
            (environ.get("GITHUB_OUTPUT"), "$GITHUB_OUTPUT", InfraError)):
        if path:
            try:
                probe(path)
            except OSError as exc:
                raise error(f"{label} {echo(path)}: cannot write: "
                            f"{exc.strerror or type(exc).__name__}") from None


def probe(path: str) -> None:
    """Open `path` to append and write zero bytes: this fails as the real write would
    (a folder, a missing parent, no permission, a read-only or full device such as
    /dev/full) and changes nothing; a file created for the test is removed again."""
    existed = os.path.lexists(path)
    # O_NONBLOCK: a FIFO with no reader fails at once instead of hanging the gate
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o644)
    try:
        os.write(fd, b"")
    finally:
        os.close(fd)
        if not existed:
            os.unlink(path)


def deliver(report: Report, verdict: Verdict, model_name: str, targets: Targets,
            data: Mapping[str, Any], out: TextIO | None = None,
            environ: Mapping[str, str] = os.environ) -> None:
    """Send a verdict's report to every destination the flags and the environment ask
    for, with its step outputs and annotations."""
    message = Message(with_config_diff(report, targets.config_diff), data=data,
                      outputs=step_outputs(data), annotations=tuple(annotation_lines(verdict)))
    send(message, targets, model_name, out, environ)


def send(message: Message, targets: Targets, model_name: str, out: TextIO | None = None,
         environ: Mapping[str, str] = os.environ) -> None:
    """The one way out: every command's output goes to the destinations `for_targets`
    chooses, each taking the part of the message it carries, redacted once here: a
    credential quoted by an error note reaches no log, summary, JSON or comment."""
    message = redacted(message, environ)
    for destination in destinations.for_targets(targets, model_name, out or sys.stdout,
                                                environ):
        destination.send(message)


def redacted(message: Message, environ: Mapping[str, str]) -> Message:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value, environ)
        if isinstance(value, Mapping):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return value

    report = message.report
    return replace(message, report=replace(report, markdown=clean(report.markdown),
                                           without_details=clean(report.without_details),
                                           text=clean(report.text)),
                   data=clean(message.data) if message.data is not None else None,
                   outputs=clean(message.outputs),
                   annotations=tuple(clean(line) for line in message.annotations))


def with_config_diff(report: Report, path: str | None) -> Report:
    """The report with the config change a pull request proposes, when there is one.

    In CI the check runs with the base branch's config, so a pull request cannot loosen
    the thresholds that judge it; the diff shows reviewers what would change after merge.
    """
    if not path:
        return report
    try:
        diff = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"--config-diff {path}: cannot read: {exc.strerror}") from None
    if not diff.strip():
        return report
    lines = diff.splitlines()
    if len(lines) > CONFIG_DIFF_LINES:
        lines = lines[:CONFIG_DIFF_LINES] + [f"... {len(lines) - CONFIG_DIFF_LINES} more lines"]
    # The diff is the pull request's text: a fence longer than any backtick run in it
    # keeps it a code block.
    longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
    fence = "`" * max(3, longest + 1)
    section = ("\n#### The pull request changes the gate's config\n\n"
               "Judged by the base branch's config, as it stands before this pull request; "
               "the change below applies once it is merged (and code owners approved it).\n\n"
               f"{fence}diff\n" + "\n".join(lines) + f"\n{fence}\n")
    return replace(report, markdown=report.markdown.rstrip("\n") + "\n" + section,
                   without_details=report.without_details.rstrip("\n") + "\n" + section)
