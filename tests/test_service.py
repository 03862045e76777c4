"""load_service reports every problem of a configuration in one run (DESIGN §2.1, issue 12).

A reference problem (an unknown source or provider, a rule name used twice) or a schema problem
in one entry must not hide what compiling the rest would find: conditions, regexes, `if`
expressions, templates and provider settings are compiled in the same run.
"""

# ruff: noqa: E501 - expected messages are kept whole, one per line, to be read as `check` prints them

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.exceptions import ConfigError
from bridge.service import load_service
from tests.mistakes import MISTAKES, write_config


def problems_of(root: Path) -> list[str]:
    """Every problem load_service reports for the tree at `root`, as `check` prints them."""
    with pytest.raises(ConfigError) as caught:
        load_service(root / "rules", root / "templates", {}, httpx.AsyncClient())
    found = caught.value.problems
    assert found == sorted(set(found))  # in file and line order, each once
    return [
        str(p)
        .replace(str(root / "rules"), "<rules>")
        .replace(str(root / "templates"), "<templates>")
        for p in found
    ]


def test_the_clean_configuration_loads(tmp_path: Path) -> None:
    write_config(tmp_path, set())
    service = load_service(tmp_path / "rules", tmp_path / "templates", {}, httpx.AsyncClient())
    assert sorted(service.rules) == ["five", "four", "one", "three", "two"]
    assert sorted(service.providers) == ["audit", "desk"]


def test_nine_mistakes_of_nine_kinds_are_reported_in_one_run(tmp_path: Path) -> None:
    """Before, the reference and schema problems (the first four here) stopped the run before
    anything was compiled: the other five only showed once those were fixed."""
    write_config(tmp_path, set(MISTAKES))
    assert problems_of(tmp_path) == [m.problem for m in MISTAKES.values()]


@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(MISTAKES)), min_size=1))
def test_no_mistake_hides_another(mistakes: set[str]) -> None:
    """Whatever mistakes are made together, each is reported just as when it is made alone."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        write_config(root, mistakes)
        made = sorted((MISTAKES[name] for name in mistakes), key=lambda m: m.line)
        assert problems_of(root) == [m.problem for m in made]


# --- what depends on a part that is wrong is skipped, never a crash or a second report -------


def write_tree(root: Path, rules: str, templates: dict[str, str] | None = None) -> Path:
    (root / "rules").mkdir()
    (root / "rules" / "all.yaml").write_text(rules)
    (root / "templates").mkdir()
    for name, text in (templates or {}).items():
        (root / "templates" / name).write_text(text)
    return root


def test_a_rule_naming_an_unknown_provider_gets_no_capability_checks(tmp_path: Path) -> None:
    """Which tags and metadata a provider takes cannot be checked without the provider: that
    check is skipped, while the rule's own templates are compiled, and the source's default
    rule that is missing (which the matcher would refuse) is reported, not raised."""
    write_tree(
        tmp_path,
        """\
providers:
  audit: {type: log}
sources:
  form: {verify: {type: none}}
  other: {verify: {type: none}, default_rule: fallbak}
rules:
  - name: r
    source: form
    action: create_ticket
    provider: awal
    ticket:
      tags: [a]
      metadata: {x: "{{ body.x }"}
""",
    )
    assert problems_of(tmp_path) == [
        "<rules>/all.yaml:5: sources.other.default_rule: rule 'fallbak' is not defined (defined: r)",
        "<rules>/all.yaml:10: rules[0].provider: provider 'awal' is not defined (defined: audit)",
        "<rules>/all.yaml:13: rules[0].ticket.metadata.x: unexpected '}'",
    ]


def test_an_entry_with_a_schema_problem_is_skipped_and_the_others_are_compiled(
    tmp_path: Path,
) -> None:
    """The provider `awal` lacks a key and rule `broken` has a misspelt action: neither is built
    (so the rule that sends to `awal` is not checked against it, and `broken`'s bad template is
    not reached), while the other rule and source are compiled and their problems reported."""
    write_tree(
        tmp_path,
        """\
providers:
  awal: {type: awalchat, client_id: c, domain: d.example, hmac_secret: s-123456}
sources:
  form: {verify: {type: none}}
  shop: {verify: {type: token, location: "header:X-Token", values: [t-123456]}, dedupe_key: "{{ body.id"}
rules:
  - name: broken
    source: form
    action: create_tiket
    provider: awal
    ticket: {subject: "{{ oops"}
  - name: to-awal
    source: shop
    when: {body.kind: {regex: "["}}
    action: create_ticket
    provider: awal
    ticket:
      tags: [x]
""",
    )
    assert problems_of(tmp_path) == [
        "<rules>/all.yaml:2: providers.awal: missing required key 'phone_number_id'",
        "<rules>/all.yaml:5: sources.shop.dedupe_key: unexpected end of template, expected 'end of print statement'.",
        "<rules>/all.yaml:9: rules[0].action: 'create_tiket' is not one of create_ticket, update_ticket, close_ticket, reopen_ticket, add_note",
        "<rules>/all.yaml:14: rules[1].when.body.kind.regex: `regex` '[' does not compile: unterminated character set at position 0",
    ]


def test_a_missing_variable_or_an_emptied_secret_list_is_reported_once(tmp_path: Path) -> None:
    """The provider and the source are not built from values the user did not mean, so there
    is no second report ('api_key is required', 'no secret') for the same mistake."""
    write_tree(
        tmp_path,
        """\
providers:
  desk: {type: vambe, api_key: "${VAMBE_KEY}", phone_id: p-1, stage_id: s-1}
sources:
  form: {verify: {type: token, location: "header:X-Token", values: ["${FORM_TOKEN:-}"]}}
rules:
  - name: r
    source: form
    action: create_ticket
    provider: desk
    ticket:
      contact: {phone: "{{ body.phone "}
""",
    )
    assert problems_of(tmp_path) == [
        "<rules>/all.yaml:2: providers.desk.api_key: environment variable VAMBE_KEY is not set (write ${VAMBE_KEY:-} if empty is fine)",
        "<rules>/all.yaml:4: sources.form.verify.values: no secret left after dropping empty values: a verifier must never accept everything",
        "<rules>/all.yaml:11: rules[0].ticket.contact.phone: unexpected end of template, expected 'end of print statement'.",
    ]


def test_a_problem_in_defaults_leaves_nothing_to_compile(tmp_path: Path) -> None:
    """Every provider's retry and every source's size limit depend on `defaults`: with a wrong
    one nothing is built, and the schema and reference problems are what is reported."""
    write_tree(
        tmp_path,
        """\
defaults:
  retry: {cap: forever}
providers:
  audit: {type: log}
sources:
  form: {verify: {type: none}}
rules:
  - name: r
    source: from
    action: add_note
    provider: audit
    ticket: {subject: "{{ oops"}
""",
    )
    assert problems_of(tmp_path) == [
        "<rules>/all.yaml:2: defaults.retry.cap: 'forever' is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)",
        "<rules>/all.yaml:9: rules[0].source: source 'from' is not defined (defined: form); did you mean 'form'?",
    ]


def test_a_service_to_run_keeps_only_its_entries_lines(tmp_path: Path) -> None:
    """serve, worker and a reload keep the line of each entry, not of every path inside it
    (16 MB of 10,000 rules): nothing asks for those once the configuration is compiled."""
    rules = (
        "providers:\n"
        "  audit: {type: log}\n"
        "sources:\n"
        "  shop: {verify: {type: none}}\n"
        "rules:\n"
        "  - name: order\n"
        "    source: shop\n"
        "    action: create_ticket\n"
        "    provider: audit\n"
        "    ticket:\n"
        '      subject: "Order {{ body.id }}"\n'
    )
    root = write_tree(tmp_path, rules)
    loaded = {
        to_run: load_service(
            root / "rules", root / "templates", {}, httpx.AsyncClient(), to_run=to_run
        ).config
        for to_run in (False, True)
    }
    inner = ("rules", 0, "ticket", "subject")
    checked, running = loaded[False].locate(inner), loaded[True].locate(inner)
    entry = loaded[True].locate(inner[:2])
    assert (checked.line, entry.line) == (11, 6)  # as written
    assert (running.file, running.line, running.path) == (entry.file, 6, checked.path)
