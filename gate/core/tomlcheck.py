"""Checking a parsed TOML table against a small schema: unknown keys (with the close
match as a suggestion), value types, finite numbers, and values quoted short in messages.

Generic and pure: gate.toml's sections (`gate.core.config`, `gate.core.sliceconfig`) use it.
"""
from __future__ import annotations

import difflib
import math
import reprlib
from typing import Any

from gate.errors import ConfigError, echo

TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean",
              list: "array", dict: "table"}


def check_keys(table: dict[str, Any], allowed: tuple[str, ...], source: str,
               prefix: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else \
                f" (allowed: {', '.join(allowed)})"
            raise ConfigError(f"{source}: unknown key '{echo(prefix + key)}'{hint}")


def check_type(value: Any, types: tuple[type, ...], source: str, key: str) -> None:
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        wanted = "number" if float in types else \
            " or ".join(TYPE_NAMES[t] for t in types)
        article = "an" if wanted[0] in "aeiou" else "a"
        raise ConfigError(f"{source}: {key} must be {article} {wanted}, not "
                          f"{TYPE_NAMES.get(type(value), type(value).__name__)} "
                          f"({shown(value)})")
    if float in types and not isinstance(value, bool) and not _fits_float(value):
        raise ConfigError(f"{source}: {key} must be a finite number, not {shown(value)}")


def _fits_float(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:       # an integer of 309 digits or more
        return False


def as_number(value: Any, types: tuple[type, ...]) -> Any:
    """A number key's value as a float, so no later arithmetic meets a huge integer."""
    return float(value) if float in types and not isinstance(value, bool) else value


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """A value as the message quotes it: short, whatever its size or depth."""
    return _REPR.repr(value)
