"""Whether the gate's Python environment, the one the sandbox runs models in, meets a
model's recorded requirements (`requirements.txt` beside its MLmodel). The gate scores
every model with its own environment's packages; a model recorded against other versions
is still scored, and the report says which differ (serving with the model's own
environment may then predict otherwise). Plain text, read here: no model file is parsed.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REQUIREMENTS = "requirements.txt"
MAX_BYTES = 64 * 1024           # MLflow writes a few lines; more is not a requirements file


@dataclass(frozen=True)
class Unmet:
    requirement: str            # as recorded, e.g. "scikit-learn==1.5.2"
    name: str                   # its distribution name
    installed: str | None       # the version here; None: not installed

    def __str__(self) -> str:
        here = f"{self.installed} here" if self.installed else "not installed"
        return f"{self.requirement} ({here})"


def unmet(folder: Path) -> tuple[Unmet, ...]:
    """The recorded requirements this environment does not satisfy; () when the model
    records none, or none that can be judged (URLs, paths, options are skipped)."""
    from packaging.requirements import InvalidRequirement, Requirement

    path = folder / REQUIREMENTS
    if not path.is_file():
        return ()
    with path.open("rb") as handle:
        text = handle.read(MAX_BYTES).decode("utf-8", "replace")
    found = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            requirement = Requirement(line)
            if requirement.url or (requirement.marker and not requirement.marker.evaluate()):
                continue
            installed = _version(requirement.name)
            met = installed is not None and requirement.specifier.contains(
                installed, prereleases=True)
        except (InvalidRequirement, ValueError, LookupError):
            # the model's own text (an `extra` marker, a version nobody can parse): not
            # judged, never an error of the gate
            continue
        if not met:
            found.append(Unmet(line[:120], requirement.name, installed))
    return tuple(found)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe(found: tuple[Unmet, ...], limit: int = 3) -> str:
    """`scikit-learn==1.5.2 (1.9.1 here), lightgbm (not installed)` and how many more."""
    shown = ", ".join(str(item) for item in found[:limit])
    more = len(found) - limit
    return shown + (f" and {more} more" if more > 0 else "")
