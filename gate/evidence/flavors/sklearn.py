"""scikit-learn models saved with skops, audited against the gate's trusted types (never
the list stored in the model, which its author controls). Also the estimator wrapper
the LightGBM and XGBoost flavors use for their scikit-learn classes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gate.errors import InputError

from gate.evidence.flavors.base import (Flavor, Found, Loaded, ModelFile, Outputs, data_path,
                                        inside, text)

# a skops archive's bounds: a model of a few hundred trees is tens of members and MBs
MAX_ARCHIVE_MEMBERS = 10_000
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


def describe(block: dict[str, Any], label: str) -> Found:
    fmt = text(block.get("serialization_format"), "pickle")
    return Found(fmt, inside(block.get("pickled_model", "model.skops"), label), fmt == "skops")


def needs(model: ModelFile) -> str:
    return "skops"


def load(model_dir: Path, model: ModelFile, trusted: Iterable[str], label: str) -> Loaded:
    return load_skops(data_path(model_dir, model), trusted, label)


@dataclass(frozen=True)
class Estimator:
    estimator: Any

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = getattr(self.estimator, "feature_names_in_", None)
        return tuple(str(n) for n in names) if names is not None else ()

    def outputs(self, features: Any) -> Outputs:
        import numpy as np

        values = np.asarray(self.estimator.predict(features)).reshape(len(features), -1)
        values = values[:, 0] if values.shape[1] == 1 else values
        classes = getattr(self.estimator, "classes_", None)
        if classes is None or not hasattr(self.estimator, "predict_proba"):
            return Outputs(values, None, ())
        proba = np.asarray(self.estimator.predict_proba(features), dtype=float)
        return Outputs(values, proba, tuple(np.asarray(classes).tolist()))


def load_skops(path: Path, trusted: Iterable[str], label: str) -> Loaded:
    """skops.io.load audits the file's types against `trusted` before it builds anything,
    so the file is parsed once; only a refusal parses it again, to name the types."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    allowed = list(trusted)
    check_archive(path, label)
    try:
        estimator = skops.io.load(str(path), trusted=allowed)
    except UntrustedTypesFoundException:
        raise _refusal(label, untrusted_types(path, allowed, label)) from None
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    return Estimator(estimator)


def check_archive(path: Path, label: str) -> None:
    """A skops file is a zip archive: its members' count and uncompressed size are held
    to the gate's bounds from its central directory, before skops inflates any of it
    (zipfile reads no more than a member declares, and checks its CRC)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise InputError(f"{label}: skops file has {len(members)} members, over the limit "
                         f"of {MAX_ARCHIVE_MEMBERS}")
    total = sum(max(member.file_size, 0) for member in members)
    if total > MAX_ARCHIVE_BYTES:
        raise InputError(f"{label}: skops file inflates to {total} bytes, over the limit "
                         f"of {MAX_ARCHIVE_BYTES}")


def untrusted_types(model_file: Path, trusted: Iterable[str], label: str) -> list[str]:
    import skops.io

    try:
        found = skops.io.get_untrusted_types(file=str(model_file))
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    allowed = set(trusted)
    return sorted(t for t in found if t not in allowed)


def _refusal(label: str, refused: list[str]) -> InputError:
    return InputError(f"{label}: needs untrusted types {', '.join(refused)}; refusing to "
                      "load it (add them to [model] trusted_types only if you trust them)")


FLAVOR = Flavor("sklearn", 10, describe, needs, load)
