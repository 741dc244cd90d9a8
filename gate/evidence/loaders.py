"""Safe model loaders: a registry from loader key to a function that loads a model file
without running code from it, so the gate can compute predictions itself.

- sklearn: skops, auditing the file's types against the gate's trusted list (never the
  list stored in the model, which its author controls);
- lightgbm: LightGBM's native text model, or its scikit-learn wrapper saved with skops;
- xgboost: XGBoost's native JSON/UBJSON files, into a class from a fixed list.

Nothing here unpickles. Adding a loader is one function and one line in LOADERS.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from gate.errors import InputError
from gate.evidence.modelfile import ModelFile

# Skops refuses anything not on this list; mlflow's own loader would trust the list
# stored inside the model, which the model's author controls.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
# the gate's own list for LightGBM's scikit-learn wrapper saved with skops: these
# rebuild from LightGBM's text model, no code runs
LIGHTGBM_TYPES = ("lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor",
                  "lightgbm.basic.Booster", "collections.OrderedDict")
_XGB_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor")
_BINARY_LGB = ("binary", "cross_entropy", "xentropy")


@dataclass(frozen=True)
class Outputs:
    """A model's output on the eval rows."""

    values: Any             # (n,) regression values or predicted class labels
    proba: Any | None       # (n, k) class probabilities, or None
    classes: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.values)


class Loaded(Protocol):
    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def outputs(self, features: Any) -> Outputs: ...


Loader = Callable[[Path, ModelFile, Iterable[str], str], Loaded]


def load(model_dir: Path, model: ModelFile, trusted: Iterable[str], label: str) -> Loaded:
    if model.loader is None or model.loader not in LOADERS:
        raise InputError(f"{label}: no safe loader for {model.description}")
    return LOADERS[model.loader](model_dir, model, trusted, label)


def untrusted_types(model_file: Path, trusted: Iterable[str], label: str) -> list[str]:
    import skops.io

    try:
        found = skops.io.get_untrusted_types(file=str(model_file))
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    allowed = set(trusted)
    return sorted(t for t in found if t not in allowed)


# -- scikit-learn style estimators ------------------------------------------------

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


def _load_skops(model_dir: Path, model: ModelFile, trusted: Iterable[str],
                label: str) -> Loaded:
    """skops.io.load audits the file's types against `trusted` before it builds anything,
    so the file is parsed once; only a refusal parses it again, to name the types."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    assert model.data is not None
    path = model_dir / model.data
    allowed = _trusted(model, trusted)
    try:
        estimator = skops.io.load(str(path), trusted=allowed)
    except UntrustedTypesFoundException:
        raise _refusal(label, untrusted_types(path, allowed, label)) from None
    except Exception as exc:  # skops raises many types on a corrupt file
        raise InputError(f"{label}: unreadable skops file ({type(exc).__name__})") from None
    return Estimator(estimator)


def _trusted(model: ModelFile, trusted: Iterable[str]) -> list[str]:
    extra = LIGHTGBM_TYPES if model.flavor == "lightgbm" else ()
    return [*trusted, *extra]


# -- LightGBM ---------------------------------------------------------------------

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
        return _probabilities(raw, self.binary)


def _load_lightgbm(model_dir: Path, model: ModelFile, trusted: Iterable[str],
                   label: str) -> Loaded:
    if model.format == "skops":
        return _load_skops(model_dir, model, trusted, label)
    lightgbm = _optional("lightgbm", label)
    assert model.data is not None
    path = model_dir / model.data
    try:
        booster = lightgbm.Booster(model_file=str(path))
        binary = _lgb_objective(path).split(" ")[0] in _BINARY_LGB
    except Exception as exc:  # LightGBM raises its own LightGBMError on a bad file
        raise InputError(f"{label}: unreadable LightGBM model ({type(exc).__name__})") \
            from None
    return LightGBMBooster(booster, binary)


def _lgb_objective(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for _, line in zip(range(200), fh):
            if line.startswith("objective="):
                return line.strip().split("=", 1)[1]
    return ""


# -- XGBoost ----------------------------------------------------------------------

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
        return _probabilities(raw, self.objective.startswith("binary:"))


def _load_xgboost(model_dir: Path, model: ModelFile, trusted: Iterable[str],
                  label: str) -> Loaded:
    xgboost = _optional("xgboost", label)
    assert model.data is not None
    path = str(model_dir / model.data)
    name = model.model_class.rsplit(".", 1)[-1]
    try:
        if name in _XGB_CLASSES:
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


# -- shared -----------------------------------------------------------------------

def _probabilities(raw: Any, binary: bool) -> Outputs:
    """A booster's raw output: regression values, P(class 1), or (n, k) probabilities."""
    import numpy as np

    if raw.ndim == 2 and raw.shape[1] > 1:
        return Outputs(raw.argmax(axis=1), raw, tuple(range(raw.shape[1])))
    raw = raw.reshape(-1)
    if not binary:
        return Outputs(raw, None, ())
    proba = np.column_stack((1.0 - raw, raw))
    return Outputs((raw > 0.5).astype(int), proba, (0, 1))


def _optional(module: str, label: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"{label}: {module} is not installed beside the gate") from None


def _refusal(label: str, refused: list[str]) -> InputError:
    return InputError(f"{label}: needs untrusted types {', '.join(refused)}; refusing to "
                      "load it (add them to [model] trusted_types only if you trust them)")


LOADERS: dict[str, Loader] = {
    "sklearn": _load_skops,
    "lightgbm": _load_lightgbm,
    "xgboost": _load_xgboost,
}


def available(model: ModelFile) -> bool:
    """Whether a safe loader for `model` exists and its library is installed here."""
    import importlib.util

    if model.loader not in LOADERS:
        return False
    needs = {"lightgbm": "lightgbm" if model.format != "skops" else "skops",
             "xgboost": "xgboost", "sklearn": "skops"}[model.loader]
    return importlib.util.find_spec(needs) is not None
