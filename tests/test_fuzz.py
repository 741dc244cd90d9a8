"""A fuzz harness: hypothesis generates configs, run and version tags and command lines,
and runs the real `main([...])` on a real local store with a promoted champion.

Whatever it generates, the gate must answer as README promises: an exit code of 0-3
that means what it says, no traceback and no "internal error" on stderr, a bounded
time per case, and Production unchanged unless the verdict passed (or a rollback or
forced promotion succeeded).

The eval-row and manifest readers are fuzzed on their own at the end (random bytes,
mutated and truncated Parquet and JSON: InputError or a result, nothing else); the
eval artifacts of a whole run are not generated here yet.
"""
from __future__ import annotations

import datetime as dt
import os
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from gate.commands.cli import main
from gate.contract import LOCK_TAG
from tests.conftest import store_rows_toml, train

T = TypeVar("T")
MODEL = "fuzz-model"
ALIAS = "production"
MAX_LINE = 1000
# hypothesis's own deadline bounds each case; examples are few, so the suite's share
# stays under a minute on the 2-core CI machine
# derandomized: CI runs the same cases every time; GATE_FUZZ_RANDOM=1 explores new ones
SETTINGS = settings(max_examples=20, deadline=dt.timedelta(seconds=30), database=None,
                    derandomize=os.environ.get("GATE_FUZZ_RANDOM") != "1",
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large],
                    print_blob=True)


@dataclass
class Store:
    home: Path
    uri: str
    champion_run: str
    candidate_run: str
    champion_tags: dict[str, str]
    candidate_tags: dict[str, str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Iterator[Store]:
    """One store for the module: v1 promoted, a second run as the usual candidate."""
    home = tmp_path_factory.mktemp("fuzz")
    shutil.copy(empty_store, home / "mlruns.db")
    uri = f"sqlite:///{home}/mlruns.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_EXPERIMENT_NAME", "fuzz")
        (home / "gate.toml").write_text(base_toml())
        champion = train("--n-estimators", "10")
        assert main(["check", "--run-id", champion, "--promote"]) == 0
        candidate = train("--n-estimators", "10", "--seed", "7")
        client = MlflowClient(uri)
        yield Store(home, uri, champion, candidate,
                    dict(client.get_model_version(MODEL, "1").tags),
                    dict(client.get_run(candidate).data.tags))


def base_toml(resamples: int = 200) -> str:
    return store_rows_toml().replace(
        'name = "diabetes-regressor"', f'name = "{MODEL}"').replace(
        "resamples = 2000", f"resamples = {resamples}")


# -- what is generated ----------------------------------------------------------------

HUGE = st.sampled_from(["9" * 400, "-" + "9" * 400, "9" * 5000, "1e400", "-1", "0", "nan",
                        "inf", "[" * 3000 + "]" * 3000, '"x"', "true", "[1, 2]", "{}"])
NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
                   st.integers(-10**6, 10**6).map(str), HUGE)
CONFIG_EDITS = st.lists(st.tuples(
    st.sampled_from(["confidence", "resamples", "seed", "max", "min", "tolerance",
                     "tolerance_rel", "policy", "on_missing_champion", "direction"]),
    st.one_of(NUMBER, st.sampled_from(['"point"', '"non_inferiority"', '"block"',
                                       '"first_model"', '"higher"', '"lower"', '""']))),
    max_size=3)


def edited_toml(edits: list[tuple[str, str]], raw: bytes | None) -> bytes:
    if raw is not None:
        return raw
    text = base_toml()
    for key, value in edits:
        if key in ("confidence", "resamples", "seed", "policy"):
            text = text.replace("[compare]\n", f"[compare]\n{key} = {value}\n", 1) \
                if f"\n{key} =" not in text.split("[metrics")[0] else \
                _replace_line(text, key, value)
        elif key == "on_missing_champion":
            text = text.replace('alias = "production"\n',
                                f'alias = "production"\n{key} = {value}\n', 1)
        else:
            text = text.replace('[metrics.rmse]\ndirection = "lower"\n',
                                f'[metrics.rmse]\ndirection = "lower"\n{key} = {value}\n', 1) \
                if key != "direction" else text.replace('direction = "lower"',
                                                        f"direction = {value}", 1)
    return text.encode()


def _replace_line(text: str, key: str, value: str) -> str:
    return "\n".join(f"{key} = {value}" if line.startswith(f"{key} =") else line
                     for line in text.split("\n"))


RAW_CONFIGS = st.one_of(st.none(), st.none(), st.none(), st.sampled_from([
    base_toml().encode() + b"\n# \xff\xfe not UTF-8\n",
    b"x = " + b"[" * 3000 + b"]" * 3000,
    b"[metrics]\n",
    b"\x00\x01binary",
]), st.binary(max_size=200))

TEXT = st.one_of(st.text(max_size=40), st.sampled_from([
    "²", "9" * 5000, "'; drop table --", "<script>alert(1)</script>", "a" * 4000,
    "@everyone [x](http://evil)", "\u202e\u0000\n\r", "none", "1", "-1", "abc"]))
RUN_TAGS = st.dictionaries(st.sampled_from([
    "gate.target", "gate.eval_digest", "gate.data_digest", "git.commit", "dvc.md5",
    "mlflow.source.git.commit", "git.branch", "github.pr", "gate.eval_rows", "gate.task",
    "gate.contract"]), st.one_of(TEXT, st.sampled_from(["²", "9" * 5000, "-1", "12"])),
    max_size=3)
METRICS_TAG = st.one_of(HUGE, TEXT, st.sampled_from([
    '{"rmse": ' + "9" * 400 + "}", '{"rmse": ' + "[" * 3000 + "]" * 3000 + "}",
    '{"rmse": 1e400, "r2": -1e400}', '{"rmse": "x", "mae": null}', '{"rmse": 50.0}']))
VERSION_TAGS = st.dictionaries(st.sampled_from([
    "gate.metrics", "gate.champion_version", "gate.status", "gate.commit",
    "gate.promoted_at", "gate.eval_sha256", "gate.eval_uri", "gate.eval_target",
    "gate.predictions_sha256", "gate.flavor"]),
    st.one_of(METRICS_TAG, st.sampled_from(["1", "2", "999", "none", "x", "/", "s3://nope/x",
                                            "file:///etc/passwd"])), max_size=3)

NAMES = st.sampled_from([MODEL, MODEL, MODEL, "a'b", "e'f\"g", "x" * 300, "", "nope"])
PATHS = st.sampled_from(["out.json", "/dev/full", ".", "missing/out.json", "-"])
RUN_IDS = st.sampled_from(["candidate", "candidate", "champion", "0" * 32, "junk",
                           "a" * 10_000, "", "../etc"])


@st.composite
def command(draw: st.DrawFn) -> list[str]:
    name = ["--model-name", draw(NAMES)]
    which = draw(st.sampled_from(["check", "check", "check", "promote", "rollback",
                                  "status"]))
    out = ["--json", draw(PATHS)] if draw(st.booleans()) else []
    if which == "check":
        extra = ["--promote"] if draw(st.booleans()) else []
        summary = ["--summary", draw(PATHS)] if draw(st.integers(0, 3)) == 0 else []
        maybe_name = name if draw(st.integers(0, 3)) == 0 else []
        return ["check", "--run-id", draw(RUN_IDS), *maybe_name, *extra, *out, *summary]
    if which == "promote":
        target = ["--run-id", draw(RUN_IDS)] if draw(st.booleans()) else \
            ["--version", draw(st.sampled_from(["1", "2", "0", "-1", "x", "9" * 400]))]
        force = ["--force", "--reason", draw(TEXT)] if draw(st.booleans()) else []
        return ["promote", *name, *target, *force, *out]
    if which == "rollback":
        return ["rollback", *name, "--reason", draw(TEXT)]
    return ["status", *name, *out]


# -- running one case -----------------------------------------------------------------

def _reset(store: Store, client: MlflowClient) -> None:
    """Production back on v1, v1's and the candidate's tags as they were, no lease."""
    client.set_registered_model_alias(MODEL, ALIAS, "1")
    model = client.get_registered_model(MODEL)
    if LOCK_TAG in (model.tags or {}):
        client.delete_registered_model_tag(MODEL, LOCK_TAG)
    now = client.get_model_version(MODEL, "1").tags
    for key in set(now) - set(store.champion_tags):
        client.delete_model_version_tag(MODEL, "1", key)
    for key, value in store.champion_tags.items():
        if now.get(key) != value:
            client.set_model_version_tag(MODEL, "1", key, value)
    now = client.get_run(store.candidate_run).data.tags
    for key in set(now) - set(store.candidate_tags):
        client.delete_tag(store.candidate_run, key)
    for key, value in store.candidate_tags.items():
        if now.get(key) != value:
            client.set_tag(store.candidate_run, key, value)


def _production(client: MlflowClient) -> str | None:
    version = client.get_registered_model(MODEL).aliases.get(ALIAS)
    return None if version is None else str(version)


def _run_case(store: Store, capsys: pytest.CaptureFixture, config: bytes,
              run_tags: dict[str, str], version_tags: dict[str, str],
              argv: list[str]) -> None:
    client = MlflowClient(store.uri)
    _reset(store, client)
    (store.home / "gate.toml").write_bytes(config)
    for key, value in run_tags.items():
        client.set_tag(store.candidate_run, key, value[:5000])
    for key, value in version_tags.items():
        client.set_model_version_tag(MODEL, "1", key, value[:5000])
    runs = {"candidate": store.candidate_run, "champion": store.champion_run}
    argv = [runs.get(arg, arg) for arg in argv]
    Path(store.home, "out.json").unlink(missing_ok=True)
    before = _production(client)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:       # argparse: usage errors only
        code = exc.code if isinstance(exc.code, int) else 2
        assert code == 2
    err = capsys.readouterr().err
    assert code in (0, 1, 2, 3), code
    assert "Traceback" not in err and "internal error" not in err, err
    if code >= 2:
        assert any(line.startswith("gate: error: ") for line in err.splitlines()), err
    # whatever was echoed, an error line stays a line (a 10 KB run id included)
    assert all(len(line) <= MAX_LINE for line in err.splitlines()), err[:300]
    verdict = _verdict(store.home / "out.json") if argv[0] == "check" else None
    if verdict is not None:
        expected = {0: ("passed", "first_model"), 1: ("blocked",), 2: ("error",),
                    3: ("passed", "first_model", "blocked", "error")}[code]
        assert verdict["status"] in expected, (code, verdict["status"])
    # the lease is released on every way out
    assert LOCK_TAG not in (client.get_registered_model(MODEL).tags or {})
    after = _production(client)
    if after != before:     # Production moved: only a success that may move it
        assert code == 0, (code, err)
        assert argv[0] in ("promote", "rollback") or (
            "--promote" in argv and verdict is not None and verdict["passed"]), argv


def _verdict(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


CHECK = ["check", "--run-id", "candidate", "--json", "out.json"]
STATUS = ["status", "--model-name", MODEL, "--json", "out.json"]
DEEP = "[" * 3000 + "]" * 3000


def seed(config: bytes | None = None, argv: list[str] = CHECK, *,
         version_tags: dict[str, str] | None = None) -> Callable[[T], T]:
    """An explicit case, run first on every run: the issue-14 list, so the harness
    finds each of those bugs again if its fix is ever undone."""
    return example(config=base_toml().encode() if config is None else config, run_tags={},
                   version_tags=version_tags or {}, argv=argv)


def seeded(test: T) -> T:
    seeds = [
        seed(base_toml().encode() + b"\n# caf\xe9\n", STATUS),
        seed(edited_toml([("seed", "-1")], None)),
        seed(edited_toml([("tolerance", "9" * 400)], None)),
        seed(base_toml().replace("min = 0.2", "min = " + "9" * 400).encode()),
        seed(edited_toml([("seed", "9" * 5000)], None)),
        seed(b"x = " + DEEP.encode()),
        seed(version_tags={"gate.metrics": '{"rmse": ' + "9" * 400 + "}"}),
        seed(argv=STATUS, version_tags={"gate.metrics": '{"rmse": ' + "9" * 400 + "}"}),
        seed(argv=STATUS, version_tags={"gate.metrics": DEEP}),
        seed(argv=["status", "--model-name", MODEL, "--json", "/dev/full"]),
        seed(argv=["check", "--run-id", "candidate", "--promote", "--json", "/dev/full"]),
        seed(argv=["check", "--run-id", "candidate", "--promote", "--summary", "."]),
        seed(argv=["check", "--run-id", "a" * 10_000]),
    ]
    for decorate in seeds:
        test = decorate(test)
    return test


def test_fuzz_commands_tags_and_configs(store: Store, capsys: pytest.CaptureFixture) -> None:
    @SETTINGS
    @seeded
    @given(config=st.builds(edited_toml, CONFIG_EDITS, RAW_CONFIGS), run_tags=RUN_TAGS,
           version_tags=VERSION_TAGS, argv=command())
    def case(config: bytes, run_tags: dict[str, str], version_tags: dict[str, str],
             argv: list[str]) -> None:
        _run_case(store, capsys, config, run_tags, version_tags, argv)

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store.home)
        mp.setenv("MLFLOW_TRACKING_URI", store.uri)
        case()


def test_fuzz_a_valid_config_with_hostile_tags(store: Store,
                                               capsys: pytest.CaptureFixture) -> None:
    """Mostly valid configs and commands that reach the comparison and the promotion."""
    @settings(SETTINGS, max_examples=10)
    @given(run_tags=RUN_TAGS, version_tags=VERSION_TAGS,
           promote=st.booleans(), edits=CONFIG_EDITS.filter(lambda e: len(e) <= 1))
    def case(run_tags: dict[str, str], version_tags: dict[str, str], promote: bool,
             edits: list[tuple[str, str]]) -> None:
        argv = ["check", "--run-id", "candidate", "--json", "out.json"]
        _run_case(store, capsys, edited_toml(edits, None), run_tags, version_tags,
                  argv + (["--promote"] if promote else []))
        _run_case(store, capsys, edited_toml([], None), {}, version_tags,
                  ["status", "--model-name", MODEL, "--json", "out.json"])

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store.home)
        mp.setenv("MLFLOW_TRACKING_URI", store.uri)
        case()


QUOTED_NAMES = st.text(alphabet=st.sampled_from("ab'\"%_\\ -."), min_size=1, max_size=12) \
    .filter(lambda n: n.strip() == n and n not in (MODEL,))


def test_fuzz_model_names(store: Store, capsys: pytest.CaptureFixture) -> None:
    """Any name: promoting a run finds its one version again, and status shows it."""
    @settings(SETTINGS, max_examples=8)
    @example(name="a'b")
    @example(name="e'f\"g")
    @given(name=QUOTED_NAMES)
    def case(name: str) -> None:
        client = MlflowClient(store.uri)
        (store.home / "gate.toml").write_bytes(base_toml().encode())
        before = len(client.search_model_versions(f"run_id = '{store.candidate_run}'"))
        # `--model-name=NAME`: a name may start with "-", which argparse reads as a flag
        argv = ["check", "--run-id", store.candidate_run, f"--model-name={name}", "--promote",
                "--new-model"]
        codes = [main(argv), main(["promote", f"--model-name={name}",
                                   "--run-id", store.candidate_run])]
        err = capsys.readouterr().err
        assert "Traceback" not in err and "internal error" not in err, err
        if codes[0] == 2:       # a name MLflow refuses: nothing registered
            assert "gate: error: " in err
            return
        assert codes == [0, 0], err
        registered = [mv for mv in client.search_model_versions(
            f"run_id = '{store.candidate_run}'") if mv.name == name]
        assert len(registered) == 1, (name, before)
        assert main(["status", f"--model-name={name}"]) == 0
        production = client.get_registered_model(name).aliases[ALIAS]
        assert f"Production (@{ALIAS}) is v{production}" in capsys.readouterr().out

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(store.home)
        mp.setenv("MLFLOW_TRACKING_URI", store.uri)
        case()


# -- the eval-row and manifest readers, on their own (no store: fast) -----------------

def _valid_parquet() -> bytes:
    import io

    import pandas as pd

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "bb", "a"], "row_id": [1, 2, 3],
                          "target": [0.5, 1.5, 2.5], "prediction": [0.4, 1.4, 2.6]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


VALID_PARQUET = _valid_parquet()
VALID_MANIFEST = json.dumps({"contract": 1, "task": "regression", "target": "target",
                             "classes": [], "rows": 3}).encode()
MUTATIONS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8)


def _mutated(valid: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(valid)
    for where, value in edits:
        data[where % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


def _read_rows(path: Path) -> None:
    from gate.errors import InputError
    from gate.evidence import evalset

    for read in (lambda: evalset.inspect_table(path, "rows"),
                 lambda: evalset.eval_rows(path, "target", "rows"),
                 lambda: evalset.logged_predictions(path, 3, "predictions")):
        try:
            read()
        except InputError as exc:
            assert "\n" not in str(exc)


READER_SETTINGS = settings(max_examples=150, deadline=dt.timedelta(seconds=10),
                           database=None, derandomize=os.environ.get("GATE_FUZZ_RANDOM") != "1",
                           suppress_health_check=[HealthCheck.function_scoped_fixture])


@READER_SETTINGS
@given(edits=MUTATIONS, cut=st.one_of(st.none(), st.integers(0, len(VALID_PARQUET))),
       noise=st.one_of(st.none(), st.binary(max_size=2048)),
       suffix=st.sampled_from([".parquet", ".csv"]))
@example(edits=[], cut=None, noise=None, suffix=".parquet")
def test_fuzz_eval_rows_readers(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None,
                                noise: bytes | None, suffix: str) -> None:
    """Random bytes, mutated and truncated Parquet: InputError or rows, nothing else."""
    path = tmp_path / f"eval{suffix}"
    path.write_bytes(noise if noise is not None else _mutated(VALID_PARQUET, edits, cut))
    _read_rows(path)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


@READER_SETTINGS
@given(edits=MUTATIONS, document=st.one_of(st.none(), JSON, st.dictionaries(
    st.sampled_from(["contract", "task", "target", "classes", "rows"]), JSON)))
def test_fuzz_manifest_reader(tmp_path: Path, edits: list[tuple[int, int]],
                              document: object) -> None:
    from gate.errors import InputError
    from gate.evidence import evalset

    path = tmp_path / "evaluation.json"
    path.write_bytes(_mutated(VALID_MANIFEST, edits, None) if document is None
                     else json.dumps(document).encode())
    try:
        manifest = evalset.read_manifest(path, "manifest")
    except InputError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(manifest["target"], str) and manifest["task"]
