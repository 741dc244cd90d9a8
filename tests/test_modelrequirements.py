"""A model's recorded requirements against the gate's environment: the model's own text,
so whatever it holds is judged or skipped, never an error of the gate."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from gate.evidence.modelrequirements import describe, unmet


def test_what_differs_is_named_and_what_cannot_be_judged_is_skipped(tmp_path: Path) -> None:
    numpy = metadata.version("numpy")
    (tmp_path / "requirements.txt").write_text("\n".join([
        f"numpy=={numpy}",                      # met
        "numpy<1",                              # not met
        "gate-test-absent-package==1.0  # a comment",
        "pandas; extra == 'x'",                 # an extra: no environment to judge it in
        "pandas; python_version < '3'",         # not for this Python
        "pandas==not-a-version",
        "-r other.txt", "--extra-index-url https://x.invalid", "# only a comment",
        "https://x.invalid/pkg.whl", "pkg @ https://x.invalid/pkg.whl", "][ not a requirement",
        "x" * 5000,                             # a name nobody installed, cut short
    ]))
    found = unmet(tmp_path)
    assert [(u.requirement, u.installed) for u in found] == [
        ("numpy<1", numpy), ("gate-test-absent-package==1.0", None), ("x" * 120, None)]
    assert describe(found, limit=2) == f"numpy<1 ({numpy} here), " \
        "gate-test-absent-package==1.0 (not installed) and 1 more"


def test_no_requirements_file_is_nothing_to_say(tmp_path: Path) -> None:
    assert unmet(tmp_path) == ()
    (tmp_path / "requirements.txt").write_bytes(b"\xff\xfe\x00 binary")
    assert unmet(tmp_path) == ()
