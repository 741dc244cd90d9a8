"""The evaluation contract: what a trainer logs so the gate can compare its model.

Public and versioned. `train_model.py`, the gate and any user's trainer spell these
names from here and nowhere else; `gate.log_evaluation` writes them. A run that
follows no contract at all is still gated, on its logged metrics.

Layout of one run's evaluation (all under the artifact folder `gate/`):

    gate/evaluation.json    manifest: contract version, task, target, classes, columns
    gate/eval.parquet       the eval rows: features (optional), the label, optional row id
    gate/predictions.parquet  per-row `prediction`, and `proba:<class>` columns where the
                            task has class probabilities, in the eval rows' order

Contract 0 is the CSV layout the reference trainer logged before: still read.
"""
from __future__ import annotations

VERSION = 1

# -- artifacts (paths inside a run's artifact root) -------------------------------
FOLDER = "gate"
MANIFEST = "gate/evaluation.json"
EVAL_ROWS = "gate/eval.parquet"
PREDICTIONS = "gate/predictions.parquet"
# contract 0 (before 2026-12): the reference trainer's CSV files
LEGACY_EVAL_ROWS = "gate/eval_rows.csv"
LEGACY_PREDICTIONS = "gate/predictions.csv"
# written by the promoter only: the gate's own predictions of a promoted version on
# its eval rows, reused when the version's tags vouch for their digest
CACHED_PREDICTIONS = "gate/verified_predictions.parquet"

PREDICTION_COLUMN = "prediction"
PROBA_PREFIX = "proba:"
ROW_ID_COLUMN = "row_id"

# -- tasks ----------------------------------------------------------------------
REGRESSION = "regression"
BINARY = "binary"
MULTICLASS = "multiclass"
TASKS = (REGRESSION, BINARY, MULTICLASS)

# -- run tags (written by the trainer: claims, never trusted for the verdict) -----
TAG_CONTRACT = "gate.contract"
TAG_TASK = "gate.task"
TAG_TARGET = "gate.target"
TAG_EVAL_ROWS = "gate.eval_rows"
TAG_EVAL_DIGEST = "gate.eval_digest"
TAG_DATA_DIGEST = "gate.data_digest"
TAG_DATA_SOURCE = "gate.data_source"
TAG_DVC_MD5 = "dvc.md5"
TAG_COMMIT = "git.commit"
TAG_BRANCH = "git.branch"
# any run logged by CI carries this (prune recognises CI runs by it)
TAG_CI = "gate.ci"

# -- model version tags (written by the promoter: only it can, so they are trusted) -
V_STATUS = "gate.status"
V_CHAMPION = "gate.champion_version"
V_COMMIT = "gate.commit"
V_ACTOR = "gate.actor"
V_REASON = "gate.reason"
V_METRICS = "gate.metrics"
V_PROMOTED_AT = "gate.promoted_at"
V_LOST_REASON = "gate.lost_reason"      # registered, then lost the race to promote
# where this version's eval rows live, their label column and what they hash to: the
# next candidate is compared on these rows, and a changed file is caught
V_EVAL_URI = "gate.eval_uri"
V_EVAL_TARGET = "gate.eval_target"
V_EVAL_SHA = "gate.eval_sha256"
# the digest of CACHED_PREDICTIONS in the version's own run
V_PREDICTIONS_SHA = "gate.predictions_sha256"
V_FLAVOR = "gate.flavor"
# "true" / "false": whether the gate computed the version's predictions itself (sandbox)
V_VERIFIED = "gate.verified"
# the digest of every file of the version's model, checked at its promotion (sha256:
# over sorted `path<TAB>sha256` lines), and the files as {path: sha256[:16]} when that
# fits in a tag: every later use of the version checks its files against them
V_MODEL_SHA = "gate.model_sha256"
V_MODEL_FILES = "gate.model_files"
# written by rollback
V_RESTORED_FROM = "gate.restored_from"
V_ROLLED_BACK_AT = "gate.rolled_back_at"
V_ROLLBACK_REASON = "gate.rollback_reason"
V_ROLLED_BACK_BY = "gate.rolled_back_by"
# on the version a rollback restored: its promotion's own time and actor stay as they were
V_RESTORED_AT = "gate.restored_at"
V_RESTORED_BY = "gate.restored_by"
# registered-model tags: the promotion lease, and the last version the gate promoted
LOCK_TAG = "gate.lock"
M_CHAMPION = "gate.champion"

# -- the sealed holdout (`gate holdout publish`): a run of its own experiment, whose
# permissions let the gate's identity read it and a pull request's not
HOLDOUT_EXPERIMENT = "model-gate-holdout"
HOLDOUT_FOLDER = "holdout"
TAG_HOLDOUT_NAME = "gate.holdout.name"
TAG_HOLDOUT_TARGET = "gate.holdout.target"
TAG_HOLDOUT_SHA = "gate.holdout.sha256"     # set last: a run without it is unfinished

# -- caps: a hostile artifact must not hang or exhaust the gate --------------------
MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
MAX_COLUMNS = 4096
MAX_ROWS = 20_000_000
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_CLASSES = 1000
MAX_MODEL_FILES = 1000      # files and folders of one logged model
MAX_MODEL_BYTES = 2 * 1024 * 1024 * 1024    # all of one logged model's files together
