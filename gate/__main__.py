from gate.commands.console import console

raise SystemExit(console())
