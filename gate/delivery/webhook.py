"""The team-channel message of a verdict: one JSON body Slack's incoming webhooks take
(Mattermost's and others' Slack-compatible ones too), built from the redacted verdict
document. Pure: the destination reads the environment and posts.

Everything a run, a pull request or a config supplies (model and run names, metric
names, reasons, errors) is untrusted: Slack turns `<!channel>`, `<@U123>`, `@here` and
`<http://evil|click>` into mentions and links, so such text is escaped (`&`, `<`, `>`,
Slack's three control characters), its `@` defused with a zero-width joiner, and shown
as an inline code span. Links are the gate's own (the MLflow UI, the pull request).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from gate.core.redaction import redact_uri
from gate.report.markdown import Untrusted

NOTIFIED = ("passed", "blocked", "first_model", "error", "rolled_back", "skipped")
MAX_NAMES = 10          # failed metrics listed by name; the rest are counted
ZWJ = "\u200d"
_MARK = {"promoted": ":rocket:", "passed": ":white_check_mark:", "first model":
         ":white_check_mark:", "blocked": ":no_entry:", "error": ":warning:",
         "rolled back": ":rewind:", "skipped": ":fast_forward:"}


@dataclass(frozen=True)
class Links:
    """Where the message may point: the MLflow UI and the pull request, when known."""

    ui: str = ""            # the MLflow UI's base URL, credentials removed; "": none
    pull_request: str = ""  # the pull request's page; "": not a pull request
    pr_number: int | None = None


def notifies(data: Mapping[str, Any] | None) -> bool:
    """Whether a document is a verdict the team hears about (not `status`'s table)."""
    return data is not None and data.get("status") in NOTIFIED


def verdict_word(data: Mapping[str, Any]) -> str:
    status = str(data.get("status"))
    if status in ("rolled_back", "skipped", "error"):
        return status.replace("_", " ")
    if data.get("promoted_version"):
        return "promoted"
    if data.get("error"):       # judged, then the promotion failed (exit 3)
        return "error"
    return "first model" if status == "first_model" else status


def payload(data: Mapping[str, Any], links: Links) -> dict[str, Any]:
    """The JSON body: a `text` field, with link previews off."""
    return {"text": text(data, links), "unfurl_links": False, "unfurl_media": False}


def text(data: Mapping[str, Any], links: Links) -> str:
    word = verdict_word(data)
    model = str(data.get("model_name") or "model")
    lines = [f"{_MARK.get(word, '')} *Model gate*: {code(model)} *{word}*"
             f"{_versions(data, word, model, links)}".strip()]
    run_id = data.get("candidate_run_id")
    if run_id:
        name = data.get("candidate_run_name") or run_id
        url = f"{links.ui}/#/runs/{quote(str(run_id), safe='')}" if links.ui else ""
        where = link(url, "open in MLflow") if url else \
            (code(run_id, 40) if name != run_id else "")
        lines.append(f"Run: {code(name)}" + (f" ({where})" if where else ""))
    failed = [str(name) for name in data.get("failed_metrics") or []]
    if failed:
        shown = ", ".join(code(name, 40) for name in failed[:MAX_NAMES])
        more = f" and {len(failed) - MAX_NAMES} more" if len(failed) > MAX_NAMES else ""
        lines.append(f"Failed: {shown}{more}")
    if data.get("forced") and data.get("promoted_version"):
        lines.append(f"Forced over a {_safe(str(data.get('status')))} verdict")
    for key, label in (("reason", "Reason"), ("error", "Error")):
        if data.get(key):
            lines.append(f"{label}: {code(data[key], 300)}")
    if links.pull_request and links.pr_number:
        lines.append(f"Pull request: {link(links.pull_request, f'#{links.pr_number}')}")
    return "\n".join(lines)


def _versions(data: Mapping[str, Any], word: str, model: str, links: Links) -> str:
    champion, promoted = _version(data.get("champion_version")), \
        _version(data.get("promoted_version"))
    if word == "rolled back":
        return f": Production moved from v{champion} back to {_model_link(model, promoted, links)}"
    if word == "promoted":
        replaced = f" (replaces v{champion})" if champion else " (the first Production version)"
        return f": {_model_link(model, promoted, links)} is Production{replaced}"
    found = data.get("champion_found_by")
    if found in ("run", "version"):     # `check --against`: a baseline, not Production
        return f" against baseline v{champion}" if champion else " against a baseline run"
    if word in ("skipped", "error") and not champion:
        return ""
    return f" against Production v{champion}" if champion else " (no Production version yet)"


def _model_link(model: str, version: str, links: Links) -> str:
    if not links.ui:
        return f"v{version}"
    return link(f"{links.ui}/#/models/{quote(model, safe='')}/versions/{version}",
                f"v{version}")


def _version(value: Any) -> str:
    """A version number as the registry gives it: digits; anything else is dropped."""
    return re.sub(r"[^0-9]", "", str(value or ""))[:20]


def code(value: Any, limit: int = 80) -> str:
    """Untrusted text as an inert inline code span: no mention, link or formatting."""
    cleaned = str(Untrusted.of(value, limit)).replace("`", "ˋ")
    return f"`{_safe(cleaned)}`" if cleaned else "` `"


def _safe(text: str) -> str:
    """Slack's escaping of its control characters, and every `@` defused."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("@", "@" + ZWJ)


def link(url: str, label: str) -> str:
    """A Slack link to one of the gate's own URLs; `label` is the gate's own word."""
    # a URL is cut by `|` and `>` in Slack's <url|label>: percent-encode all but the
    # characters the UI's and GitHub's URLs need
    return f"<{quote(url, safe=':/._~%#?=-')}|{_safe(label)}>"


def ui_base(tracking_uri: str) -> str:
    """The MLflow UI's base URL for an http(s) tracking URI, without credentials,
    query or fragment; "" for a local store."""
    if not tracking_uri.startswith(("http://", "https://")):
        return ""
    return re.split(r"[?#]", redact_uri(tracking_uri), maxsplit=1)[0].rstrip("/")


def pull_request_url(environ: Mapping[str, str], number: int | None) -> str:
    repo = environ.get("GITHUB_REPOSITORY", "")
    if number is None or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        return ""
    server = ui_base(environ.get("GITHUB_SERVER_URL") or "https://github.com")
    return f"{server}/{repo}/pull/{number}" if server else ""
