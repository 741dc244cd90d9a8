"""The process entry: `model-gate` (console script) and `python -m gate`.

Kept apart from `cli` so that importing the CLI (a moment: MLflow's client defaults,
argparse) already runs under the Ctrl-C handler: an interrupt is one line and exit 3.
"""
from __future__ import annotations

import signal
import sys


def console() -> int:
    try:
        from gate.commands.cli import main

        code = main()
    except KeyboardInterrupt:
        sys.stderr.write("gate: interrupted\n")
        code = 3
    # a Ctrl-C while Python shuts down must not turn the exit code into a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code
