"""The runner's side of GitHub Actions: files it reads (job summary, step outputs,
the event) and the workflow commands it obeys on stdout (annotations, masks).

No network here; the REST client is `gate.github_api`.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterable, Mapping, Sequence

from gate.errors import InfraError, InputError

MIN_MASK_LENGTH = 4             # see mask_lines
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# --- files the runner reads -------------------------------------------------------------

def write_summary(markdown: str, path: str | None) -> None:
    """Append markdown to the job summary file; nothing when there is none."""
    if not path:
        return
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise InfraError(f"cannot write the job summary {path}: {exc.strerror}") from None


def write_outputs(values: Mapping[str, str], path: str | None) -> None:
    """Append step outputs in the heredoc form, one fresh random delimiter per value."""
    if not path:
        return
    chunks = []
    for name, value in values.items():
        if not _OUTPUT_NAME.match(name):
            raise InputError(f"invalid step output name {name!r}")
        value = str(value)
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        # A value holding the delimiter could end the heredoc early and set other outputs.
        if delimiter in value:
            raise InputError(f"step output {name!r} contains its own delimiter")
        chunks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(chunks))
    except OSError as exc:
        raise InfraError(f"cannot write the step outputs {path}: {exc.strerror}") from None


# --- workflow commands ------------------------------------------------------------------

def _escape_data(text: str) -> str:
    # Same rules as @actions/core: the runner unescapes these before use.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, message: str, properties: Mapping[str, str] | None = None) -> str:
    props = ",".join(f"{key}={_escape_property(value)}"
                     for key, value in (properties or {}).items())
    head = f"::{name} {props}" if props else f"::{name}"
    return f"{head}::{_escape_data(message)}"


def error_annotations(failures: Sequence[tuple[str, str]], limit: int = 10) -> list[str]:
    """`::error` lines for (title, message) pairs, never more than `limit` lines.

    GitHub shows at most 10 error annotations per step and drops the rest silently,
    so when there are more failures than `limit`, the last line says how many were
    left out instead of being one more annotation that nobody would see.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(failures) <= limit:
        shown, omitted = list(failures), 0
    else:
        shown, omitted = list(failures[:limit - 1]), len(failures) - (limit - 1)
    lines = [_command("error", message, {"title": title}) for title, message in shown]
    if omitted:
        lines.append(_command("error", f"{omitted} more failures not annotated; "
                                       "see the job summary", {"title": "More failures"}))
    return lines


def notice(message: str, title: str | None = None) -> str:
    return _command("notice", message, {"title": title} if title else None)


def warning(message: str) -> str:
    return _command("warning", message)


def mask_lines(secrets: Iterable[str]) -> list[str]:
    """`::add-mask::` lines for every secret, one per line of a multi-line secret.

    The runner masks log lines one at a time, so a multi-line secret is masked line
    by line. Lines shorter than MIN_MASK_LENGTH are skipped: masking "a" or "ab"
    would star out every occurrence of those letters in the log while protecting
    nothing a guess could not find.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for secret in secrets:
        for part in (secret or "").splitlines():
            part = part.strip()
            if len(part) < MIN_MASK_LENGTH or part in seen:
                continue
            seen.add(part)
            lines.append(f"::add-mask::{_escape_data(part)}")
    return lines


# --- the event file ---------------------------------------------------------------------

def _event(event_path: str | None) -> dict[str, Any]:
    if not event_path:
        return {}
    try:
        with open(event_path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(f"cannot read the event file {event_path}: {exc.strerror}") from None
    except ValueError:
        raise InputError(f"the event file {event_path} is not valid JSON") from None
    return data if isinstance(data, dict) else {}


def pr_number(event_path: str | None, explicit: int | None) -> int | None:
    """The PR to comment on: `--pr` wins, then the event's pull request, else None."""
    if explicit is not None:
        if explicit < 1:
            raise InputError(f"--pr must be a positive number, got {explicit}")
        return explicit
    event = _event(event_path)
    pull = event.get("pull_request")
    if isinstance(pull, dict) and isinstance(pull.get("number"), int):
        return int(pull["number"])
    # issue_comment events on a pull request carry it as an issue with a pull_request key
    issue = event.get("issue")
    if isinstance(issue, dict) and issue.get("pull_request") \
            and isinstance(issue.get("number"), int):
        return int(issue["number"])
    return None


def head_sha(event_path: str | None, fallback: str | None) -> str | None:
    """The PR head commit; GITHUB_SHA on a pull request is a throwaway merge commit."""
    pull = _event(event_path).get("pull_request")
    if isinstance(pull, dict):
        head = pull.get("head")
        if isinstance(head, dict) and isinstance(head.get("sha"), str) and head["sha"]:
            return str(head["sha"])
    return fallback
