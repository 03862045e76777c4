"""The cloudchat / chatwoot adapter at the unit level: the exact requests of every action
(chained calls included), how each answer is classified, the correlate map, on_missing, and
what the configuration check refuses."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bridge.config import Config, Defaults, ProviderConfig
from bridge.exceptions import ConfigError, Problem
from bridge.providers.base import Job, Outcome, OutcomeKind, Provider
from bridge.providers.registry import build_providers
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
    TicketRef,
)
from tests.dryrun import dry_run
from tests.fakes.chatwoot import FakeChatwoot
from tests.helpers import write_tree

BASE = "http://127.0.0.1:3999"
API = f"{BASE}/api/v1/accounts/1"
TOKEN = "cw-secret-token-123"
CONVERSATION_URL = f"{BASE}/app/accounts/1/conversations"


def conversation(cid: int = 42, **fields: Any) -> dict[str, Any]:
    """A conversation as the API answers it (the fields the adapter reads)."""
    return {
        "id": cid,
        "account_id": 1,
        "inbox_id": 12,
        "status": "open",
        "custom_attributes": {},
        "additional_attributes": {},
        "labels": [],
        "meta": {"sender": {"id": 345, "name": "Ana Souza", "email": "ana@example.com"}},
        **fields,
    }


def contact(**fields: Any) -> dict[str, Any]:
    return {
        "id": 345,
        "name": "Ana Souza",
        "email": "ana@example.com",
        "phone_number": None,
        "identifier": None,
        "contact_inboxes": [],
        **fields,
    }


def provider(tmp_path: Path, client: httpx.AsyncClient, kind: str, **settings: Any) -> Provider:
    merged = {
        "type": kind,
        "base_url": BASE,
        "account_id": 1,
        "inbox_id": 12,
        "api_access_token": TOKEN,
        **settings,
    }
    config = Config(
        rules_dir=tmp_path,
        templates_dir=tmp_path,
        sources={},
        providers={
            "desk": ProviderConfig(
                name="desk",
                type=kind,
                settings=merged,
                base_url=merged.get("base_url"),
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
    return built["desk"]


def job(kind: ActionKind = ActionKind.CREATE_TICKET, **overrides: Any) -> Job:
    fields: dict[str, Any] = {
        "contact": Contact(name="Ana Souza", email="ana@example.com"),
        "subject": "Order 1001",
        "message": Message(text="Where is my order?"),
        "metadata": {"order": "1001"},
        "correlate": "order-1001",
    }
    job_fields = {
        k: overrides.pop(k) for k in ("ticket_ref", "ticket_open", "delivery_id") if k in overrides
    }
    action = TicketAction(action=kind, provider="desk", **{**fields, **overrides})
    return Job(
        delivery_id=job_fields.get("delivery_id", "dlv_1"),
        attempt=1,
        action=action,
        ticket_ref=job_fields.get("ticket_ref"),
        ticket_open=job_fields.get("ticket_open"),
        context={},
    )


def deliver(tmp_path: Path, the_job: Job, kind: str = "cloudchat", **settings: Any) -> Outcome:
    async def go() -> Outcome:
        async with httpx.AsyncClient(verify=False) as client:  # no CA bundle to load: faster
            return await provider(tmp_path, client, kind, **settings).deliver(the_job)

    return asyncio.run(go())


def sent(router: respx.MockRouter) -> list[tuple[str, str, Any]]:
    """(method, path with query below the account, JSON body) of every call, in order."""
    out = []
    for call in router.calls:
        request = call.request
        assert request.headers["api_access_token"] == TOKEN
        path = str(request.url).removeprefix(API)
        body = json.loads(request.content) if request.content else None
        if body is not None:
            assert request.headers["content-type"] == "application/json"
        out.append((request.method, path, body))
    return out


KNOWN = TicketRef(ticket_id="42", conversation_id="42", contact_id="345")
REF_42 = TicketRef(
    ticket_id="42", conversation_id="42", contact_id="345", url=f"{CONVERSATION_URL}/42"
)


@pytest.fixture
def api():
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


# -- create ------------------------------------------------------------------------------------


def test_cloudchat_create_is_one_call_with_the_preferred_contact_field(tmp_path, api):
    route = api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    the_job = job(
        contact=Contact(
            name="Ana Souza", email="ana@example.com", phone="+56 9 6123 4567", identifier="cust-7"
        ),
        options={"assignee_id": "7", "team_id": 2},
    )
    outcome = deliver(tmp_path, the_job, lookup_before_create=False)
    assert route.calls.last.request.url == f"{API}/conversations"
    assert sent(api) == [
        (
            "POST",
            "/conversations",
            {
                "inbox_id": 12,
                "contact_identifier": "cust-7",
                "message": {"content": "Where is my order?", "message_type": "incoming"},
                "status": "open",
                "custom_attributes": {"order": "1001", "subject": "Order 1001"},
                "additional_attributes": {
                    "ticketbridge_correlate": "order-1001",
                    "ticketbridge_delivery": "dlv_1",
                },
                "assignee_id": 7,
                "team_id": 2,
            },
        )
    ]
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == REF_42
    assert outcome.ticket_open is True


@pytest.mark.parametrize(
    ("person", "field", "value"),
    [
        (
            Contact(email="ana@example.com", phone="+56961234567"),
            "contact_email",
            "ana@example.com",
        ),
        (Contact(phone="+56 9 6123-4567"), "contact_phone_number", "+56961234567"),
        (Contact(phone="56912345678"), "contact_phone_number", "+56912345678"),
        (Contact(phone="+56 9 1234 5678"), "contact_phone_number", "+56912345678"),
        (Contact(phone="ext. 12"), "contact_phone_number", "ext. 12"),  # not a phone: as given
    ],
)
def test_cloudchat_prefers_identifier_then_email_then_phone(tmp_path, api, person, field, value):
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    deliver(tmp_path, job(contact=person, correlate=None))
    ((_, _, body),) = sent(api)
    assert [k for k in body if k.startswith("contact_")] == [field]
    assert body[field] == value
    assert "additional_attributes" not in body  # no correlate key: nothing to find later


def test_cloudchat_create_looks_for_its_own_conversation_first(tmp_path, api):
    api.get("/contacts/search", params={"q": "ana@example.com"}).mock(
        return_value=httpx.Response(
            200,
            json={
                "meta": {},
                "payload": [
                    contact(email="ana.other@example.com", id=1),  # fuzzy hit: not this contact
                    contact(),
                ],
            },
        )
    )
    others = [
        conversation(50, additional_attributes={"ticketbridge_correlate": "order-9"}),
        conversation(51, inbox_id=99),
        conversation(
            52, status="resolved", additional_attributes={"ticketbridge_correlate": "order-1001"}
        ),
    ]
    api.get("/contacts/345/conversations").mock(
        return_value=httpx.Response(200, json={"payload": others})
    )
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation(53)))
    api.post("/conversations/53/labels").mock(return_value=httpx.Response(200, json={}))
    outcome = deliver(tmp_path, job(tags=("web",)))
    calls = sent(api)
    assert [(m, p) for m, p, _ in calls] == [
        ("GET", "/contacts/search?q=ana%40example.com"),
        ("GET", "/contacts/345/conversations"),
        ("POST", "/conversations"),
        ("POST", "/conversations/53/labels"),
    ]
    assert calls[3][2] == {"labels": ["web"]}
    assert outcome.ticket_ref == TicketRef(
        ticket_id="53", conversation_id="53", contact_id="345", url=f"{CONVERSATION_URL}/53"
    )


def test_a_repeated_create_finishes_the_conversation_it_made_instead_of_a_second(tmp_path, api):
    api.get("/contacts/search").mock(
        return_value=httpx.Response(200, json={"payload": [contact()]})
    )
    made = conversation(
        42,
        labels=["vip"],
        additional_attributes={
            "ticketbridge_correlate": "order-1001",
            "ticketbridge_delivery": "dlv_1",
        },
    )
    api.get("/contacts/345/conversations").mock(
        return_value=httpx.Response(200, json={"payload": [made]})
    )
    api.post("/conversations/42/labels").mock(return_value=httpx.Response(200, json={}))
    create = api.post("/conversations")
    outcome = deliver(tmp_path, job(tags=("web",)))
    assert not create.called
    assert sent(api)[-1] == ("POST", "/conversations/42/labels", {"labels": ["vip", "web"]})
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_ref == REF_42


@pytest.mark.parametrize(
    ("on_existing", "expected"),
    [
        (OnExisting.UPDATE, ("POST", "/conversations/42/messages")),
        (OnExisting.SKIP, None),
        (OnExisting.CREATE, ("POST", "/conversations")),
    ],
)
def test_an_open_conversation_of_the_key_made_by_another_delivery_follows_on_existing(
    tmp_path, api, on_existing, expected
):
    api.get("/contacts/search").mock(
        return_value=httpx.Response(200, json={"payload": [contact()]})
    )
    other = conversation(
        42,
        custom_attributes={"order": "1001", "subject": "Order 1001"},
        additional_attributes={
            "ticketbridge_correlate": "order-1001",
            "ticketbridge_delivery": "dlv_0",
        },
    )
    api.get("/contacts/345/conversations").mock(
        return_value=httpx.Response(200, json={"payload": [other]})
    )
    api.post("/conversations/42/messages").mock(return_value=httpx.Response(200, json={"id": 1}))
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation(43)))
    outcome = deliver(tmp_path, job(on_existing=on_existing))
    calls = [(m, p) for m, p, _ in sent(api)][2:]
    if expected is None:
        assert calls == []
        assert outcome.kind is OutcomeKind.SKIPPED
        assert "conversation 42 is already open" in outcome.message
    else:
        assert calls == [expected]  # attributes unchanged: no write
        assert outcome.kind is OutcomeKind.SUCCESS


def test_chatwoot_create_makes_the_contact_then_the_conversation_with_its_source_id(tmp_path, api):
    api.get("/contacts/search").mock(return_value=httpx.Response(200, json={"payload": []}))
    api.post("/contacts").mock(
        return_value=httpx.Response(
            200,
            json={
                "payload": {
                    "contact": {"id": 345},
                    "contact_inbox": {"source_id": "src-abc", "inbox": {"id": 12}},
                }
            },
        )
    )
    api.post("/conversations").mock(
        return_value=httpx.Response(200, json={"id": 42, "account_id": 1, "inbox_id": 12})
    )
    the_job = job(
        contact=Contact(name="Ana Souza", email="ana@example.com", phone="+56 9 6123 4567"),
        contact_metadata={"plan": "gold"},
        message=Message(text="Hi", direction=Direction.OUTGOING),
    )
    outcome = deliver(tmp_path, the_job, "chatwoot", lookup_before_create=False)
    assert sent(api) == [
        ("GET", "/contacts/search?q=ana%40example.com", None),
        ("GET", "/contacts/search?q=%2B56961234567", None),
        (
            "POST",
            "/contacts",
            {
                "inbox_id": 12,
                "name": "Ana Souza",
                "email": "ana@example.com",
                "phone_number": "+56961234567",
                "custom_attributes": {"plan": "gold"},
            },
        ),
        (
            "POST",
            "/conversations",
            {
                "inbox_id": 12,
                "source_id": "src-abc",
                "contact_id": 345,
                "message": {"content": "Hi", "message_type": "outgoing"},
                "status": "open",
                "custom_attributes": {"order": "1001", "subject": "Order 1001"},
                "additional_attributes": {
                    "ticketbridge_correlate": "order-1001",
                    "ticketbridge_delivery": "dlv_1",
                },
            },
        ),
    ]
    # the spec's minimal answer has no meta.sender: the contact id comes from the create
    assert outcome.ticket_ref == REF_42


def test_chatwoot_create_reuses_a_found_contact_and_adds_it_to_the_inbox(tmp_path, api):
    api.get("/contacts/search").mock(
        return_value=httpx.Response(
            200,
            json={
                "payload": [
                    contact(
                        identifier="cust-7",
                        contact_inboxes=[{"source_id": "other", "inbox": {"id": 99}}],
                    )
                ]
            },
        )
    )
    api.put("/contacts/345").mock(return_value=httpx.Response(200, json={"payload": {}}))
    api.post("/contacts/345/contact_inboxes").mock(
        return_value=httpx.Response(200, json={"source_id": "src-12", "inbox": {"id": 12}})
    )
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    the_job = job(contact=Contact(identifier="cust-7"), contact_metadata={"plan": "gold"})
    deliver(tmp_path, the_job, "chatwoot", lookup_before_create=False)
    calls = sent(api)
    assert calls[:3] == [
        ("GET", "/contacts/search?q=cust-7", None),
        ("PUT", "/contacts/345", {"custom_attributes": {"plan": "gold"}}),
        ("POST", "/contacts/345/contact_inboxes", {"inbox_id": 12}),
    ]
    assert calls[3][2]["source_id"] == "src-12" and calls[3][2]["contact_id"] == 345


def test_create_with_a_note_and_tags_writes_them_after_the_conversation(tmp_path, api):
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    api.post("/conversations/42/labels").mock(return_value=httpx.Response(200, json={}))
    api.post("/conversations/42/messages").mock(return_value=httpx.Response(200, json={"id": 9}))
    the_job = job(message=Message(text="internal", direction=Direction.NOTE), tags=("a", "b"))
    outcome = deliver(tmp_path, the_job, lookup_before_create=False)
    calls = sent(api)
    assert "message" not in calls[0][2]
    assert calls[1:] == [
        ("POST", "/conversations/42/labels", {"labels": ["a", "b"]}),
        (
            "POST",
            "/conversations/42/messages",
            {"content": "internal", "message_type": "outgoing", "private": True},
        ),
    ]
    assert outcome.kind is OutcomeKind.SUCCESS


def test_cloudchat_names_a_contact_it_left_unnamed(tmp_path, api):
    unnamed = conversation(meta={"sender": {"id": 345, "name": "ana", "email": "ana@example.com"}})
    api.post("/conversations").mock(return_value=httpx.Response(200, json=unnamed))
    api.put("/contacts/345").mock(return_value=httpx.Response(200, json={"payload": {}}))
    deliver(tmp_path, job(), lookup_before_create=False)
    assert sent(api)[1] == ("PUT", "/contacts/345", {"name": "Ana Souza"})


def test_a_failed_follow_up_without_the_lookup_keeps_the_created_conversation(tmp_path, api):
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    api.post("/conversations/42/labels").mock(
        return_value=httpx.Response(503, json={"error": "busy"})
    )
    outcome = deliver(tmp_path, job(tags=("web",)), lookup_before_create=False)
    assert outcome.kind is OutcomeKind.SUCCESS  # a retry would make a second conversation
    assert outcome.ticket_ref == REF_42
    assert outcome.message == "conversation 42 created, but a follow-up call failed: HTTP 503: busy"


def test_a_failed_follow_up_with_the_lookup_is_retried(tmp_path, api):
    api.get("/contacts/search").mock(return_value=httpx.Response(200, json={"payload": []}))
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    api.post("/conversations/42/labels").mock(
        return_value=httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "3"})
    )
    outcome = deliver(tmp_path, job(tags=("web",)))
    assert outcome.kind is OutcomeKind.RETRYABLE and outcome.retry_after == 3


def test_on_missing_create_for_a_close_creates_it_resolved(tmp_path, api):
    api.post("/conversations").mock(return_value=httpx.Response(200, json=conversation()))
    the_job = job(ActionKind.CLOSE_TICKET, on_missing=OnMissing.CREATE, contact=Contact())
    outcome = deliver(tmp_path, the_job)
    assert outcome.kind is OutcomeKind.PERMANENT  # no contact at all: nothing to create for
    assert outcome.message == "cloudchat needs the contact's identifier, email or phone to create"
    assert sent(api) == []
    api.get("/contacts/search").mock(return_value=httpx.Response(200, json={"payload": []}))
    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, on_missing=OnMissing.CREATE))
    assert [(m, p) for m, p, _ in sent(api)] == [
        ("GET", "/contacts/search?q=ana%40example.com"),  # the lookup
        ("POST", "/conversations"),
    ]
    assert sent(api)[-1][2]["status"] == "resolved"
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_open is False


# -- a known conversation ----------------------------------------------------------------------


def test_update_merges_attributes_and_labels_then_posts_the_message(tmp_path, api):
    api.get("/conversations/42").mock(
        return_value=httpx.Response(
            200,
            json=conversation(
                custom_attributes={"order": "999", "agent_note": "keep me"},
                labels=["web"],
            ),
        )
    )
    for path in ("custom_attributes", "labels", "messages"):
        api.post(f"/conversations/42/{path}").mock(return_value=httpx.Response(200, json={}))
    the_job = job(
        ActionKind.UPDATE_TICKET,
        ticket_ref=KNOWN,
        ticket_open=True,
        tags=("vip", "web"),
        message=Message(text="We shipped it.", direction=Direction.OUTGOING),
    )
    outcome = deliver(tmp_path, the_job)
    assert sent(api) == [
        ("GET", "/conversations/42", None),
        (
            "POST",
            "/conversations/42/custom_attributes",
            {
                "custom_attributes": {
                    "order": "1001",
                    "agent_note": "keep me",
                    "subject": "Order 1001",
                }
            },
        ),
        ("POST", "/conversations/42/labels", {"labels": ["web", "vip"]}),
        (
            "POST",
            "/conversations/42/messages",
            {"content": "We shipped it.", "message_type": "outgoing"},
        ),
    ]
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == REF_42 and outcome.ticket_open is True


def test_update_with_server_merge_sends_only_the_keys_and_reads_nothing(tmp_path, api):
    api.post("/conversations/42/custom_attributes").mock(return_value=httpx.Response(200))
    the_job = job(ActionKind.UPDATE_TICKET, ticket_ref=KNOWN, message=None, subject=None)
    outcome = deliver(tmp_path, the_job, custom_attributes_merge="server")
    assert sent(api) == [
        (
            "POST",
            "/conversations/42/custom_attributes",
            {"custom_attributes": {"order": "1001"}, "merge": True},
        )
    ]
    assert outcome.ticket_ref == REF_42


def test_nothing_new_is_not_written(tmp_path, api):
    api.get("/conversations/42").mock(
        return_value=httpx.Response(
            200,
            json=conversation(
                status="resolved",
                labels=["web"],
                custom_attributes={"order": "1001", "subject": "Order 1001"},
            ),
        )
    )
    the_job = job(ActionKind.UPDATE_TICKET, ticket_ref=KNOWN, message=None, tags=("web",))
    outcome = deliver(tmp_path, the_job)
    assert [m for m, _, _ in sent(api)] == ["GET"]
    assert outcome.ticket_open is False  # the conversation said resolved


def test_close_resolves_then_adds_the_note(tmp_path, api):
    api.post("/conversations/42/toggle_status").mock(
        return_value=httpx.Response(200, json={"meta": {}, "payload": {"success": True}})
    )
    api.post("/conversations/42/messages").mock(return_value=httpx.Response(200, json={}))
    the_job = job(
        ActionKind.CLOSE_TICKET,
        ticket_ref=KNOWN,
        subject=None,
        metadata={},
        message=Message(text="Refunded.", direction=Direction.NOTE),
    )
    outcome = deliver(tmp_path, the_job)
    assert sent(api) == [
        ("POST", "/conversations/42/toggle_status", {"status": "resolved"}),
        (
            "POST",
            "/conversations/42/messages",
            {"content": "Refunded.", "message_type": "outgoing", "private": True},
        ),
    ]
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.ticket_open is False
    assert outcome.ticket_ref == REF_42


def test_close_with_an_incoming_message_posts_it_before_resolving(tmp_path, api):
    api.post("/conversations/42/toggle_status").mock(return_value=httpx.Response(200, json={}))
    api.post("/conversations/42/messages").mock(return_value=httpx.Response(200, json={}))
    the_job = job(ActionKind.CLOSE_TICKET, ticket_ref=KNOWN, subject=None, metadata={})
    deliver(tmp_path, the_job)
    assert [(p, b) for _, p, b in sent(api)] == [
        (
            "/conversations/42/messages",
            {"content": "Where is my order?", "message_type": "incoming"},
        ),
        ("/conversations/42/toggle_status", {"status": "resolved"}),
    ]


def test_reopen_sets_the_status_open(tmp_path, api):
    api.post("/conversations/42/toggle_status").mock(return_value=httpx.Response(200, json={}))
    the_job = job(
        ActionKind.REOPEN_TICKET,
        ticket_ref=KNOWN,
        ticket_open=False,
        subject=None,
        metadata={},
        message=None,
    )
    outcome = deliver(tmp_path, the_job)
    assert sent(api) == [("POST", "/conversations/42/toggle_status", {"status": "open"})]
    assert outcome.ticket_open is True and outcome.ticket_ref == REF_42


def test_add_note_posts_a_private_message(tmp_path, api):
    api.post("/conversations/42/messages").mock(return_value=httpx.Response(200, json={"id": 7}))
    the_job = job(
        ActionKind.ADD_NOTE,
        ticket_ref=TicketRef(ticket_id="42"),
        subject=None,
        metadata={},
        message=Message(text="Paid: pi_123"),
    )
    outcome = deliver(tmp_path, the_job)
    assert sent(api) == [
        (
            "POST",
            "/conversations/42/messages",
            {"content": "Paid: pi_123", "message_type": "outgoing", "private": True},
        )
    ]
    assert outcome.ticket_ref == TicketRef(
        ticket_id="42", conversation_id="42", url=f"{CONVERSATION_URL}/42"
    )


def test_chatwoot_contact_metadata_goes_to_the_conversations_contact(tmp_path, api):
    api.get("/conversations/42").mock(return_value=httpx.Response(200, json=conversation()))
    api.put("/contacts/345").mock(return_value=httpx.Response(200, json={"payload": {}}))
    the_job = job(
        ActionKind.UPDATE_TICKET,
        ticket_ref=TicketRef(ticket_id="42"),
        subject=None,
        metadata={},
        message=None,
        contact_metadata={"tier": "gold"},
    )
    outcome = deliver(tmp_path, the_job, "chatwoot")
    assert sent(api)[-1] == ("PUT", "/contacts/345", {"custom_attributes": {"tier": "gold"}})
    assert outcome.ticket_ref is not None and outcome.ticket_ref.contact_id == "345"


def test_options_become_assignments_on_an_existing_conversation(tmp_path, api):
    route = api.post("/conversations/42/assignments").mock(return_value=httpx.Response(200))
    the_job = job(
        ActionKind.UPDATE_TICKET,
        ticket_ref=KNOWN,
        subject=None,
        metadata={},
        message=None,
        options={"assignee_id": "7", "team_id": "2"},
    )
    deliver(tmp_path, the_job)
    assert [json.loads(c.request.content) for c in route.calls] == [
        {"assignee_id": 7},
        {"team_id": 2},
    ]


# -- lookups and on_missing --------------------------------------------------------------------


def test_without_a_ref_the_conversation_is_found_by_the_contact(tmp_path, api):
    api.get("/contacts/search", params={"q": "ana@example.com"}).mock(
        return_value=httpx.Response(200, json={"payload": [contact()]})
    )
    listed = [
        conversation(40),
        conversation(41, additional_attributes={"ticketbridge_correlate": "order-1001"}),
        conversation(44, status="resolved"),
        conversation(45, inbox_id=7),
        conversation(46, additional_attributes={"ticketbridge_correlate": "order-2"}),
    ]
    api.get("/contacts/345/conversations").mock(
        return_value=httpx.Response(200, json={"payload": listed})
    )
    api.post("/conversations/41/messages").mock(return_value=httpx.Response(200, json={}))
    the_job = job(ActionKind.ADD_NOTE, subject=None, metadata={})
    outcome = deliver(tmp_path, the_job)
    assert sent(api)[-1][1] == "/conversations/41/messages"
    assert outcome.ticket_ref == TicketRef(
        ticket_id="41", conversation_id="41", contact_id="345", url=f"{CONVERSATION_URL}/41"
    )


def test_a_reopen_finds_a_resolved_conversation(tmp_path, api):
    api.get("/contacts/search").mock(
        return_value=httpx.Response(200, json={"payload": [contact()]})
    )
    api.get("/contacts/345/conversations").mock(
        return_value=httpx.Response(200, json={"payload": [conversation(44, status="resolved")]})
    )
    api.post("/conversations/44/toggle_status").mock(return_value=httpx.Response(200, json={}))
    the_job = job(ActionKind.REOPEN_TICKET, subject=None, metadata={}, message=None)
    outcome = deliver(tmp_path, the_job)
    assert sent(api)[-1] == ("POST", "/conversations/44/toggle_status", {"status": "open"})
    assert outcome.kind is OutcomeKind.SUCCESS


@pytest.mark.parametrize(
    ("on_missing", "kind"),
    [(OnMissing.SKIP, OutcomeKind.SKIPPED), (OnMissing.FAIL, OutcomeKind.PERMANENT)],
)
def test_nothing_found_follows_on_missing(tmp_path, api, on_missing, kind):
    api.get("/contacts/search").mock(
        return_value=httpx.Response(200, json={"payload": [contact(email="ana@example.com.br")]})
    )
    the_job = job(ActionKind.UPDATE_TICKET, on_missing=on_missing)
    outcome = deliver(tmp_path, the_job)
    assert outcome.kind is kind
    assert outcome.message == (
        "no ticket found for update_ticket "
        "(none in the correlate map, nor open in inbox 12 for the contact)"
    )
    assert [m for m, _, _ in sent(api)] == ["GET"]  # the near miss is not taken


def test_nothing_to_look_up_by_is_skipped_without_a_call(tmp_path, api):
    outcome = deliver(tmp_path, job(ActionKind.CLOSE_TICKET, contact=Contact(name="Ana")))
    assert outcome.kind is OutcomeKind.SKIPPED
    assert "no contact identifier, email or phone" in outcome.message
    assert sent(api) == []


# -- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (httpx.Response(200, json=conversation()), OutcomeKind.SUCCESS, ""),
        (httpx.Response(201, json=conversation()), OutcomeKind.SUCCESS, ""),
        (
            httpx.Response(400, json={"error": "inbox_id is invalid"}),
            OutcomeKind.PERMANENT,
            "HTTP 400: inbox_id is invalid",
        ),
        (
            httpx.Response(401, json={"error": "Invalid Access Token"}),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 401: Invalid Access Token",
        ),
        (httpx.Response(403, json={}), OutcomeKind.UNAUTHORIZED, "HTTP 403: Forbidden"),
        (
            httpx.Response(404, json={"error": "Resource could not be found"}),
            OutcomeKind.PERMANENT,
            "HTTP 404: Resource could not be found",
        ),
        (
            httpx.Response(422, json={"message": "Email is invalid", "attributes": ["email"]}),
            OutcomeKind.PERMANENT,
            "HTTP 422: Email is invalid",
        ),
        (
            httpx.Response(429, text="Retry later\n", headers={"Retry-After": "30"}),
            OutcomeKind.RETRYABLE,
            "HTTP 429: Retry later\n",
        ),
        (httpx.Response(500, json={}), OutcomeKind.RETRYABLE, "HTTP 500: Internal Server Error"),
        (httpx.ConnectError("refused"), OutcomeKind.RETRYABLE, "ConnectError: refused"),
        (httpx.ReadTimeout("slow"), OutcomeKind.RETRYABLE, "ReadTimeout: slow"),
        (
            httpx.Response(200, json={"account_id": 1}),
            OutcomeKind.PERMANENT,
            "unexpected answer to POST /conversations: no id",
        ),
    ],
)
def test_answers_are_classified(tmp_path, api, answer, kind, message):
    route = api.post("/conversations")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    outcome = deliver(tmp_path, job(), lookup_before_create=False)
    assert outcome.kind is kind
    assert outcome.message == message
    if kind is OutcomeKind.RETRYABLE and message.startswith("HTTP 429"):
        assert outcome.retry_after == 30
    assert (outcome.ticket_ref is not None) is (kind is OutcomeKind.SUCCESS)


def test_a_failed_call_in_a_chain_ends_it(tmp_path, api):
    api.get("/contacts/search").mock(return_value=httpx.Response(502, text="bad gateway"))
    create = api.post("/conversations")
    outcome = deliver(tmp_path, job(), "chatwoot")
    assert outcome.kind is OutcomeKind.RETRYABLE and outcome.status_code == 502
    assert not create.called


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "Invalid Access Token"}),
        httpx.Response(500, text="oops"),
        httpx.ConnectError("connection refused"),
        httpx.Response(200, json={}),
    ],
)
def test_no_outcome_carries_the_token(tmp_path, api, answer):
    route = api.post("/conversations")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)
    outcome = deliver(tmp_path, job(), lookup_before_create=False)
    assert outcome.kind is not OutcomeKind.SUCCESS
    assert route.calls.last.request.headers["api_access_token"] == TOKEN  # it was sent ...
    for text in (outcome.message, outcome.response_excerpt or "", repr(outcome)):
        assert TOKEN not in text  # ... and is nowhere in what the attempt log keeps


def test_domain_gives_the_base_url(tmp_path):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=conversation())

    async def go() -> Outcome:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            desk = provider(
                tmp_path,
                client,
                "cloudchat",
                base_url=None,
                domain="cc.example.com",
                lookup_before_create=False,
            )
            return await desk.deliver(job())

    outcome = asyncio.run(go())
    assert str(seen[0].url) == "https://cc.example.com/api/v1/accounts/1/conversations"
    assert outcome.ticket_ref is not None
    assert outcome.ticket_ref.url == "https://cc.example.com/app/accounts/1/conversations/42"


def _shape(method: str, path: str, query: dict[str, str], body: Any) -> tuple[Any, ...]:
    """A request with the ids a helpdesk hands out (contact, source, conversation) blanked,
    so the stub's made-up ids and the fake's compare equal."""
    path = re.sub(r"/\d+", "/<id>", path)
    if isinstance(body, dict):
        body = {k: "<id>" if k in ("contact_id", "source_id") else v for k, v in body.items()}
    return method, path, query, body


def _stubbed(request: dict[str, Any]) -> tuple[Any, ...]:
    url = httpx.URL(request["url"])
    path = url.path.removeprefix("/api/v1/accounts/1/")
    return _shape(request["method"], path, dict(url.params), request["json"])


NEW_CUSTOMER = Contact(name="Ana Souza", email="ana@example.com", phone="+56 9 6123 4567")


@pytest.mark.parametrize(
    ("kind", "tags", "expected"),
    [
        (
            "chatwoot",
            (),
            [
                ("GET", "contacts/search", {"q": "ana@example.com"}),
                ("GET", "contacts/search", {"q": "+56961234567"}),
                ("POST", "contacts", {}),
                ("POST", "conversations", {}),
            ],
        ),
        (
            "cloudchat",
            ("web",),
            [
                ("GET", "contacts/search", {"q": "ana@example.com"}),
                ("GET", "contacts/search", {"q": "+56961234567"}),
                ("POST", "conversations", {}),
                ("POST", "conversations/<id>/labels", {}),
                ("PUT", "contacts/<id>", {}),  # Cloud Chat's create named the contact nothing
            ],
        ),
    ],
)
def test_the_dry_run_of_a_new_contact_sends_what_a_first_real_delivery_sends(
    tmp_path, kind, tags, expected
):
    the_job = job(contact=NEW_CUSTOMER, tags=tags)
    outcome, requests = dry_run(lambda client: provider(tmp_path, client, kind), the_job)
    assert outcome.kind is OutcomeKind.SUCCESS
    assert [r["answer"]["stubbed"] for r in requests] == [True] * len(expected)
    assert [_stubbed(r)[:3] for r in requests] == expected

    # the same action, delivered for real to the fake helpdesk that has never seen Ana
    with FakeChatwoot(flavour=kind, token=TOKEN).running() as cw:

        async def go() -> Outcome:
            async with httpx.AsyncClient() as client:
                desk = provider(tmp_path, client, kind, base_url=cw.url)
                return await desk.deliver(the_job)

        assert asyncio.run(go()).kind is OutcomeKind.SUCCESS
        real = [_shape(r.method, r.path, r.query, r.json) for r in cw.requests]
    assert [_stubbed(r) for r in requests] == real  # same calls, order, queries and bodies

    # every answer is the stub's, and the ids the create used are the ones it answered
    searches = [r for r in requests if r["url"].split("?")[0].endswith("/contacts/search")]
    assert [r["answer"]["json"]["payload"] for r in searches] == [[], []]
    create = next(r for r in requests if r["url"].endswith("/conversations"))
    if kind == "chatwoot":
        made = requests[2]["answer"]["json"]["payload"]
        assert create["json"]["contact_id"] == made["contact"]["id"]
        assert create["json"]["source_id"] == made["contact_inbox"]["source_id"]
    assert outcome.ticket_ref is not None
    assert outcome.ticket_ref.conversation_id == str(create["answer"]["json"]["id"])


def test_the_dry_run_of_an_update_for_a_stranger_finds_nothing_and_skips(tmp_path):
    the_job = job(ActionKind.UPDATE_TICKET, contact=NEW_CUSTOMER)
    outcome, requests = dry_run(lambda client: provider(tmp_path, client, "chatwoot"), the_job)
    assert outcome.kind is OutcomeKind.SKIPPED
    assert [(r["method"], _stubbed(r)[1]) for r in requests] == [
        ("GET", "contacts/search"),
        ("GET", "contacts/search"),
    ]


# -- what the configuration check refuses ------------------------------------------------------


def load(tmp_path: Path, settings: str, ticket: str, action: str = "create_ticket") -> Any:
    """load_service on one provider `desk` and one rule `r` sending to it."""
    text = (
        "providers:\n  desk:\n"
        + textwrap.indent(textwrap.dedent(settings).strip() + "\n", " " * 4)
        + "sources:\n  web: {verify: {type: none}}\n"
        + f"rules:\n  - name: r\n    source: web\n    action: {action}\n    provider: desk\n"
        + "    ticket:\n"
        + textwrap.indent(textwrap.dedent(ticket).strip() + "\n", " " * 6)
    )
    root = write_tree(tmp_path, {"rules/main.yaml": text})
    (root / "templates").mkdir(exist_ok=True)

    async def go() -> Any:
        async with httpx.AsyncClient(verify=False) as client:  # no CA bundle to load: faster
            return load_service(root / "rules", root / "templates", {}, client)

    return asyncio.run(go())


PROVIDER = """
    type: {kind}
    base_url: http://127.0.0.1:3999
    account_id: "1"
    inbox_id: 12
    api_access_token: tok-abcdef
"""
TICKET = """
    contact: {{email: "{{{{ body.email }}}}"}}
    {extra}
"""


def test_cloudchat_refuses_contact_metadata_naming_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            PROVIDER.format(kind="cloudchat"),
            TICKET.format(extra='contact_metadata: {plan: "{{ body.plan }}"}'),
        )
    (problem,) = caught.value.problems
    assert problem.file.endswith("main.yaml") and problem.line == 17
    assert problem.path == "rules[0].ticket.contact_metadata"
    assert problem.message == "provider 'desk' (cloudchat) has no ticket contact_metadata"


def test_chatwoot_takes_contact_metadata(tmp_path):
    service = load(
        tmp_path,
        PROVIDER.format(kind="chatwoot"),
        TICKET.format(extra='contact_metadata: {plan: "{{ body.plan }}"}'),
    )
    assert "contact_metadata" in service.providers["desk"].capabilities.fields


def test_unknown_options_and_a_create_without_a_contact_field_are_refused(tmp_path):
    ticket = """
        contact: {name: "{{ body.name }}"}
        options: {priority: high}
    """
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, PROVIDER.format(kind="cloudchat"), ticket)
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (
            16,
            "rules[0].ticket.contact",
            "cloudchat creates a conversation for a contact: "
            "give one of contact.identifier, contact.email, contact.phone",
        ),
        (
            17,
            "rules[0].ticket.options.priority",
            "cloudchat has no option 'priority' (it has: assignee_id, team_id)",
        ),
    ]


def test_settings_are_checked_by_the_schema(tmp_path):
    settings = """
        type: chatwoot
        account_id: acme
        inbox_id: 12
        api_access_token: tok-abcdef
        custom_attributes_merge: always
    """
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, settings, TICKET.format(extra=""))
    assert {(p.line, p.path, p.message) for p in caught.value.problems} == {
        (2, "providers.desk", "needs base_url (https://your-domain) or domain"),
        (4, "providers.desk.account_id", "'acme' is not a positive integer"),
        (7, "providers.desk.custom_attributes_merge", "'always' is not one of client, server"),
    }
