"""Every kind of configuration problem, with its exact file, line and YAML path."""

# ruff: noqa: E501 - expected messages are kept whole, one per line, to be read as `check` prints them

from pathlib import Path

import pytest

from bridge.config import draft_config, load_config
from bridge.exceptions import ConfigError

OK_PROVIDERS = "providers:\n  audit: {type: log}\n"


def problems(
    tmp_path: Path, files: dict[str, str], environ: dict[str, str] | None = None
) -> list[str]:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    for name, text in files.items():
        (rules / name).parent.mkdir(parents=True, exist_ok=True)
        (rules / name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(rules, tmp_path / "templates", environ or {})
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p).replace(str(tmp_path), "<tmp>") for p in caught.value.problems]


# --- files and YAML ------------------------------------------------------------------------


CHOICE = (
    "give another with --rules DIR or the BRIDGE_RULES environment variable, "
    "or run `ticketbridge init` to write a working example"
)


def test_missing_rules_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope", tmp_path, {})
    assert str(caught.value) == (
        f"{tmp_path}/nope: the rules directory {tmp_path}/nope does not exist: {CHOICE}"
    )


def test_a_relative_rules_directory_is_named_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as caught:
        load_config(Path("rules"), Path("templates"), {})
    assert (
        str(caught.value) == f"rules: the rules directory {tmp_path}/rules does not exist: {CHOICE}"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(Path("file"), Path("templates"), {})
    assert (
        str(caught.value)
        == f"file: the rules directory {tmp_path}/file is not a directory: {CHOICE}"
    )


def test_rules_directory_without_yaml(tmp_path: Path) -> None:
    assert problems(tmp_path, {"README.md": "x", "samples/s.yaml": "a: 1"}) == [
        f"<tmp>/rules: no *.yaml or *.yml file in the rules directory <tmp>/rules: {CHOICE}"
    ]


def test_yaml_errors_of_every_file_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "a.yaml": "rules:\n  - name: a\n    action: x: y\n",
            "b.yaml": "providers:\n  x: {type: log}\n  x: {type: http}\n",
            "c.yaml": "rules: [{name: c, action: nope}]\n",  # fine as YAML: not reached
        },
    )
    assert found == [
        "<tmp>/rules/a.yaml:3: mapping values are not allowed here",
        "<tmp>/rules/b.yaml:3: providers.x: key 'x' is defined twice: "
        "<tmp>/rules/b.yaml:2 and <tmp>/rules/b.yaml:3",
    ]


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, {"a.yaml": "- name: a\n"}) == [
        "<tmp>/rules/a.yaml:1: a rules file must be a mapping with the keys "
        "providers, sources, rules, vars, defaults"
    ]


def test_unknown_top_level_key_and_wrong_section_shapes(tmp_path: Path) -> None:
    assert problems(tmp_path, {"a.yaml": "rule: []\nrules: {a: 1}\nproviders: [x]\n"}) == [
        "<tmp>/rules/a.yaml:1: rule: unknown key 'rule' (expected providers, sources, rules, vars, defaults)",
        "<tmp>/rules/a.yaml:2: rules: rules must be a list of rules",
        "<tmp>/rules/a.yaml:3: providers: providers must be a mapping of names to entries",
    ]


# --- duplicates ----------------------------------------------------------------------------


def test_names_defined_twice_across_files_name_both_places(tmp_path: Path) -> None:
    a = (
        OK_PROVIDERS
        + "sources:\n  s: {verify: {type: none}}\nvars:\n  team: a\ndefaults:\n  max_depth: 5\n"
    )
    b = (
        "vars: {team: b}\n"
        "providers:\n  audit: {type: log}\n"
        "sources:\n  s: {verify: {type: none}}\n"
        "defaults:\n  max_depth: 6\n  max_body: 1MiB\n"
    )
    assert problems(tmp_path, {"a.yaml": a, "b.yaml": b}) == [
        "<tmp>/rules/b.yaml:1: vars.team: var 'team' is defined twice: <tmp>/rules/a.yaml:6 and <tmp>/rules/b.yaml:1",
        "<tmp>/rules/b.yaml:3: providers.audit: provider 'audit' is defined twice: "
        "<tmp>/rules/a.yaml:2 and <tmp>/rules/b.yaml:3",
        "<tmp>/rules/b.yaml:5: sources.s: source 's' is defined twice: <tmp>/rules/a.yaml:4 and <tmp>/rules/b.yaml:5",
        "<tmp>/rules/b.yaml:7: defaults.max_depth: default 'max_depth' is defined twice: "
        "<tmp>/rules/a.yaml:8 and <tmp>/rules/b.yaml:7",
    ]


def test_rule_names_are_unique_across_files(tmp_path: Path) -> None:
    a = OK_PROVIDERS + "rules:\n  - {name: r, action: add_note, provider: audit}\n"
    b = "rules:\n  - name: other\n    action: add_note\n    provider: audit\n  - name: r\n    action: add_note\n    provider: audit\n"
    assert problems(tmp_path, {"a.yaml": a, "b.yaml": b}) == [
        "<tmp>/rules/b.yaml:5: rules[1].name: rule 'r' is defined twice: <tmp>/rules/a.yaml:4 and <tmp>/rules/b.yaml:5"
    ]


def test_duplicate_url_paths(tmp_path: Path) -> None:
    text = "sources:\n  a: {verify: {type: none}}\n  b:\n    verify: {type: none}\n    path: /hooks/a\n"
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:5: sources.b.path: URL path '/hooks/a' is also used by source 'a' (<tmp>/rules/a.yaml:2)"
    ]


# --- schema --------------------------------------------------------------------------------

RULES_B = """\
rules:
  - name: fine
    action: add_note
    provider: audit
  - name: typo
    source: form
    action: create_tiket
    provider: audit
    ticket:
      contact: {name: "{{ body.name }}", phone: 56911112222}
      message: {text: hello, direction: inbound}
      subject: {templat: x.j2}
      tags: stripe
  - name: no-provider
    action: add_note
    continu: true
"""


def test_schema_problems_with_file_line_and_path(tmp_path: Path) -> None:
    a = OK_PROVIDERS + "sources:\n  form: {verify: {type: none}}\n"
    assert problems(tmp_path, {"a.yaml": a, "b.yaml": RULES_B}) == [
        "<tmp>/rules/b.yaml:7: rules[1].action: 'create_tiket' is not one of "
        "create_ticket, update_ticket, close_ticket, reopen_ticket, add_note",
        "<tmp>/rules/b.yaml:10: rules[1].ticket.contact.phone: 56911112222 must be a string (a template) or {template: path}",
        "<tmp>/rules/b.yaml:11: rules[1].ticket.message.direction: 'inbound' is not one of incoming, outgoing, note",
        "<tmp>/rules/b.yaml:12: rules[1].ticket.subject: missing required key 'template'",
        "<tmp>/rules/b.yaml:12: rules[1].ticket.subject.templat: unknown key 'templat' (did you mean 'template'?)",
        "<tmp>/rules/b.yaml:13: rules[1].ticket.tags: 'stripe' must be a list, not a string",
        "<tmp>/rules/b.yaml:14: rules[2]: missing required key 'provider'",
        "<tmp>/rules/b.yaml:16: rules[2].continu: unknown key 'continu' (did you mean 'continue'?)",
    ]


def test_provider_and_source_schema_problems(tmp_path: Path) -> None:
    text = """\
providers:
  hd:
    type: http
    method: POST
    timeout: 5 minutes
    retry: {max_attempts: 0, cap: 1h}
  x: {type: zendesk}
  v: {type: vambe, anything: goes, rate_limit: {burst: 2}}
sources:
  s:
    verify: {type: token, values: [abcd]}
    max_body: 1 lb
    body: xml
    path: hooks/s
  t: {dedupe_key: body.id}
  u: {verify: {secrets: [abcd]}}
  bad name: {verify: {type: none}}
defaults:
  keep_bodies: forever
"""
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:2: providers.hd: missing required key 'url'",
        "<tmp>/rules/a.yaml:5: providers.hd.timeout: '5 minutes' is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)",
        "<tmp>/rules/a.yaml:6: providers.hd.retry.max_attempts: 0 must be >= 1",
        "<tmp>/rules/a.yaml:7: providers.x.type: 'zendesk' is not one of log, http, vambe, glassix, cloudchat, chatwoot, awalchat",
        "<tmp>/rules/a.yaml:8: providers.v: missing required key 'api_key'",
        "<tmp>/rules/a.yaml:8: providers.v: missing required key 'phone_id'",
        "<tmp>/rules/a.yaml:8: providers.v.anything: unknown key 'anything'",
        "<tmp>/rules/a.yaml:8: providers.v.rate_limit: missing required key 'per_second'",
        "<tmp>/rules/a.yaml:11: sources.s.verify: missing required key 'location'",
        "<tmp>/rules/a.yaml:12: sources.s.max_body: '1 lb' is not a size (use bytes or 100B, 10KB, 512KiB, 1MiB, 2MB)",
        "<tmp>/rules/a.yaml:13: sources.s.body: 'xml' is not a body format "
        "(json, form, multipart, form_json_field:NAME, multipart_json_field:NAME)",
        "<tmp>/rules/a.yaml:14: sources.s.path: 'hooks/s' is not a URL path (it starts with / and has no spaces, ? or #)",
        "<tmp>/rules/a.yaml:15: sources.t: missing required key 'verify'",
        "<tmp>/rules/a.yaml:16: sources.u.verify: needs a `type` (none, token, basic, hmac, twilio) or a `preset`",
        "<tmp>/rules/a.yaml:17: sources.bad name: 'bad name' is not a source name: "
        "use letters, digits, '_', '.' and '-' (it is part of a URL)",
        "<tmp>/rules/a.yaml:19: defaults.keep_bodies: 'forever' is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)",
    ]


# --- references ----------------------------------------------------------------------------


def test_undefined_references(tmp_path: Path) -> None:
    a = OK_PROVIDERS + "sources:\n  stripe:\n    verify: {type: none}\n    default_rule: fallbak\n"
    b = """\
rules:
  - name: fallback
    source: [stripe, strpe]
    action: add_note
    provider: audti
  - name: two
    source: typeform
    action: add_note
    provider: audit
"""
    assert problems(tmp_path, {"a.yaml": a, "b.yaml": b}) == [
        "<tmp>/rules/a.yaml:6: sources.stripe.default_rule: rule 'fallbak' is not defined (defined: fallback, two); did you mean 'fallback'?",
        "<tmp>/rules/b.yaml:3: rules[0].source[1]: source 'strpe' is not defined (defined: stripe); did you mean 'stripe'?",
        "<tmp>/rules/b.yaml:5: rules[0].provider: provider 'audti' is not defined (defined: audit); did you mean 'audit'?",
        "<tmp>/rules/b.yaml:7: rules[1].source: source 'typeform' is not defined (defined: stripe)",
    ]


def test_source_schema_files(tmp_path: Path) -> None:
    text = """\
sources:
  a: {verify: {type: none}, schema: schemas/missing.json}
  b: {verify: {type: none}, schema: schemas/broken.json}
  c: {verify: {type: none}, schema: schemas/invalid.json}
  d: {verify: {type: none}, schema: ../outside.json}
  e: {verify: {type: none}, schema: schemas/list.json}
"""
    files = {
        "a.yaml": text,
        "schemas/broken.json": "{\n  \"type\": 'object'\n}",
        "schemas/invalid.json": '{"type": "objekt"}',
        "schemas/list.json": "[]",
    }
    found = problems(tmp_path, files)
    assert found[:2] == [
        "<tmp>/rules/a.yaml:2: sources.a.schema: 'schemas/missing.json' is not a file in <tmp>/rules",
        "<tmp>/rules/a.yaml:3: sources.b.schema: 'schemas/broken.json' is not valid JSON: "
        "Expecting value (line 2, column 11)",
    ]
    assert found[2].startswith(
        "<tmp>/rules/a.yaml:4: sources.c.schema: 'schemas/invalid.json' is not a valid JSON Schema: at type: "
    )
    assert found[3:] == [
        "<tmp>/rules/a.yaml:5: sources.d.schema: '../outside.json' must be a path inside the rules directory",
        "<tmp>/rules/a.yaml:6: sources.e.schema: 'schemas/list.json' is not a JSON Schema: it must hold a JSON object",
    ]


# --- secrets and the environment -----------------------------------------------------------


def test_a_verifier_left_without_secrets(tmp_path: Path) -> None:
    text = """\
sources:
  stripe:
    verify: {preset: stripe, secrets: ["${STRIPE:-}", "${STRIPE_OLD:-}"]}
  form:
    verify:
      type: token
      location: header:X-Token
      values: []
  admin:
    verify: {type: basic, username: admin, passwords: ["", "  "]}
"""
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:3: sources.stripe.verify.secrets: no secret left after dropping empty values: "
        "a verifier must never accept everything",
        "<tmp>/rules/a.yaml:8: sources.form.verify.values: must not be empty: a verifier must never accept everything",
        "<tmp>/rules/a.yaml:10: sources.admin.verify.passwords: no secret left after dropping empty values: "
        "a verifier must never accept everything",
    ]


def test_missing_and_malformed_variables(tmp_path: Path) -> None:
    text = """\
providers:
  v:
    type: vambe
    api_key: "${VAMBE_KEY}"
    stage_id: "${STAGE"
    timeout: "${TIMEOUT}"
    phone_id: "1"
sources:
  form: {verify: {type: token, location: "header:X", values: ["${FORM_TOKEN}"]}}
"""
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:4: providers.v.api_key: environment variable VAMBE_KEY is not set "
        "(write ${VAMBE_KEY:-} if empty is fine)",
        "<tmp>/rules/a.yaml:5: providers.v.stage_id: '${' must begin ${NAME} or ${NAME:-default}; "
        "write $${ for a literal ${",
        # only the missing variable: not also "'' is not a duration"
        "<tmp>/rules/a.yaml:6: providers.v.timeout: environment variable TIMEOUT is not set "
        "(write ${TIMEOUT:-} if empty is fine)",
        # only the missing variable: not also "no secret left"
        "<tmp>/rules/a.yaml:9: sources.form.verify.values[0]: environment variable FORM_TOKEN is not set "
        "(write ${FORM_TOKEN:-} if empty is fine)",
    ]


def test_no_environment_value_appears_in_any_message(tmp_path: Path) -> None:
    secret = "sk_live_TOPSECRET"
    text = """\
providers:
  v: {type: "${SECRET}", timeout: "${SECRET}", api_key: "${SECRET}"}
  w: {type: log}
sources:
  a: {verify: {type: none}, path: "/x${SECRET}"}
  b: {verify: {type: none}, path: "/x${SECRET}", schema: "${SECRET}.json", default_rule: "${SECRET}"}
rules:
  - {name: "${SECRET}", action: "${SECRET}", provider: "${SECRET}", source: "${SECRET}"}
  - {name: "${SECRET}", action: add_note, provider: w, ticket: {tags: ["${SECRET}"], subject: {template: 5}}}
"""
    found = problems(tmp_path, {"a.yaml": text}, {"SECRET": secret})
    assert secret not in "\n".join(found) and "TOPSECRET" not in "\n".join(found)
    value = "(the value of ${SECRET})"
    actions = "create_ticket, update_ticket, close_ticket, reopen_ticket, add_note"
    assert found == [
        f"<tmp>/rules/a.yaml:2: providers.v.timeout: {value} is not a duration "
        "(use seconds or 500ms, 2s, 5m, 1h, 2d)",
        f"<tmp>/rules/a.yaml:2: providers.v.type: {value} is not one of "
        "log, http, vambe, glassix, cloudchat, chatwoot, awalchat",
        f"<tmp>/rules/a.yaml:6: sources.b.path: URL path {value} is also used by source 'a' "
        "(<tmp>/rules/a.yaml:5)",
        f"<tmp>/rules/a.yaml:6: sources.b.schema: {value} is not a file in <tmp>/rules",
        f"<tmp>/rules/a.yaml:8: rules[0].action: {value} is not one of {actions}",
        f"<tmp>/rules/a.yaml:8: rules[0].provider: provider {value} is not defined (defined: v, w)",
        f"<tmp>/rules/a.yaml:8: rules[0].source: source {value} is not defined (defined: a, b)",
        f"<tmp>/rules/a.yaml:9: rules[1].name: rule {value} is defined twice: "
        "<tmp>/rules/a.yaml:8 and <tmp>/rules/a.yaml:9",
        "<tmp>/rules/a.yaml:9: rules[1].ticket.subject.template: 5 must be a string, not a number",
    ]


def test_many_problems_across_files_at_once(tmp_path: Path) -> None:
    files = {
        "a.yaml": OK_PROVIDERS + "sources:\n  s: {verify: {type: hmac}}\n",
        "b.yaml": "rules:\n  - {name: x, source: s, action: nope, provider: audit}\n",
        "c/d.yml": "rules:\n  - {name: y, source: t, action: add_note, provider: p}\n",
        "e.yaml": "providers:\n  audit: {type: log}\n",
    }
    found = problems(tmp_path, files, {})
    assert found == [
        "<tmp>/rules/a.yaml:4: sources.s.verify: missing required key 'secrets'",
        "<tmp>/rules/b.yaml:2: rules[0].action: 'nope' is not one of "
        "create_ticket, update_ticket, close_ticket, reopen_ticket, add_note",
        "<tmp>/rules/c/d.yml:2: rules[0].provider: provider 'p' is not defined (defined: audit)",
        "<tmp>/rules/c/d.yml:2: rules[0].source: source 't' is not defined (defined: s)",
        "<tmp>/rules/e.yaml:2: providers.audit: provider 'audit' is defined twice: "
        "<tmp>/rules/a.yaml:2 and <tmp>/rules/e.yaml:2",
    ]


def test_files_are_named_as_the_rules_directory_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "stripe.yaml").write_text("providers:\n  p: {type: lgo}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(Path("rules"), Path("templates"), {})
    assert str(caught.value) == (
        "rules/stripe.yaml:2: providers.p.type: 'lgo' is not one of "
        "log, http, vambe, glassix, cloudchat, chatwoot, awalchat"
    )


# --- what is built despite problems (draft_config, which load_service compiles) ---------------


def test_a_draft_holds_every_entry_a_reference_problem_leaves_buildable(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(
        OK_PROVIDERS
        + "  bad: {type: http}\n"  # no url: a schema problem of its own
        + "sources:\n  s: {verify: {type: none}, default_rule: nope}\n"
        + "rules:\n"
        + "  - {name: r, source: t, action: add_note, provider: gone}\n"
        + "  - {name: r, source: s, action: close, provider: audit}\n"  # schema: action
        + "  - {name: last, source: s, action: add_note, provider: bad}\n"
    )
    draft = draft_config(rules, tmp_path / "templates", {})
    assert draft.config is not None
    assert sorted(draft.config.providers) == ["audit"] and sorted(draft.config.sources) == ["s"]
    # the rule with a schema problem is left out; the others keep their place in the document
    assert [(r.name, r.doc_path) for r in draft.config.rules] == [
        ("r", ("rules", 0)),
        ("last", ("rules", 2)),
    ]
    assert [str(p).replace(str(tmp_path), "<tmp>") for p in draft.problems] == [
        "<tmp>/rules/a.yaml:3: providers.bad: missing required key 'url'",
        "<tmp>/rules/a.yaml:5: sources.s.default_rule: rule 'nope' is not defined (defined: r, last)",
        "<tmp>/rules/a.yaml:7: rules[0].provider: provider 'gone' is not defined (defined: audit, bad)",
        "<tmp>/rules/a.yaml:7: rules[0].source: source 't' is not defined (defined: s)",
        "<tmp>/rules/a.yaml:8: rules[1].action: 'close' is not one of "
        "create_ticket, update_ticket, close_ticket, reopen_ticket, add_note",
        "<tmp>/rules/a.yaml:8: rules[1].name: rule 'r' is defined twice: <tmp>/rules/a.yaml:7 and <tmp>/rules/a.yaml:8",
    ]
    with pytest.raises(ConfigError) as caught:  # load_config never hands such a config out
        load_config(rules, tmp_path / "templates", {})
    assert caught.value.problems == list(draft.problems)


def test_a_problem_in_defaults_or_yaml_leaves_no_draft(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(OK_PROVIDERS + "defaults:\n  lease: ${LEASE}\n")
    draft = draft_config(rules, tmp_path, {})
    assert draft.config is None
    assert [p.path for p in draft.problems] == ["defaults.lease"]
    (rules / "a.yaml").write_text(OK_PROVIDERS + "rules: [\n")
    assert draft_config(rules, tmp_path, {}).config is None


def test_the_gates_limits_must_let_something_in(tmp_path: Path) -> None:
    text = OK_PROVIDERS + "defaults:\n  body_timeout: 0s\n  max_in_flight: 0\n"
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:4: defaults.body_timeout: '0s' is not a duration of more than 0 (use seconds or 500ms, 2s, 5m)",
        "<tmp>/rules/a.yaml:5: defaults.max_in_flight: 0 must be >= 1",
    ]


def test_a_fallback_names_another_defined_provider(tmp_path: Path) -> None:
    text = (
        "providers:\n"
        "  audit: {type: log, fallback: audti}\n"
        "  spare: {type: log, fallback: spare, fallback_after: soon}\n"
    )
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:2: providers.audit.fallback: provider 'audti' is not defined (defined: audit, spare); did you mean 'audit'?",
        "<tmp>/rules/a.yaml:3: providers.spare.fallback: a provider cannot fall back to itself",
        "<tmp>/rules/a.yaml:3: providers.spare.fallback_after: 'soon' is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)",
    ]


def test_a_folding_rule_needs_a_correlate_key(tmp_path: Path) -> None:
    text = (
        OK_PROVIDERS + "sources:\n  shop: {verify: {type: none}}\n"
        "rules:\n"
        "  - name: burst\n"
        "    source: shop\n"
        "    action: create_ticket\n"
        "    provider: audit\n"
        "    fold: {window: 30s}\n"
        "    ticket: {subject: x}\n"
        "  - {name: zero, source: shop, action: create_ticket, provider: audit, fold: {window: 0}, ticket: {subject: x, correlate: k}}\n"
    )
    assert problems(tmp_path, {"a.yaml": text}) == [
        "<tmp>/rules/a.yaml:10: rules[0].fold: fold needs ticket.correlate: it folds by that key",
        "<tmp>/rules/a.yaml:12: rules[1].fold.window: 0 must be > 0",
    ]
