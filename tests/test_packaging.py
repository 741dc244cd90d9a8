"""The package as users install it: metadata, console entry, public API."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import gate

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_requires_what_requirements_txt_pins() -> None:
    pinned = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert _pyproject()["project"]["dependencies"] == pinned


def test_the_version_is_semantic_and_comes_from_one_place() -> None:
    project = _pyproject()
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gate.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", gate.__version__)
    assert f"## {gate.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_version_and_help_list_the_exit_codes() -> None:
    run = subprocess.run([sys.executable, "-m", "gate", "--version"], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    assert run.stdout.strip() == f"gate {gate.__version__}"
    for argv in (["--help"], ["check", "--help"], ["status", "--help"]):
        help_text = subprocess.run([sys.executable, "-m", "gate", *argv], capture_output=True,
                                   text=True, cwd=ROOT, check=True).stdout
        assert "exit codes" in help_text and "3  infrastructure" in help_text, argv


def test_the_public_api_is_listed_and_typed() -> None:
    assert set(gate.__all__) == {"__version__", "contract", "log_evaluation"}
    parameters = inspect.signature(gate.log_evaluation).parameters
    assert list(parameters)[:2] == ["y_true", "predictions"]
    assert parameters["features"].kind is inspect.Parameter.KEYWORD_ONLY
    assert gate.contract.VERSION >= 1
    assert (ROOT / "gate" / "py.typed").exists()


def test_the_console_script_and_extras_are_declared() -> None:
    project = _pyproject()["project"]
    assert project["scripts"] == {"model-gate": "gate.commands.console:console"}
    assert set(project["optional-dependencies"]) == {"lightgbm", "xgboost"}
    assert project["license"] == "Apache-2.0" and (ROOT / "LICENSE").exists()
