"""Problems name the value they are about, short, and never a secret (bridge.config.quoting)."""

# ruff: noqa: E501 - expected messages are kept whole, one per line, to be read as `check` prints them

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.quoting import (
    HIDDEN,
    SHOWN_LENGTH,
    defined,
    is_secret_path,
    not_defined,
    show_value,
)
from bridge.exceptions import ConfigError
from bridge.routing.conditions import compile_condition
from bridge.service import load_service
from tests.routing.test_conditions import WHEN, make_config

MARK = "SeCrEt"  # every value that must not be shown holds this

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=80)
)
keys = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "all.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_service(tmp_path / "rules", tmp_path / "templates", environ or {}, httpx.AsyncClient())
    return [str(p).replace(str(tmp_path / "rules"), "<rules>") for p in caught.value.problems]


# --- show_value ------------------------------------------------------------------------------


def test_short_values_are_shown_as_written() -> None:
    assert show_value("([unclosed", ("rules", 0, "when", "body.a", "regex"), {}) == "'([unclosed'"
    assert show_value(5, ("rules", 0, "x"), {}) == "5"
    assert show_value(True, ("rules", 0, "x"), {}) == "true"
    assert show_value([1, "a"], ("rules", 0, "x"), {}) == '[1, "a"]'


@given(st.text(max_size=300))
def test_a_long_text_is_cut_short_and_a_short_one_kept_whole(text: str) -> None:
    shown = show_value(text, ("rules", 0, "when", "body.a", "regex"), {})
    value = eval(shown)  # a Python string literal, as repr writes it
    if len(text) <= SHOWN_LENGTH:
        assert value == text
    else:
        assert len(value) == SHOWN_LENGTH and value == text[: SHOWN_LENGTH - 1] + "…"


@st.composite
def with_environment(draw: st.DrawFn) -> tuple[Any, dict[tuple[str | int, ...], tuple[str]]]:
    """A value some of whose strings came from the environment (each holding MARK)."""
    value = draw(documents)
    variables: dict[tuple[str | int, ...], tuple[str]] = {}

    def mark(node: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(node, dict):
            return {key: mark(item, (*path, key)) for key, item in node.items()}
        if isinstance(node, list):
            return [mark(item, (*path, i)) for i, item in enumerate(node)]
        if draw(st.booleans()):
            variables[path] = ("TOKEN",)
            return f"{node}{MARK}"
        return node

    return mark(value, ("rules", 0, "when")), variables


@given(with_environment())
def test_a_value_from_the_environment_is_never_shown(
    case: tuple[Any, dict[tuple[str | int, ...], tuple[str]]],
) -> None:
    value, variables = case
    shown = show_value(value, ("rules", 0, "when"), variables)
    assert MARK not in shown
    if ("rules", 0, "when") in variables:
        assert shown == "(the value of ${TOKEN})"


@given(documents, st.sampled_from(["api_key", "secret", "token", "password", "Authorization"]))
def test_a_value_under_a_secret_key_is_never_shown(value: Any, key: str) -> None:
    provider = {"type": "http", "headers": {key: f"Bearer {MARK}"}, "other": value}
    shown = show_value(provider, ("providers", "desk"), {})
    assert MARK not in shown and shown == HIDDEN
    assert show_value(f"x{MARK}", ("providers", "desk", "headers", key), {}) == HIDDEN
    assert is_secret_path(("sources", "s", "verify", "values", 0))
    assert not is_secret_path(("sources", "s", "dedupe_key"))
    assert not is_secret_path(("providers", "desk", "retry", "auth_pause"))  # a duration
    assert not is_secret_path(("rules", 0, "ticket", "options", "api_key"))  # not a provider's


def test_undefined_names_are_listed_with_the_defined_ones() -> None:
    at = ("rules", 3, "provider")
    assert (
        not_defined("provider", "vambe", at, {}, ["audit", "desk"])
        == "provider 'vambe' is not defined (defined: audit, desk)"
    )
    assert (
        not_defined("provider", "adit", at, {}, ["audit", "desk"])
        == "provider 'adit' is not defined (defined: audit, desk); did you mean 'audit'?"
    )
    assert (
        not_defined("source", "s", at, {}, []) == "source 's' is not defined (no source is defined)"
    )
    assert (
        not_defined("provider", "x", at, {at: ("P",)}, ["x1"])
        == "provider (the value of ${P}) is not defined (defined: x1)"
    )
    many = [f"r{i}" for i in range(30)]
    assert defined("rule", many) == f"(defined: {', '.join(many[:12])} and 18 more)"


# --- the problems that show them --------------------------------------------------------------


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


@given(
    st.text(alphabet="(){}?*+\\abc^$|", min_size=1, max_size=90).filter(lambda p: not _compiles(p))
)
def test_a_regex_that_does_not_compile_is_named_with_the_reason(pattern: str) -> None:
    problems: list[Any] = []
    config = make_config({})
    compile_condition({"body.a": {"regex": pattern}}, at=WHEN, config=config, problems=problems)
    [problem] = problems
    try:
        re.compile(pattern)
    except re.error as exc:
        reason = str(exc)
    shown = show_value(pattern, (*WHEN, "body.a", "regex"), {})
    assert problem.message == f"`regex` {shown} does not compile: {reason}"


def test_problems_name_the_values_they_are_about(tmp_path: Path) -> None:
    text = """\
providers:
  audit: {type: log}
sources:
  form: {verify: {type: none}}
defaults:
  trusted_proxies: [proxy.internal]
rules:
  - name: one
    source: form
    when:
      body.email: {regex: "(unclosed"}
      body.total: {gte: soon}
      body.tags: {in: vip}
      body.vip: {exists: "yes"}
    if: "body.total >"
    action: add_note
    provider: audti
"""
    assert problems_of(tmp_path, text) == [
        "<rules>/all.yaml:6: defaults.trusted_proxies[0]: 'proxy.internal' is not an IP address or network",
        "<rules>/all.yaml:11: rules[0].when.body.email.regex: `regex` '(unclosed' does not compile: missing ), unterminated subpattern at position 0",
        "<rules>/all.yaml:12: rules[0].when.body.total.gte: `gte` expects a number or an ISO-8601 date-time, not 'soon'",
        "<rules>/all.yaml:13: rules[0].when.body.tags.in: `in` expects a list, not 'vip'",
        "<rules>/all.yaml:14: rules[0].when.body.vip.exists: `exists` expects true or false, not 'yes'",
        "<rules>/all.yaml:15: rules[0].if: 'body.total >' is not an expression: unexpected 'end of template'",
        "<rules>/all.yaml:17: rules[0].provider: provider 'audti' is not defined (defined: audit); did you mean 'audit'?",
    ]


def test_schema_problems_show_plain_values(tmp_path: Path) -> None:
    text = """\
providers:
  audit: {type: log, timeout: true, concurrency: many}
sources:
  form: {verify: {type: none}, split: "yes"}
"""
    assert problems_of(tmp_path, text) == [
        "<rules>/all.yaml:2: providers.audit.concurrency: 'many' must be an integer, not a string",
        "<rules>/all.yaml:2: providers.audit.timeout: true must be a duration: seconds or a string such as 500ms, 2s, 5m, 1h, 2d",
        "<rules>/all.yaml:4: sources.form.split: 'yes' must be true or false, not a string",
    ]


def test_values_from_the_environment_or_under_secret_keys_are_not_shown(tmp_path: Path) -> None:
    secret = f"({MARK}"  # not a regex, not an address, not an expression
    text = """\
providers:
  audit: {type: log}
  desk: {type: vambe, api_key: 12345, phone_id: p-1}
sources:
  form: {verify: {type: none}}
defaults:
  trusted_proxies: ["${PROXY}"]
rules:
  - name: one
    source: form
    when: {body.email: {regex: "${PATTERN}"}, body.n: {in: "${LIST}"}}
    if: "${CONDITION}"
    action: add_note
    provider: audit
"""
    environ = {"PROXY": secret, "PATTERN": secret, "LIST": secret, "CONDITION": secret}
    found = problems_of(tmp_path, text, environ)
    assert MARK not in "\n".join(found)
    assert found == [
        "<rules>/all.yaml:3: providers.desk.api_key: (a secret, not shown) must be a string, not a number",
        "<rules>/all.yaml:7: defaults.trusted_proxies[0]: (the value of ${PROXY}) is not an IP address or network",
        "<rules>/all.yaml:11: rules[0].when.body.email.regex: `regex` (the value of ${PATTERN}) does not compile: missing ), unterminated subpattern at position 0",
        "<rules>/all.yaml:11: rules[0].when.body.n.in: `in` expects a list, not (the value of ${LIST})",
        "<rules>/all.yaml:12: rules[0].if: (the value of ${CONDITION}) is not an expression: unexpected end of template, expected ')'.",
    ]
