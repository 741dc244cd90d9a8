"""Can a sandbox be made here? Asked once per process, by making the very jail the
models run in around /bin/true."""
from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gate.errors import GateError
import gate.sandbox.jail as jail

APPARMOR_USERNS = Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
PROFILE = ".github/apparmor/bwrap"
UID_MAP = "setting up uid map"


class SandboxUnavailable(GateError):
    """No sandbox can be made on this machine: the model cannot be scored by the gate,
    so its predictions are unverified (never a reason to trust what it logged)."""

    exit_code = 2


@dataclass(frozen=True)
class Probe:
    ok: bool
    kind: Literal["bwrap", "none"]
    why: str                        # one line: what is missing and how to fix it
    bwrap: jail.Bwrap | None = None


def probe(bwrap: str | None = None, apparmor: Path = APPARMOR_USERNS) -> Probe:
    """bwrap found on PATH (or the one given) and able to make the jail; cached."""
    return _probe(bwrap or shutil.which("bwrap"), apparmor)


@functools.lru_cache(maxsize=8)
def _probe(path: str | None, apparmor: Path) -> Probe:
    if not sys.platform.startswith("linux"):
        return Probe(False, "none", f"no sandbox on {sys.platform}: bubblewrap needs Linux")
    if path is None:
        return Probe(False, "none", "no sandbox: bwrap is not installed (Debian/Ubuntu "
                     "package bubblewrap)")
    try:
        help_text = _run([path, "--help"]).stdout
        found = jail.Bwrap(path, sizes="--size" in help_text,
                           disable_userns="--disable-userns" in help_text)
        done = _run(jail.options(found, 1024 * 1024) + ["/bin/true"])
    except (OSError, subprocess.SubprocessError) as exc:
        return Probe(False, "none", f"no sandbox: {path} cannot be run ({exc})")
    if done.returncode == 0:
        return Probe(True, "bwrap", f"bubblewrap ({path})", found)
    return Probe(False, "none", _refused(path, _last_line(done.stderr), apparmor))


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, errors="replace")


def _refused(path: str, line: str, apparmor: Path) -> str:
    # the cause before the path: a report's first line keeps only its start
    said = f"no sandbox: bwrap fails ({line or 'no message'})"
    where = f" [{path}]"
    if UID_MAP not in line and "user namespace" not in line.lower():
        return said + where
    if _restricted(apparmor):
        return (f"{said}: AppArmor restricts unprivileged user namespaces here "
                f"({apparmor} = 1); allow them for bwrap alone with the profile in "
                f"{PROFILE} (`sudo apparmor_parser -r /etc/apparmor.d/bwrap`), or for all "
                "programs with `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
                + where)
    return f"{said}: unprivileged user namespaces are refused on this machine{where}"


def _restricted(apparmor: Path) -> bool:
    try:
        return apparmor.read_text().strip() == "1"
    except OSError:
        return False


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
