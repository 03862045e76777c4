import asyncio
import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.config.model import Config, Defaults, DocPath, Location, RuleConfig
from bridge.delivery.dispatch import route_event
from bridge.exceptions import Problem, RenderError
from bridge.records import DeliveryStatus, EventStatus, NewDelivery, Routing, StoredEvent
from bridge.rendering.actions import (
    CompiledTicket,
    compile_ticket,
    compile_tree,
    event_context,
    rule_context,
)
from bridge.rendering.templates import Templates
from bridge.service import load_service
from bridge.tickets import (
    ActionKind,
    Contact,
    Direction,
    Message,
    OnExisting,
    OnMissing,
    TicketAction,
)
from tests.helpers import write_tree

RULE: DocPath = ("rules", 0)
TICKET: DocPath = RULE + ("ticket",)

# DESIGN §2.4, as written.
DESIGN_TICKET: dict[str, Any] = {
    "contact": {
        "name": "{{ body.data.object.billing_details.name }}",
        "email": "{{ body.data.object.receipt_email }}",
        "phone": "{{ body.data.object.billing_details.phone | e164('CL') }}",
        "identifier": "{{ body.data.object.customer }}",
    },
    "subject": "Dispute on {{ body.data.object.charge }}",
    "message": {"text": {"template": "stripe/dispute.txt.j2"}, "direction": "incoming"},
    "metadata": {
        "charge": "{{ body.data.object.charge }}",
        "amount": "{{ body.data.object.amount | money(body.data.object.currency) }}",
    },
    "contact_metadata": {"stripe_customer": "{{ body.data.object.customer }}"},
    "tags": ["stripe", "dispute"],
    "correlate": "stripe:{{ body.data.object.charge }}",
    "options": {"stage_id": "..."},
}

DISPUTE_TEMPLATE = """\
Stripe reports a dispute on {{ body.data.object.charge }}.
Amount: {{ body.data.object.amount | money(body.data.object.currency, 'es_CL') }}
Reference: {{ body.data.object.metadata.order_ref }}
Received: {{ event.received_at | datetime('%Y-%m-%d %H:%M', 'America/Santiago') }}
"""

# The Stripe event of sources.md §1, with the fields the §2.4 example reads added to its object
# (`charge`, `billing_details`), as a charge/dispute object carries them.
STRIPE_EVENT: dict[str, Any] = {
    "id": "evt_1QfxTest0000000001",
    "object": "event",
    "api_version": "2024-06-20",
    "created": 1700000000,
    "data": {
        "object": {
            "id": "pi_3QfxTest0000000001",
            "object": "payment_intent",
            "amount": 4200,
            "currency": "eur",
            "customer": "cus_QfxTest001",
            "receipt_email": "ana.lima@example.com",
            "status": "succeeded",
            "metadata": {"order_ref": "WEB-1042"},
            "charge": "ch_3QfxTest0000000001",
            "billing_details": {"name": "Ana Lima", "phone": "9 6123 4567"},
        }
    },
    "livemode": False,
    "pending_webhooks": 1,
    "request": {"id": None, "idempotency_key": None},
    "type": "payment_intent.succeeded",
}


def locations() -> dict[DocPath, Location]:
    """Where the keys of rules[0].ticket were written in rules/stripe.yaml (one per line)."""
    out = {RULE: Location(file="rules/stripe.yaml", line=3, path="rules[0]")}
    line = 10
    for key, value in DESIGN_TICKET.items():
        out[TICKET + (key,)] = Location(
            file="rules/stripe.yaml", line=line, path=f"rules[0].ticket.{key}"
        )
        line += 1
        if isinstance(value, dict):
            for sub in value:
                path = f"rules[0].ticket.{key}.{sub}"
                out[TICKET + (key, sub)] = Location(file="rules/stripe.yaml", line=line, path=path)
                line += 1
    out[TICKET] = Location(file="rules/stripe.yaml", line=9, path="rules[0].ticket")
    return out


def make_rule(ticket: dict[str, Any], **kwargs: Any) -> RuleConfig:
    return RuleConfig(
        name="stripe-disputes",
        sources=("stripe",),
        when={},
        if_expr=None,
        action=kwargs.pop("action", ActionKind.CREATE_TICKET),
        provider="vambe-cl",
        ticket=ticket,
        doc_path=RULE,
        location=Location(file="rules/stripe.yaml", line=3, path="rules[0]"),
        **kwargs,
    )


def make_config(tmp_path: Path, rule: RuleConfig) -> Config:
    return Config(
        rules_dir=tmp_path / "rules",
        templates_dir=tmp_path / "templates",
        sources={},
        providers={},
        rules=(rule,),
        vars={},
        defaults=Defaults(),
        locations=locations(),
    )


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    directory = tmp_path / "templates"
    (directory / "stripe").mkdir(parents=True)
    (directory / "stripe" / "dispute.txt.j2").write_text(DISPUTE_TEMPLATE)
    return Templates(directory)


def compile_ok(tmp_path: Path, templates: Templates, rule: RuleConfig) -> CompiledTicket:
    problems: list[Problem] = []
    compiled = compile_ticket(
        rule, config=make_config(tmp_path, rule), templates=templates, problems=problems
    )
    assert problems == []
    return compiled


def compile_problems(tmp_path: Path, templates: Templates, ticket: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    rule = make_rule(ticket)
    compile_ticket(rule, config=make_config(tmp_path, rule), templates=templates, problems=problems)
    return problems


def context(body: dict[str, Any]) -> dict[str, Any]:
    event = StoredEvent(
        id="ev_01",
        source="stripe",
        received_at=1700000000.0,
        headers={},
        query={},
        payload=json.dumps(body),
        content_type="application/json",
        dedupe_key=body.get("id"),
        status=EventStatus.ACCEPTED,
    )
    base = event_context(event, vars={}, now=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    return rule_context(base, "stripe-disputes")


def render(
    tmp_path: Path, templates: Templates, ticket: dict[str, Any], body: dict[str, Any]
) -> TicketAction:
    return compile_ok(tmp_path, templates, make_rule(ticket)).render(context(body))


# -- the DESIGN example ---------------------------------------------------------------------------


def test_design_example_renders_against_the_stripe_event(
    tmp_path: Path, templates: Templates
) -> None:
    rule = make_rule(DESIGN_TICKET, on_existing=OnExisting.SKIP, on_missing=OnMissing.CREATE)
    action = compile_ok(tmp_path, templates, rule).render(context(STRIPE_EVENT))
    assert action == TicketAction(
        action=ActionKind.CREATE_TICKET,
        provider="vambe-cl",
        contact=Contact(
            name="Ana Lima",
            email="ana.lima@example.com",
            phone="+56961234567",
            identifier="cus_QfxTest001",
        ),
        subject="Dispute on ch_3QfxTest0000000001",
        message=Message(
            text="Stripe reports a dispute on ch_3QfxTest0000000001.\n"
            "Amount: EUR42,00\n"
            "Reference: WEB-1042\n"
            "Received: 2023-11-14 19:13",
            direction=Direction.INCOMING,
        ),
        metadata={"charge": "ch_3QfxTest0000000001", "amount": "€42.00"},
        contact_metadata={"stripe_customer": "cus_QfxTest001"},
        tags=("stripe", "dispute"),
        correlate="stripe:ch_3QfxTest0000000001",
        options={"stage_id": "..."},
        on_existing=OnExisting.SKIP,
        on_missing=OnMissing.CREATE,
    )


def test_rendered_action_can_feed_an_http_body_template(
    tmp_path: Path, templates: Templates
) -> None:
    ctx = context(STRIPE_EVENT)
    action = compile_ok(tmp_path, templates, make_rule(DESIGN_TICKET)).render(ctx)
    problems: list[Problem] = []
    rule = make_rule(DESIGN_TICKET)
    body = compile_tree(
        {
            "requester": "{{ ticket.contact.phone }}",
            "title": "{{ ticket.subject }} ({{ rule.name }})",
        },
        at=("providers", "helpdesk", "body"),
        config=make_config(tmp_path, rule),
        templates=templates,
        problems=problems,
    )
    assert body.render({**ctx, "ticket": action.to_json()}) == {
        "requester": "+56961234567",
        "title": "Dispute on ch_3QfxTest0000000001 (stripe-disputes)",
    }


def test_render_does_not_change_the_payload(tmp_path: Path, templates: Templates) -> None:
    ctx = context(STRIPE_EVENT)
    before = copy.deepcopy(ctx["body"])
    compile_ok(tmp_path, templates, make_rule(DESIGN_TICKET)).render(ctx)
    assert ctx["body"] == before == STRIPE_EVENT


# -- blank means "not given" ----------------------------------------------------------------------


def test_blank_values_are_not_given(tmp_path: Path, templates: Templates) -> None:
    ticket = {
        "contact": {
            "name": "  {{ body.name }}  ",
            "email": "{{ body.email }}",  # JSON null renders as nothing
            "phone": "{{ body.phone | e164('CL') }}",  # absent phone: e164 gives ""
            "identifier": "{{ body.customer }}",
        },
        "subject": "{% if body.vip %}VIP{% endif %}",
        "metadata": {"kept": "{{ body.customer }}", "blank": "  {{ body.email }} ", "zero": "0"},
        "contact_metadata": {"blank": "{{ body.email }}"},
        "options": {"blank": "", "null": None, "count": 3, "flag": False},
        "tags": ["stripe", "{{ body.email }}", " stripe ", "{{ body.customer }}"],
        "correlate": "{{ body.email }}",
        "message": "{{ body.email }}",
    }
    body = {"name": "Ana", "email": None, "phone": "", "customer": "cus_1", "vip": False}
    action = render(tmp_path, templates, ticket, body)
    assert action.contact == Contact(name="Ana", identifier="cus_1")
    assert action.subject is None
    assert action.metadata == {"kept": "cus_1", "zero": "0"}
    assert action.contact_metadata == {}
    assert action.options == {"count": 3, "flag": False}
    assert action.tags == ("stripe", "cus_1")
    assert action.correlate is None
    assert action.message is None
    assert action.to_json() == {
        "action": "create_ticket",
        "provider": "vambe-cl",
        "contact": {"name": "Ana", "identifier": "cus_1"},
        "metadata": {"kept": "cus_1", "zero": "0"},
        "options": {"count": 3, "flag": False},
        "tags": ["stripe", "cus_1"],
        "on_existing": "update",
        "on_missing": "skip",
    }


def test_metadata_values_stay_as_rendered_strings(tmp_path: Path, templates: Templates) -> None:
    ticket = {"metadata": {"amount": "{{ body.amount }}", "nested": {"a": "{{ body.amount }}"}}}
    action = render(tmp_path, templates, ticket, {"amount": 4200})
    assert action.metadata == {"amount": "4200", "nested": {"a": "4200"}}


def test_empty_ticket_gives_a_bare_action(tmp_path: Path, templates: Templates) -> None:
    rule = make_rule({"correlate": "stripe:{{ body.charge }}"}, action=ActionKind.CLOSE_TICKET)
    action = compile_ok(tmp_path, templates, rule).render(context({"charge": "ch_1"}))
    assert action == TicketAction(
        action=ActionKind.CLOSE_TICKET, provider="vambe-cl", correlate="stripe:ch_1"
    )


# -- message shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Hello {{ body.name }}", Message(text="Hello Ana")),
        ({"text": "Hello {{ body.name }}"}, Message(text="Hello Ana")),
        (
            {"text": "Note for {{ body.name }}", "direction": "note"},
            Message(text="Note for Ana", direction=Direction.NOTE),
        ),
        ({"text": "Hi", "direction": "outgoing"}, Message(text="Hi", direction=Direction.OUTGOING)),
        ({"template": "hello.j2"}, Message(text="Hello from a file, Ana")),
        (
            {"text": {"template": "hello.j2"}, "direction": "note"},
            Message(text="Hello from a file, Ana", direction=Direction.NOTE),
        ),
        ({"text": "{{ body.nothing }}", "direction": "note"}, None),
        ("  \n ", None),
    ],
)
def test_message_shapes(
    tmp_path: Path, templates: Templates, message: Any, expected: Message | None
) -> None:
    (templates.directory / "hello.j2").write_text("\nHello from a file, {{ body.name }}\n\n")
    action = render(tmp_path, templates, {"message": message}, {"name": "Ana", "nothing": ""})
    assert action.message == expected


# -- problems -------------------------------------------------------------------------------------


def test_unknown_keys_and_wrong_shapes_are_problems(tmp_path: Path, templates: Templates) -> None:
    problems = compile_problems(
        tmp_path,
        templates,
        {
            "contact": {"name": "x", "fax": "y"},
            "subjcet": "typo",
            "message": {"text": "x", "direction": "sideways", "priority": 1},
            "tags": "stripe",
            "metadata": ["not", "a", "mapping"],
        },
    )
    messages = sorted(p.message for p in problems)
    assert messages == sorted(
        [
            "unknown key 'fax' in contact (name, email, phone, identifier)",
            "unknown key 'subjcet' in ticket (contact, subject, message, metadata, "
            "contact_metadata, options, tags, correlate)",
            "direction 'sideways' is not one of: incoming, outgoing, note",
            "unknown key 'priority' in message (text, direction)",
            "expected a list of tags",
            "metadata: expected a mapping",
        ]
    )
    tags = next(p for p in problems if p.message == "expected a list of tags")
    assert (tags.file, tags.line, tags.path) == ("rules/stripe.yaml", 24, "rules[0].ticket.tags")


def test_message_without_text_is_a_problem(tmp_path: Path, templates: Templates) -> None:
    problems = compile_problems(tmp_path, templates, {"message": {"direction": "note"}})
    assert [p.message for p in problems] == ["message: text is required"]


def test_text_fields_must_be_text(tmp_path: Path, templates: Templates) -> None:
    problems = compile_problems(
        tmp_path, templates, {"subject": {"a": 1}, "contact": {"name": ["Ana"]}, "tags": [{"x": 1}]}
    )
    assert len(problems) == 3
    assert {p.message for p in problems} == {"expected text (a template) or {template: path}"}


def test_template_problems_name_file_and_line(tmp_path: Path, templates: Templates) -> None:
    (templates.directory / "stripe" / "broken.j2").write_text("ok\n{{ body.x | nope }}\n")
    problems = compile_problems(
        tmp_path,
        templates,
        {
            "contact": {"email": "{{ body.email"},
            "subject": "line one\n{% if %}",
            "message": {"text": {"template": "stripe/broken.j2"}},
            "metadata": {"charge": {"template": "stripe/missing.j2"}},
        },
    )
    where = sorted((p.file, p.line, p.path) for p in problems)
    assert where == sorted(
        [
            ("rules/stripe.yaml", 12, "rules[0].ticket.contact.email"),
            ("rules/stripe.yaml", 16, "rules[0].ticket.subject"),  # written at 15, second line
            (
                str(templates.directory / "stripe/broken.j2"),
                2,
                "rules[0].ticket.message.text.template",
            ),
            ("rules/stripe.yaml", 20, "rules[0].ticket.metadata.charge.template"),
        ]
    )


# -- render errors --------------------------------------------------------------------------------


def test_render_error_names_template_and_line(tmp_path: Path, templates: Templates) -> None:
    compiled = compile_ok(tmp_path, templates, make_rule(DESIGN_TICKET))
    body = copy.deepcopy(STRIPE_EVENT)
    del body["data"]["object"]["metadata"]["order_ref"]
    with pytest.raises(RenderError) as caught:
        compiled.render(context(body))
    assert (caught.value.template, caught.value.line) == ("stripe/dispute.txt.j2", 3)
    assert "order_ref" in caught.value.message


def test_render_error_in_a_string_template(tmp_path: Path, templates: Templates) -> None:
    compiled = compile_ok(tmp_path, templates, make_rule(DESIGN_TICKET))
    body = copy.deepcopy(STRIPE_EVENT)
    body["data"]["object"]["billing_details"]["phone"] = "12"
    with pytest.raises(RenderError) as caught:
        compiled.render(context(body))
    assert caught.value.template == "rules/stripe.yaml:13 rules[0].ticket.contact.phone"
    assert caught.value.line == 1
    assert caught.value.message.startswith("e164: '12'")


# -- a phone the e164 filter cannot use: the delivery is dead, the event is kept ------------------

PHONE_RULES = """
    providers:
      audit: {type: log}
    sources:
      shop: {verify: {type: none}}
    rules:
      - name: call-back
        source: shop
        action: create_ticket
        provider: audit
        ticket:
          contact: {phone: "{{ body.phone | e164('CL') }}"}
          subject: "Call back"
"""


def route_phone(tmp_path: Path, phone: object) -> NewDelivery:
    root = write_tree(tmp_path, {"rules/main.yaml": PHONE_RULES})
    (root / "templates").mkdir()
    event = StoredEvent(
        id="evt_phone",
        source="shop",
        received_at=1700000000.0,
        headers={},
        query={},
        payload=json.dumps({"phone": phone}),
        content_type="application/json",
        dedupe_key=None,
        status=EventStatus.ACCEPTED,
    )

    async def go() -> Routing:
        async with httpx.AsyncClient() as client:
            service = load_service(root / "rules", root / "templates", {}, client)
            return route_event(service, event, now=1700000000.0, new_id=lambda: "dlv_1")

    routing = asyncio.run(go())
    assert routing.matched_rules == ("call-back",)
    (delivery,) = routing.deliveries
    return delivery


@pytest.mark.parametrize("phone", ["+56 9 1234 5678", "56912345678", 56912345678])
def test_vambes_example_phone_reaches_the_provider(tmp_path: Path, phone: object) -> None:
    delivery = route_phone(tmp_path, phone)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.action is not None
    assert delivery.action.contact == Contact(phone="+56912345678")


@pytest.mark.parametrize(
    ("phone", "reason"), [("123", "too short"), ("call me", "it does not look like a phone number")]
)
def test_an_impossible_phone_is_a_dead_delivery_naming_the_value(
    tmp_path: Path, phone: str, reason: str
) -> None:
    delivery = route_phone(tmp_path, phone)
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.action is None
    assert delivery.last_error == (
        f"render error in {tmp_path}/rules/main.yaml:11 rules[0].ticket.contact.phone, line 1: "
        f"e164: {phone!r} is not a phone number (default region CL): {reason}"
    )
