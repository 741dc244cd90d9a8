"""How long installing the gate's requirements.txt into a fresh venv takes, pip vs uv.

Cold: an empty cache of the installer's own (a first CI run, a new machine). Warm: the
same cache again (a CI cache hit, a second install on one machine). Each case is a new
venv, so only the cache differs. It downloads from the package index: the figures are
this machine's network and disk as much as the installers'.

    python -m bench.install_speed            # pip and uv, cold and warm
    python -m bench.install_speed --quick    # uv only (a smoke test, needs the index)
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, table

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(found).exists():
        raise SystemExit("install_speed: uv is missing (pip install uv)")
    return found


def install(installer: str, requirements: Path, cache: Path, work: Path) -> float:
    """Seconds to create a venv and install `requirements` into it with `installer`."""
    venv = work / f"venv-{installer}-{time.monotonic_ns()}"
    env = dict(os.environ, PIP_CACHE_DIR=str(cache / "pip"), UV_CACHE_DIR=str(cache / "uv"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    start = time.perf_counter()
    if installer == "pip":
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "-r", str(requirements)], check=True, env=env)
    else:
        subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)],
                       check=True, env=env)
        subprocess.run([_uv(), "pip", "install", "--quiet", "--python",
                        str(venv / "bin" / "python"), "-r", str(requirements)],
                       check=True, env=env)
    seconds = time.perf_counter() - start
    shutil.rmtree(venv, ignore_errors=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt")
    p.add_argument("--quick", action="store_true", help="uv only")
    args = p.parse_args(argv)
    rows = []
    where = machine()           # the load before the installs, not after
    with tempfile.TemporaryDirectory(prefix="install-speed-") as tmp:
        work = Path(tmp)
        for installer in (("uv",) if args.quick else ("pip", "uv")):
            cache = work / f"cache-{installer}"       # empty: cold; filled by it: warm
            cold = install(installer, args.requirements, cache, work)
            warm = install(installer, args.requirements, cache, work)
            rows.append((installer, round(cold, 1), round(warm, 1)))
    print(f"install {args.requirements.name} into a fresh venv ({where})\n")
    print(table(("installer", "cold cache, s", "warm cache, s"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
