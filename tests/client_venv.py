"""A virtualenv with only requirements.txt installed: what a CI client of the gate has.

Built under /tmp once per content of requirements.txt, Python version and the versions
those requirements have in the dev venv, and reused by later sessions; pytest, moto,
psycopg and the server's extras are not in it, so a client process that imports any of
them fails there as it would on a user's machine. Versions are held to the dev venv's (a
constraints file from it), so the client runs what the rest of the suite tests.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import distributions, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "requirements.txt"
CACHE = Path(os.environ.get("GATE_CLIENT_VENV_CACHE", tempfile.gettempdir()))
BUILD_TIMEOUT = 900


def client_python() -> Path:
    """The client venv's python, built first if this requirements.txt has none yet."""
    pins = [REQUIREMENTS.read_text(), sys.version, *_pinned_here()]
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    home = CACHE / f"gate-client-venv-{key}"
    python = home / "bin" / "python"
    if (home / ".complete").exists():
        return python
    # Built beside, then renamed: a session killed mid-install leaves no half venv behind
    # under the final name, and two sessions building at once both end with a whole one.
    partial = Path(tempfile.mkdtemp(prefix=f"{home.name}.partial-", dir=CACHE))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True,
                       capture_output=True, timeout=120)
        constraints = partial / "constraints.txt"
        pins = {d.metadata["Name"].lower(): d.version for d in reversed(list(distributions()))
                if d.metadata["Name"]}     # reversed: the first on sys.path wins
        constraints.write_text("".join(f"{name}=={v}\n" for name, v in sorted(pins.items())))
        result = subprocess.run(
            [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "-r", str(REQUIREMENTS), "-c", str(constraints)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"pip install -r requirements.txt failed in a fresh venv:\n"
                               f"{result.stderr[-3000:]}")
        (partial / ".complete").touch()
        try:
            partial.rename(home)
        except OSError:     # another session finished first: use its venv
            if not (home / ".complete").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return python


def _pinned_here() -> list[str]:
    """The dev venv's versions of what requirements.txt names: a bump there is a new
    client venv, while extras installed into the dev venv are not."""
    names = [re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0]
             for line in REQUIREMENTS.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith(("#", "-"))]
    return [f"{name}=={version(name)}" for name in names]
