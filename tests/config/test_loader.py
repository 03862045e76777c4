"""load_config on configurations that are right: the records, the locations, the secrets."""

from pathlib import Path

import pytest

from bridge.config import (
    Config,
    Location,
    ProviderConfig,
    RateLimit,
    RetryPolicy,
    SourceConfig,
    load_config,
)
from bridge.tickets import ActionKind, OnExisting, OnMissing

ENV = {
    "VAMBE_API_KEY": "vk_live_123456",
    "STRIPE_WEBHOOK_SECRET": "whsec_abcdef",
    "FORM_TOKEN": "form-token-xyz",
    "ZD_TOKEN": "zd-secret-999",
    "VAMBE_PHONE_ID": "56911112222",
}

A_YAML = """\
providers:
  vambe-cl:
    type: vambe
    api_key: "${VAMBE_API_KEY}"
    phone_id: "${VAMBE_PHONE_ID}"
    timeout: 5s
    retry: {max_attempts: 3, cap: 10m}
    rate_limit: {per_second: 2.5}
  audit: {type: log}
sources:
  stripe:
    verify: {preset: stripe, secrets: ["${STRIPE_WEBHOOK_SECRET}", "${STRIPE_OLD:-}"]}
    dedupe_key: body.id
    max_body: 2MB
    schema: schemas/stripe.json
rules:
  - name: stripe-dispute
    source: stripe
    when: {body.type: charge.dispute.created}
    if: "body.amount > 10"
    action: create_ticket
    provider: vambe-cl
    ticket:
      subject: "Dispute {{ body.id }}"
      message: {text: {template: stripe/dispute.txt.j2}, direction: incoming}
      tags: [stripe]
vars:
  team: billing
"""

B_YAML = """\
defaults:
  max_body: 512KiB
  dedupe_window: 1d
  keep_bodies: 30d
  retry: {base: 1s, max_age: 2h}
sources:
  contact-form:
    verify: {type: token, location: "header:X-Form-Token", values: ["${FORM_TOKEN}"]}
    body: form
    path: /forms/contact
    default_rule: fallback
providers:
  helpdesk:
    type: http
    url: https://example.zendesk.com/api/v2/tickets.json
    headers: {Authorization: "Bearer ${ZD_TOKEN}", X-Trace: "${VAMBE_PHONE_ID}"}
    concurrency: 2
rules:
  - name: form-note
    source: [contact-form, stripe]
    action: add_note
    provider: helpdesk
    continue: true
    on_missing: create
    ticket:
      contact: {email: "{{ body.email }}"}
  - name: fallback
    action: update_ticket
    provider: audit
    on_existing: skip
"""


def write(root: Path, files: dict[str, str]) -> Path:
    rules = root / "rules"
    for name, text in files.items():
        (rules / name).parent.mkdir(parents=True, exist_ok=True)
        (rules / name).write_text(text)
    return rules


@pytest.fixture
def config(tmp_path: Path) -> Config:
    rules = write(
        tmp_path,
        {"a.yaml": A_YAML, "b.yml": B_YAML, "schemas/stripe.json": '{"type": "object"}'},
    )
    return load_config(rules, tmp_path / "templates", ENV)


def test_sources(config: Config, tmp_path: Path) -> None:
    a = str(tmp_path / "rules" / "a.yaml")
    assert config.sources["stripe"] == SourceConfig(
        name="stripe",
        path="/hooks/stripe",
        verify={"preset": "stripe", "secrets": ["whsec_abcdef"]},  # the empty one is dropped
        dedupe_key="body.id",
        max_body=2_000_000,
        schema={"type": "object"},
        location=Location(file=a, line=11, path="sources.stripe"),
    )
    form = config.sources["contact-form"]
    assert form.path == "/forms/contact"
    assert form.max_body == 512 * 1024  # from defaults.max_body
    assert form.body == "form"
    assert form.default_rule == "fallback"
    assert form.verify == {
        "type": "token",
        "location": "header:X-Form-Token",
        "values": ["form-token-xyz"],
    }


def test_providers(config: Config, tmp_path: Path) -> None:
    vambe = config.providers["vambe-cl"]
    assert vambe == ProviderConfig(
        name="vambe-cl",
        type="vambe",
        settings={
            "type": "vambe",
            "api_key": "vk_live_123456",
            "phone_id": "56911112222",
            "timeout": "5s",
            "retry": {"max_attempts": 3, "cap": "10m"},
            "rate_limit": {"per_second": 2.5},
        },
        timeout=5.0,
        # defaults.retry (b.yml) overridden key by key by the provider's own
        retry=RetryPolicy(max_attempts=3, base=1.0, cap=600.0, max_age=7200.0),
        rate_limit=RateLimit(per_second=2.5, burst=3),
        location=Location(
            file=str(tmp_path / "rules" / "a.yaml"), line=2, path="providers.vambe-cl"
        ),
    )
    helpdesk = config.providers["helpdesk"]
    assert helpdesk.timeout == 10.0
    assert helpdesk.concurrency == 2
    assert helpdesk.retry == RetryPolicy(base=1.0, max_age=7200.0)
    assert helpdesk.settings["headers"]["Authorization"] == "Bearer zd-secret-999"
    assert config.providers["audit"].concurrency == 4
    assert config.providers["audit"].rate_limit is None


def test_rules_in_file_order(config: Config, tmp_path: Path) -> None:
    assert [r.name for r in config.rules] == ["stripe-dispute", "form-note", "fallback"]
    first, note, fallback = config.rules
    assert first.sources == ("stripe",)
    assert first.when == {"body.type": "charge.dispute.created"}
    assert first.if_expr == "body.amount > 10"
    assert first.action is ActionKind.CREATE_TICKET
    assert first.ticket["message"] == {
        "text": {"template": "stripe/dispute.txt.j2"},
        "direction": "incoming",
    }
    assert (first.continue_, first.on_existing, first.on_missing) == (
        False,
        OnExisting.UPDATE,
        OnMissing.SKIP,
    )
    assert note.sources == ("contact-form", "stripe")
    assert (note.continue_, note.on_missing) == (True, OnMissing.CREATE)
    assert fallback.sources == ()
    assert fallback.when == {} and fallback.ticket == {} and fallback.if_expr is None
    assert fallback.on_existing is OnExisting.SKIP
    assert [r.doc_path for r in config.rules] == [("rules", 0), ("rules", 1), ("rules", 2)]
    b = str(tmp_path / "rules" / "b.yml")
    assert note.location == Location(file=b, line=19, path="rules[0]")
    assert fallback.location == Location(file=b, line=27, path="rules[1]")


def test_defaults_and_vars(config: Config) -> None:
    assert config.defaults.max_body == 512 * 1024
    assert config.defaults.dedupe_window == 86400.0
    assert config.defaults.keep_bodies == 30 * 86400.0
    assert config.defaults.max_depth == 64
    assert config.vars == {"team": "billing"}


def test_locate_merged_paths_of_the_second_file(config: Config, tmp_path: Path) -> None:
    b = str(tmp_path / "rules" / "b.yml")
    assert config.locate(("rules", 1, "continue")) == Location(
        file=b, line=23, path="rules[0].continue"
    )
    assert config.locate(("rules", 1, "ticket", "contact", "email")) == Location(
        file=b, line=26, path="rules[0].ticket.contact.email"
    )
    assert config.locate(("rules", 2, "on_existing")) == Location(
        file=b, line=30, path="rules[1].on_existing"
    )
    # a path that was never written falls back to the nearest enclosing node
    assert config.locate(("rules", 2, "ticket", "subject")) == Location(
        file=b, line=27, path="rules[1].ticket.subject"
    )
    assert config.locate(("providers", "helpdesk", "headers", "X-Trace")).line == 16
    assert config.locate(("providers", "audit", "type")) == Location(
        file=str(tmp_path / "rules" / "a.yaml"), line=9, path="providers.audit.type"
    )


def test_locations_list_every_merged_path_once(config: Config) -> None:
    paths = list(config.locations)
    assert len(paths) == len(set(paths)) == len(config.locations)
    assert ("rules", 1, "ticket", "contact", "email") in paths and ("rules",) in paths
    assert ("rules", 2, "ticket", "subject") not in config.locations  # never written
    assert all(config.locations[path].line > 0 for path in paths)


def test_secrets(config: Config) -> None:
    assert config.secrets == {
        "vk_live_123456",  # providers.vambe-cl.api_key
        "whsec_abcdef",  # sources.stripe.verify.secrets
        "form-token-xyz",  # sources.contact-form.verify.values
        "Bearer zd-secret-999",  # the Authorization header as written
        "zd-secret-999",  # and the environment value inside it
    }
    assert "56911112222" not in config.secrets  # phone_id is not a secret-looking key
    assert "body.id" not in config.secrets  # dedupe_key is not a secret


def test_short_secrets_and_nested_secret_keys(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        {
            "p.yaml": """\
providers:
  g:
    type: http
    url: "https://example.test/tickets"
    body: {credentials: {user: api-user, pass: hunter22}, api_secret: abc}
    headers: {X-Api-Token: tok-12345}
  the-secret-desk: {type: http, url: "https://desk.example.test/api"}
sources:
  s: {verify: {type: basic, username: admin, passwords: ["pw-1234"]}}
"""
        },
    )
    secrets = load_config(rules, tmp_path, {}).secrets
    # "abc" is too short to mask; a provider's name is not a secret key, so its url is shown
    assert secrets == {"api-user", "hunter22", "tok-12345", "pw-1234"}


def test_files_below_samples_and_schemas_are_not_rules(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        {
            "z.yaml": "rules:\n  - {name: z, action: add_note, provider: audit}\n",
            "sub/b.yml": "rules:\n  - {name: b, action: add_note, provider: audit}\n",
            "a.yaml": "providers:\n  audit: {type: log}\n",
            "empty.yaml": "",
            "samples/stripe/x.yaml": "not: [valid",
            "schemas/x.yaml": "not: [valid",
            ".hidden.yaml": "not: [valid",
            "notes.txt": "not: [valid",
        },
    )
    assert [r.name for r in load_config(rules, tmp_path, {}).rules] == ["b", "z"]


def test_empty_files_only_rules_directory_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"a.yaml": "# nothing yet\n"}), tmp_path, {})
    assert config.rules == () and config.sources == {} and config.providers == {}
    assert config.defaults.max_body == 1024 * 1024


def test_anchors_share_ticket_fields(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        {
            "a.yaml": """\
providers: {audit: {type: log}}
rules:
  - &base {name: one, action: add_note, provider: audit, ticket: {subject: hi}}
  - <<: *base
    name: two
"""
        },
    )
    config = load_config(rules, tmp_path, {})
    assert [(r.name, r.ticket) for r in config.rules] == [
        ("one", {"subject": "hi"}),
        ("two", {"subject": "hi"}),
    ]


def test_glassix_field_names_are_not_secrets(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        {
            "p.yaml": """\
providers:
  g:
    type: glassix
    workspace: acme
    api_key: key-12345
    api_secret: secret-12345
    user_name: api@acme.example
    fields: {order_key: field2, api_token_hint: field3}
"""
        },
    )
    secrets = load_config(rules, tmp_path, {}).secrets
    assert secrets == {"key-12345", "secret-12345"}
