"""The report for a terminal: the same view as the markdown, as plain text.

What a local run prints and what a CI log shows. No markup, no emoji (terminals disagree
on their width), and no line wider than WIDTH columns except a lone URL, which a terminal
wraps on its own and keeps clickable.
"""
from __future__ import annotations

import re
import textwrap
from typing import Any, Mapping, Sequence

WIDTH = 100
SLICE_TEXT = {"failed": "FAILED", "within_noise": "within noise", "passed": "passed",
              "not_gated": "not gated"}
NAME_WIDTH = 24             # metric names past this are cut in the table, not in the rules
RESULT_TEXT = {"failed": "FAILED", "error": "ERROR", "within_noise": "within noise",
               "skipped": "skipped", "passed": "passed"}


def render_text(view: Mapping[str, Any]) -> str:
    lines = [_headline(view), ""]
    for warning in _warnings(view):
        lines += _wrap(f"! {warning}", indent="  ")
    if _warnings(view):
        lines.append("")
    lines += _wrap(_plain(view["next_step"]))
    lines.append("")
    lines += _facts(view)
    lines.append("")
    lines += _table(view)
    if view["underpowered"]:
        lines.append("")
        lines += _wrap("Note: the eval set is too small to detect a worsening the size of the "
                       f"allowance for: {view['underpowered']}.")
    if view.get("slices"):
        lines.append("")
        lines += _slices(view["slices"])
    lines += ["", "Rules applied:"]
    for row in view["rows"]:
        rule = str(row["rule"]).replace("\\|", "|")
        mde = f"; min. detectable {row['mde']}" if row["mde"] != "n/a" else ""
        lines += _wrap(f"{row['name']}: {rule}{mde}", first="  ", indent="    ")
    notes = view["details"]["notes"]
    if notes:
        lines += ["", "Notes:"]
        for note in notes:
            lines += _wrap(f"- {note}", first="  ", indent="    ")
    return "\n".join(lines).rstrip("\n") + "\n"


def _headline(view: Mapping[str, Any]) -> str:
    title = _plain(view["title"])
    title = title.encode("ascii", "ignore").decode().strip()     # drop the emoji mark
    names = ", ".join(str(n) for n in view["failed_names"])
    if view["failed_more"]:
        names += f" and {view['failed_more']} more"
    line = f"model gate: {title}" + (f" ({names})" if names else "")
    return "\n".join(_wrap(line))


def _warnings(view: Mapping[str, Any]) -> list[str]:
    found = [f"not a paired comparison: {view['fallback']}"] if view["fallback"] else []
    return found + [str(note) for note in view["trust_notes"]]


def _facts(view: Mapping[str, Any]) -> list[str]:
    champion = view["champion"]
    if view["champion_found_by"] == "stage":
        champion += " (legacy stage, no alias)"
    facts = [("model", str(view["model"]), ""),
             ("candidate", f"{view['candidate']} ({view['candidate_id']})"
              + (f", commit {view['commit']}" if view["commit"] else ""),
              view["candidate_url"]),
             (str(view["baseline"]).lower(),
              champion if view["champion_found_by"] else "none yet", view["champion_url"]),
             ("comparison", _plain(view["comparison"]), "")]
    if view["models"]:
        facts.append(("models", "; ".join(f"{m['role']}: {m['description']}"
                                          for m in view["models"]), ""))
    lines: list[str] = []
    for key, value, url in facts:
        lines += _wrap(f"{key:<12}{value}", indent=" " * 12)
        if url:
            lines.append(" " * 12 + url)
    return lines


def _table(view: Mapping[str, Any]) -> list[str]:
    compared = bool(view["champion_found_by"])
    baseline = str(view["baseline"]).lower()
    header = ["metric", "result", f"{baseline} -> candidate" if compared else "candidate",
              "change", f"worsening {view['interval_label']}", "rule"]
    rows = [[_cut(f"{row['name']} {row['goal']}", NAME_WIDTH),
             RESULT_TEXT.get(row["status"], row["status"]),
             str(row["shift"]).replace("→", "->") if compared else row["candidate"],
             row["change"], row["interval"], row["why"]] for row in view["rows"]]
    # a column with nothing to say (no Production, no paired rows) is left out, and so is
    # the rule when the table would not fit: the rules are spelled out below it
    keep = [i for i in range(len(header)) if any(r[i] != "n/a" for r in rows) or not rows]
    lines = _columns([header[i] for i in keep], [[r[i] for i in keep] for r in rows])
    if max(len(line) for line in lines) > WIDTH:
        lines = _columns([header[i] for i in keep[:-1]], [[r[i] for i in keep[:-1]]
                                                          for r in rows])
    return [wrapped for line in lines for wrapped in _wrap(line, indent=" " * 4)]


def _slices(slices: Mapping[str, Any]) -> list[str]:
    lines = list(_wrap(_plain(f"Slices: {slices['summary']}").replace("\u00a0", " ")))
    header = ["slice", "result", "metric", "production -> candidate", "change", "rows"]
    rows = [[_cut(str(r["slice"]), NAME_WIDTH), SLICE_TEXT.get(r["status"], r["status"]),
             str(r["metric"]), str(r["shift"]).replace("\u00a0→\u00a0", " -> "),
             str(r["change"]).replace("\u00a0", " "), r["rows"]] for r in slices["rows"]]
    if not rows:
        return lines
    return lines + [wrapped for line in _columns(header, rows)
                    for wrapped in _wrap(line, indent=" " * 4)]


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
            for cells in [header] + rows]


def _plain(markdown: str) -> str:
    return re.sub(r"\*\*|`", "", str(markdown))


def _cut(text: str, width: int) -> str:
    # names that differ at the end (error_0, error_1) stay apart: cut the middle
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _wrap(text: str, first: str = "", indent: str = "") -> Sequence[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent,
                         break_on_hyphens=False) or [""]
