"""Awal Chat end to end: real webhooks into a real server, delivered to a fake Awal Chat API
that checks every signature; the tickets' life (create, update, close, reopen) read from the
fake's state and from `ticketbridge show --json`; and `ticketbridge try`."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.cli import main
from bridge.providers.awalchat.signing import AwalSigner
from tests.fakes.awalchat import FakeAwalChat, Ticket
from tests.helpers import poll, running_server, settled_event, show_event, write_tree

SECRET = "awal-e2e-hmac-secret-9f8e7d"
EVENT_IDS = itertools.count(1)


def tree(root: Path, api_url: str) -> Path:
    return write_tree(
        root,
        {
            "rules/awal.yaml": f"""
                providers:
                  awal:
                    type: awalchat
                    base_url: "{api_url}"
                    client_id: client-1
                    domain: acme
                    hmac_secret: "${{AWAL_HMAC_SECRET}}"
                    phone_number_id: "123456789012345"
                    retry: {{base: 50ms, cap: 100ms, max_attempts: 3}}
                  awal-misconfigured:
                    type: awalchat
                    base_url: "{api_url}"
                    client_id: client-1
                    domain: acme
                    hmac_secret: not-the-right-secret
                    phone_number_id: "123456789012345"
                sources:
                  crm:
                    verify: {{type: none}}
                    dedupe_key: body.meta.id
                rules:
                  - name: deal-created
                    source: crm
                    when: {{body.meta.action: create}}
                    action: create_ticket
                    provider: awal
                    ticket:
                      contact:
                        phone: "{{{{ body.data.contact_phone | e164('SA') }}}}"
                        name: "{{{{ body.data.contact_name | default('') }}}}"
                      message:
                        text: {{template: awal/opened.txt.j2}}
                        direction: outgoing
                      correlate: "deal:{{{{ body.data.id }}}}"
                  - name: deal-closed
                    source: crm
                    when:
                      body.meta.action: change
                      body.data.status: {{in: [won, lost]}}
                      body.previous.status: {{exists: true}}
                    action: close_ticket
                    provider: awal
                    ticket:
                      contact: {{phone: "{{{{ body.data.contact_phone | e164('SA') }}}}"}}
                      correlate: "deal:{{{{ body.data.id }}}}"
                  - name: deal-reopened
                    source: crm
                    when:
                      body.meta.action: change
                      body.data.status: open
                      body.previous.status: {{in: [won, lost]}}
                    action: reopen_ticket
                    provider: awal
                    ticket:
                      message:
                        text: "We reopened your case about {{{{ body.data.title }}}}."
                        direction: outgoing
                      correlate: "deal:{{{{ body.data.id }}}}"
                  - name: deal-note
                    source: crm
                    when:
                      body.meta.action: change
                      body.previous.note: {{exists: true}}
                    action: update_ticket
                    provider: awal
                    ticket:
                      message: {{text: "{{{{ body.data.note }}}}", direction: outgoing}}
                      correlate: "deal:{{{{ body.data.id }}}}"
                  - name: wrong-secret
                    source: crm
                    when: {{body.meta.action: probe}}
                    action: close_ticket
                    provider: awal-misconfigured
                    ticket:
                      contact: {{phone: "{{{{ body.data.contact_phone | e164('SA') }}}}"}}
            """,
            "templates/awal/opened.txt.j2": """
                {% set name = body.data.contact_name | default('there') -%}
                Hello {{ name }}, we opened a case for "{{ body.data.title }}".
            """,
        },
    )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAwalChat]:
    with FakeAwalChat(hmac_secret=SECRET, phone_number_id="123456789012345").running() as api:
        yield api


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeAwalChat) -> Iterator[Any]:
    root = tree(tmp_path_factory.mktemp("awal"), fake.url)
    db = f"sqlite:///{root / 'bridge.db'}"
    log = root / "server.log"
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=db,
        env={"AWAL_HMAC_SECRET": SECRET},
        log=log,
    ) as url:
        yield url, db, log, root


def deal(action: str, deal_id: int, phone: str, previous: Any = None, **data: Any) -> Any:
    meta = {"action": action, "entity": "deal", "id": f"evt-{next(EVENT_IDS)}", "version": "2.0"}
    body = {"id": deal_id, "title": f"Deal {deal_id}", "contact_phone": phone, **data}
    return {"meta": meta, "data": body, "previous": previous}


def post(url: str, payload: Any) -> str:
    response = httpx.post(f"{url}/hooks/crm", json=payload)
    assert response.status_code == 202, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def test_a_deal_opens_updates_closes_and_reopens_its_ticket(server, fake, capsys):
    url, db, log, _ = server
    phone = "966501234567"
    start, rejected = len(fake.requests), len(fake.rejected)

    created = settled_event(
        capsys, db, post(url, deal("create", 501, "0501234567", contact_name="Ahmed Mohammed"))
    )
    (delivery,) = created["deliveries"]
    assert (created["status"], delivery["status"]) == ("done", "done")
    conversation = fake.by_phone(phone)
    assert conversation is not None
    assert conversation.name == "Ahmed Mohammed"  # the name went with the first message
    assert [m["content"] for m in conversation.messages] == [
        'Hello Ahmed Mohammed, we opened a case for "Deal 501".'
    ]
    (first,) = conversation.tickets
    assert first.status == "opened"
    assert delivery["ticket_ref"] == {
        "ticket_id": str(first.id),
        "conversation_id": str(conversation.id),
    }

    note = deal("change", 501, "0501234567", previous={"note": ""}, note="Your quote is ready.")
    updated = settled_event(capsys, db, post(url, note))
    assert updated["deliveries"][0]["status"] == "done"
    assert conversation.messages[-1]["content"] == "Your quote is ready."

    won = deal("change", 501, "0501234567", previous={"status": "open"}, status="won")
    closed = settled_event(capsys, db, post(url, won))
    assert closed["deliveries"][0]["status"] == "done"
    assert [(t.id, t.status) for t in conversation.tickets] == [(first.id, "closed")]

    back = deal("change", 501, "0501234567", previous={"status": "won"}, status="open")
    reopened = settled_event(capsys, db, post(url, back))
    (delivery,) = reopened["deliveries"]
    assert delivery["status"] == "done"
    second = conversation.tickets[-1]
    assert [(t.id, t.status) for t in conversation.tickets] == [
        (first.id, "closed"),
        (second.id, "opened"),
    ]
    assert conversation.messages[-1]["content"] == "We reopened your case about Deal 501."
    assert delivery["ticket_ref"] == {
        "ticket_id": str(second.id),
        "conversation_id": str(conversation.id),
    }

    # after the create, every action found the conversation through the correlate map; an
    # action without a phone asked the conversation for it; the fake, which checks every
    # header and signature, refused nothing
    c = conversation.id
    assert [(r.method, r.path) for r in fake.requests[start:]] == [
        ("GET", "/conversations"),  # create: not there yet
        ("POST", "/w/message/text"),  # the first message starts it
        ("GET", "/conversations"),
        ("POST", f"/wechat/chat/events/{c}"),  # openTicket
        ("GET", f"/conversations/{c}"),  # update: the phone, then the message
        ("POST", "/w/message/text"),
        ("POST", f"/wechat/chat/events/{c}"),  # closeTicket
        ("POST", f"/wechat/chat/events/{c}"),  # reopen: openTicket, then the message
        ("GET", f"/conversations/{c}"),
        ("POST", "/w/message/text"),
    ]
    assert [r.json["route"] for r in fake.requests[start:] if "events" in r.path] == [
        "openTicket",
        "closeTicket",
        "openTicket",
    ]
    assert fake.requests[start].query == f"phone_number_id=123456789012345&searchTerm={phone}"
    assert fake.rejected[rejected:] == []
    assert SECRET not in log.read_text()


def test_an_open_ticket_on_an_existing_conversation_counts_as_opened(server, fake, capsys):
    url, db, _, _ = server
    existing = fake.add_conversation("966551234567", "Sara")
    existing.tickets.append(Ticket(id=99, status="opened"))

    detail = settled_event(capsys, db, post(url, deal("create", 777, "+966 55 123 4567")))

    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "done"
    assert delivery["ticket_ref"] == {"conversation_id": str(existing.id)}
    assert [(t.id, t.status) for t in existing.tickets] == [(99, "opened")]
    assert existing.messages[-1]["content"] == 'Hello there, we opened a case for "Deal 777".'
    conflicts = [(r.path, status) for r, status, _ in fake.rejected if status == 409]
    assert (f"/wechat/chat/events/{existing.id}", 409) in conflicts


def test_closing_a_deal_nobody_has_a_conversation_for_is_skipped(server, fake, capsys):
    url, db, _, _ = server
    lost = deal("change", 900, "0509999999", previous={"status": "open"}, status="lost")
    detail = settled_event(capsys, db, post(url, lost))
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "skipped"
    assert delivery["last_error"] == (
        "no ticket found for close_ticket (no Awal Chat conversation with phone +966509999999)"
    )
    assert fake.by_phone("966509999999") is None


def test_a_wrong_secret_pauses_the_provider_without_leaking(server, fake, capsys):
    url, db, log, _ = server
    event_id = post(url, deal("probe", 1, "0501111111"))
    detail = poll(
        lambda: (
            (d := show_event(capsys, db, event_id))["deliveries"]
            and d["deliveries"][0]["attempt_log"]
            and d
        ),
        what="the first attempt",
    )
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "pending"  # paused: no retry budget spent on a bad secret
    assert "is paused" in delivery["reason"]
    assert "ticketbridge resume awal-misconfigured" in delivery["reason"]
    (attempt,) = delivery["attempt_log"]
    assert attempt["outcome"] == "unauthorized"
    assert attempt["status_code"] == 401
    assert delivery["last_error"] == "HTTP 401: Invalid HMAC signature"
    assert "not-the-right-secret" not in log.read_text()
    assert "not-the-right-secret" not in json.dumps(detail)


def test_try_shows_the_exact_signed_requests_with_secrets_masked(
    server, capsys, monkeypatch, tmp_path
):
    _, _, _, root = server
    monkeypatch.setenv("AWAL_HMAC_SECRET", SECRET)
    payload = tmp_path / "deal.json"
    payload.write_text(json.dumps(deal("create", 42, "0501234567", contact_name="Ahmed")))
    code = main(
        [
            "try",
            "crm",
            str(payload),
            "--rules",
            str(root / "rules"),
            "--templates",
            str(root / "templates"),
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert SECRET not in out and "not-the-right-secret" not in out
    (action,) = json.loads(out)["actions"]
    assert action["rule"] == "deal-created"
    base = re.search(r'base_url: "([^"]+)"', (root / "rules/awal.yaml").read_text())
    assert base is not None
    root_url = base.group(1)
    requests = action["requests"]
    search = (
        "GET",
        f"{root_url}/conversations?phone_number_id=123456789012345&searchTerm=966501234567",
        None,
    )
    # a number Awal Chat has never seen: the first message starts its conversation
    assert [(r["method"], r["url"], r["json"]) for r in requests] == [
        search,
        (
            "POST",
            f"{root_url}/w/message/text?phone_number_id=123456789012345",
            {
                "phone": "966501234567",
                "body": 'Hello Ahmed, we opened a case for "Deal 42".',
                "name": "Ahmed",
            },
        ),
        search,
        (
            "POST",
            f"{root_url}/wechat/chat/events/1?phone_number_id=123456789012345",
            {"route": "openTicket"},
        ),
    ]
    assert all(r["answer"]["stubbed"] for r in requests)
    assert [r["answer"]["json"]["data"] for r in (requests[0], requests[2])] == [
        [],
        [{"id": 1, "phone": "966501234567", "name": "Ahmed", "status": "opened"}],
    ]
    for request in requests:
        headers = request["headers"]
        assert headers["x-awal-signature-256"] == "[redacted]"
        assert headers["x-client-id"] == "client-1"
        assert headers["x-domain"] == "acme"
        assert headers["accept"] == "application/json"
        assert headers["x-timestamp"].isdigit()


def test_the_fake_refuses_what_the_real_api_refuses(fake):
    """The fake is only as good as its refusals: unsigned, missing fields, unknown ids."""
    unsigned = httpx.post(f"{fake.url}/w/message/text?phone_number_id=123456789012345", json={})
    assert unsigned.status_code == 400
    assert unsigned.json()["error"] == "missing_headers"
    assert set(unsigned.json()) == {"error", "message", "details", "request_id"}

    builder = httpx.AsyncClient(verify=False)  # only builds requests; plain http anyway

    def signed(method: str, path: str, body: Any = None, secret: str = SECRET) -> httpx.Response:
        signer = AwalSigner(
            client=builder,
            base_url=fake.url,
            client_id="client-1",
            domain="acme",
            hmac_secret=secret,
        )
        request = signer.request(
            method, path, params={"phone_number_id": "123456789012345"}, json_body=body
        )
        with httpx.HTTPTransport() as transport:
            response = transport.handle_request(request)
            response.read()
            return response

    missing = signed("POST", "/w/message/text", {"phone": "966500000001"})
    assert (missing.status_code, missing.json()["details"]) == (400, {"body": "is required"})
    plus = signed("POST", "/w/message/text", {"phone": "+966500000001", "body": "hi"})
    assert (plus.status_code, plus.json()["error"]) == (400, "invalid_phone_number")
    route = signed("POST", "/wechat/chat/events/1", {"route": "deleteTicket"})
    assert (route.status_code, route.json()["details"]) == (400, {"route": "is invalid"})
    unknown = signed("POST", "/wechat/chat/events/987654", {"route": "openTicket"})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "resource_not_found")
    forged = signed("GET", "/conversations", secret="guess")
    assert (forged.status_code, forged.json()["message"]) == (401, "Invalid HMAC signature")
    assert fake.by_phone("966500000001") is None
