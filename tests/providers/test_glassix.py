"""The glassix provider at the unit level: the exact requests of every action, the token
cache, what each answer becomes, the correlate map, on_missing, and what `check` refuses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bridge.config import Config, Defaults, ProviderConfig
from bridge.exceptions import ConfigError, Problem
from bridge.providers.base import Job, Outcome, OutcomeKind
from bridge.providers.glassix.adapter import GlassixProvider
from bridge.providers.glassix.body import GlassixSettings
from bridge.providers.glassix.settings import read_settings
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
from tests.fakes.glassix import FakeGlassix
from tests.helpers import write_tree

BASE = "http://127.0.0.1:9/api/v1.2"
KEY = "0c7b6d1e-5b36-4a4f-9b7e-2f1f4d5c9a11"
SECRET = "glassix-unit-secret-42"
USER = "api@acme.example"
SETTINGS = GlassixSettings(
    workspace="acme",
    api_key=KEY,
    api_secret=SECRET,
    user_name=USER,
    base_url=BASE,
    fields={"order": "field2", "plan": "field5"},
)
TLS = ssl.create_default_context()  # built once: a client per test stays cheap
TICKET = {"id": 13783, "state": "Open", "uniqueArgument": "order:1001"}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def action(kind: ActionKind = ActionKind.CREATE_TICKET, **overrides: Any) -> TicketAction:
    fields: dict[str, Any] = {
        "action": kind,
        "provider": "glassix",
        "contact": Contact(name="Luke Long", email="luke@example.com", phone="+1 781-846-9236"),
        "subject": "Refund request",
        "message": Message(text="Hi, I want a refund for order 1001"),
        "metadata": {"order": "1001"},
        "tags": ("web-form",),
        "correlate": "order:1001",
    }
    return TicketAction(**{**fields, **overrides})


def job(act: TicketAction | None = None, **overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "delivery_id": "dlv_1",
        "attempt": 1,
        "action": act or action(),
        "ticket_ref": None,
        "ticket_open": None,
        "event_id": "evt_42",
    }
    return Job(**{**fields, **overrides})


def deliver(*jobs: Job, clock: Callable[[], float] | None = None, **settings: Any) -> list[Outcome]:
    """Deliver `jobs` one after another with one provider (one token cache)."""

    async def go() -> list[Outcome]:
        async with httpx.AsyncClient(verify=TLS) as client:
            glassix = GlassixProvider(
                name="glassix",
                client=client,
                settings=GlassixSettings(**{**vars(SETTINGS), **settings}),
                timeout=5,
                clock=clock or Clock(),
            )
            return [await glassix.deliver(j) for j in jobs]

    return asyncio.run(go())


def sent(route: respx.Route, index: int = -1) -> tuple[httpx.Request, Any]:
    request = route.calls[index].request
    return request, json.loads(request.content) if request.content else None


def token_answers(*tokens: str) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(tokens)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"access_token": queue.pop(0), "token_type": "bearer", "expires_in": 10800}
        )

    return answer


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.post("/token/get", name="token").mock(side_effect=token_answers("tok-1", "tok-2"))
        router.post("/tickets/create", name="create").mock(
            return_value=httpx.Response(200, json=TICKET)
        )
        for verb, method in [
            ("setfields", "PUT"),
            ("setstate", "PUT"),
            ("addtags", "POST"),
            ("send", "POST"),
            ("addnote", "POST"),
        ]:
            router.route(method=method, path__startswith=f"/tickets/{verb}/", name=verb).mock(
                return_value=httpx.Response(200, json={})
            )
        yield router


def order(api: respx.MockRouter) -> list[str]:
    """method and path (below the API root) of every call, in the order they were made."""
    return [
        f"{c.request.method} {c.request.url.path.removeprefix('/api/v1.2')}"
        + (f"?{c.request.url.query.decode()}" if c.request.url.query else "")
        for c in api.calls
    ]


# -- the exact requests ------------------------------------------------------------------------


def test_create_fetches_a_token_then_creates_the_ticket(api):
    (outcome,) = deliver(job())
    token_request, token_body = sent(api["token"])
    assert token_request.method == "POST"
    assert str(token_request.url) == f"{BASE}/token/get"
    assert "authorization" not in token_request.headers
    assert token_body == {"apiKey": KEY, "apiSecret": SECRET, "userName": USER}
    request, body = sent(api["create"])
    assert str(request.url) == f"{BASE}/tickets/create"
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["content-type"] == "application/json"
    assert body == {
        "participants": [
            {
                "type": "Client",
                "protocolType": "WhatsApp",
                "identifier": "17818469236",
                "name": "Luke Long",
            }
        ],
        "field1": "Refund request",
        "field2": "1001",
        "tags": ["web-form"],
        "uniqueArgument": "order:1001",
        "transactions": [
            {
                "fromParticipant": {"identifier": "17818469236", "type": "Client"},
                "text": "Hi, I want a refund for order 1001",
                "type": "Message",
            }
        ],
    }
    assert order(api) == ["POST /token/get", "POST /tickets/create"]
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(ticket_id="13783")
    assert outcome.ticket_open is True


@pytest.mark.parametrize(
    ("correlate", "identifier", "expected"),
    [
        ("order:1001", "crm-7", "order:1001"),  # the correlate key first
        (None, "crm-7", "crm-7"),  # else the contact's identifier
        (None, None, "evt_42"),  # else the event id
    ],
)
def test_unique_argument_is_the_correlate_else_identifier_else_event_id(
    api, correlate, identifier, expected
):
    contact = Contact(name="Luke Long", phone="+17818469236", identifier=identifier)
    deliver(job(action(correlate=correlate, contact=contact)))
    assert sent(api["create"])[1]["uniqueArgument"] == expected


def test_mail_protocol_and_culture_from_rule_options(api):
    act = action(
        options={
            "protocol": "Mail",
            "culture": "es-ES",
            "details": {"externalLink": "https://crm/7"},
        },
        metadata={},
        tags=(),
    )
    deliver(job(act), culture="en-US")
    body = sent(api["create"])[1]
    assert body["participants"] == [
        {
            "type": "Client",
            "protocolType": "Mail",
            "identifier": "luke@example.com",
            "name": "Luke Long",
            "subProtocolType": "MailTo",
        }
    ]
    assert body["culture"] == "es-ES"
    assert body["details"] == {"externalLink": "https://crm/7"}
    assert body["transactions"][0]["fromParticipant"] == {
        "identifier": "luke@example.com",
        "type": "Client",
    }


def test_name_falls_back_to_the_email_on_phone_channels_and_culture_to_the_provider(api):
    deliver(
        job(action(contact=Contact(email="ana@example.com", phone="+56 9 1234 5678"))),
        culture="he-IL",
    )
    body = sent(api["create"])[1]
    assert body["participants"][0]["identifier"] == "56912345678"
    assert body["participants"][0]["name"] == "ana@example.com"
    assert body["culture"] == "he-IL"


@pytest.mark.parametrize(
    ("phone", "identifier"),
    [
        ("+1 (781) 846-9236", "17818469236"),
        ("17818469236", "17818469236"),  # bare digits are already international
        ("7818469236", "7818469236"),  # Glassix's own example: not a number phonenumbers reads
        ("+44 (0) 20 7946 0000", "442079460000"),  # E.164 digits: no national prefix
    ],
)
def test_the_phone_identifier_is_the_digits_of_its_e164_form(api, phone, identifier):
    deliver(job(action(contact=Contact(name="Luke Long", phone=phone))))
    assert sent(api["create"])[1]["participants"][0]["identifier"] == identifier


def test_create_with_an_outgoing_message_sends_it_after_the_create(api):
    (outcome,) = deliver(
        job(action(message=Message(text="We got it", direction=Direction.OUTGOING)))
    )
    assert order(api) == ["POST /token/get", "POST /tickets/create", "POST /tickets/send/13783"]
    assert "transactions" not in sent(api["create"])[1]
    request, body = sent(api["send"])
    assert request.headers["authorization"] == "Bearer tok-1"
    assert body == {"text": "We got it"}
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_ref == TicketRef(
        ticket_id="13783"
    )


def test_create_with_a_note_adds_it_after_the_create(api):
    deliver(job(action(message=Message(text="VIP customer", direction=Direction.NOTE))))
    assert order(api) == ["POST /token/get", "POST /tickets/create", "POST /tickets/addnote/13783"]
    assert sent(api["addnote"])[1] == {"text": "VIP customer"}


def test_update_sets_fields_adds_tags_and_an_incoming_message_becomes_a_note(api):
    known = TicketRef(ticket_id="13783", contact_id="c-9")
    act = action(
        ActionKind.UPDATE_TICKET,
        subject="Refund approved",
        metadata={"plan": "gold"},
        tags=("vip",),
    )
    (outcome,) = deliver(job(act, ticket_ref=known, ticket_open=True))
    assert order(api) == [
        "POST /token/get",
        "PUT /tickets/setfields/13783",
        "POST /tickets/addtags/13783",
        "POST /tickets/addnote/13783",
    ]
    assert sent(api["setfields"])[1] == {"field1": "Refund approved", "field5": "gold"}
    assert sent(api["addtags"])[1] == ["vip"]
    assert sent(api["addnote"])[1] == {"text": "Hi, I want a refund for order 1001"}
    assert all(c.request.headers["authorization"] == "Bearer tok-1" for c in api.calls[1:])
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == known  # the stored reference, whole
    assert outcome.ticket_open is None  # an update leaves the state as it was


def test_update_with_nothing_to_change_makes_no_call(api):
    act = TicketAction(action=ActionKind.UPDATE_TICKET, provider="glassix", correlate="x")
    (outcome,) = deliver(job(act, ticket_ref=TicketRef(ticket_id="5")))
    assert api.calls.call_count == 0
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_ref == TicketRef(ticket_id="5")


def test_close_adds_the_note_then_sets_the_state_closed(api):
    act = TicketAction(
        action=ActionKind.CLOSE_TICKET,
        provider="glassix",
        message=Message(text="Paid via Stripe", direction=Direction.NOTE),
        correlate="order:1001",
    )
    (outcome,) = deliver(job(act, ticket_ref=TicketRef(ticket_id="13783"), ticket_open=True))
    assert order(api) == [
        "POST /token/get",
        "POST /tickets/addnote/13783",
        "PUT /tickets/setstate/13783?nextState=Closed",
    ]
    request, body = sent(api["setstate"])
    assert str(request.url) == f"{BASE}/tickets/setstate/13783?nextState=Closed"
    assert body == {}
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_open is False


def test_reopen_sets_the_state_open_before_sending(api):
    act = TicketAction(
        action=ActionKind.REOPEN_TICKET,
        provider="glassix",
        message=Message(text="We reopened your case", direction=Direction.OUTGOING),
    )
    (outcome,) = deliver(job(act, ticket_ref=TicketRef(ticket_id="13783"), ticket_open=False))
    assert order(api) == [
        "POST /token/get",
        "PUT /tickets/setstate/13783?nextState=Open",
        "POST /tickets/send/13783",
    ]
    assert outcome.ticket_open is True


def test_add_note_posts_the_message_as_a_note_whatever_its_direction(api):
    act = TicketAction(
        action=ActionKind.ADD_NOTE,
        provider="glassix",
        message=Message(text="Customer called", direction=Direction.OUTGOING),
    )
    (outcome,) = deliver(job(act, ticket_ref=TicketRef(ticket_id="13783")))
    assert order(api) == ["POST /token/get", "POST /tickets/addnote/13783"]
    assert sent(api["addnote"])[1] == {"text": "Customer called"}
    assert outcome.ticket_open is None


def test_a_create_for_a_closed_correlated_ticket_makes_a_new_ticket(api):
    old = TicketRef(ticket_id="900", contact_id="c-1")
    (outcome,) = deliver(job(ticket_ref=old, ticket_open=False))
    assert order(api) == ["POST /token/get", "POST /tickets/create"]
    assert outcome.ticket_ref == TicketRef(ticket_id="13783") and outcome.ticket_open is True


# -- no ticket known: on_missing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_missing", "kind"),
    [(OnMissing.SKIP, OutcomeKind.SKIPPED), (OnMissing.FAIL, OutcomeKind.PERMANENT)],
)
def test_no_ticket_in_the_correlate_map_follows_on_missing(api, on_missing, kind):
    act = action(ActionKind.UPDATE_TICKET, on_missing=on_missing)
    (outcome,) = deliver(job(act))
    assert outcome.kind is kind
    assert "no ticket found for update_ticket" in outcome.message
    assert "cannot look a ticket up by contact" in outcome.message
    assert api.calls.call_count == 0  # not even a token


def test_on_missing_create_creates_then_closes(api):
    act = action(ActionKind.CLOSE_TICKET, on_missing=OnMissing.CREATE, tags=("late",))
    (outcome,) = deliver(job(act))
    assert order(api) == [
        "POST /token/get",
        "POST /tickets/create",
        "PUT /tickets/setstate/13783?nextState=Closed",
    ]
    assert sent(api["create"])[1]["tags"] == ["late"]  # on the create, no addtags
    assert outcome.ticket_ref == TicketRef(ticket_id="13783") and outcome.ticket_open is False


def test_add_note_on_missing_create_puts_the_message_in_a_note_not_a_transaction(api):
    act = action(ActionKind.ADD_NOTE, on_missing=OnMissing.CREATE)
    deliver(job(act))
    assert order(api) == ["POST /token/get", "POST /tickets/create", "POST /tickets/addnote/13783"]
    assert "transactions" not in sent(api["create"])[1]


# -- the token ---------------------------------------------------------------------------------


def test_the_token_is_cached_and_renewed_a_margin_before_it_expires(api):
    clock = Clock(1000.0)

    async def go() -> list[list[str]]:
        async with httpx.AsyncClient(verify=TLS) as client:
            glassix = GlassixProvider(
                name="g", client=client, settings=SETTINGS, timeout=5, clock=clock
            )
            seen = []
            for now in (1000.0, 1000.0 + 10800 - 301, 1000.0 + 10800 - 300):
                clock.now = now
                await glassix.deliver(job())
                seen.append([c.request.headers.get("authorization") for c in api["create"].calls])
            return seen

    seen = asyncio.run(go())
    assert api["token"].call_count == 2
    assert seen[-1] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_concurrent_deliveries_share_one_token_fetch():
    with respx.mock(base_url=BASE) as router:

        async def slow_token(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.05)
            return httpx.Response(200, json={"access_token": "tok-1", "expires_in": 10800})

        token = router.post("/token/get").mock(side_effect=slow_token)
        create = router.post("/tickets/create").mock(return_value=httpx.Response(200, json=TICKET))

        async def go() -> list[Outcome]:
            async with httpx.AsyncClient(verify=TLS) as client:
                glassix = GlassixProvider(
                    name="g", client=client, settings=SETTINGS, timeout=5, clock=Clock()
                )
                jobs = [job(delivery_id=f"dlv_{n}") for n in range(5)]
                return await asyncio.gather(*(glassix.deliver(j) for j in jobs))

        outcomes = asyncio.run(go())
    assert token.call_count == 1
    assert create.call_count == 5
    assert {o.kind for o in outcomes} == {OutcomeKind.SUCCESS}


def test_a_401_on_a_cached_token_renews_it_once_and_repeats_the_call(api):
    api["create"].side_effect = [
        httpx.Response(200, json=TICKET),
        httpx.Response(401, json={"Message": "Authorization has been denied for this request."}),
        httpx.Response(200, json={**TICKET, "id": 13784}),
    ]
    first, second = deliver(job(), job(delivery_id="dlv_2"))
    assert second.kind is OutcomeKind.SUCCESS
    assert second.ticket_ref == TicketRef(ticket_id="13784")
    assert api["token"].call_count == 2
    assert [c.request.headers["authorization"] for c in api["create"].calls] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_a_401_after_a_fresh_token_is_unauthorized_without_another_token(api):
    api["create"].mock(
        return_value=httpx.Response(
            401, json={"Message": "Authorization has been denied for this request."}
        )
    )
    (outcome,) = deliver(job())
    assert outcome.kind is OutcomeKind.UNAUTHORIZED
    assert (
        outcome.message
        == "tickets/create: HTTP 401: Authorization has been denied for this request."
    )
    assert api["token"].call_count == 1 and api["create"].call_count == 1


def test_a_401_again_after_renewing_is_unauthorized(api):
    api["create"].side_effect = [
        httpx.Response(200, json=TICKET),
        httpx.Response(401, json={"Message": "denied"}),
        httpx.Response(401, json={"Message": "denied"}),
    ]
    _, second = deliver(job(), job(delivery_id="dlv_2"))
    assert second.kind is OutcomeKind.UNAUTHORIZED
    assert api["token"].call_count == 2 and api["create"].call_count == 3


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (
            httpx.Response(401, json={"Message": "Invalid credentials."}),
            OutcomeKind.UNAUTHORIZED,
            "token/get: HTTP 401: Invalid credentials.",
        ),
        (
            httpx.Response(429, headers={"Retry-After": "30"}),
            OutcomeKind.RETRYABLE,
            "token/get: HTTP 429: Too Many Requests",
        ),
        (
            httpx.Response(200, json={"token_type": "bearer"}),
            OutcomeKind.PERMANENT,
            "token/get answered without an access_token",
        ),
        (httpx.ConnectError("refused"), OutcomeKind.RETRYABLE, "token/get: ConnectError: refused"),
    ],
)
def test_token_failures_are_classified_and_nothing_else_is_sent(api, answer, kind, message):
    if isinstance(answer, Exception):
        api["token"].side_effect = answer
    else:
        api["token"].side_effect = None
        api["token"].return_value = answer
    (outcome,) = deliver(job())
    assert outcome.kind is kind
    assert outcome.message == message
    assert api["create"].call_count == 0
    if kind is OutcomeKind.RETRYABLE and "429" in message:
        assert outcome.retry_after == 30


# -- what each answer becomes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "message", "retry_after"),
    [
        (httpx.Response(200, json=TICKET), OutcomeKind.SUCCESS, "", None),
        (httpx.Response(201, json=TICKET), OutcomeKind.SUCCESS, "", None),
        (
            httpx.Response(400, json={"Message": "At least one participant is required."}),
            OutcomeKind.PERMANENT,
            "tickets/create: HTTP 400: At least one participant is required.",
            None,
        ),
        (
            httpx.Response(403, json={"Message": "Forbidden department"}),
            OutcomeKind.UNAUTHORIZED,
            "tickets/create: HTTP 403: Forbidden department",
            None,
        ),
        (
            httpx.Response(404, text="<html>nope</html>"),
            OutcomeKind.PERMANENT,
            "tickets/create: HTTP 404: <html>nope</html>",
            None,
        ),
        (
            httpx.Response(409, json={"Message": "Conflict"}),
            OutcomeKind.PERMANENT,
            "tickets/create: HTTP 409: Conflict",
            None,
        ),
        (
            httpx.Response(429, json={"Message": "Too many"}, headers={"Retry-After": "7"}),
            OutcomeKind.RETRYABLE,
            "tickets/create: HTTP 429: Too many",
            7,
        ),
        (
            httpx.Response(500, json={"Message": "An error has occurred."}),
            OutcomeKind.RETRYABLE,
            "tickets/create: HTTP 500: An error has occurred.",
            None,
        ),
        (
            httpx.Response(503, headers={"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}),
            OutcomeKind.RETRYABLE,
            "tickets/create: HTTP 503: Service Unavailable",
            60,
        ),
        (
            httpx.ConnectError("connection refused"),
            OutcomeKind.RETRYABLE,
            "tickets/create: ConnectError: connection refused",
            None,
        ),
        (
            httpx.ReadTimeout("timed out"),
            OutcomeKind.RETRYABLE,
            "tickets/create: ReadTimeout: timed out",
            None,
        ),
    ],
)
def test_create_answers_are_classified(api, answer, kind, message, retry_after):
    if isinstance(answer, Exception):
        api["create"].side_effect = answer
    else:
        api["create"].return_value = answer
    (outcome,) = deliver(job(), clock=Clock(1_700_000_000.0))  # 2023-11-14T22:13:20Z
    assert outcome.kind is kind
    assert outcome.message == message
    assert outcome.retry_after == retry_after
    if kind is OutcomeKind.SUCCESS:
        assert outcome.ticket_ref == TicketRef(ticket_id="13783")
    else:
        assert outcome.ticket_ref is None


def test_a_create_answer_without_an_id_is_permanent(api):
    api["create"].return_value = httpx.Response(200, json={"state": "Open"})
    (outcome,) = deliver(job())
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message == "tickets/create answered without a ticket id"


def test_a_failure_after_the_create_is_retried_without_creating_again(api):
    api["send"].side_effect = [
        httpx.Response(502, json={"Message": "Bad gateway"}),
        httpx.Response(200, json={"id": 1}),
    ]
    act = action(message=Message(text="We got it", direction=Direction.OUTGOING))
    first, second = deliver(job(act), job(act, attempt=2))
    assert first.kind is OutcomeKind.RETRYABLE
    assert first.message == "ticket 13783 created, then tickets/send/13783: HTTP 502: Bad gateway"
    assert second.kind is OutcomeKind.SUCCESS
    assert second.ticket_ref == TicketRef(ticket_id="13783") and second.ticket_open is True
    assert api["create"].call_count == 1 and api["send"].call_count == 2


def test_a_retried_close_does_not_repeat_the_note_that_was_added(api):
    api["setstate"].side_effect = [httpx.Response(500), httpx.Response(200, json={})]
    act = TicketAction(
        action=ActionKind.CLOSE_TICKET,
        provider="glassix",
        message=Message(text="done", direction=Direction.NOTE),
    )
    ref = TicketRef(ticket_id="13783")
    first, second = deliver(job(act, ticket_ref=ref), job(act, ticket_ref=ref, attempt=2))
    assert first.kind is OutcomeKind.RETRYABLE and second.kind is OutcomeKind.SUCCESS
    assert api["addnote"].call_count == 1 and api["setstate"].call_count == 2


# -- what cannot be said in Glassix's terms ----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"contact": Contact(email="a@example.com")}, "a WhatsApp ticket needs contact.phone"),
        ({"metadata": {"colour": "red"}}, "metadata key 'colour' has no Glassix field"),
        ({"options": {"protocol": "Pigeon"}}, "unknown Glassix protocol 'Pigeon'"),
        ({"options": {"priority": "high"}}, "unknown Glassix option(s): priority"),
    ],
)
def test_an_action_glassix_cannot_take_is_permanent_and_sends_nothing(api, overrides, message):
    (outcome,) = deliver(job(action(**overrides)))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert message in outcome.message
    assert api.calls.call_count == 0


def test_no_secret_or_token_ever_shows_in_an_outcome(api):
    echo = f"bad key {KEY} with secret {SECRET}"
    api["token"].side_effect = [
        httpx.Response(400, json={"Message": echo}),
        httpx.Response(200, json={"access_token": "tok-live-123456", "expires_in": 10800}),
    ]
    api["create"].side_effect = [
        httpx.Response(500, json={"Message": "token tok-live-123456 rejected", "apiKey": KEY}),
        httpx.ConnectError(f"refused for {KEY}"),
    ]
    outcomes = deliver(job(), job(), job())
    assert [o.kind for o in outcomes] == [
        OutcomeKind.PERMANENT,
        OutcomeKind.RETRYABLE,
        OutcomeKind.RETRYABLE,
    ]
    for outcome in outcomes:
        shown = f"{outcome.message} {outcome.response_excerpt}"
        for secret in (KEY, SECRET, "tok-live-123456"):
            assert secret not in shown
        assert "[redacted]" in shown


# -- `ticketbridge try` ------------------------------------------------------------------------


def test_the_dry_run_of_a_create_sends_what_a_first_real_delivery_sends():
    act = action(message=Message(text="hello", direction=Direction.OUTGOING))

    def build(client: httpx.AsyncClient, base_url: str = BASE) -> GlassixProvider:
        settings = replace(SETTINGS, base_url=base_url)
        return GlassixProvider(name="g", client=client, settings=settings, timeout=5)

    outcome, requests = dry_run(build, job(act))
    assert outcome.kind is OutcomeKind.SUCCESS
    sent = [
        (r["method"], httpx.URL(r["url"]).path.removeprefix("/api/v1.2"), r["json"])
        for r in requests
    ]
    assert [path for _, path, _ in sent] == ["/token/get", "/tickets/create", "/tickets/send/1"]
    assert all(r["answer"]["stubbed"] for r in requests)
    created = requests[1]["answer"]["json"]
    assert created["id"] == 1 and created["state"] == "Open"
    assert requests[0]["answer"]["json"]["access_token"] == "[redacted]"
    assert outcome.ticket_ref == TicketRef(ticket_id="1")

    fake = FakeGlassix(api_key=KEY, api_secret=SECRET, user_name=USER)
    with fake.running():

        async def go() -> Outcome:
            async with httpx.AsyncClient() as client:
                return await build(client, fake.api).deliver(job(act))

        assert asyncio.run(go()).kind is OutcomeKind.SUCCESS
    real = [(r.method, re.sub(r"/\d+$", "/1", r.path), r.json) for r in fake.requests]
    assert sent == real


# -- configuration -----------------------------------------------------------------------------


def test_base_url_defaults_to_the_workspace_api_root():
    config = Config(
        rules_dir=Path("."),
        templates_dir=Path("."),
        sources={},
        providers={},
        rules=(),
        vars={},
        defaults=Defaults(),
        locations={},
    )
    p = ProviderConfig(
        name="glassix",
        type="glassix",
        settings={"workspace": "acme", "api_key": KEY, "api_secret": SECRET, "user_name": USER},
        location=None,  # type: ignore[arg-type]
    )
    problems: list[Problem] = []
    settings = read_settings(p, config, problems)
    assert settings.base_url == "https://acme.glassix.com/api/v1.2"
    assert settings.protocol == "WhatsApp"
    assert problems == []


PROVIDER = f"""
providers:
  glassix:
    type: glassix
    base_url: "{BASE}"
    workspace: acme
    api_key: "{KEY}"
    api_secret: "${{GLASSIX_SECRET:-{SECRET}}}"
    user_name: {USER}
    fields: {{order: field2}}
sources:
  shop: {{verify: {{type: none}}}}
"""


def problems_of(tmp_path: Path, rules: str, provider: str = PROVIDER) -> list[str]:
    tree = write_tree(tmp_path, {"rules/main.yaml": provider + rules, "templates/x.j2": "x"})

    async def go() -> None:
        async with httpx.AsyncClient(verify=TLS) as client:
            load_service(tree / "rules", tree / "templates", os.environ, client)

    with pytest.raises(ConfigError) as caught:
        asyncio.run(go())
    return [str(p) for p in caught.value.problems]


def test_check_refuses_what_glassix_cannot_do_naming_file_and_line(tmp_path):
    found = problems_of(
        tmp_path,
        """
rules:
  - name: r1
    source: shop
    action: create_ticket
    provider: glassix
    ticket:
      contact: {email: "{{ body.email }}"}
      contact_metadata: {plan: gold}
      metadata:
        order: "{{ body.order }}"
        colour: red
      options: {priority: high}
  - name: r2
    source: shop
    action: add_note
    provider: glassix
    ticket:
      correlate: x
  - name: r3
    source: shop
    action: create_ticket
    provider: glassix
    ticket:
      contact: {email: a@example.com}
      options: {protocol: Pigeon}
""",
    )
    rules = str(tmp_path / "rules" / "main.yaml")
    expected = [
        (19, "rules[0].ticket.contact", "needs contact.phone to create a WhatsApp ticket"),
        (20, "rules[0].ticket.contact_metadata", "has no ticket contact_metadata"),
        (23, "rules[0].ticket.metadata.colour", "has no field for metadata key 'colour'"),
        (24, "rules[0].ticket.options.priority", "has no option 'priority'"),
        (29, "rules[1].ticket", "needs a message to add_note"),
        (37, "rules[2].ticket.options.protocol", "has no protocol 'Pigeon'"),
    ]
    for line, path, lack in expected:
        head = f"{rules}:{line}: {path}: provider 'glassix' (glassix) {lack}"
        assert any(p.startswith(head) for p in found), (head, found)
    assert len(found) == len(expected)
    assert SECRET not in "\n".join(found)


def test_check_accepts_a_rule_within_what_glassix_can_do(tmp_path):
    tree = write_tree(
        tmp_path,
        {
            "rules/main.yaml": PROVIDER
            + """
rules:
  - name: ok
    source: shop
    action: create_ticket
    provider: glassix
    ticket:
      contact: {email: "{{ body.email }}"}
      metadata: {order: "{{ body.order }}"}
      options: {protocol: Mail, culture: es-ES}
      tags: [shop]
""",
            "templates/x.j2": "x",
        },
    )

    async def go() -> list[str]:
        async with httpx.AsyncClient(verify=TLS) as client:
            service = load_service(tree / "rules", tree / "templates", os.environ, client)
            return list(service.providers)

    assert asyncio.run(go()) == ["glassix"]


def test_settings_are_checked_by_the_schema_and_one_field_takes_one_key(tmp_path):
    found = problems_of(
        tmp_path,
        "",
        provider=f"""
providers:
  glassix:
    type: glassix
    workspace: acme
    api_key: "{KEY}"
    user_name: {USER}
    protocol: Carrier-Pigeon
    fields: {{order: field1}}
    colour: blue
""",
    )
    text = "\n".join(found)
    assert "api_secret" in text  # required
    assert "protocol" in text and "fields.order" in text and "colour" in text
    assert KEY not in text

    found = problems_of(
        tmp_path,
        "",
        provider=PROVIDER.replace(
            "fields: {order: field2}", "fields: {order: field2, ref: field2}"
        ),
    )
    assert any(
        "providers.glassix.fields.ref: field2 is already filled by metadata key 'order'" in p
        for p in found
    )
