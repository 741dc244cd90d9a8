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


ECHO_LIMIT = 80


def echo(text: object, limit: int = ECHO_LIMIT) -> str:
    """User input as an error line quotes it: cut, so a 10 KB argument stays one line."""
    value = " ".join(str(text).split())
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value)} characters)"
