"""XGBoost: its native JSON/UBJSON model files, into a class from a fixed list."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from gate.errors import InputError
from gate.evidence.flavors.base import (Flavor, Found, Loaded, ModelFile, Outputs, data_path,
                                        inside, optional, probabilities, text)
from gate.evidence.flavors.sklearn import Estimator

_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")
_SAFE_FORMATS = ("json", "ubj", "xgb", "deprecated")


def describe(block: dict[str, Any], label: str) -> Found:
    fmt = text(block.get("model_format"), "xgb")
    return Found(fmt, inside(block.get("data", f"model.{fmt}"), label), fmt in _SAFE_FORMATS,
                 text(block.get("model_class"), "xgboost.core.Booster"))


def needs(model: ModelFile) -> str:
    return "xgboost"


@dataclass(frozen=True)
class XGBoostBooster:
    booster: Any
    objective: str

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.booster.feature_names or ())

    def outputs(self, features: Any) -> Outputs:
        import numpy as np
        import xgboost

        raw = np.asarray(self.booster.predict(xgboost.DMatrix(features)), dtype=float)
        if self.objective == "multi:softmax":
            return Outputs(raw.astype(int), None, ())
        return probabilities(raw, self.objective.startswith("binary:"))


def load(model_dir: Path, model: ModelFile, trusted: Iterable[str], label: str) -> Loaded:
    xgboost = optional("xgboost", label)
    path = str(data_path(model_dir, model))
    name = model.model_class.rsplit(".", 1)[-1]
    try:
        if name in _CLASSES:
            estimator = getattr(xgboost, name)()
            estimator.load_model(path)
            return Estimator(estimator)
        if name != "Booster":
            raise InputError(f"{label}: XGBoost model class {model.model_class[:80]!r} is "
                             "not one the gate loads")
        booster = xgboost.Booster(model_file=path)
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    except InputError:
        raise
    except Exception as exc:  # XGBoostError and friends on a bad file
        raise InputError(f"{label}: unreadable XGBoost model ({type(exc).__name__})") from None
    return XGBoostBooster(booster, str(objective))


FLAVOR = Flavor("xgboost", 30, describe, needs, load)
