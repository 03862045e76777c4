"""The vambe provider at the unit level: the exact requests, what each answer becomes, the
correlate map, on_missing, secrets, and what `check` refuses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bridge.config import Config, Defaults, ProviderConfig
from bridge.exceptions import ConfigError, Problem
from bridge.providers.base import Job, Outcome, OutcomeKind
from bridge.providers.registry import build_providers
from bridge.providers.vambe.adapter import VambeProvider
from bridge.providers.vambe.pipelines import Pipeline, Stage
from bridge.rendering.templates import Templates
from bridge.service import load_service
from bridge.tickets import (
    ActionKind,
    Contact,
    Direction,
    Message,
    OnMissing,
    TicketAction,
    TicketRef,
)
from tests.dryrun import dry_run
from tests.fakes.vambe import FakeVambe
from tests.helpers import write_tree

BASE = "http://127.0.0.1:5980"
KEY = "vk_live_S3cr3tKeyValue"
STAGE = "650e8400-e29b-41d4-a716-446655440001"
CONTACT = "df980fc8-b6db-4820-bf22-2969482d106d"
OPEN = f"{BASE}/api/public/ticket/open/web-whatsapp/qr-main"
METADATA = f"{BASE}/api/public/ticket/metadata"
CLOSE = f"{BASE}/api/public/ticket/close/contact/{CONTACT}"
CREATED = httpx.Response(200, json={"aiContactId": CONTACT, "status": "ok"})
OK = httpx.Response(200, json={"status": "ok"})
NO_TICKET = httpx.Response(
    404, json={"statusCode": 404, "message": "Active ticket not found for contact"}
)


def provider(tmp_path: Path, client: httpx.AsyncClient, **settings: Any) -> VambeProvider:
    raw = {
        "type": "vambe",
        "api_key": KEY,
        "phone_id": "qr-main",
        "stage_id": STAGE,
        "base_url": BASE,
        **settings,
    }
    config = Config(
        rules_dir=tmp_path,
        templates_dir=tmp_path,
        sources={},
        providers={
            "vambe": ProviderConfig(
                name="vambe",
                type="vambe",
                settings=raw,
                base_url=raw.get("base_url"),
                location=None,  # type: ignore[arg-type]
            )
        },
        rules=(),
        vars={},
        defaults=Defaults(),
        locations={},
    )
    problems: list[Problem] = []
    built = build_providers(config, Templates(tmp_path), client, problems)
    assert problems == []
    vambe = built["vambe"]
    assert isinstance(vambe, VambeProvider)
    return vambe


def action(kind: ActionKind = ActionKind.CREATE_TICKET, **fields: Any) -> TicketAction:
    given: dict[str, Any] = {
        "contact": Contact(
            name="Ana Pérez", email="ana@example.com", phone="+56912345678", identifier="cus_77"
        ),
        "subject": "Dispute on ch_1",
        "message": Message(text="A customer disputed ch_1."),
        "metadata": {"charge": "ch_1", "amount": 4200, "livemode": False},
        "contact_metadata": {"plan": "pro"},
        "correlate": "stripe:ch_1",
        **fields,
    }
    return TicketAction(action=kind, provider="vambe", **given)


def job(act: TicketAction | None = None, ref: TicketRef | None = None, **kw: Any) -> Job:
    return Job(
        delivery_id="dlv_1",
        attempt=1,
        action=act or action(),
        ticket_ref=ref,
        ticket_open=kw.get("ticket_open"),
        context={"body": {}, "headers": {}, "query": {}, "source": "stripe"},
    )


def deliver(tmp_path: Path, the_job: Job, **settings: Any) -> Outcome:
    async def go() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await provider(tmp_path, client, **settings).deliver(the_job)

    return asyncio.run(go())


def sent(route: respx.Route, index: int = -1) -> tuple[httpx.Request, Any]:
    request = route.calls[index].request
    return request, json.loads(request.content) if request.content else None


# -- create ------------------------------------------------------------------------------------


@respx.mock
def test_create_sends_the_mapped_body_and_keeps_the_contact_id(tmp_path):
    route = respx.post(OPEN).mock(return_value=CREATED)
    outcome = deliver(tmp_path, job())
    request, body = sent(route)
    assert request.method == "POST"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert body == {
        "to_phone_number": "+56912345678",
        "stage_id": STAGE,
        "contact_name": "Ana Pérez",
        "email": "ana@example.com",
        "contact_metadata": {"plan": "pro"},
        "ticket_metadata": {
            "charge": "ch_1",
            "amount": "4200",
            "livemode": "false",
            "subject": "Dispute on ch_1",
            "message": "A customer disputed ch_1.",
        },
        "integration_data": {"external_id": "cus_77"},
    }
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(contact_id=CONTACT)
    assert outcome.ticket_open is True


@respx.mock
def test_create_on_the_official_api_with_a_template_and_a_rule_stage(tmp_path):
    route = respx.post(f"{BASE}/api/public/ticket/open/whatsapp/1234567890").mock(
        return_value=CREATED
    )
    act = action(
        contact=Contact(phone="+56 9 1234-5678"),
        subject=None,
        message=None,
        metadata={},
        contact_metadata={},
        options={"stage_id": "stage-from-rule", "template_id": "tpl_welcome"},
    )
    outcome = deliver(tmp_path, job(act), channel="whatsapp", phone_id=1234567890)
    assert sent(route)[1] == {
        "to_phone_number": "+56912345678",
        "stage_id": "stage-from-rule",
        "message": {"templateId": "tpl_welcome", "ai_generated": False},
    }
    assert outcome.kind is OutcomeKind.SUCCESS


@respx.mock
def test_an_outgoing_message_is_sent_as_content_not_ai_generated(tmp_path):
    route = respx.post(OPEN).mock(return_value=CREATED)
    act = action(
        message=Message(text="Hola Ana", direction=Direction.OUTGOING),
        metadata={},
        subject=None,
    )
    deliver(tmp_path, job(act), message_field="detalle")
    body = sent(route)[1]
    assert body["message"] == {"content": "Hola Ana", "ai_generated": False}
    assert "ticket_metadata" not in body  # outgoing text is the message, not metadata


@respx.mock
def test_the_incoming_message_key_is_configurable(tmp_path):
    route = respx.post(OPEN).mock(return_value=CREATED)
    deliver(tmp_path, job(action(metadata={}, subject=None)), message_field="detalle")
    assert sent(route)[1]["ticket_metadata"] == {"detalle": "A customer disputed ch_1."}


@respx.mock
def test_a_create_keeps_the_other_ids_already_known(tmp_path):
    respx.post(OPEN).mock(return_value=CREATED)
    outcome = deliver(tmp_path, job(ref=TicketRef(contact_id="old", url="https://x")))
    assert outcome.ticket_ref == TicketRef(contact_id=CONTACT, url="https://x")


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        (None, "contact.phone is required"),
        ("call me maybe", "is not a phone number"),
    ],
)
@respx.mock
def test_a_create_without_a_usable_phone_is_permanent_and_sends_nothing(tmp_path, phone, message):
    route = respx.post(OPEN).mock(return_value=CREATED)
    outcome = deliver(tmp_path, job(action(contact=Contact(email="a@example.com", phone=phone))))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert message in outcome.message
    assert not route.called


@pytest.mark.parametrize(
    ("phone", "to_phone_number"),
    [
        ("+56912345678", "+56912345678"),  # the forms Vambe's document gives, all as E.164
        ("56912345678", "+56912345678"),
        ("+56 9 1234 5678", "+56912345678"),
        ("+5691234", "+5691234"),  # too short for phonenumbers: sent as before, Vambe decides
    ],
)
@respx.mock
def test_a_create_sends_the_phone_as_bridge_phones_reads_it(tmp_path, phone, to_phone_number):
    route = respx.post(OPEN).mock(return_value=CREATED)
    outcome = deliver(tmp_path, job(action(contact=Contact(phone=phone))))
    assert outcome.kind is OutcomeKind.SUCCESS
    assert sent(route)[1]["to_phone_number"] == to_phone_number


# -- update ------------------------------------------------------------------------------------


@respx.mock
def test_update_by_the_stored_contact_id_then_its_contact_metadata(tmp_path):
    metadata = respx.post(METADATA).mock(return_value=OK)
    contact = respx.post(f"{BASE}/api/public/contact/{CONTACT}/update-metadata").mock(
        return_value=OK
    )
    ref = TicketRef(contact_id=CONTACT)
    act = action(ActionKind.UPDATE_TICKET, options={"allow_closed_ticket": True})
    outcome = deliver(tmp_path, job(act, ref, ticket_open=True))
    request, body = sent(metadata)
    assert request.headers["x-api-key"] == KEY
    assert body == {
        "ai_contact_id": CONTACT,
        "allow_closed_ticket": True,
        "metadata": {
            "charge": "ch_1",
            "amount": "4200",
            "livemode": "false",
            "subject": "Dispute on ch_1",
            "message": "A customer disputed ch_1.",
        },
    }
    assert sent(contact)[1] == {"metadata": {"plan": "pro"}}
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == ref


@respx.mock
def test_update_without_a_stored_ref_looks_the_ticket_up_by_phone(tmp_path):
    metadata = respx.post(METADATA).mock(return_value=OK)
    act = action(ActionKind.UPDATE_TICKET, contact_metadata={}, subject=None, message=None)
    outcome = deliver(tmp_path, job(act), allow_closed_ticket=True)
    assert sent(metadata)[1] == {
        "contact_number": "+56912345678",
        "metadata": {"charge": "ch_1", "amount": "4200", "livemode": "false"},
        "allow_closed_ticket": True,
    }
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref is None


@respx.mock
def test_update_by_phone_says_contact_metadata_could_not_be_set(tmp_path):
    respx.post(METADATA).mock(return_value=OK)
    outcome = deliver(tmp_path, job(action(ActionKind.UPDATE_TICKET)))
    assert outcome.kind is OutcomeKind.SUCCESS
    assert "contact_metadata not updated" in outcome.message


@pytest.mark.parametrize(
    ("on_missing", "kind"),
    [
        (OnMissing.SKIP, OutcomeKind.SKIPPED),
        (OnMissing.FAIL, OutcomeKind.PERMANENT),
        (OnMissing.CREATE, OutcomeKind.SUCCESS),
    ],
)
@respx.mock
def test_update_of_a_ticket_vambe_does_not_have_follows_on_missing(tmp_path, on_missing, kind):
    respx.post(METADATA).mock(return_value=NO_TICKET)
    create = respx.post(OPEN).mock(return_value=CREATED)
    act = action(ActionKind.UPDATE_TICKET, on_missing=on_missing, contact_metadata={})
    outcome = deliver(tmp_path, job(act))
    assert outcome.kind is kind
    if on_missing is OnMissing.CREATE:
        assert create.call_count == 1
        assert sent(create)[1]["to_phone_number"] == "+56912345678"
        assert outcome.ticket_ref == TicketRef(contact_id=CONTACT)
        assert outcome.ticket_open is True
    else:
        assert not create.called
        assert "Active ticket not found for contact" in outcome.message


@respx.mock
def test_update_with_no_ref_and_no_phone_is_skipped_without_a_call(tmp_path):
    route = respx.post(METADATA).mock(return_value=OK)
    act = action(ActionKind.UPDATE_TICKET, contact=Contact(email="ana@example.com"))
    outcome = deliver(tmp_path, job(act))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert "no Vambe contact id" in outcome.message
    assert not route.called


# -- close and reopen --------------------------------------------------------------------------


@respx.mock
def test_close_stores_its_metadata_then_closes_by_contact_id(tmp_path):
    metadata = respx.post(METADATA).mock(return_value=OK)
    close = respx.post(CLOSE).mock(return_value=OK)
    ref = TicketRef(contact_id=CONTACT)
    act = TicketAction(
        action=ActionKind.CLOSE_TICKET,
        provider="vambe",
        metadata={"dispute_status": "won"},
        correlate="stripe:ch_1",
    )
    outcome = deliver(tmp_path, job(act, ref, ticket_open=True))
    assert sent(metadata)[1] == {
        "ai_contact_id": CONTACT,
        "metadata": {"dispute_status": "won"},
    }
    request, body = sent(close)
    assert request.method == "POST" and request.headers["x-api-key"] == KEY
    assert body is None
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_open is False
    assert outcome.ticket_ref == ref


@respx.mock
def test_close_without_metadata_is_one_call(tmp_path):
    close = respx.post(CLOSE).mock(return_value=OK)
    act = TicketAction(action=ActionKind.CLOSE_TICKET, provider="vambe")
    outcome = deliver(tmp_path, job(act, TicketRef(contact_id=CONTACT)))
    assert close.call_count == 1 and len(respx.calls) == 1
    assert outcome.kind is OutcomeKind.SUCCESS


@pytest.mark.parametrize(
    ("on_missing", "kind"), [(OnMissing.SKIP, OutcomeKind.SKIPPED), (OnMissing.FAIL, "permanent")]
)
@respx.mock
def test_close_without_a_contact_id_follows_on_missing(tmp_path, on_missing, kind):
    act = TicketAction(action=ActionKind.CLOSE_TICKET, provider="vambe", on_missing=on_missing)
    outcome = deliver(tmp_path, job(act))
    assert outcome.kind == kind
    assert "Vambe closes by contact id" in outcome.message
    assert len(respx.calls) == 0


@respx.mock
def test_close_of_a_contact_without_an_active_ticket_is_skipped(tmp_path):
    respx.post(CLOSE).mock(return_value=NO_TICKET)
    act = TicketAction(action=ActionKind.CLOSE_TICKET, provider="vambe")
    outcome = deliver(tmp_path, job(act, TicketRef(contact_id=CONTACT)))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.message.endswith("HTTP 404: Active ticket not found for contact)")


@respx.mock
def test_reopen_opens_a_new_ticket_for_the_stored_contact(tmp_path):
    create = respx.post(OPEN).mock(return_value=CREATED)
    act = action(ActionKind.REOPEN_TICKET, metadata={}, contact_metadata={}, subject=None)
    outcome = deliver(tmp_path, job(act, TicketRef(contact_id=CONTACT), ticket_open=False))
    assert sent(create)[1]["to_phone_number"] == "+56912345678"
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_open is True
    assert outcome.ticket_ref == TicketRef(contact_id=CONTACT)


@respx.mock
def test_reopen_without_a_phone_reads_it_from_the_contact(tmp_path):
    info = respx.get(f"{BASE}/api/public/contact/{CONTACT}/info").mock(
        return_value=httpx.Response(200, json={"id": CONTACT, "phone": "56911112222"})
    )
    create = respx.post(OPEN).mock(return_value=CREATED)
    act = TicketAction(action=ActionKind.REOPEN_TICKET, provider="vambe", subject="again")
    outcome = deliver(tmp_path, job(act, TicketRef(contact_id=CONTACT)))
    assert info.calls.last.request.headers["x-api-key"] == KEY
    assert sent(create)[1] == {
        "to_phone_number": "56911112222",
        "stage_id": STAGE,
        "ticket_metadata": {"subject": "again"},
    }
    assert outcome.kind is OutcomeKind.SUCCESS


@respx.mock
def test_reopen_of_an_unknown_ticket_is_skipped(tmp_path):
    outcome = deliver(tmp_path, job(action(ActionKind.REOPEN_TICKET)))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert len(respx.calls) == 0


def test_add_note_is_refused_at_delivery_too(tmp_path):
    act = TicketAction(action=ActionKind.ADD_NOTE, provider="vambe", message=Message(text="x"))
    outcome = deliver(tmp_path, job(act, TicketRef(contact_id=CONTACT)))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "cannot add_note" in outcome.message


# -- classification and secrets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (CREATED, OutcomeKind.SUCCESS, ""),
        (httpx.Response(201, json={"aiContactId": CONTACT}), OutcomeKind.SUCCESS, ""),
        (
            httpx.Response(400, json={"statusCode": 400, "message": "Invalid stage ID"}),
            OutcomeKind.PERMANENT,
            "HTTP 400: Invalid stage ID",
        ),
        (
            httpx.Response(401, json={"statusCode": 401, "message": "Unauthorized"}),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 401: Unauthorized",
        ),
        (
            httpx.Response(403, json={"statusCode": 403, "message": "Forbidden resource"}),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 403: Forbidden resource",
        ),
        (
            httpx.Response(404, json={"statusCode": 404, "message": "Phone not found"}),
            OutcomeKind.PERMANENT,
            "HTTP 404: Phone not found",
        ),
        (
            httpx.Response(409, json={"statusCode": 409, "message": "Conflict"}),
            OutcomeKind.PERMANENT,
            "HTTP 409: Conflict",
        ),
        (
            httpx.Response(429, headers={"Retry-After": "30"}),
            OutcomeKind.RETRYABLE,
            "HTTP 429: Too Many Requests",
        ),
        (
            httpx.Response(500, json={"statusCode": 500, "message": "Internal server error"}),
            OutcomeKind.RETRYABLE,
            "HTTP 500: Internal server error",
        ),
        (httpx.ConnectError("connection refused"), OutcomeKind.RETRYABLE, "ConnectError"),
        (httpx.ReadTimeout("timed out"), OutcomeKind.RETRYABLE, "ReadTimeout"),
    ],
)
@respx.mock
def test_answers_are_classified(tmp_path, answer, kind, message):
    route = respx.post(OPEN)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    outcome = deliver(tmp_path, job())
    assert outcome.kind is kind
    assert outcome.message.startswith(message)
    if kind is OutcomeKind.SUCCESS:
        assert outcome.ticket_ref == TicketRef(contact_id=CONTACT)
    else:
        assert outcome.ticket_ref is None
    if isinstance(answer, httpx.Response) and answer.status_code == 429:
        assert outcome.retry_after == 30


@respx.mock
def test_a_2xx_without_a_contact_id_is_done_but_says_so(tmp_path):
    respx.post(OPEN).mock(return_value=httpx.Response(200, json={"status": "ok"}))
    outcome = deliver(tmp_path, job())
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref is None
    assert "without an aiContactId" in outcome.message


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(400, json={"statusCode": 400, "message": f"bad key {KEY} for stage"}),
        httpx.Response(500, text=f"upstream said x-api-key={KEY}"),
        httpx.ConnectError(f"cannot connect using {KEY}"),
    ],
)
@respx.mock
def test_an_error_never_carries_the_api_key(tmp_path, answer):
    route = respx.post(OPEN)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    outcome = deliver(tmp_path, job())
    assert outcome.kind is not OutcomeKind.SUCCESS
    assert KEY not in outcome.message
    assert KEY not in (outcome.response_excerpt or "")
    assert "[redacted]" in outcome.message


@respx.mock
def test_pipelines_are_listed_and_errors_classified(tmp_path):
    route = respx.get(f"{BASE}/api/public/pipeline")
    route.mock(
        return_value=httpx.Response(
            200,
            json=[
                {"id": "p1", "name": "Support", "stages": [{"id": "s1", "name": "New"}]},
                {"id": "p2", "name": "Empty"},
            ],
        )
    )

    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            return await provider(tmp_path, client).pipelines()

    assert asyncio.run(go()) == [
        Pipeline(id="p1", name="Support", stages=(Stage(id="s1", name="New"),)),
        Pipeline(id="p2", name="Empty", stages=()),
    ]
    assert route.calls.last.request.headers["x-api-key"] == KEY
    route.mock(return_value=httpx.Response(401, json={"message": f"Unauthorized {KEY}"}))
    failed = asyncio.run(go())
    assert isinstance(failed, Outcome) and failed.kind is OutcomeKind.UNAUTHORIZED
    assert KEY not in failed.message
    route.mock(return_value=httpx.Response(200, json={"pipelines": []}))
    odd = asyncio.run(go())
    assert isinstance(odd, Outcome) and "other than a list" in odd.message


# -- `ticketbridge try` ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "on_missing", "expected", "outcome_kind"),
    [
        (ActionKind.CREATE_TICKET, OnMissing.SKIP, ["POST ticket/open"], OutcomeKind.SUCCESS),
        # the stranger has no active ticket: Vambe's 404, then on_missing decides
        (ActionKind.UPDATE_TICKET, OnMissing.SKIP, ["POST ticket/metadata"], OutcomeKind.SKIPPED),
        (
            ActionKind.UPDATE_TICKET,
            OnMissing.CREATE,
            ["POST ticket/metadata", "POST ticket/open"],
            OutcomeKind.SUCCESS,
        ),
    ],
)
def test_the_dry_run_for_a_new_customer_sends_what_a_first_real_delivery_sends(
    tmp_path, kind, on_missing, expected, outcome_kind
):
    the_job = job(action(kind, on_missing=on_missing))
    outcome, requests = dry_run(lambda client: provider(tmp_path, client), the_job)
    assert outcome.kind is outcome_kind
    sent = [
        (r["method"], httpx.URL(r["url"]).path.removeprefix("/api/public/"), r["json"])
        for r in requests
    ]
    assert [f"{method} {'/'.join(path.split('/')[:2])}" for method, path, _ in sent] == expected
    assert all(r["answer"]["stubbed"] for r in requests)
    if kind is ActionKind.UPDATE_TICKET:
        assert requests[0]["answer"]["status"] == 404

    with FakeVambe(api_key=KEY).running() as fake:

        async def go() -> Outcome:
            async with httpx.AsyncClient() as client:
                return await provider(tmp_path, client, base_url=fake.url).deliver(the_job)

        real = asyncio.run(go())
    assert real.kind is outcome_kind
    assert sent == [(r.method, r.path.removeprefix("/api/public/"), r.json) for r in fake.requests]


# -- what check refuses ------------------------------------------------------------------------

RULES = """
providers:
  vambe:
    type: vambe
    api_key: "{key}"
    phone_id: qr-main
{stage}
sources:
  shop:
    verify: {{type: none}}
rules:
  - name: the-rule
    source: shop
    action: {action}
{extra}
    provider: vambe
    ticket:
{ticket}
"""


def load_problems(tmp_path: Path, *, action="create_ticket", ticket, stage=True, extra=""):
    text = RULES.format(
        key=KEY,
        stage=f"    stage_id: {STAGE}" if stage else "    # no stage_id",
        action=action,
        extra=extra or "    on_existing: update",
        ticket="\n".join("      " + line for line in ticket.strip().splitlines()),
    )
    write_tree(tmp_path, {"rules/main.yaml": text})
    with pytest.raises(ConfigError) as caught:
        load_service(tmp_path / "rules", tmp_path / "templates", {}, httpx.AsyncClient())
    return [str(p).replace(str(tmp_path), "<tmp>") for p in caught.value.problems]


PHONE = 'contact: {phone: "{{ body.phone }}"}'


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"ticket": PHONE + "\ntags: [stripe]"},
            "<tmp>/rules/main.yaml:18: rules[0].ticket.tags: provider 'vambe' (vambe) "
            "has no ticket tags",
        ),
        (
            {"action": "add_note", "ticket": 'message: {text: "x", direction: note}'},
            "<tmp>/rules/main.yaml:13: rules[0].action: provider 'vambe' (vambe) cannot add_note",
        ),
        (
            {"ticket": PHONE + '\nmessage: {text: "x", direction: note}'},
            "<tmp>/rules/main.yaml:18: rules[0].ticket.message: provider 'vambe' (vambe) "
            "cannot send a message with direction note",
        ),
        (
            {"ticket": PHONE, "stage": False},
            "<tmp>/rules/main.yaml:13: rules[0].action: provider 'vambe' (vambe) opens tickets "
            "in a pipeline stage: set stage_id on the provider or options.stage_id on this rule "
            "(`ticketbridge vambe-stages` lists them)",
        ),
        (
            {"ticket": 'contact: {email: "{{ body.email }}"}'},
            "<tmp>/rules/main.yaml:17: rules[0].ticket.contact: provider 'vambe' (vambe) opens "
            "tickets by phone number: ticket.contact.phone is required",
        ),
        (
            {"action": "update_ticket", "extra": "    on_missing: create", "ticket": "subject: x"},
            "<tmp>/rules/main.yaml:16: rules[0].ticket.contact: provider 'vambe' (vambe) opens "
            "tickets by phone number: ticket.contact.phone is required",
        ),
        (
            {"ticket": PHONE + "\noptions: {stage: x}"},
            "<tmp>/rules/main.yaml:18: rules[0].ticket.options.stage: provider 'vambe' (vambe) "
            "has no option 'stage' (stage_id, template_id, allow_closed_ticket)",
        ),
        (
            {"action": "update_ticket", "ticket": 'message: {text: "hi", direction: outgoing}'},
            "<tmp>/rules/main.yaml:17: rules[0].ticket.message: provider 'vambe' (vambe) sends "
            "an outgoing message only when it opens a ticket (create_ticket, reopen_ticket); "
            "use direction incoming to store it on the ticket",
        ),
        (
            {
                "ticket": PHONE
                + '\nmessage: {text: "hi", direction: outgoing}\noptions: {template_id: t1}'
            },
            "<tmp>/rules/main.yaml:19: rules[0].ticket.options.template_id: provider 'vambe' "
            "(vambe) sends either a template or an outgoing message text, not both",
        ),
    ],
)
def test_check_refuses_what_vambe_cannot_do(tmp_path, rule, expected):
    found = load_problems(tmp_path, **rule)
    assert expected in found, found
    assert not any(KEY in line for line in found)


def test_a_rule_vambe_can_do_loads(tmp_path):
    text = RULES.format(
        key=KEY,
        stage="",
        action="create_ticket",
        extra="    on_existing: update",
        ticket="\n".join(
            "      " + line
            for line in [
                PHONE,
                "subject: s",
                'message: {text: "hi", direction: outgoing}',
                "metadata: {a: b}",
                "contact_metadata: {c: d}",
                f"options: {{stage_id: {STAGE}, allow_closed_ticket: true}}",
            ]
        ),
    )
    write_tree(tmp_path, {"rules/main.yaml": text})
    service = load_service(tmp_path / "rules", tmp_path / "templates", {}, httpx.AsyncClient())
    vambe = service.providers["vambe"]
    assert isinstance(vambe, VambeProvider)
    assert vambe.settings.base_url == "https://api.vambe.me"  # the documented API root
    assert vambe.settings.channel == "web-whatsapp"
    assert vambe.settings.stage_id is None
