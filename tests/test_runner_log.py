"""gate.runner_log: text from a run cannot act as a workflow command in the job log."""
from __future__ import annotations

import io
import sys

import pytest

from gate.github import runner_log
from gate.github.runner_log import INERT, LogGuard
from tests.workflow_runner import parse_command


@pytest.mark.parametrize("writes", [
    ["run ##[stop-commands]x\n"],
    ["run #", "#[stop-commands]x\n"],           # split between two writes
    ["run ##", "[add-mask]verdict\n"],
    ["###[error]three hashes\n"],
])
def test_no_line_it_lets_through_is_a_command(writes: list[str]) -> None:
    out = io.StringIO()
    guard = LogGuard(out)
    for text in writes:
        assert guard.write(text) == len(text)
    guard.flush()
    text = out.getvalue()
    assert "##[" not in text and INERT in text
    assert all(parse_command(line) is None for line in text.splitlines())


def test_own_commands_and_plain_text_pass_unchanged() -> None:
    out = io.StringIO()
    guard = LogGuard(out)
    guard.write("::error title=rmse failed::worse by 3\n# heading ## two\nends with #")
    guard.flush()
    assert out.getvalue() == "::error title=rmse failed::worse by 3\n# heading ## two\n" \
                             "ends with #"


def test_guard_streams_wraps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    runner_log.guard_streams()
    first = sys.stdout
    runner_log.guard_streams()
    assert isinstance(sys.stdout, LogGuard) and sys.stdout is first
    assert isinstance(sys.stderr, LogGuard)
