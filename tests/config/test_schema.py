"""The shipped JSON Schema: valid, documented, and accepting the examples of DESIGN §2."""

# ruff: noqa: E501 - the examples are copied from DESIGN §2 as written

from pathlib import Path

from jsonschema import Draft202012Validator

from bridge.config import load_config, load_schema
from bridge.tickets import ActionKind

DESIGN_EXAMPLES = """\
sources:
  stripe:
    verify: {preset: stripe, secrets: ["${STRIPE_WEBHOOK_SECRET}", "${STRIPE_WEBHOOK_SECRET_OLD:-}"]}
    dedupe_key: body.id
    max_body: 1MiB
    schema: schemas/stripe-event.json
    path: /hooks/stripe
  contact-form:
    verify: {type: token, location: "header:X-Form-Token", values: ["${FORM_TOKEN}"]}
    body: form
  hubspot:
    verify: {preset: hubspot-v3, secrets: ["${HUBSPOT_SECRET}"], public_url: "https://x.example/hooks/hubspot"}
    split: true
  local-test:
    verify: {type: none}
providers:
  vambe-cl:   {type: vambe, api_key: "${VAMBE_API_KEY}", channel: web-whatsapp, phone_id: "${VAMBE_PHONE_ID}", stage_id: "${VAMBE_STAGE_ID}"}
  glassix:    {type: glassix, workspace: acme, api_key: "${GLASSIX_KEY}", api_secret: "${GLASSIX_SECRET}", user_name: api@acme.example, protocol: WhatsApp}
  cloudchat:  {type: cloudchat, base_url: "https://cloudchat.example.com", account_id: 1, inbox_id: 12, api_access_token: "${CLOUDCHAT_TOKEN}"}
  awal:       {type: awalchat, client_id: "...", domain: "...", hmac_secret: "${AWAL_SECRET}", phone_number_id: "..."}
  helpdesk:   {type: http, url: "https://example.zendesk.com/api/v2/tickets.json", method: POST,
               headers: {Authorization: "Bearer ${ZD_TOKEN}"}, body: {template: zendesk/ticket.json.j2}}
  audit:      {type: log}
defaults:
  retry: {max_attempts: 15, base: 2s, factor: 2, cap: 1h, max_age: 48h, retry_after_cap: 1h}
rules:
  - name: stripe-dispute-opened
    source: stripe
    when:
      body.type: charge.dispute.created
      body.data.object.amount: {gte: 5000}
      any:
        - body.livemode: true
        - headers.x-test-mode: {exists: false}
    if: "body.data.object.reason in ['fraudulent', 'general']"
    action: create_ticket
    provider: vambe-cl
    ticket:
      contact:
        name: "{{ body.data.object.billing_details.name }}"
        email: "{{ body.data.object.receipt_email }}"
        phone: "{{ body.data.object.billing_details.phone | e164('CL') }}"
        identifier: "{{ body.data.object.customer }}"
      subject: "Dispute on {{ body.data.object.charge }}"
      message:
        text: {template: stripe/dispute.txt.j2}
        direction: incoming
      metadata: {charge: "{{ body.data.object.charge }}", amount: "{{ body.data.object.amount | money(body.data.object.currency) }}"}
      contact_metadata: {stripe_customer: "{{ body.data.object.customer }}"}
      tags: [stripe, dispute]
      correlate: "stripe:{{ body.data.object.charge }}"
      options: {stage_id: "..."}
    continue: false
"""

ENV = {
    name: f"value-of-{name.lower()}"
    for name in [
        "STRIPE_WEBHOOK_SECRET",
        "FORM_TOKEN",
        "HUBSPOT_SECRET",
        "VAMBE_API_KEY",
        "VAMBE_PHONE_ID",
        "VAMBE_STAGE_ID",
        "GLASSIX_KEY",
        "GLASSIX_SECRET",
        "CLOUDCHAT_TOKEN",
        "AWAL_SECRET",
        "ZD_TOKEN",
    ]
}


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"providers", "sources", "rules", "vars", "defaults"}


def test_load_schema_returns_a_fresh_copy() -> None:
    load_schema()["properties"].clear()
    assert load_schema()["properties"]


def test_rule_source_and_provider_keys_are_described_for_editors() -> None:
    schema = load_schema()
    for definition in ("rule", "source", "provider", "verify", "ticket", "defaults", "retry"):
        undocumented = [
            name
            for name, sub in schema["$defs"][definition]["properties"].items()
            if "description" not in sub and "$ref" not in sub
        ]
        assert not undocumented, (definition, undocumented)


def test_design_examples_load(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    (rules / "schemas").mkdir(parents=True)
    (rules / "schemas" / "stripe-event.json").write_text('{"type": "object", "required": ["id"]}')
    (rules / "example.yaml").write_text(DESIGN_EXAMPLES)
    config = load_config(rules, tmp_path / "templates", ENV)
    assert set(config.providers) == {
        "vambe-cl",
        "glassix",
        "cloudchat",
        "awal",
        "helpdesk",
        "audit",
    }
    assert config.providers["cloudchat"].base_url == "https://cloudchat.example.com"
    assert config.providers["glassix"].settings["user_name"] == "api@acme.example"
    assert config.sources["stripe"].schema == {"type": "object", "required": ["id"]}
    assert config.sources["stripe"].verify["secrets"] == ["value-of-stripe_webhook_secret"]
    assert config.sources["hubspot"].split is True
    rule = config.rules[0]
    assert rule.action is ActionKind.CREATE_TICKET
    assert rule.when["any"] == [{"body.livemode": True}, {"headers.x-test-mode": {"exists": False}}]
    assert "value-of-awal_secret" in config.secrets
    assert "value-of-vambe_phone_id" not in config.secrets
