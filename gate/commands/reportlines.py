"""What a check's report says about its evidence on the first screen: whose numbers the
verdict rests on, and which models were compared."""
from __future__ import annotations

from gate.core.domain import Champion
from gate.evidence import gather as evidence


def trust_lines(gathered: evidence.Gathered) -> list[str]:
    """Whose numbers the verdict rests on, for the report's first screen."""
    lines = []
    missing = gathered.evidence.champion_missing
    if missing:
        lines.append(f"⚠️ {missing}")
    if gathered.rows is not None:
        lines.append(f"Eval rows: {gathered.rows.source}, {gathered.rows.count} rows")
    lines.extend(f"⚠️ {warning}" for warning in gathered.warnings)
    for side in (gathered.candidate, gathered.champion):
        if side is not None and not side.verified:
            lines.append(f"⚠️ {side.role} predictions unverified: {side.how}")
    return lines


def model_lines(gathered: evidence.Gathered,
                champion: Champion | None) -> list[tuple[str, str]]:
    lines = []
    for side, name in ((gathered.candidate, "candidate"),
                       (gathered.champion, champion.label if champion else "")):
        if side is None:
            continue
        mark = "verified" if side.verified else "unverified"
        model = side.model or ("no logged model" if side.model_read else "model not read")
        files = f" (files {side.digest.short}…)" if side.digest else ""
        lines.append((name, f"{model}{files}, {mark}: {side.how}"))
    return lines
