"""Which rows a comparison runs on: never rows the candidate picked alone.

The pinned `[eval] data` (read from the config's own checkout), else Production's eval
rows as recorded at its promotion and checked against their digest, else, for a first
model, the candidate's own (which the report says in its first lines, and which
`[eval] require` refuses). Runs' evaluations (the contract's Parquet files, or the CSV
ones of contract 0) are read here, bounded, and parsed only when a comparison needs
them; they are claims until checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gate import contract
from gate.evidence import evalset
from gate.core.config import Config
from gate.core.domain import Champion, RunInfo
from gate.errors import InfraError, InputError
from gate.core.ports import Store


class Fallback(Exception):
    """No paired comparison is possible on these rows; says why."""


@dataclass(frozen=True)
class Rows:
    """Which rows the comparison used, and what promotion records about them."""

    source: str                 # "pinned eval set ...", "Production v3's eval rows", ...
    count: int
    sha256: str
    uri: str = ""               # the rows file's artifact URI when they live in a run
    target: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.count, "sha256": self.sha256}


@dataclass(frozen=True)
class RunEvaluation:
    """What a run logged under the evaluation contract: claims, until checked.

    Downloaded and checked against the bounds from the files' metadata when it is made;
    its rows and predictions are parsed only when a comparison asks for them (a
    candidate judged on pinned or Production's rows and scored by the gate needs
    neither)."""

    rows_file: Path
    predictions_file: Path
    task: str
    uri: str                    # the rows file's artifact URI
    target: str
    rows_what: str              # "run abc: gate/eval.parquet", for messages
    predictions_what: str
    row_id: str | None = contract.ROW_ID_COLUMN
    classes: tuple[Any, ...] = ()
    logged_rows: int | None = None      # from the rows file's metadata, when it says

    @cached_property
    def rows(self) -> evalset.EvalRows:
        return evalset.eval_rows(self.rows_file, self.target, self.rows_what, self.row_id)

    @cached_property
    def predictions(self) -> evalset.LoggedPredictions:
        return evalset.logged_predictions(self.predictions_file, len(self.rows),
                                          self.predictions_what, self.classes)

    @cached_property
    def sha256(self) -> str:
        """The rows file's digest, without parsing it."""
        return evalset.sha256_file(self.rows_file)

    @property
    def count(self) -> int:
        return self.logged_rows if self.logged_rows is not None else len(self.rows)


@dataclass(frozen=True)
class Chosen:
    """The rows a comparison runs on, and what choosing them found out."""

    rows: Rows
    eval_rows: evalset.EvalRows
    notes: tuple[str, ...] = ()
    # the champion's own logged evaluation, when choosing the rows read it (a version
    # promoted before digests were recorded): its predictions may be needed next
    champion_eval: RunEvaluation | None = None


OWN_ROWS = "the candidate's own eval rows"


def require_unchosen(config: Config, champion: Champion | None,
                     champion_missing: str | None) -> None:
    """`[eval] require`: a candidate is never judged on rows it logged itself."""
    if not config.eval.require or config.eval.data or champion is not None:
        return
    if champion_missing and config.model.on_missing_champion == "block":
        return      # blocked anyway, and the report says why
    who = "the champion is gone" if champion_missing else "a first model"
    raise InputError(f"{config.source}: [eval] require = true, but {who} would be judged on "
                     "its own eval rows: pin rows no candidate trains on with [eval] data = "
                     '"FILE", target = "COL", digest = "sha256:..." (or set require = false)')


def chosen_rows(store: Store, config: Config, champion: Champion | None,
                cand_eval: RunEvaluation | None, work: Path) -> Chosen:
    if config.eval.stored:
        return _sealed_rows(store, config, work / "holdout")
    if config.eval.data:
        chosen = _pinned_rows(config)
        return Chosen(Rows(f"pinned eval set {config.eval.data}", len(chosen), chosen.sha256,
                           target=config.eval.target), chosen)
    if champion is not None:
        return _champion_rows(store, champion, work / "champion")
    if cand_eval is None:
        raise Fallback(f"the candidate run logged no evaluation ({contract.MANIFEST} or "
                       f"{contract.LEGACY_EVAL_ROWS}) and no [eval] data is pinned")
    return Chosen(Rows(OWN_ROWS, len(cand_eval.rows),
                       cand_eval.rows.sha256, cand_eval.uri, cand_eval.target), cand_eval.rows,
                  ("first model: its own eval rows are used (nothing to compare against)",))


def _pinned_rows(config: Config) -> evalset.EvalRows:
    path = config.eval.path(config.source)
    what = f"[eval] data {config.eval.data} (in {config.source})"
    if not path.is_file():
        raise InputError(f"{what}: file not found")
    rows = evalset.eval_rows(path, config.eval.target, what, config.eval.row_id or None)
    expected = config.eval.digest.removeprefix("sha256:")
    if expected and rows.sha256 != expected:
        raise InputError(f"{what}: content differs from eval.digest (sha256 {rows.sha256[:16]}"
                         f"... is not {expected[:16]}...)")
    return rows


def _sealed_rows(store: Store, config: Config, work: Path) -> Chosen:
    """`[eval] data` on the tracking server: the sealed holdout `gate holdout publish`
    stored (a `runs:/` URI), or any artifact URI. Read with the gate's credentials, which
    a pull request's trainer does not hold, and checked against the digest, which the
    config requires for these."""
    uri = config.eval.data
    name = uri.rpartition("/")[2]
    what = f"[eval] data {uri} (in {config.source})"
    parent = uri.rpartition("/")[0]
    label = f"eval set {name}"
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        if not run_id or not path.strip("/"):
            raise InputError(f"{what}: a runs:/ URI is runs:/<run_id>/<path to the file>")
        try:
            run = store.run(run_id)
        except InfraError as exc:
            if "HTTP 403" not in str(exc):
                raise
            raise InfraError(f"{exc}: the sealed holdout is read by the gate's own user "
                             "(ci-gate or ci-promoter), never by the trainer's") from None
        parent = f"{run.artifact_uri.rstrip('/')}/{path.rpartition('/')[0]}".rstrip("/")
        label = f"sealed holdout {run.tags.get(contract.TAG_HOLDOUT_NAME) or name}"
    if store.artifacts.fetch(parent, (name,), str(work)) is None:
        raise InputError(f"{what}: not found on the tracking server")
    rows = evalset.eval_rows(work / name, config.eval.target, what, config.eval.row_id or None)
    expected = config.eval.digest.removeprefix("sha256:")
    if rows.sha256 != expected:
        raise InputError(f"{what}: content differs from eval.digest (sha256 {rows.sha256[:16]}"
                         f"... is not {expected[:16]}...)")
    # the report's first lines say "Eval rows: sealed holdout NAME, N rows"
    return Chosen(Rows(label, len(rows), rows.sha256, target=config.eval.target), rows)


def _champion_rows(store: Store, champion: Champion, work: Path) -> Chosen:
    """Production's eval rows: those recorded at its promotion, checked against their
    digest; for a version promoted before digests were recorded, its run's own."""
    tags = champion.tags
    label = champion.label
    # `--against` names a baseline that need not be Production, nor ever promoted
    production = champion.found_by in ("alias", "stage")
    whose = f"Production {label}" if production else label
    recorded_uri, recorded_sha = tags.get(contract.V_EVAL_URI), tags.get(contract.V_EVAL_SHA)
    target = tags.get(contract.V_EVAL_TARGET, "")
    if recorded_uri and recorded_sha and target:
        parent, _, name = recorded_uri.rpartition("/")
        what = f"{label}'s eval rows ({name})"
        if store.artifacts.fetch(parent, (name,), str(work)) is None:
            # e.g. its run deleted and garbage-collected: nothing left to pair on
            raise Fallback(f"{what} recorded at its promotion are gone")
        rows = evalset.eval_rows(work / name, target, what)
        if rows.sha256 != recorded_sha:
            raise InputError(f"{what} changed after its promotion (sha256 {rows.sha256[:12]}"
                             f"... is not the recorded {recorded_sha[:12]}...): refusing to "
                             "compare on them; pin [eval] data, or promote again")
        return Chosen(Rows(f"{whose}'s eval rows", len(rows), rows.sha256,
                           recorded_uri, target), rows)
    logged = run_evaluation(store, champion.run, work, f"{label}'s run")
    if logged is None:
        raise Fallback(f"{label} logged no eval rows and no [eval] data is pinned")
    promoted = production or contract.V_PROMOTED_AT in tags
    notes = (f"{whose}'s eval rows are not tamper-evident: it was promoted before the gate "
             "recorded their digest",) if promoted else ()
    return Chosen(Rows(f"{whose}'s eval rows (unchecked)", len(logged.rows),
                       logged.rows.sha256, logged.uri, logged.target), logged.rows, notes,
                  champion_eval=logged)


def rows_differ(chosen: evalset.EvalRows, cand_eval: RunEvaluation | None,
                rows: Rows) -> list[str]:
    if cand_eval is None or cand_eval.sha256 == chosen.sha256:
        return []
    return [f"eval set differs: the candidate logged {cand_eval.count} eval rows; the gate "
            f"compared on {rows.source} ({rows.count} rows) and ignored the candidate's"]


def run_evaluation(store: Store, run: RunInfo, work: Path,
                   label: str) -> RunEvaluation | None:
    """The evaluation a run logged under the contract (or contract 0), or None: its
    files downloaded and checked from their metadata, parsed later if need be."""
    base = run.artifact_uri.rstrip("/")
    if store.artifacts.fetch(base, (contract.MANIFEST,), str(work)) is not None:
        manifest = evalset.read_manifest(work / contract.MANIFEST,
                                         f"{label}: {contract.MANIFEST}")
        files = (contract.EVAL_ROWS, contract.PREDICTIONS)
        if store.artifacts.fetch(base, files, str(work)) is None:
            raise InputError(f"{label}: {contract.MANIFEST} is there but "
                             f"{' or '.join(files)} is missing")
        return _checked(RunEvaluation(
            work / contract.EVAL_ROWS, work / contract.PREDICTIONS, manifest["task"],
            f"{base}/{contract.EVAL_ROWS}", manifest["target"],
            f"{label}: {contract.EVAL_ROWS}", f"{label}: {contract.PREDICTIONS}",
            classes=tuple(manifest.get("classes", []))))
    target = run.tags.get(contract.TAG_TARGET)
    if not target:
        return None
    legacy = (contract.LEGACY_EVAL_ROWS, contract.LEGACY_PREDICTIONS)
    if store.artifacts.fetch(base, legacy, str(work)) is None:
        return None
    return _checked(RunEvaluation(
        work / contract.LEGACY_EVAL_ROWS, work / contract.LEGACY_PREDICTIONS,
        contract.REGRESSION, f"{base}/{contract.LEGACY_EVAL_ROWS}", target,
        f"{label}: {contract.LEGACY_EVAL_ROWS}", f"{label}: {contract.LEGACY_PREDICTIONS}",
        row_id=None))


def _checked(logged: RunEvaluation) -> RunEvaluation:
    """What the files' metadata can tell without parsing them: their shape within the
    bounds, the label and prediction columns, as many predictions as rows."""
    from dataclasses import replace

    rows, columns = evalset.inspect_table(logged.rows_file, logged.rows_what)
    if rows == 0:
        raise InputError(f"{logged.rows_what}: has no rows")
    if columns and logged.target not in columns:
        raise InputError(f"{logged.rows_what}: has no label column {logged.target[:100]!r}")
    count, names = evalset.inspect_table(logged.predictions_file, logged.predictions_what)
    if names and contract.PREDICTION_COLUMN not in names:
        raise InputError(f"{logged.predictions_what}: has no "
                         f"{contract.PREDICTION_COLUMN!r} column")
    if rows is not None and count is not None and count != rows:
        raise InputError(f"{logged.predictions_what}: {count} predictions for {rows} "
                         "eval rows")
    return replace(logged, logged_rows=rows)
