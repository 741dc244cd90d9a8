"""tests/verdicts.py: an end-to-end test whose gate wrote no usable JSON fails with the
gate's own words."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.verdicts import IN_PROCESS, read_verdict

SAID = "gate: error: MLflow at http://127.0.0.1:9 is not reachable"


def finished(stderr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["python", "-m", "gate"], 3, "", stderr)


def test_a_written_verdict_reads_as_a_plain_dict(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"status": "passed", "promoted_version": null}')
    verdict = read_verdict(path, finished(SAID))
    assert verdict == {"status": "passed", "promoted_version": None}
    assert verdict["status"] == "passed" and verdict.get("paired") is None


def test_a_missing_verdict_fails_with_the_gates_stderr(tmp_path: Path) -> None:
    verdict = read_verdict(tmp_path / "none.json", finished("Traceback...\n" + SAID))
    assert verdict == {} and verdict.get("status") is None     # tests expecting none
    with pytest.raises(AssertionError, match="no verdict JSON at .*the gate said: Trace"):
        verdict["status"]


def test_a_verdict_without_the_key_fails_with_the_gates_stderr(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"error": "boom"}')
    with pytest.raises(AssertionError, match=r"has no 'status'.*not reachable"):
        read_verdict(path, SAID)["status"]


@pytest.mark.parametrize("text", ["{trunc", "[1, 2]"])
def test_a_broken_file_fails_with_the_gates_stderr(tmp_path: Path, text: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(text)
    with pytest.raises(AssertionError, match="not reachable"):
        read_verdict(path, finished(SAID))


def test_only_the_end_of_a_long_stderr_and_a_note_for_silence(tmp_path: Path) -> None:
    long = "x" * 5000 + SAID
    with pytest.raises(AssertionError) as caught:
        read_verdict(tmp_path / "none.json", long)["status"]
    assert str(caught.value).endswith(SAID) and "x" * 2001 not in str(caught.value)
    with pytest.raises(AssertionError, match="nothing on stderr"):
        read_verdict(tmp_path / "none.json", finished(""))["status"]
    with pytest.raises(AssertionError, match="captured stderr"):
        read_verdict(tmp_path / "none.json", IN_PROCESS)["status"]
