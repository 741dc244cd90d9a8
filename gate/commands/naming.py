"""Which model a command means: the config's, a --model-name that is not a typo of it,
or, said out loud, a model that does not exist yet; and what a version of it holds."""
from __future__ import annotations

from gate.commands.errors import error_line
from gate.core.config import Config
from gate.core.domain import logged_model_of
from gate.core.ports import Store
from gate.errors import InputError

# an unregistered --model-name this many edits (or fewer) from the config's name is taken
# for a typo ("diabets-regressor"); "test-diabetes-regressor" is a new model on purpose
TYPO_EDITS = 2
NEW_MODEL_HELP = ("a --model-name that the registry does not have and the config does not "
                  "name is a new model on purpose: register it when promoting (without this "
                  "flag that is refused, exit 2, as a likely mistake)")


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


def version_candidate(registry: Store, name: str, version: str) -> tuple[str, str | None]:
    """What `promote --version N` judges: the version's run, or (registered from an MLflow
    3 logged model with no run, `models:/m-...`) that logged model, as --model-id would."""
    info = registry.version(name, version)
    if info.run_id:
        return info.run_id, None
    model_id = logged_model_of(info.source)
    if model_id is None:
        raise InputError(f"model {name!r} version {info.version} has no run and no logged "
                         f"model (registered from {error_line(info.source)[:200]!r}): "
                         "nothing the gate can judge; promote a run (--run-id) or a logged "
                         "model (--model-id)")
    return "", model_id
