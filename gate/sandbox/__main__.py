"""`python -m gate.sandbox`: can models be scored in a sandbox here? One line, exit 0
when they can, 1 (with the fix) when they cannot. The workflows run it after setting
bubblewrap up, so the job log says what the gate will find."""
from __future__ import annotations

import sys

from gate.sandbox.probe import probe


def main() -> int:
    found = probe()
    print(f"model sandbox: {found.why}" if found.ok else found.why)
    return 0 if found.ok else 1


if __name__ == "__main__":
    sys.exit(main())
