"""Print CHANGELOG.md's section of one version: the GitHub release's notes.

    python scripts/changelog_section.py 1.2.0 > notes.md

Exit 2 when the version has no section, or its heading still says "unreleased": a
release goes out only once its changes are written down and dated.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path


def section(text: str, version: str) -> str:
    heading = re.compile(rf"^## \[?v?{re.escape(version)}\]?(?:\s.*)?$", re.M)
    found = heading.search(text)
    if found is None:
        raise LookupError(f"CHANGELOG.md has no section '## {version}'")
    if "unreleased" in found.group(0).lower():
        raise LookupError(f"CHANGELOG.md still calls {version} unreleased: date it first")
    rest = text[found.end():]
    following = re.search(r"^## ", rest, re.M)
    body = rest[:following.start()] if following else rest
    return body.strip() + "\n"


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: changelog_section.py VERSION [CHANGELOG.md]\n")
        return 2
    path = Path(argv[2] if len(argv) == 3 else "CHANGELOG.md")
    try:
        sys.stdout.write(section(path.read_text(encoding="utf-8"), argv[1].removeprefix("v")))
    except (OSError, LookupError) as exc:
        sys.stderr.write(f"changelog: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
