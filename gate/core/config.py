"""Load and validate gate.toml into frozen dataclasses, in one call.

Every error names the file and the key, and an unknown key gets the close match
as a suggestion. A config with no metrics is an error: the gate fails closed.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from enum import StrEnum
from typing import Any

from gate.core import sliceconfig
from gate.core.tomlcheck import as_number, check_keys, check_type, shown
from gate.core.sliceconfig import SlicesConfig
from gate.errors import ConfigError, echo
from gate.stats.catalogue import AVERAGES, MetricSpec, is_classification, known_direction


class Policy(StrEnum):
    """How a worsening becomes a failure (DESIGN.md, Verdict rules)."""

    SIGNIFICANT = "significant"
    POINT = "point"
    NON_INFERIORITY = "non_inferiority"


class Direction(StrEnum):
    LOWER = "lower"
    HIGHER = "higher"


# StrEnum members are their values: `"point" in POLICIES` and f-strings keep working
POLICIES = tuple(Policy)
DIRECTIONS = tuple(Direction)
ON_MISSING_CHAMPION = ("first_model", "block")
MAX_SEED = 2**63 - 1        # numpy takes any non-negative int; a seed past this is a typo


@dataclass(frozen=True)
class ModelConfig:
    name: str = ""
    alias: str = "production"
    stage: str | None = None
    trusted_types: tuple[str, ...] = ()     # extra skops types to trust, beyond the gate's
    # flavors (or flavor:format) that may be promoted; empty: any
    allowed_flavors: tuple[str, ...] = ()
    # the alias is gone but the gate promoted versions before: carry on as the first
    # model (and say so), or block until someone points the alias at a version
    on_missing_champion: str = "first_model"

    def allows(self, key: str) -> bool:
        """Whether a model of `flavor:format` may be promoted."""
        flavor = key.split(":", 1)[0]
        return not self.allowed_flavors or key in self.allowed_flavors or \
            flavor in self.allowed_flavors


@dataclass(frozen=True)
class CompareConfig:
    policy: str = "significant"
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    # predictions the gate could not compute block; None: only when promoting
    require_verified: bool | None = None


@dataclass(frozen=True)
class EvalConfig:
    """The pinned eval set: rows no candidate chose, read from the config's checkout."""

    # a path relative to the config file, or an artifact on the tracking server (the
    # sealed holdout `gate holdout publish` prints); empty: not pinned
    data: str = ""
    target: str = ""
    digest: str = ""            # "sha256:<hex>": refuse the file if its content differs
    row_id: str = ""            # optional column of stable row ids
    # exit 2 rather than judge a model on rows it logged itself (a first model, or the
    # first after the champion's alias vanished, when no eval set is pinned)
    require: bool = False

    @property
    def stored(self) -> bool:
        """Whether `data` names an artifact on the tracking server, not a file here."""
        return self.data.startswith(STORED_SCHEMES)

    def path(self, config_source: str) -> Path:
        return (Path(config_source).parent / self.data).resolve()


# `[eval] data` read through the tracking server, with the gate's own credentials
STORED_SCHEMES = ("runs:/", "mlflow-artifacts:/", "s3://")


@dataclass(frozen=True)
class NotifyConfig:
    """Where verdicts are announced: the environment variable holding the team's webhook
    URL (a secret, so it never sits in the config itself)."""

    webhook_url_env: str = "GATE_WEBHOOK_URL"


@dataclass(frozen=True)
class MetricRule:
    name: str
    direction: str
    min: float | None = None
    max: float | None = None
    tolerance: float = 0.0
    tolerance_rel: float = 0.0
    required: bool = True
    average: str | None = None          # classification: binary | macro | weighted
    pos_label: str | int | None = None  # classification, binary: the positive class

    def spec(self) -> MetricSpec:
        """What the statistics engine needs to score this metric."""
        return MetricSpec(self.name, self.direction, self.average, self.pos_label)

    def allowance(self, production: float) -> float:
        """How much worse than Production the candidate may be."""
        return max(self.tolerance, self.tolerance_rel * abs(production))


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    compare: CompareConfig
    metrics: tuple[MetricRule, ...]
    source: str = "gate.toml"
    eval: EvalConfig = field(default_factory=EvalConfig)
    primary_metric: str = field(default="")
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    slices: SlicesConfig = field(default_factory=SlicesConfig)

    def with_model_name(self, name: str | None) -> "Config":
        if not name:
            return self
        return replace(self, model=replace(self.model, name=name))


# key -> (accepted types, required); bool is excluded from numbers on purpose.
_NUMBER = (int, float)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "model": {
        "name": ((str,), False),
        "alias": ((str,), False),
        "stage": ((str,), False),
        "trusted_types": ((list,), False),
        "allowed_flavors": ((list,), False),
        "on_missing_champion": ((str,), False),
    },
    "compare": {
        "policy": ((str,), False),
        "confidence": (_NUMBER, False),
        "resamples": ((int,), False),
        "seed": ((int,), False),
        "primary_metric": ((str,), False),
        "require_verified": ((bool,), False),
    },
    "eval": {
        "data": ((str,), False),
        "target": ((str,), False),
        "digest": ((str,), False),
        "row_id": ((str,), False),
        "require": ((bool,), False),
    },
    "notify": {
        "webhook_url_env": ((str,), False),
    },
    "metric": {
        "direction": ((str,), True),
        "min": (_NUMBER, False),
        "max": (_NUMBER, False),
        "tolerance": (_NUMBER, False),
        "tolerance_rel": (_NUMBER, False),
        "required": ((bool,), False),
        "average": ((str,), False),
        "pos_label": ((str, int), False),
    },
}
_TOP_LEVEL = ("model", "compare", "metrics", "eval", "notify", "slices")


def load(path: str | Path) -> Config:
    """Read, parse and validate a gate.toml; raise ConfigError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config PATH)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): TOML is UTF-8") \
            from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "gate.toml") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except ValueError as exc:
        # Python refuses to parse integers of more than 4300 digits (a DoS guard)
        raise ConfigError(f"{source}: not valid TOML: {echo(exc)}") from None
    except RecursionError:
        # tomllib recurses once per level of nesting: a few hundred [[[...]]] exhaust it
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") \
            from None
    check_keys(data, _TOP_LEVEL, source, "")
    model_raw = _section(data, "model", source)
    types = model_raw.get("trusted_types", [])
    if not all(isinstance(t, str) and t for t in types):
        raise ConfigError(f"{source}: model.trusted_types must be an array of type names")
    model_raw["trusted_types"] = tuple(types)
    flavors = model_raw.get("allowed_flavors", [])
    if not all(isinstance(f, str) and f for f in flavors):
        raise ConfigError(f"{source}: model.allowed_flavors must be an array of flavor names "
                          '(e.g. "sklearn:skops", "lightgbm")')
    model_raw["allowed_flavors"] = tuple(flavors)
    model = ModelConfig(**model_raw)
    compare_raw = _section(data, "compare", source)
    primary = compare_raw.pop("primary_metric", "")
    compare = CompareConfig(**compare_raw)
    metrics = _metrics(data.get("metrics", {}), source)
    evaluation = EvalConfig(**_section(data, "eval", source))
    notify = NotifyConfig(**_section(data, "notify", source))
    reserved = {name: f"eval.{key} (not a slice)" for key, name in
                (("target", evaluation.target), ("row_id", evaluation.row_id)) if name}
    slices = sliceconfig.parse(data.get("slices", {}), source,
                               tuple(rule.name for rule in metrics), reserved)
    config = Config(model=model, compare=compare, metrics=metrics, source=source,
                    primary_metric=primary or metrics[0].name, eval=evaluation,
                    notify=notify, slices=slices)
    _check_values(config)
    # validated: the free strings become their enums (which still compare as strings)
    return replace(config, compare=replace(config.compare, policy=Policy(config.compare.policy)),
                   metrics=tuple(replace(rule, direction=Direction(rule.direction))
                                 for rule in config.metrics))


def _section(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    schema = _SCHEMA[name]
    check_keys(raw, tuple(schema), source, f"{name}.")
    for key, value in raw.items():
        check_type(value, schema[key][0], source, f"{name}.{key}")
    return {key: as_number(value, schema[key][0]) for key, value in raw.items()}


def _metrics(raw: Any, source: str) -> tuple[MetricRule, ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [metrics] must be a table of [metrics.NAME] tables")
    if not raw:
        raise ConfigError(f"{source}: no [metrics.NAME] configured: the gate would pass "
                          "everything, so it refuses to run")
    rules = []
    schema = _SCHEMA["metric"]
    for name, body in raw.items():
        where = f"metrics.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{where}] must be a table")
        check_keys(body, tuple(schema), source, f"{where}.")
        for key, (types, required) in schema.items():
            if required and key not in body:
                raise ConfigError(f"{source}: {where}.{key} is required "
                                  f"(one of {', '.join(DIRECTIONS)})")
            if key in body:
                check_type(body[key], types, source, f"{where}.{key}")
        rules.append(MetricRule(name=name, **{key: as_number(value, schema[key][0])
                                              for key, value in body.items()}))
    return tuple(rules)


def _check_values(config: Config) -> None:
    src = config.source
    compare = config.compare
    if compare.policy not in POLICIES:
        raise ConfigError(f"{src}: compare.policy must be one of {', '.join(POLICIES)}, "
                          f"not {shown(compare.policy)}")
    if not 0.5 <= compare.confidence < 1:
        raise ConfigError(f"{src}: compare.confidence must be in [0.5, 1), "
                          f"not {shown(compare.confidence)}")
    if not 100 <= compare.resamples <= 100_000:
        raise ConfigError(f"{src}: compare.resamples must be between 100 and 100000, "
                          f"not {shown(compare.resamples)}")
    if not 0 <= compare.seed <= MAX_SEED:
        raise ConfigError(f"{src}: compare.seed must be between 0 and 2**63 - 1, "
                          f"not {shown(compare.seed)}")
    if config.model.on_missing_champion not in ON_MISSING_CHAMPION:
        raise ConfigError(f"{src}: model.on_missing_champion must be one of "
                          f"{', '.join(ON_MISSING_CHAMPION)}, not "
                          f"{shown(config.model.on_missing_champion)}")
    if config.model.name == "":
        pass  # may come from --model-name; cli checks it is set before use
    if not config.model.alias.strip():
        raise ConfigError(f"{src}: model.alias must not be empty")
    _check_eval(config.eval, src)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", config.notify.webhook_url_env):
        raise ConfigError(f"{src}: notify.webhook_url_env must name an environment variable "
                          f"(e.g. \"TEAM_SLACK_WEBHOOK\"), not "
                          f"{shown(config.notify.webhook_url_env)}; the URL itself is a "
                          "secret and belongs in the environment")
    names = {rule.name for rule in config.metrics}
    if config.primary_metric not in names:
        raise ConfigError(f"{src}: compare.primary_metric {shown(config.primary_metric)} is not "
                          f"one of the configured metrics ({', '.join(sorted(names))})")
    for rule in config.metrics:
        where = f"metrics.{rule.name}"
        if rule.direction not in DIRECTIONS:
            raise ConfigError(f"{src}: {where}.direction must be 'lower' or 'higher', "
                              f"not {shown(rule.direction)}")
        _check_metric_kind(rule, src, where)
        if rule.tolerance < 0 or rule.tolerance_rel < 0:
            raise ConfigError(f"{src}: {where}.tolerance and tolerance_rel must be >= 0")
        if rule.direction == "lower" and rule.min is not None:
            raise ConfigError(f"{src}: {where}.min contradicts direction = 'lower' "
                              "(a lower-is-better metric takes a max bound)")
        if rule.direction == "higher" and rule.max is not None:
            raise ConfigError(f"{src}: {where}.max contradicts direction = 'higher' "
                              "(a higher-is-better metric takes a min bound)")


def _check_eval(evaluation: EvalConfig, src: str) -> None:
    if not evaluation.data:
        if evaluation.target or evaluation.digest or evaluation.row_id:
            raise ConfigError(f"{src}: eval.target, eval.digest and eval.row_id need "
                              "eval.data (the pinned eval set)")
        return
    if not evaluation.target:
        raise ConfigError(f"{src}: eval.target is required with eval.data (its label column)")
    if Path(evaluation.data).suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"{src}: eval.data must be a .csv or .parquet file (or "
                          f"{', '.join(STORED_SCHEMES)} URI of one), not {evaluation.data!r}")
    if evaluation.stored and not evaluation.digest:
        # a sealed set anyone with the right grant can replace is not tamper-evident
        raise ConfigError(f"{src}: eval.digest is required when eval.data is on the "
                          f"tracking server ({shown(evaluation.data)}): set it to what "
                          "`gate holdout publish` printed")
    digest = evaluation.digest
    if digest and not (digest.startswith("sha256:") and len(digest) == 71 and
                       all(c in "0123456789abcdef" for c in digest[7:])):
        raise ConfigError(f"{src}: eval.digest must be 'sha256:' and 64 lowercase hex "
                          "digits (sha256sum of the file)")


def _check_metric_kind(rule: MetricRule, src: str, where: str) -> None:
    # a known metric the wrong way round would block every improvement and pass every
    # regression: fail closed at load
    known = known_direction(rule.name)
    if known is not None and rule.direction != known:
        raise ConfigError(f"{src}: {where}.direction is {rule.direction!r}, but {rule.name} "
                          f"is {known}-is-better (direction = {known!r})")
    for key in ("average", "pos_label"):
        if getattr(rule, key) is not None and not is_classification(rule.name):
            raise ConfigError(f"{src}: {where}.{key} applies to classification metrics "
                              f"only, not {rule.name!r}")
    if rule.average is not None and rule.average not in AVERAGES:
        raise ConfigError(f"{src}: {where}.average must be one of {', '.join(AVERAGES)}, "
                          f"not {rule.average!r}")
