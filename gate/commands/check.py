"""`gate check` and `gate promote`: gather evidence, decide, report, maybe promote."""
from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Sequence

from gate import contract
from gate.commands import errors
from gate.commands.reportlines import model_lines, trust_lines
from gate.delivery import deliver
from gate.delivery.verdict_json import Facts, verdict_document
from gate.evidence import binding
from gate.evidence import gather as evidence
from gate.evidence.modeldigest import ModelDigest
from gate.core.config import Config, ModelConfig
from gate.core.decide import Verdict, decide
from gate.core.domain import Champion, RunInfo
from gate.errors import GateError, InfraError
from gate.core.ports import Store
from gate.evidence.workdir import temp_dir
from gate.report.markdown import Context, render

if TYPE_CHECKING:
    from gate.sandbox import Pending

LOST_RACE = "lost_race"     # gate.status of a version registered but never promoted
# gate.status of a version registered and refused: its files changed after the check
MODEL_CHANGED = "refused_model_changed"
TREND_POINTS = 8
# The trend reads only the newest versions, so a long history costs one bounded
# search; every promotion registers one version, so the last TREND_POINTS promoted
# ones are among these unless most newer versions were registered outside the gate.
TREND_LOOKBACK = 4 * TREND_POINTS


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    promoted_version: str | None
    promote_error: InfraError | None
    forced: bool = False        # promoted over a failed verdict, with a reason

    @property
    def exit_code(self) -> int:
        if self.promote_error is not None:
            return self.promote_error.exit_code
        if self.forced and self.promoted_version:
            return 0
        if self.verdict.status == "error":
            return 2
        return 0 if self.verdict.passed else 1


def run_gate(registry: Store, config: Config, run_id: str, *, promote: bool,
             targets: deliver.Targets, force_reason: str | None = None,
             override_hint: str = "", against: str | None = None,
             model_id: str | None = None, warnings: Sequence[str] = (),
             warm: Pending | None = None) -> Outcome:
    """Judge one run (or, with `model_id`, a logged model) against the champion (or the
    `against` baseline, never promoted); promote when asked and allowed. `warnings`:
    what the command line found wrong before, first in the report and in its notes.
    `warm`: the candidate's sandbox, started already (gate.evidence.warm)."""
    deliver.preflight(targets)      # an unwritable output fails before any work
    candidate = registry.logged_model(model_id) if model_id else registry.run(run_id)
    missing: str | None = None
    early: list[str] = []
    champion: Champion | None
    if against:
        champion = registry.baseline(config.model.name, against)
    else:
        champion, missing, early = _champion_trouble(registry, config,
                                                     registry.champion(config.model))
    gathered = evidence.gather(registry, config, candidate, champion, missing, warm)
    verdict = decide(config, replace(gathered.evidence, promoting=promote and not against))
    forced = force_reason is not None and not verdict.passed
    notes = [*warnings, *early, *gathered.notes]
    history = trend(registry, config, champion) if not against else []

    promoted, promote_error = None, None
    if promote and (verdict.passed or forced):
        promotion = promote_gathered(registry, config, candidate, champion, verdict,
                                     reason=force_reason, forced=forced, gathered=gathered)
        promoted, promote_error = promotion.version, promotion.error
        notes.extend(promotion.notes)
        if promote_error is not None:
            notes.append(f"promotion failed, nothing was promoted: {promote_error}")
    if forced and promoted:
        notes.append(f"forced promotion over a {verdict.status} verdict; reason: "
                     f"{force_reason}")

    ctx = Context(model_name=config.model.name, alias=config.model.alias,
                  tracking_uri=registry.uri, candidate=candidate, champion=champion,
                  promote_requested=promote, promoted_version=promoted,
                  commit=_commit(candidate), notes=notes, eval_rows=gathered.eval_rows,
                  trend=history, config=config,
                  override_hint=override_hint,
                  trust_notes=[*(f"⚠️ {w}" for w in warnings), *trust_lines(gathered)],
                  models=model_lines(gathered, champion),
                  local=os.environ.get("GITHUB_ACTIONS") != "true")
    report = render(verdict, ctx)
    outcome = Outcome(verdict, promoted, promote_error, forced=forced)
    error = _error_message(verdict, promote_error)
    data = verdict_document(verdict, Facts(
        model_name=config.model.name, exit_code=outcome.exit_code,
        candidate_model_id=candidate.model_id,
        error=errors.error_line(error) if error else None, promoted_version=promoted,
        candidate_run_name=candidate.name or None,
        notes=tuple(notes), eval_rows=gathered.eval_rows, data_changed=gathered.data_changed,
        forced=bool(forced and promoted),
        champion_found_by=champion.found_by if champion else None, champion_missing=missing,
        candidate_model=gathered.candidate.as_json(),
        champion_model=gathered.champion.as_json() if gathered.champion else None,
        eval_set=gathered.rows.as_json() if gathered.rows else None))
    deliver.deliver(report, verdict, config.model.name, targets, data)
    if error:
        errors.print_error(error)      # the CLI's one line, redacted like every error
    return outcome


def _error_message(verdict: Verdict, promote_error: InfraError | None) -> str | None:
    """What went wrong, when something did: the promotion, or the first metric that
    could not be judged."""
    if promote_error is not None:
        return str(promote_error)
    if verdict.status == "error":
        first = verdict.errors[0]
        return f"{first.name}: {first.reason}"
    return None


def _champion_trouble(registry: Store, config: Config, champion: Champion | None
                      ) -> tuple[Champion | None, str | None, list[str]]:
    """The champion to compare with, why it is missing if it should be there, and notes
    for the report: a vanished alias, a champion whose run was garbage-collected."""
    if champion is None:
        missing = registry.missing_champion(config.model)
        if missing is None:
            return None, None, []
        then = ("blocked: [model] on_missing_champion = \"block\"; point the alias at a "
                "version (`gate promote --version N --force --reason TEXT`)"
                if config.model.on_missing_champion == "block" else
                "judged as a first model ([model] on_missing_champion = \"first_model\")")
        return None, missing, [f"{missing}; {then}"]
    if not champion.run_deleted:
        return champion, None, []
    # the metrics the champion was promoted with stand in for its run's
    recorded = metrics_from_tag(champion.tags.get(contract.V_METRICS))
    run = replace(champion.run, metrics=recorded)
    return replace(champion, run=run), None, [
        f"champion v{champion.version}'s run {champion.run.run_id} no longer exists "
        f"(deleted and garbage-collected): compared with the metrics recorded when it "
        f"was promoted{'' if recorded else ' (none were recorded)'}"]


@dataclass(frozen=True)
class Promotion:
    version: str | None             # None: nothing promoted (already Production, or failed)
    error: InfraError | None = None     # why the promotion failed; nothing was promoted
    notes: tuple[str, ...] = ()


def promote_run(registry: Store, config: Config, candidate: RunInfo,
                champion: Champion | None, verdict: Verdict, *, reason: str | None,
                forced: bool, gathered: evidence.Gathered | None = None) -> str | None:
    """Register the run and move Production to it; None if it already is Production.
    InfraError if the store refused, or Production moved meanwhile."""
    promotion = promote_gathered(registry, config, candidate, champion, verdict,
                                 reason=reason, forced=forced, gathered=gathered)
    if promotion.error is not None:
        raise promotion.error
    return promotion.version


def promote_gathered(registry: Store, config: Config, candidate: RunInfo,
                     champion: Champion | None, verdict: Verdict, *, reason: str | None,
                     forced: bool, gathered: evidence.Gathered | None) -> Promotion:
    """`promote_run`, with a failure returned beside the notes made on the way."""
    notes: tuple[str, ...] = ()
    try:
        version = _register(registry, config.model, candidate, champion)
        if version is None:
            return Promotion(None)
        tags = _decision_tags(candidate, champion, verdict, reason, forced)
        digest = gathered.candidate.digest if gathered is not None else None
        if gathered is not None:
            evidence_tags, notes = _evidence_tags(registry, candidate, gathered)
            tags.update(evidence_tags)
        if digest is not None:
            tags.update(binding.version_tags(digest))
        _move(registry, config.model, version, champion.version if champion else None, tags,
              digest)
    except InfraError as exc:
        return Promotion(None, exc, notes)
    return Promotion(version, None, notes)


def _register(registry: Store, model: ModelConfig, candidate: RunInfo,
              champion: Champion | None) -> str | None:
    """The candidate's version, registered if need be; None if it is Production."""
    if champion is not None and _holds(champion, candidate):
        return None
    expected = champion.version if champion else None
    # cheap re-read first, so a lost race creates no version at all
    registry.promotions.check_unchanged(model, expected)
    version = registry.promotions.register(model.name, candidate)
    return None if expected == version else version


def _holds(champion: Champion, candidate: RunInfo) -> bool:
    """Whether the champion is the candidate's model (the same run, for a version
    registered from a run's path)."""
    source = champion.source
    held = source.removeprefix("models:/") if source.startswith("models:/m-") else \
        champion.run.model_id
    if held and candidate.model_id:
        return held == candidate.model_id
    return bool(candidate.run_id) and champion.run.run_id == candidate.run_id


def _decision_tags(candidate: RunInfo, champion: Champion | None, verdict: Verdict,
                   reason: str | None, forced: bool) -> dict[str, str]:
    expected = champion.version if champion else None
    tags = {contract.V_STATUS: "forced" if forced else verdict.status,
            contract.V_CHAMPION: expected or "none",
            contract.V_COMMIT: _commit(candidate) or "unknown",
            contract.V_ACTOR: actor(), contract.V_METRICS: _metrics_tag(candidate.metrics)}
    if reason:
        tags[contract.V_REASON] = reason[:500]
    return tags


class ModelChanged(InfraError):
    """The candidate's files changed between the check and its promotion."""


def _move(registry: Store, model: ModelConfig, version: str, expected: str | None,
          tags: Mapping[str, str], digest: ModelDigest | None = None) -> None:
    try:
        with registry.promotions.promotion_lock(model.name):
            if digest is not None:
                _same_bytes(registry, model.name, version, digest)
            registry.promotions.move_champion(model, version, expected, tags)
    except InfraError as exc:
        _mark_lost(registry, model.name, version, exc)
        raise


def _same_bytes(registry: Store, name: str, version: str, digest: ModelDigest) -> None:
    """Just before the alias moves: the version's files, read again, are byte for byte
    those the check judged (a trainer with EDIT on the experiment can rewrite them)."""
    from pathlib import Path

    with temp_dir() as tmp:
        try:
            changed = binding.changed_since(registry, name, version, digest, Path(tmp))
        except InfraError:
            raise
        except GateError as exc:
            raise ModelChanged(f"{name} v{version}'s model files cannot be read again "
                               f"before promotion ({exc}); nothing was promoted") from None
    if changed:
        raise ModelChanged(f"{name} v{version}'s model files changed since the check: "
                           f"{', '.join(changed)[:400]}; nothing was promoted, re-run the "
                           "gate on the files as they are now")


def _mark_lost(registry: Store, name: str, version: str, why: InfraError) -> None:
    """Tag a version registered for this promotion and never promoted (a lost race, a
    lease held by another, files changed since the check), so nobody mistakes it for a
    gated champion. A version that was Production before keeps its own history."""
    status = MODEL_CHANGED if isinstance(why, ModelChanged) else LOST_RACE
    with contextlib.suppress(GateError):
        if contract.V_PROMOTED_AT in registry.version(name, version).tags:
            return
        registry.promotions.tag_version(name, version, {
            contract.V_STATUS: status, contract.V_LOST_REASON: str(why)[:500]})


def _evidence_tags(registry: Store, candidate: RunInfo, gathered: evidence.Gathered
                   ) -> tuple[dict[str, str], tuple[str, ...]]:
    """What the next check needs to trust about this version: the rows it was judged
    on, and the gate's own predictions of it on them (uploaded here, vouched for by
    the digest in the version's tags, which only the promoter can write)."""
    tags = {contract.V_VERIFIED: "true" if gathered.candidate.verified else "false"}
    if gathered.candidate.flavor:
        tags[contract.V_FLAVOR] = gathered.candidate.flavor
    rows = gathered.rows
    if rows is None:
        return tags, ()
    tags[contract.V_EVAL_SHA] = rows.sha256
    if rows.uri and rows.target:
        tags.update({contract.V_EVAL_URI: rows.uri, contract.V_EVAL_TARGET: rows.target})
    cache = gathered.cache
    if cache is None:
        return tags, ()
    if not candidate.run_id:    # a logged model with no run: nowhere the promoter owns
        return tags, ("the gate's predictions of this version were not kept (a logged "
                      "model with no run has nowhere to keep them): the next check scores "
                      "it again",)
    from pathlib import Path

    with temp_dir() as tmp:
        local = Path(tmp, Path(contract.CACHED_PREDICTIONS).name)
        local.write_bytes(cache.data)
        try:
            registry.artifacts.log_file(candidate.run_id, local, contract.FOLDER)
        except InfraError as exc:
            return tags, (f"the gate's predictions of this version were not kept "
                          f"(the next check scores it again): {exc}",)
    tags[contract.V_PREDICTIONS_SHA] = cache.sha256
    return tags, ()


def trend(registry: Store, config: Config,
          champion: Champion | None) -> list[tuple[str, float]]:
    """The primary metric of the last Production versions (among the newest
    TREND_LOOKBACK), oldest first."""
    if champion is None:
        return []
    primary = config.primary_metric
    points: dict[int, float] = {}
    for info in registry.versions(config.model.name, newest=TREND_LOOKBACK):
        if contract.V_PROMOTED_AT not in info.tags:
            continue
        value = metrics_from_tag(info.tags.get(contract.V_METRICS)).get(primary)
        if value is not None:
            points[int(info.version)] = value
    if int(champion.version) not in points and primary in champion.run.metrics:
        points[int(champion.version)] = champion.run.metrics[primary]
    latest = sorted(points)[-TREND_POINTS:]
    return [(f"v{v}", points[v]) for v in latest]


def actor(environ: Mapping[str, str] = os.environ) -> str:
    if environ.get("GITHUB_ACTOR"):
        return environ["GITHUB_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _commit(candidate: RunInfo) -> str | None:
    return candidate.tags.get("git.commit") or candidate.tags.get(
        "mlflow.source.git.commit") or os.environ.get("GITHUB_SHA") or None


def _metrics_tag(metrics: Mapping[str, float]) -> str:
    finite = {k: round(v, 6) for k, v in metrics.items() if v == v and abs(v) != float("inf")}
    return json.dumps(finite, sort_keys=True)[:4000]


def metrics_from_tag(raw: str | None) -> dict[str, float]:
    """The metrics a version's gate.metrics tag recorded; {} for anything else.

    Anyone with EDIT on the model can write that tag, and every later `check` and
    `status` reads it: a 400-digit integer, a 3,000-deep array or a 5,000-digit number
    must cost the reader nothing but the values it cannot use."""
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    values = {}
    for key, value in data.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                continue
            if math.isfinite(number):
                values[str(key)] = number
    return values
