"""The verdict bound to the bytes: the digest of a model's files, checked at promotion
and at every later use of the version (champion, cache, status, rollback, verify).

The digest function on real folders; the rest against the in-memory store with real
skops models, where a test rewrites a file the way a trainer with EDIT on the
experiment could.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gate import contract
from gate.commands import history
from gate.commands.check import MODEL_CHANGED, Outcome, run_gate
from gate.commands.verify import parse, verify
from gate.core import config as config_mod
from gate.delivery.deliver import Targets
from gate.errors import InputError
from gate.evidence import modeldigest
from gate.evidence.modeldigest import changed_files, digest_folder, files_from_tag, files_tag
from tests.memory_store import MemoryStore, as_store, diabetes_split, log_regressor

ROOT = Path(__file__).resolve().parent.parent
NAME = "diabetes-regressor"


# -- the digest -------------------------------------------------------------------

def write(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


FILES = {"MLmodel": b"flavors: {}\n", "model.skops": b"\x00" * 100, "data/extra.bin": b"x"}


def test_digest_is_independent_of_the_order_files_are_written(tmp_path: Path) -> None:
    one = digest_folder(write(tmp_path / "a", FILES))
    two = digest_folder(write(tmp_path / "b", dict(reversed(list(FILES.items())))))
    assert one == two and one.value.startswith("sha256:") and len(one.value) == 71
    assert [path for path, _ in one.files] == ["MLmodel", "data/extra.bin", "model.skops"]
    assert modeldigest.digest_files(dict(one.files)) == one


@pytest.mark.parametrize("change, expected", [
    ({"model.skops": b"\x00" * 99 + b"\x01"}, ["model.skops (changed)"]),
    ({"data/more.bin": b""}, ["data/more.bin (added)"]),
])
def test_a_changed_byte_or_an_added_file_changes_the_digest(
        tmp_path: Path, change: dict[str, bytes], expected: list[str]) -> None:
    before = digest_folder(write(tmp_path / "a", FILES))
    after = digest_folder(write(tmp_path / "b", {**FILES, **change}))
    assert after.value != before.value
    assert list(changed_files(dict(before.files), after)) == expected


def test_a_renamed_file_changes_the_digest(tmp_path: Path) -> None:
    before = digest_folder(write(tmp_path / "a", FILES))
    renamed = {("model2.skops" if k == "model.skops" else k): v for k, v in FILES.items()}
    after = digest_folder(write(tmp_path / "b", renamed))
    assert after.value != before.value
    assert list(changed_files(dict(before.files), after)) == ["model.skops (removed)",
                                                              "model2.skops (added)"]
    # the path is part of the canonical text: the same bytes under another name differ
    assert sorted(sha for _, sha in before.files) == sorted(sha for _, sha in after.files)


def test_the_file_list_tag_is_bounded_and_read_defensively(tmp_path: Path) -> None:
    digest = digest_folder(write(tmp_path / "a", FILES))
    tag = files_tag(digest)
    assert tag is not None and files_from_tag(tag) == {
        path: sha[:modeldigest.SHORT] for path, sha in digest.files}
    assert changed_files(files_from_tag(tag) or {}, digest) == ()
    many = modeldigest.digest_files({f"part-{i:05d}.bin": "0" * 64 for i in range(500)})
    assert files_tag(many) is None          # over 4000 characters: only the digest is kept
    for junk in ("", "[1]", "{", '{"a": 1}', "x" * 5000, "[" * 3000):
        assert files_from_tag(junk) is None


# -- against the in-memory store --------------------------------------------------

@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return diabetes_split()


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    return MemoryStore(tmp_path / "store")


@pytest.fixture
def cfg() -> config_mod.Config:
    return config_mod.load(ROOT / "gate.toml")


def fit(store: MemoryStore, data: dict[str, Any], alpha: float | None) -> Any:
    from sklearn.linear_model import LinearRegression, Ridge

    estimator = LinearRegression() if alpha is None else Ridge(alpha=alpha)
    return log_regressor(store, estimator, data["train"], data["eval"])


def check(store: MemoryStore, cfg: config_mod.Config, run_id: str, tmp_path: Path,
          promote: bool = True) -> tuple[Outcome, dict[str, Any]]:
    out = tmp_path / "verdict.json"
    outcome = run_gate(as_store(store), cfg, run_id, promote=promote,
                       targets=Targets(json_path=str(out)))
    return outcome, json.loads(out.read_text())


def model_dir(store: MemoryStore, version: str) -> Path:
    return Path(store.model_location(NAME, version) or "")


def swap_model(store: MemoryStore, version: str, source: str) -> None:
    """Overwrite a version's model.skops with another version's (a valid model)."""
    shutil.copyfile(model_dir(store, source) / "model.skops",
                    model_dir(store, version) / "model.skops")


def run_verify(store: MemoryStore, reference: str, tmp_path: Path) -> tuple[int, str, dict]:
    out = io.StringIO()
    path = tmp_path / "verify.json"
    code = verify(as_store(store), reference, out, str(path))
    return code, out.getvalue(), json.loads(path.read_text())


def test_promotion_records_the_digest_of_every_file(store: MemoryStore, data: dict[str, Any],
                                                    cfg: config_mod.Config,
                                                    tmp_path: Path) -> None:
    run = fit(store, data, 1.0)
    write(Path(store.logged_model_location(run.model_id) or ""),
          {"extra/notes.txt": b"any file of the folder counts"})
    outcome, verdict = check(store, cfg, run.run_id, tmp_path)
    assert outcome.exit_code == 0 and outcome.promoted_version == "1"
    digest = digest_folder(model_dir(store, "1"))
    tags = store.version(NAME, "1").tags
    assert tags[contract.V_MODEL_SHA] == digest.value == verdict["candidate_model"]["digest"]
    assert set(json.loads(tags[contract.V_MODEL_FILES])) == {
        "MLmodel", "model.skops", "extra/notes.txt"}

    code, line, document = run_verify(store, f"models:/{NAME}@production", tmp_path)
    assert code == 0 and line.startswith(f"verified: {NAME} v1 files match sha256:")
    assert "(promoted by the gate at " in line and document["verified"] is True
    assert run_verify(store, f"models:/{NAME}/1", tmp_path)[0] == 0


def test_a_model_changed_between_check_and_promotion_is_refused(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    worse = fit(store, data, 50.0)
    better = fit(store, data, None)
    folder = Path(store.logged_model_location(better.model_id or "") or "")
    # after the check judged the good model, the trainer swaps in the worse one
    store.promotions.on_lock = lambda: shutil.copyfile(
        Path(store.logged_model_location(worse.model_id or "") or "") / "model.skops",
        folder / "model.skops")
    outcome, verdict = check(store, cfg, better.run_id, tmp_path)
    assert outcome.exit_code == 3 and verdict["exit_code"] == 3
    assert outcome.promoted_version is None and verdict["promoted_version"] is None
    assert "model files changed since the check: model.skops (changed)" in verdict["error"]
    assert store.champion_version(cfg.model) == "1"
    refused = store.version(NAME, "2").tags
    assert refused[contract.V_STATUS] == MODEL_CHANGED
    assert contract.V_PROMOTED_AT not in refused
    assert run_verify(store, f"models:/{NAME}/2", tmp_path)[0] == 1


def test_a_champion_whose_files_changed_stops_the_check(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    junk = fit(store, data, 500.0)
    shutil.copyfile(Path(store.logged_model_location(junk.model_id or "") or "") /
                    "model.skops", model_dir(store, "1") / "model.skops")
    # a worse candidate, blocked when checked honestly, must not pass against the junk
    with pytest.raises(InputError) as caught:
        check(store, cfg, fit(store, data, 50.0).run_id, tmp_path)
    line = str(caught.value)
    assert "\n" not in line and f"{NAME} v1's model files changed since the gate promoted " \
        "it: model.skops (changed)" in line
    assert store.champion_version(cfg.model) == "1" and len(store.versions(NAME)) == 1

    code, out, document = run_verify(store, f"models:/{NAME}@production", tmp_path)
    assert code == 1 and out.startswith("NOT verified: ") and "model.skops" in out
    assert document["verified"] is False and document["changed_files"] == [
        "model.skops (changed)"]

    out_status = io.StringIO()
    with pytest.raises(InputError, match="model.skops"):
        history.status(as_store(store), cfg, out_status, None)
    assert "CHANGED" in out_status.getvalue()


def test_without_a_file_list_the_line_says_the_digest_differs(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    del store.models[NAME].versions["1"].tags[contract.V_MODEL_FILES]
    (model_dir(store, "1") / "MLmodel").write_text(
        (model_dir(store, "1") / "MLmodel").read_text() + "\n")
    with pytest.raises(InputError, match="files differ from the digest recorded at promotion"):
        check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)


def test_a_champion_promoted_before_digests_keeps_working(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    tags = store.models[NAME].versions["1"].tags
    del tags[contract.V_MODEL_SHA], tags[contract.V_MODEL_FILES]
    outcome, verdict = check(store, cfg, fit(store, data, None).run_id, tmp_path)
    assert outcome.exit_code == 0 and outcome.promoted_version == "2"
    assert f"{NAME} v1 was promoted before the gate recorded model digests: its files are " \
        "not checked" in verdict["notes"]
    out = io.StringIO()
    assert history.status(as_store(store), cfg, out, str(tmp_path / "s.json")) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["versions"]
    assert [(r["version"], r["files"]) for r in rows] == [
        ("v2 ◀", "checked"), ("v1", "no digest")]
    code, line, _ = run_verify(store, f"models:/{NAME}/1", tmp_path)
    assert code == 1 and "has no model digest recorded by the gate" in line
    out = io.StringIO()
    assert history.rollback(as_store(store), cfg, None, out) == 0     # with a note
    assert "its files are not checked" in out.getvalue()


def test_status_marks_the_champion_checked_and_others_by_their_tag(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    out = io.StringIO()
    assert history.status(as_store(store), cfg, out, str(tmp_path / "s.json")) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["versions"]
    assert [(r["version"], r["files"]) for r in rows] == [("v2 ◀", "checked"), ("v1", "digest")]
    assert "files" in out.getvalue().splitlines()[2]


def test_rollback_to_a_tampered_version_is_refused(store: MemoryStore, data: dict[str, Any],
                                                   cfg: config_mod.Config,
                                                   tmp_path: Path) -> None:
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    check(store, cfg, fit(store, data, None).run_id, tmp_path)
    swap_model(store, "1", "2")
    with pytest.raises(InputError) as caught:
        history.rollback(as_store(store), cfg, "bad in prod", io.StringIO())
    assert str(caught.value).startswith("rollback refused, Production stays v2: "
                                        f"{NAME} v1's model files changed")
    assert "model.skops (changed)" in str(caught.value)
    assert store.champion_version(cfg.model) == "2"
    assert contract.V_ROLLED_BACK_AT not in store.version(NAME, "2").tags


@pytest.mark.parametrize("reference", ["diabetes-regressor", "models:/", "models:/x@",
                                       "models:/x/abc", "models:/@production", "runs:/x/model"])
def test_verify_refuses_a_bad_reference(reference: str) -> None:
    with pytest.raises(InputError, match="not a model reference"):
        parse(reference)


def test_verify_of_an_unknown_model_or_alias_is_bad_input(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config,
        tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        run_verify(store, "models:/nobody@production", tmp_path)
    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)
    with pytest.raises(InputError, match="has no alias 'staging'"):
        run_verify(store, f"models:/{NAME}@staging", tmp_path)
    with pytest.raises(InputError, match="version 7 not found"):
        run_verify(store, f"models:/{NAME}/7", tmp_path)
    assert parse("models:/a/b@champion").name == "a/b"


def test_status_says_when_the_champions_files_cannot_be_read(
        store: MemoryStore, data: dict[str, Any], cfg: config_mod.Config, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gate.errors import InfraError

    check(store, cfg, fit(store, data, 1.0).run_id, tmp_path)

    def refused(location: str) -> list[Any]:
        raise InfraError("S3 bucket 'models': access denied (HTTP 403)")

    monkeypatch.setattr(store.artifacts, "list_files", refused)
    out = io.StringIO()
    # the table comes from the registry alone: it is still shown, the mark says why not
    assert history.status(as_store(store), cfg, out, str(tmp_path / "s.json")) == 0
    rows = json.loads((tmp_path / "s.json").read_text())["versions"]
    assert rows[0]["files"] == "not checked"
    assert "v1's model files were not checked: S3 bucket 'models': access denied" \
        in out.getvalue()
    with pytest.raises(InfraError):     # verify and rollback need the files: exit 3
        run_verify(store, f"models:/{NAME}@production", tmp_path)
