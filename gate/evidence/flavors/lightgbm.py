"""LightGBM: its native text model, or its scikit-learn wrapper saved with skops."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gate.errors import InputError
from gate.evidence.flavors.base import (Flavor, Found, Loaded, ModelFile, Outputs, data_path,
                                        inside, optional, probabilities, text)
from gate.evidence.flavors.sklearn import load_skops

# the gate's own list for LightGBM's scikit-learn wrapper saved with skops: these
# rebuild from LightGBM's text model, no code runs
LIGHTGBM_TYPES = ("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor",
                  "lightgbm.basic.Booster", "collections.OrderedDict")
_BINARY = ("binary", "cross_entropy", "xentropy")


def describe(block: dict[str, Any], label: str) -> Found:
    data = inside(block.get("data", "model.lgb"), label)
    fmt = "lgb" if data.endswith(".lgb") else ("skops" if data.endswith(".skops")
                                               else "pickle")
    return Found(fmt, data, fmt != "pickle", text(block.get("model_class"), ""))


def needs(model: ModelFile) -> str:
    return "skops" if model.format == "skops" else "lightgbm"


@dataclass(frozen=True)
class LightGBMBooster:
    booster: Any
    binary: bool

    @property
    def feature_names(self) -> tuple[str, ...]:
        names = tuple(self.booster.feature_name())
        # LightGBM names unnamed columns Column_0...: no names were given
        return () if all(n.startswith("Column_") for n in names) else names

    def outputs(self, features: Any) -> Outputs:
        import numpy as np

        raw = np.asarray(self.booster.predict(features), dtype=float)
        return probabilities(raw, self.binary)


def load(model_dir: Path, model: ModelFile, trusted: Iterable[str], label: str) -> Loaded:
    path = data_path(model_dir, model)
    if model.format == "skops":
        return load_skops(path, [*trusted, *LIGHTGBM_TYPES], label)
    lightgbm = optional("lightgbm", label)
    try:
        booster = lightgbm.Booster(model_file=str(path))
        binary = _objective(path).split(" ")[0] in _BINARY
    except Exception as exc:  # LightGBM raises its own LightGBMError on a bad file
        raise InputError(f"{label}: unreadable LightGBM model ({type(exc).__name__})") \
            from None
    return LightGBMBooster(booster, binary)


def _objective(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for _, line in zip(range(200), fh):
            if line.startswith("objective="):
                return line.strip().split("=", 1)[1]
    return ""


FLAVOR = Flavor("lightgbm", 20, describe, needs, load)
