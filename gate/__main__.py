import signal
import sys

try:
    # importing the CLI takes a moment: Ctrl-C in it is one line and exit 3 too
    from gate.commands.cli import main

    code = main()
except KeyboardInterrupt:
    sys.stderr.write("gate: interrupted\n")
    code = 3
# a Ctrl-C while Python shuts down must not turn the exit code into a traceback
signal.signal(signal.SIGINT, signal.SIG_IGN)
raise SystemExit(code)
