"""The gate's errors. Each carries the exit code the CLI returns for it."""


class GateError(Exception):
    exit_code = 2


class ConfigError(GateError):
    """gate.toml is missing, malformed or contradictory (exit 2)."""

    exit_code = 2


class InputError(GateError):
    """A run, model, metric or flag the user gave is unusable (exit 2)."""

    exit_code = 2


class InfraError(GateError):
    """MLflow or GitHub unreachable, refused, or changed under us (exit 3)."""

    exit_code = 3
