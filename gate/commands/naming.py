"""Which registered model a command means: the config's, or a --model-name that is not
a typo of it."""
from __future__ import annotations

from gate.core.config import Config
from gate.core.ports import Store
from gate.errors import InputError

# an unregistered --model-name this many edits (or fewer) from the config's name is taken
# for a typo ("diabets-regressor"); "test-diabetes-regressor" is a new model on purpose
TYPO_EDITS = 2


def known_model(registry: Store, name: str, configured: Config) -> None:
    """A --model-name close to the config's that names no registered model is a typo:
    judging it as a first model would pass anything, and --promote would register a
    model nobody deploys. A plainly different name is a new model on purpose."""
    expected = configured.model.name
    if not expected or name == expected:
        return
    if typo_of(name.lower(), expected.lower()) and not registry.is_registered(name):
        raise InputError(f"model {name!r} is not registered ({configured.source} names "
                         f"{expected!r}); check --model-name")


def typo_of(given: str, expected: str) -> bool:
    """Whether `given` is at most TYPO_EDITS insertions, deletions or substitutions
    away from `expected` (Levenshtein; lengths further apart are not, at no cost)."""
    if abs(len(given) - len(expected)) > TYPO_EDITS:
        return False
    row = list(range(len(expected) + 1))
    for i, a in enumerate(given, 1):
        prev, row[0] = row[0], i
        for j, b in enumerate(expected, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (a != b))
    return row[-1] <= TYPO_EDITS
