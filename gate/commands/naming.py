"""Which registered model a command means: the config's, a --model-name that is not a
typo of it, or, said out loud, a model that does not exist yet."""
from __future__ import annotations

from gate.core.config import Config
from gate.core.ports import Store
from gate.errors import InputError

# an unregistered --model-name this many edits (or fewer) from the config's name is taken
# for a typo ("diabets-regressor"); "test-diabetes-regressor" is a new model on purpose
TYPO_EDITS = 2
NEW_MODEL_HELP = ("a --model-name that the registry does not have and the config does not "
                  "name is a new model on purpose: let --promote register it (without this "
                  "flag it is refused, exit 2, as a likely mistake)")


def known_model(registry: Store, name: str, configured: Config, *, creates: bool = False,
                new_model: bool = False) -> str | None:
    """Check a --model-name against the config's. A typo of the config's name that names
    no registered model is refused: judged as a first model it would pass anything, and
    --promote would register a model nobody deploys. Any other unregistered name than the
    config's is refused too when the command would register it (`creates`) unless
    `new_model` says it is meant; otherwise it is judged as a first model, with the line
    returned here saying why, for the report's first screen."""
    expected = configured.model.name
    if not expected or name == expected or registry.is_registered(name):
        return None
    if typo_of(name.lower(), expected.lower()) and not new_model:
        raise InputError(f"model {name!r} is not registered ({configured.source} names "
                         f"{expected!r}); check --model-name")
    if creates and not new_model:
        raise InputError(f"model {name!r} is not registered and {configured.source} names "
                         f"{expected!r}: promoting would register a new model; pass "
                         "--new-model if that is meant, else correct --model-name")
    return (f"model {name!r} is not registered and differs from {configured.source}'s "
            f"{expected!r}: judged as its first version, with nothing to compare against")


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
