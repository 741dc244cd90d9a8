"""The gate's --json output as end-to-end tests read it: when it is missing, is not JSON or
lacks a key a test looks up, the test fails with what the gate itself said (its stderr),
not with a bare FileNotFoundError or KeyError."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# for a gate run in-process: pytest shows what it printed under "Captured stderr"
IN_PROCESS = "(run in-process: see the captured stderr below)"


def _said(said: str | subprocess.CompletedProcess[str]) -> str:
    text = said if isinstance(said, str) else said.stderr or ""
    return text[-2000:] if text.strip() else "(nothing on stderr)"


class GateJson(dict[str, Any]):
    """The gate's JSON, a plain dict to compare and `.get` from; a key it lacks fails the
    test with the reason and the gate's stderr."""

    def __init__(self, data: dict[str, Any], problem: str, said: str) -> None:
        super().__init__(data)
        self.problem = problem
        self.said = said

    def __missing__(self, key: str) -> Any:
        problem = self.problem or f"the gate's JSON has no {key!r}"
        raise AssertionError(f"{problem}; the gate said: {self.said}")


def read_verdict(path: Path, said: str | subprocess.CompletedProcess[str]) -> GateJson:
    """The JSON the gate wrote to `path` (--json). A missing file reads as empty, so a
    test that expects none still compares equal to {}; any key looked up in it fails
    with the gate's stderr, and so does a file that is not a JSON object."""
    stderr = _said(said)
    if not path.exists():
        return GateJson({}, f"no verdict JSON at {path}", stderr)
    text = path.read_text()
    try:
        data = json.loads(text)
    except ValueError:
        raise AssertionError(f"{path} is not JSON ({text[:200]!r}); "
                             f"the gate said: {stderr}") from None
    if not isinstance(data, dict):
        raise AssertionError(f"{path} holds no JSON object; the gate said: {stderr}")
    return GateJson(data, "", stderr)
