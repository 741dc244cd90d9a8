"""What a command has to say, in every form a destination takes, and the builders of
the forms the runner reads (step outputs, annotations).

Commands build a Message; destinations only send it. Nothing here writes a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from gate import github
from gate.core.decide import Verdict
from gate.report.markdown import Report


@dataclass(frozen=True)
class Message:
    """One command's output: the report for people, the JSON document and the step
    outputs for machines, the workflow commands for the runner."""

    report: Report                              # markdown for GitHub, text for a terminal
    data: Mapping[str, Any] | None = None       # the --json document; None: none to write
    outputs: Mapping[str, str] = field(default_factory=dict)    # {}: no step outputs
    annotations: tuple[str, ...] = ()           # ::error / ::notice lines


def plain(text: str, markdown: str = "") -> Report:
    """A report with no template behind it: `text` for the terminal, `markdown` (none
    by default) for the job summary and the comment."""
    return Report(markdown=markdown, without_details=markdown, text=text)


def step_outputs(data: Mapping[str, Any]) -> dict[str, str]:
    """The step outputs every command sets from its document: the action's contract."""
    return {"verdict": str(data["status"]), "passed": str(data["passed"]).lower(),
            "candidate_run_id": str(data.get("candidate_run_id") or ""),
            "champion_version": str(data.get("champion_version") or ""),
            "promoted_version": str(data.get("promoted_version") or ""),
            "failed_metrics": "\n".join(data.get("failed_metrics") or [])}


def annotation_lines(verdict: Verdict) -> list[str]:
    failures = [(f"{m.name} {m.status}", f"{m.name}: {m.reason}")
                for m in verdict.metrics if m.status in ("failed", "error")]
    lines = github.error_annotations(failures)
    if verdict.status == "first_model":
        lines.append(github.notice("No Production version yet: first model",
                                   title="model gate"))
    return lines
