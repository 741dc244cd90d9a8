"""requirements-dev.lock.txt, what scripts/setup.sh installs for the tests and CI, agrees
with the ranges it was compiled from: a range edited without locking again fails here."""
from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements-dev.lock.txt"


def requirements(path: Path) -> list[Requirement]:
    """The requirements of a file and of the files it includes with -r."""
    found: list[Requirement] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found += requirements(path.parent / line[3:].strip())
        else:
            found.append(Requirement(line))
    return found


def pins() -> dict[str, Version]:
    locked: dict[str, Version] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            assert version, f"the lock pins every package exactly: {line!r}"
            locked[canonicalize_name(Requirement(name).name)] = Version(version.strip())
    return locked


def test_the_lock_satisfies_every_range() -> None:
    locked = pins()
    wrong = [f"{req} (locked: {locked.get(canonicalize_name(req.name))})"
             for req in requirements(ROOT / "requirements-dev.txt")
             if req.marker is None or req.marker.evaluate()
             if canonicalize_name(req.name) not in locked
             or not req.specifier.contains(locked[canonicalize_name(req.name)],
                                           prereleases=True)]
    assert not wrong, ("lock again (requirements-dev.txt has the command): "
                       + ", ".join(wrong))


def test_moto_stays_below_the_release_that_checks_s3_by_operation() -> None:
    # moto 5.2.6 authorises S3 by API operation name, not the IAM action S3 and MinIO
    # check: tests/test_s3_direct.py's least-privilege policy is refused there
    assert pins()["moto"] < Version("5.2.6")


def test_setup_installs_the_lock() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "lock=${reqs%.txt}.lock.txt" in setup and LOCK.name.startswith("requirements")
