"""Property-based tests: the config loader never crashes on any input, and untrusted
text always renders as one inert code span in one table cell."""
from __future__ import annotations

import html
import re

import cmarkgfm
from cmarkgfm.cmark import Options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.core import config
from gate.report import markdown as report
from gate.errors import ConfigError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

KEYS = st.sampled_from(["name", "alias", "stage", "policy", "confidence", "resamples", "seed",
                        "direction", "min", "max", "tolerance", "tolerance_rel", "required",
                        "trusted_types", "primary_metric", "bogus"])
SCALARS = st.one_of(st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["lower", "higher", "point", "significant",
                                     "non_inferiority", "", "x"]),
                    st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3))


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).encode("unicode_escape").decode().replace('"', '\\"') + '"'


TABLES = st.fixed_dictionaries({}, optional={
    "model": st.dictionaries(KEYS, SCALARS, max_size=4),
    "compare": st.dictionaries(KEYS, SCALARS, max_size=4),
    "metrics": st.dictionaries(st.sampled_from(["rmse", "r2", "mae"]),
                               st.dictionaries(KEYS, SCALARS, max_size=5), max_size=3),
    "extra": st.dictionaries(KEYS, SCALARS, max_size=2),
})


def to_toml(data: dict) -> str:
    lines = []
    for table, body in data.items():
        if table == "metrics":
            for metric, rules in body.items():
                lines.append(f"[metrics.{metric}]")
                lines += [f"{k} = {toml_value(v)}" for k, v in rules.items()]
        else:
            lines.append(f"[{table}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(TABLES)
def test_config_loader_returns_a_config_or_a_config_error(data: dict) -> None:
    text = to_toml(data)
    try:
        cfg = config.parse(text, "prop.toml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("prop.toml: ") and "\n" not in message
        return
    # what loads is usable: finite numbers, known policy and directions, metrics present
    assert cfg.metrics and cfg.compare.policy in config.POLICIES
    for rule in cfg.metrics:
        assert rule.direction in config.DIRECTIONS
        assert rule.allowance(1.0) >= 0


@SETTINGS
@given(st.text(max_size=300))
def test_config_loader_survives_any_text(text: str) -> None:
    try:
        config.parse(text, "any.toml")
    except ConfigError:
        pass


CELL = re.compile(r"<td>(.*?)</td>", re.S)


@SETTINGS
@given(st.text(max_size=400))
def test_untrusted_text_is_one_inert_code_span_in_one_cell(text: str) -> None:
    markdown = f"| a | b |\n|--|--|\n| {report.untrusted(text)} | end |\n"
    out = cmarkgfm.github_flavored_markdown_to_html(markdown,
                                                    options=Options.CMARK_OPT_UNSAFE)
    cells = CELL.findall(out)
    assert len(cells) == 2 and cells[1] == "end"
    assert re.fullmatch(r"<code>[^<]*</code>", cells[0]), cells[0]
    shown = html.unescape(cells[0][len("<code>"):-len("</code>")])
    clean = re.sub(r"\s+", " ", report._CONTROL.sub(" ", text)).strip()
    if len(clean) < report.MAX_UNTRUSTED - 1:
        assert re.sub(r"\s+", " ", shown).strip() == clean
