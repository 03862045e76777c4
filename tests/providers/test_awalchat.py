"""The awalchat provider at the unit level: signatures, the exact requests of every action,
the correlate map, on_missing, classification, secrets, and what `check` refuses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

from bridge.config import Config, Defaults, ProviderConfig
from bridge.exceptions import ConfigError, Problem
from bridge.providers.awalchat import adapter as awalchat
from bridge.providers.awalchat.signing import AwalSigner, SignPath, signature
from bridge.providers.base import Job, Outcome, OutcomeKind, Provider
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
from tests.fakes.awalchat import FakeAwalChat
from tests.helpers import write_tree

NOW = 1_704_124_800.0  # the docs' example X-Timestamp
TS = "1704124800"
BASE = "http://127.0.0.1:9/api/developer"
SECRET = "awal-unit-secret"
PNID = "123456"
SETTINGS = {
    "type": "awalchat",
    "client_id": "client-42",
    "domain": "acme",
    "hmac_secret": SECRET,
    "phone_number_id": PNID,
}
PHONE = "+966500000000"
DIGITS = "966500000000"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def build(
    tmp_path: Path,
    client: httpx.AsyncClient,
    *,
    clock: Callable[[], float] = lambda: NOW,
    **settings: Any,
) -> Provider:
    base_url = settings.pop("base_url", BASE)
    merged = {**SETTINGS, **settings}
    p = ProviderConfig(
        name="awal",
        type="awalchat",
        settings=merged,
        base_url=base_url,
        location=None,  # type: ignore[arg-type]
    )
    config = Config(
        rules_dir=tmp_path,
        templates_dir=tmp_path,
        sources={},
        providers={"awal": p},
        rules=(),
        vars={},
        defaults=Defaults(),
        locations={},
    )
    problems: list[Problem] = []
    built = awalchat.build(p, config, Templates(tmp_path), client, problems, clock=clock)
    assert problems == []
    return built


def job(
    kind: ActionKind = ActionKind.CREATE_TICKET,
    *,
    text: str | None = "Hello from the bridge",
    phone: str | None = PHONE,
    ref: TicketRef | None = None,
    ticket_open: bool | None = None,
    on_missing: OnMissing = OnMissing.SKIP,
) -> Job:
    action = TicketAction(
        action=kind,
        provider="awal",
        contact=Contact(name="Ahmed Mohammed", email="ahmed@example.com", phone=phone),
        message=Message(text=text, direction=Direction.OUTGOING) if text is not None else None,
        correlate="deal:1",
        on_missing=on_missing,
    )
    return Job(
        delivery_id="dlv_1",
        attempt=1,
        action=action,
        ticket_ref=ref,
        ticket_open=ticket_open,
        context={},
    )


def deliver(tmp_path: Path, the_job: Job, **settings: Any) -> Outcome:
    async def go() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await build(tmp_path, client, **settings).deliver(the_job)

    result: Outcome = run(go())
    return result


def expected_signature(method: str, path_and_query: str, body: bytes = b"") -> str:
    """From the docs' description, independently of the adapter: HMAC-SHA256 over
    METHOD + PATH + ?QUERY + TIMESTAMP + BODY, lower-case hex, prefixed sha256=."""
    message = method.encode() + path_and_query.encode() + TS.encode() + body
    return "sha256=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


def assert_signed(request: httpx.Request, signed_path: str) -> None:
    """Every documented header, and a signature over exactly the bytes that were sent."""
    query = "?" + request.url.query.decode() if request.url.query else ""
    assert request.headers["accept"] == "application/json"
    assert request.headers["x-timestamp"] == TS
    assert request.headers["x-domain"] == "acme"
    assert request.headers["x-client-id"] == "client-42"
    assert request.headers["x-awal-signature-256"] == expected_signature(
        request.method, signed_path + query, request.content
    )


def conversations(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        200, json={"status": True, "data": list(items), "meta": {"total": len(items)}}
    )


def ticket_answer(status: str, ticket_id: int = 123, conversation: int = 7) -> httpx.Response:
    data = {"ticket_id": ticket_id, "conversation_id": conversation, "status": status}
    return httpx.Response(200, json={"status": True, "message": "ok", "data": data})


SENT = httpx.Response(200, json={"status": True, "message": {"id": 1, "status": "sent"}})


# --- signing ---------------------------------------------------------------------------------


def test_signature_matches_a_known_answer_computed_from_the_docs() -> None:
    # POST /w/message/text?phone_number_id=123456 at the docs' timestamp, the body as sent
    got = signature(
        SECRET,
        method="post",
        path="/w/message/text",
        query="?phone_number_id=123456",
        timestamp=TS,
        body=b'{"phone":"96650000000","body":"Hello"}',
    )
    assert got == "sha256=c753b41eb356bfb23e28d391f4aa6f58702d92813b9a30f25e79791a6f88c653"


def facts_sketch(method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
    """The facts file's Python sketch, with the clock fixed: the reference implementation."""
    qs = ("?" + urlencode(query)) if query else ""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    sig = hmac.new(
        SECRET.encode(), f"{method.upper()}{path}{qs}{TS}{raw}".encode(), hashlib.sha256
    ).hexdigest()
    return qs, raw.encode(), f"sha256={sig}"


@pytest.mark.parametrize(
    ("sign_path", "signed_path"),
    [(SignPath.RELATIVE, "/w/message/text"), (SignPath.ABSOLUTE, "/api/developer/w/message/text")],
)
def test_the_signed_bytes_are_the_sent_bytes(sign_path: SignPath, signed_path: str) -> None:
    body = {"phone": "966500000000", "body": "مرحبا، تذكرتك مفتوحة", "name": "أحمد"}
    signer = AwalSigner(
        client=httpx.AsyncClient(),
        base_url=BASE + "/",
        client_id="client-42",
        domain="acme",
        hmac_secret=SECRET,
        sign_path=sign_path,
        clock=lambda: NOW + 0.9,  # whole seconds
    )
    request = signer.request(
        "POST", "/w/message/text", params={"phone_number_id": PNID}, json_body=body
    )
    qs, raw, sig = facts_sketch("POST", signed_path, {"phone_number_id": PNID}, body)
    assert str(request.url) == f"{BASE}/w/message/text{qs}"
    assert request.content == raw  # UTF-8, compact, serialised once
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-awal-signature-256"] == sig
    assert_signed(request, signed_path)


def test_a_get_signs_an_empty_body_and_the_whole_query() -> None:
    signer = AwalSigner(
        client=httpx.AsyncClient(),
        base_url=BASE,
        client_id="client-42",
        domain="acme",
        hmac_secret=SECRET,
        clock=lambda: NOW,
    )
    request = signer.request(
        "GET", "/conversations", params={"phone_number_id": PNID, "searchTerm": "Ahmed Ali"}
    )
    assert request.url.query == b"phone_number_id=123456&searchTerm=Ahmed+Ali"
    assert request.content == b""
    assert "content-type" not in request.headers
    assert request.headers["x-awal-signature-256"] == expected_signature(
        "GET", "/conversations?phone_number_id=123456&searchTerm=Ahmed+Ali"
    )


# --- the exact requests of each action -------------------------------------------------------


@respx.mock
def test_create_on_an_existing_conversation_opens_a_ticket_then_sends_the_message(tmp_path):
    search = respx.get(f"{BASE}/conversations").mock(
        return_value=conversations(
            {"id": 8, "phone": "9665000000001", "name": "someone else"},  # partial match only
            {"id": 7, "phone": DIGITS, "name": "Ahmed Mohammed"},
        )
    )
    events = respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("opened"))
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)

    outcome = deliver(tmp_path, job())

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(ticket_id="123", conversation_id="7")
    assert outcome.ticket_open is True
    order = [call.request.url.path for call in respx.calls]
    assert order == [
        "/api/developer/conversations",
        "/api/developer/wechat/chat/events/7",
        "/api/developer/w/message/text",
    ]
    request = search.calls.last.request
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/conversations?phone_number_id={PNID}&searchTerm={DIGITS}"
    assert_signed(request, "/conversations")
    request = events.calls.last.request
    assert str(request.url) == f"{BASE}/wechat/chat/events/7?phone_number_id={PNID}"
    assert request.content == b'{"route":"openTicket"}'
    assert_signed(request, "/wechat/chat/events/7")
    request = send.calls.last.request
    assert str(request.url) == f"{BASE}/w/message/text?phone_number_id={PNID}"
    assert json.loads(request.content) == {
        "phone": DIGITS,
        "body": "Hello from the bridge",
        "name": "Ahmed Mohammed",
        "email": "ahmed@example.com",
    }
    assert_signed(request, "/w/message/text")


@pytest.mark.parametrize("phone", ["+966 50 000 0000", "966500000000", "+966 (50) 000-0000"])
@respx.mock
def test_the_phone_is_searched_and_matched_as_the_digits_of_its_e164_form(tmp_path, phone):
    search = respx.get(f"{BASE}/conversations").mock(
        return_value=conversations({"id": 7, "phone": "+966 50 000 0000"})  # as a person wrote it
    )
    respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("opened"))
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    outcome = deliver(tmp_path, job(phone=phone))
    assert outcome.kind is OutcomeKind.SUCCESS
    assert search.calls.last.request.url.params["searchTerm"] == DIGITS
    assert json.loads(send.calls.last.request.content)["phone"] == DIGITS


@respx.mock
def test_create_without_a_conversation_sends_the_first_message_then_opens(tmp_path):
    search = respx.get(f"{BASE}/conversations").mock(
        side_effect=[conversations(), conversations({"id": 9, "phone": DIGITS})]
    )
    respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    respx.post(f"{BASE}/wechat/chat/events/9").mock(return_value=ticket_answer("opened", 55, 9))

    outcome = deliver(tmp_path, job())

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(ticket_id="55", conversation_id="9")
    order = [
        (c.request.method, c.request.url.path.removeprefix("/api/developer")) for c in respx.calls
    ]
    assert order == [
        ("GET", "/conversations"),
        ("POST", "/w/message/text"),
        ("GET", "/conversations"),
        ("POST", "/wechat/chat/events/9"),
    ]
    assert search.call_count == 2
    for call in respx.calls:
        assert_signed(call.request, call.request.url.path.removeprefix("/api/developer"))


@respx.mock
def test_create_without_a_conversation_or_a_message_cannot_start_one(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations())
    send = respx.post(f"{BASE}/w/message/text")

    outcome = deliver(tmp_path, job(text=None))

    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message == (
        f"no Awal Chat conversation with {DIGITS} yet, and no outgoing message to start one"
    )
    assert not send.called


@respx.mock
def test_create_when_the_message_starts_no_conversation_is_permanent(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations())
    respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    opened = respx.post(url__regex=r".*/wechat/chat/events/.*")

    outcome = deliver(tmp_path, job())

    assert outcome.kind is OutcomeKind.PERMANENT
    assert "no conversation with that phone appeared" in outcome.message
    assert not opened.called


def test_create_without_a_phone_is_permanent_and_sends_nothing(tmp_path):
    with respx.mock(assert_all_called=False) as mock:
        outcome = deliver(tmp_path, job(phone=""))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "contact.phone" in outcome.message
    assert not mock.calls


@respx.mock
def test_create_with_a_closed_ticket_in_the_map_reopens_on_its_conversation(tmp_path):
    search = respx.get(f"{BASE}/conversations")
    respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("opened", 124))
    respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)

    known = TicketRef(ticket_id="123", conversation_id="7")
    outcome = deliver(tmp_path, job(ref=known, ticket_open=False))

    assert not search.called  # the correlate map knew the conversation
    assert outcome.ticket_ref == TicketRef(ticket_id="124", conversation_id="7")
    assert outcome.ticket_open is True


@respx.mock
def test_a_409_on_open_means_already_open_and_is_a_success(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations({"id": 7, "phone": DIGITS}))
    respx.post(f"{BASE}/wechat/chat/events/7").mock(
        return_value=httpx.Response(
            409, json={"error": "conflict", "message": "Ticket already open"}
        )
    )
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)

    outcome = deliver(tmp_path, job())

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(conversation_id="7")
    assert outcome.ticket_open is True
    assert send.called


@respx.mock
def test_update_sends_the_message_to_the_conversation_in_the_map(tmp_path):
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    known = TicketRef(ticket_id="123", conversation_id="7")

    outcome = deliver(
        tmp_path, job(ActionKind.UPDATE_TICKET, text="Any news?", ref=known, ticket_open=True)
    )

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == known
    assert outcome.ticket_open is True
    assert len(respx.calls) == 1
    assert json.loads(send.calls.last.request.content)["body"] == "Any news?"


@respx.mock
def test_update_without_a_phone_asks_the_conversation_for_it(tmp_path):
    get = respx.get(f"{BASE}/conversations/7").mock(
        return_value=httpx.Response(200, json={"status": True, "data": {"id": 7, "phone": DIGITS}})
    )
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    known = TicketRef(ticket_id="123", conversation_id="7")

    outcome = deliver(tmp_path, job(ActionKind.UPDATE_TICKET, phone=None, ref=known))

    assert outcome.kind is OutcomeKind.SUCCESS
    assert str(get.calls.last.request.url) == f"{BASE}/conversations/7?phone_number_id={PNID}"
    assert_signed(get.calls.last.request, "/conversations/7")
    assert json.loads(send.calls.last.request.content)["phone"] == DIGITS


@respx.mock
def test_close_with_the_map_sends_the_message_then_closes(tmp_path):
    respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    close = respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("closed"))
    known = TicketRef(ticket_id="123", conversation_id="7")

    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, text="Solved, thanks!", ref=known))

    assert [c.request.url.path for c in respx.calls][-1] == "/api/developer/wechat/chat/events/7"
    assert close.calls.last.request.content == b'{"route":"closeTicket"}'
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == known
    assert outcome.ticket_open is False


@respx.mock
def test_close_without_the_map_finds_the_conversation_by_phone(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations({"id": 7, "phone": DIGITS}))
    close = respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("closed"))

    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, text=None))

    assert len(respx.calls) == 2
    assert_signed(close.calls.last.request, "/wechat/chat/events/7")
    assert outcome.ticket_ref == TicketRef(ticket_id="123", conversation_id="7")
    assert outcome.ticket_open is False


@respx.mock
def test_reopen_opens_then_sends_the_message(tmp_path):
    respx.post(f"{BASE}/wechat/chat/events/7").mock(return_value=ticket_answer("opened", 200))
    respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    known = TicketRef(ticket_id="123", conversation_id="7")

    outcome = deliver(tmp_path, job(ActionKind.REOPEN_TICKET, ref=known, ticket_open=False))

    paths = [c.request.url.path.removeprefix("/api/developer") for c in respx.calls]
    assert paths == ["/wechat/chat/events/7", "/w/message/text"]
    assert json.loads(respx.calls[0].request.content) == {"route": "openTicket"}
    assert outcome.ticket_ref == TicketRef(ticket_id="200", conversation_id="7")
    assert outcome.ticket_open is True


def test_add_note_is_not_a_capability_and_fails_without_a_call(tmp_path):
    with respx.mock(assert_all_called=False) as mock:
        outcome = deliver(tmp_path, job(ActionKind.ADD_NOTE, ref=TicketRef(conversation_id="7")))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message == "Awal Chat cannot add_note"
    assert not mock.calls


def test_the_default_base_url_is_the_documented_api_root(tmp_path):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ticket_answer("closed")

    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            provider = build(tmp_path, client, base_url=None)
            return await provider.deliver(
                job(ActionKind.CLOSE_TICKET, text=None, ref=TicketRef(conversation_id="7"))
            )

    assert run(go()).kind is OutcomeKind.SUCCESS
    assert str(seen[0].url) == (
        "https://api.awalchat.com/api/developer/wechat/chat/events/7?phone_number_id=123456"
    )
    assert seen[0].headers["x-awal-signature-256"] == expected_signature(
        "POST", "/wechat/chat/events/7?phone_number_id=123456", b'{"route":"closeTicket"}'
    )


# --- on_missing ------------------------------------------------------------------------------


@respx.mock
def test_on_missing_skip_is_a_skipped_outcome(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations())
    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.message == (
        f"no ticket found for close_ticket (no Awal Chat conversation with phone {PHONE})"
    )
    assert len(respx.calls) == 1


@respx.mock
def test_on_missing_fail_is_permanent(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=conversations())
    outcome = deliver(tmp_path, job(ActionKind.UPDATE_TICKET, on_missing=OnMissing.FAIL))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message.startswith("no ticket found for update_ticket")


def test_on_missing_without_phone_or_map_looks_nowhere(tmp_path):
    with respx.mock(assert_all_called=False) as mock:
        outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, phone=None))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert "nothing in the correlate map and no contact.phone" in outcome.message
    assert not mock.calls


@respx.mock
def test_on_missing_create_creates_the_ticket(tmp_path):
    respx.get(f"{BASE}/conversations").mock(
        side_effect=[conversations(), conversations(), conversations({"id": 3, "phone": DIGITS})]
    )
    send = respx.post(f"{BASE}/w/message/text").mock(return_value=SENT)
    respx.post(f"{BASE}/wechat/chat/events/3").mock(return_value=ticket_answer("opened", 9, 3))

    outcome = deliver(tmp_path, job(ActionKind.UPDATE_TICKET, on_missing=OnMissing.CREATE))

    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(ticket_id="9", conversation_id="3")
    assert outcome.ticket_open is True
    assert send.call_count == 1


# --- classification --------------------------------------------------------------------------


def awal_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"error": code, "message": message, "details": {}, "request_id": "req_abc123xyz"}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("answer", "kind", "message", "retry_after"),
    [
        (ticket_answer("closed"), OutcomeKind.SUCCESS, "", None),
        (
            awal_error(400, "validation_failed", "Validation failed"),
            OutcomeKind.PERMANENT,
            "HTTP 400: Validation failed",
            None,
        ),
        (
            awal_error(401, "authentication_failed", "Invalid HMAC signature"),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 401: Invalid HMAC signature",
            None,
        ),
        (
            awal_error(403, "forbidden", "Forbidden"),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 403: Forbidden",
            None,
        ),
        (
            awal_error(404, "resource_not_found", "Conversation not found"),
            OutcomeKind.PERMANENT,
            "HTTP 404: Conversation not found",
            None,
        ),
        (
            # only openTicket documents 409 as "already open"; on close it stays an error
            awal_error(409, "conflict", "Ticket already closed"),
            OutcomeKind.PERMANENT,
            "HTTP 409: Ticket already closed",
            None,
        ),
        (
            awal_error(429, "rate_limited", "Too many requests", **{"Retry-After": "30"}),
            OutcomeKind.RETRYABLE,
            "HTTP 429: Too many requests",
            30.0,
        ),
        (awal_error(500, "server_error", "Boom"), OutcomeKind.RETRYABLE, "HTTP 500: Boom", None),
        (
            httpx.Response(503, text="upstream down"),
            OutcomeKind.RETRYABLE,
            "HTTP 503: upstream down",
            None,
        ),
        (httpx.ConnectError("refused"), OutcomeKind.RETRYABLE, "ConnectError: refused", None),
        (httpx.ReadTimeout("slow"), OutcomeKind.RETRYABLE, "ReadTimeout: slow", None),
    ],
)
@respx.mock
def test_answers_to_close_are_classified(tmp_path, answer, kind, message, retry_after):
    route = respx.post(f"{BASE}/wechat/chat/events/7")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    outcome = deliver(
        tmp_path, job(ActionKind.CLOSE_TICKET, text=None, ref=TicketRef(conversation_id="7"))
    )
    assert outcome.kind is kind
    assert outcome.message == message
    assert outcome.retry_after == retry_after
    if isinstance(answer, httpx.Response) and answer.status_code >= 400:
        assert outcome.status_code == answer.status_code
        assert outcome.ticket_ref is None


@respx.mock
def test_a_failed_search_ends_the_attempt_before_anything_is_sent(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=awal_error(503, "unavailable", "Later"))
    send = respx.post(f"{BASE}/w/message/text")
    outcome = deliver(tmp_path, job())
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert outcome.message == "HTTP 503: Later"
    assert not send.called


@respx.mock
def test_a_bad_phone_keeps_the_providers_message(tmp_path):
    respx.post(f"{BASE}/w/message/text").mock(
        return_value=awal_error(400, "invalid_phone_number", "Invalid phone number format")
    )
    close = respx.post(f"{BASE}/wechat/chat/events/7")
    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, ref=TicketRef(conversation_id="7")))
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message == "HTTP 400: Invalid phone number format"
    assert not close.called  # the close waits for the message


@respx.mock
def test_an_unexpected_search_answer_is_permanent(tmp_path):
    respx.get(f"{BASE}/conversations").mock(return_value=httpx.Response(200, json={"ok": 1}))
    outcome = deliver(tmp_path, job())
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.message == "unexpected answer to GET /conversations: no a data list"


# --- secrets ---------------------------------------------------------------------------------


@respx.mock
def test_an_error_never_carries_the_hmac_secret(tmp_path):
    echoed = f"Invalid HMAC signature for key {SECRET}"
    respx.get(f"{BASE}/conversations").mock(
        return_value=awal_error(401, "authentication_failed", echoed)
    )
    outcome = deliver(tmp_path, job())
    assert outcome.kind is OutcomeKind.UNAUTHORIZED
    assert SECRET not in outcome.message
    assert SECRET not in (outcome.response_excerpt or "")
    assert outcome.message == "HTTP 401: Invalid HMAC signature for key [redacted]"
    # and the secret is never sent: only the signature derived from it
    request = respx.calls.last.request
    assert SECRET.encode() not in request.content + str(request.url).encode()
    assert all(SECRET not in value for value in request.headers.values())


@respx.mock
def test_a_transport_error_does_not_carry_the_secret(tmp_path):
    respx.get(f"{BASE}/conversations").mock(side_effect=httpx.ConnectError(f"refused {SECRET}"))
    outcome = deliver(tmp_path, job())
    assert outcome.kind is OutcomeKind.RETRYABLE
    assert SECRET not in outcome.message


# --- dry run ---------------------------------------------------------------------------------


def _shape(method: str, url: httpx.URL | str, body: Any) -> tuple[Any, ...]:
    """A request as both runs compare it: the path below the API root with ids blanked."""
    url = httpx.URL(str(url))
    path = re.sub(r"/\d+$", "/<id>", url.path.removeprefix("/api/developer"))
    return method, path, dict(url.params), body


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        (
            "Hello from the bridge",
            ["GET /conversations", "POST /w/message/text", "GET /conversations",
             "POST /wechat/chat/events/<id>"],
            OutcomeKind.SUCCESS,
        ),
        (None, ["GET /conversations"], OutcomeKind.PERMANENT),
    ],
)  # fmt: skip
def test_the_dry_run_for_a_new_number_sends_what_a_first_real_delivery_sends(
    tmp_path, text, expected, kind
):
    the_job = job(text=text)
    outcome, requests = dry_run(lambda client: build(tmp_path, client), the_job)
    assert outcome.kind is kind
    stubbed = [_shape(r["method"], r["url"], r["json"]) for r in requests]
    assert [f"{method} {path}" for method, path, *_ in stubbed] == expected
    assert all(r["answer"]["stubbed"] for r in requests)
    assert requests[0]["answer"]["json"]["data"] == []  # the number is new to the stub too

    # the same action, delivered for real to a fake Awal Chat that has never seen the number
    fake = FakeAwalChat(client_id="client-42", hmac_secret=SECRET, phone_number_id=PNID)
    with fake.running():

        async def go() -> Outcome:
            async with httpx.AsyncClient() as client:
                desk = build(tmp_path, client, base_url=fake.url, clock=time.time)
                return await desk.deliver(the_job)

        real = run(go())
    assert real.kind is kind and real.message == outcome.message
    assert fake.rejected == []
    assert stubbed == [
        _shape(r.method, f"{fake.url}{r.path}?{r.query}", r.json) for r in fake.requests
    ]


# --- what check refuses ----------------------------------------------------------------------

RULES = """\
providers:
  awal:
    type: awalchat
    base_url: "http://127.0.0.1:9/api/developer"
    client_id: client-42
    domain: acme
    hmac_secret: "${AWAL_SECRET}"
    phone_number_id: 123456
sources:
  crm:
    verify: {type: none}
rules:
  - name: ok
    source: crm
    action: create_ticket
    provider: awal
    ticket:
      contact: {phone: "{{ body.phone }}", name: "{{ body.name }}"}
      message: {text: "hi", direction: outgoing}
      correlate: "deal:{{ body.id }}"
  - name: note
    source: crm
    action: add_note
    provider: awal
    ticket:
      contact: {phone: "{{ body.phone }}"}
  - name: fields
    source: crm
    action: create_ticket
    provider: awal
    ticket:
      contact:
        phone: "{{ body.phone }}"
        identifier: "{{ body.id }}"
      subject: "Deal"
      metadata: {deal: "{{ body.id }}"}
      contact_metadata: {deal: "{{ body.id }}"}
      tags: [crm]
      options: {x: "1"}
      message: {text: "hi", direction: note}
  - name: incoming
    source: crm
    action: create_ticket
    provider: awal
    ticket:
      contact: {phone: "{{ body.phone }}"}
      message: "a plain message is incoming"
  - name: nowhere
    source: crm
    action: create_ticket
    provider: awal
    ticket:
      contact: {name: "{{ body.name }}"}
      message: {text: "hi", direction: outgoing}
  - name: lost
    source: crm
    action: close_ticket
    provider: awal
    ticket:
      contact: {name: "{{ body.name }}"}
  - name: empty-update
    source: crm
    action: update_ticket
    provider: awal
    ticket:
      correlate: "deal:{{ body.id }}"
"""


def test_check_refuses_what_awal_chat_cannot_do(tmp_path):
    root = write_tree(tmp_path, {"rules/awal.yaml": RULES, "templates/.keep": ""})
    with pytest.raises(ConfigError) as caught:
        load_service(
            root / "rules", root / "templates", {"AWAL_SECRET": "s3cret-value"}, httpx.AsyncClient()
        )
    found = [str(p).replace(str(root) + "/", "") for p in caught.value.problems]
    lacks = "provider 'awal' (awalchat)"
    assert found == [
        f"rules/awal.yaml:23: rules[1].action: {lacks} cannot add_note",
        f"rules/awal.yaml:34: rules[2].ticket.contact.identifier: {lacks} has no contact "
        "identifier (conversations are found by contact.phone)",
        f"rules/awal.yaml:35: rules[2].ticket.subject: {lacks} has no ticket subject",
        f"rules/awal.yaml:36: rules[2].ticket.metadata: {lacks} has no ticket metadata",
        f"rules/awal.yaml:37: rules[2].ticket.contact_metadata: {lacks} has no ticket "
        "contact_metadata",
        f"rules/awal.yaml:38: rules[2].ticket.tags: {lacks} has no ticket tags",
        f"rules/awal.yaml:39: rules[2].ticket.options: {lacks} has no ticket options",
        f"rules/awal.yaml:40: rules[2].ticket.message: {lacks} cannot send a message with "
        "direction note",
        f"rules/awal.yaml:47: rules[3].ticket.message: {lacks} cannot send a message with "
        "direction incoming",
        f"rules/awal.yaml:52: rules[4].ticket: {lacks} needs ticket.contact.phone to create a "
        "ticket (conversations are by phone)",
        f"rules/awal.yaml:59: rules[5].ticket: {lacks} cannot find the conversation for "
        "close_ticket: give ticket.contact.phone or ticket.correlate",
        f"rules/awal.yaml:65: rules[6].ticket: {lacks} can only update a ticket by sending a "
        "message, and the rule has no ticket.message",
    ]
    assert not any("s3cret-value" in line for line in found)


def test_the_one_good_rule_loads(tmp_path):
    good = RULES.split("  - name: note")[0]
    root = write_tree(tmp_path, {"rules/awal.yaml": good, "templates/.keep": ""})
    service = load_service(
        root / "rules", root / "templates", {"AWAL_SECRET": "s3cret-value"}, httpx.AsyncClient()
    )
    assert isinstance(service.providers["awal"], awalchat.AwalChatProvider)
    assert "s3cret-value" in service.config.secrets


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'hmac_secret: "${AWAL_SECRET}"',
            "",
            "rules/awal.yaml:2: providers.awal: missing required key 'hmac_secret'",
        ),
        (
            'hmac_secret: "${AWAL_SECRET}"',
            'hmac_secret: "${AWAL_UNSET_SECRET:-}"',
            "rules/awal.yaml:7: providers.awal.hmac_secret: must not be empty",
        ),
        (
            "domain: acme",
            'domain: ""',
            "rules/awal.yaml:6: providers.awal.domain: must not be empty",
        ),
        (
            "domain: acme",
            "domain: acme\n    api_key: x",
            "rules/awal.yaml:7: providers.awal.api_key: unknown key 'api_key'",
        ),
    ],
)
def test_settings_are_checked_with_file_line_and_path(tmp_path, old, new, expected):
    good = RULES.split("  - name: note")[0].replace(old, new)
    root = write_tree(tmp_path, {"rules/awal.yaml": good, "templates/.keep": ""})
    with pytest.raises(ConfigError) as caught:
        load_service(
            root / "rules", root / "templates", {"AWAL_SECRET": "x" * 8}, httpx.AsyncClient()
        )
    found = [str(p).replace(str(root) + "/", "") for p in caught.value.problems]
    assert found == [expected]


def test_sign_path_must_be_known(tmp_path):
    good = RULES.split("  - name: note")[0].replace(
        "domain: acme", "domain: acme\n    sign_path: sideways"
    )
    root = write_tree(tmp_path, {"rules/awal.yaml": good, "templates/.keep": ""})
    with pytest.raises(ConfigError) as caught:
        load_service(
            root / "rules", root / "templates", {"AWAL_SECRET": "x" * 8}, httpx.AsyncClient()
        )
    (problem,) = caught.value.problems
    assert problem.path == "providers.awal.sign_path"
    assert problem.line == 7
    assert problem.message == "'sideways' is not one of relative, absolute"
