"""Glassix end to end: real webhooks through a real server to a fake Glassix, the shipped
Typeform example included, and `ticketbridge try` showing the exact requests, secrets masked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from typing import Any

import httpx
import pytest

from bridge.cli import main
from tests.fakes.glassix import FakeGlassix
from tests.helpers import EXAMPLE, poll, running_server, show_event, write_tree

TYPEFORM_SECRET = "tf-e2e-secret"
SAMPLE = EXAMPLE / "rules" / "samples" / "typeform" / "form-response.json"


@pytest.fixture(scope="module")
def fake():
    with FakeGlassix().running() as glassix:
        yield glassix


def env_of(fake: FakeGlassix) -> dict[str, str]:
    return {
        "GLASSIX_WORKSPACE": "acme",
        "GLASSIX_API_KEY": fake.api_key,
        "GLASSIX_API_SECRET": fake.api_secret,
        "GLASSIX_USER_NAME": fake.user_name,
        "TYPEFORM_SECRET": TYPEFORM_SECRET,
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory, fake):
    root = tmp_path_factory.mktemp("glassix")
    # the shipped example, pointed at the fake
    example = (EXAMPLE / "rules" / "glassix.yaml").read_text()
    assert example.count("\n    protocol: Mail") == 1
    example = example.replace(
        "\n    protocol: Mail", f'\n    base_url: "{fake.api}"\n    protocol: Mail'
    )
    shutil.copytree(EXAMPLE / "templates" / "glassix", root / "templates" / "glassix")
    return write_tree(
        root,
        {
            "rules/glassix.yaml": example,
            "rules/desk.yaml": f"""
                providers:
                  desk:
                    type: glassix
                    base_url: "{fake.api}"
                    workspace: acme
                    api_key: "${{GLASSIX_API_KEY}}"
                    api_secret: "${{GLASSIX_API_SECRET}}"
                    user_name: "${{GLASSIX_USER_NAME}}"
                    fields: {{order: field2, status: field4}}
                    retry: {{base: 50ms, cap: 100ms, max_attempts: 3}}
                sources:
                  shop: {{verify: {{type: none}}}}
                rules:
                  - name: order-opened
                    source: shop
                    when: {{body.kind: opened}}
                    action: create_ticket
                    provider: desk
                    ticket:
                      contact: {{name: "{{{{ body.name }}}}", phone: "{{{{ body.phone }}}}"}}
                      subject: "Order {{{{ body.order }}}}"
                      message: "{{{{ body.text }}}}"
                      metadata: {{order: "{{{{ body.order }}}}"}}
                      tags: [shop]
                      correlate: "order:{{{{ body.order }}}}"
                  - name: order-changed
                    source: shop
                    when: {{body.kind: changed}}
                    action: update_ticket
                    provider: desk
                    ticket:
                      subject: "Order {{{{ body.order }}}}: {{{{ body.status }}}}"
                      metadata: {{status: "{{{{ body.status }}}}"}}
                      tags: [changed]
                      correlate: "order:{{{{ body.order }}}}"
                  - name: order-reply
                    source: shop
                    when: {{body.kind: reply}}
                    action: update_ticket
                    provider: desk
                    ticket:
                      message: {{text: "{{{{ body.text }}}}", direction: outgoing}}
                      correlate: "order:{{{{ body.order }}}}"
                  - name: order-note
                    source: shop
                    when: {{body.kind: note}}
                    action: add_note
                    provider: desk
                    ticket:
                      message: "{{{{ body.text }}}}"
                      correlate: "order:{{{{ body.order }}}}"
                  - name: order-closed
                    source: shop
                    when: {{body.kind: closed}}
                    action: close_ticket
                    provider: desk
                    ticket:
                      message: {{text: "Closed: {{{{ body.text }}}}", direction: note}}
                      correlate: "order:{{{{ body.order }}}}"
                  - name: order-reopened
                    source: shop
                    when: {{body.kind: reopened}}
                    action: reopen_ticket
                    provider: desk
                    ticket:
                      correlate: "order:{{{{ body.order }}}}"
            """,
        },
    )


@pytest.fixture(scope="module")
def server(tree, fake, tmp_path_factory):
    logs = tmp_path_factory.mktemp("logs")
    db = f"sqlite:///{logs / 'bridge.db'}"
    with running_server(
        rules=tree / "rules",
        templates=tree / "templates",
        db=db,
        env=env_of(fake),
        log=logs / "server.log",
    ) as url:
        yield url, db, logs / "server.log"


def post(server, capsys, payload: dict[str, Any], *, status: str = "done") -> dict[str, Any]:
    url, db, _ = server
    response = httpx.post(f"{url}/hooks/shop", json=payload)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    return poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == status and d,
        timeout=10,
        what=f"event {payload['kind']} to be {status}",
    )


def test_create_update_reply_note_close_and_reopen_one_ticket(server, fake, capsys):
    tokens = len(fake.calls("/token/get"))
    opened = post(
        server,
        capsys,
        {
            "kind": "opened",
            "order": "A-1",
            "name": "Luke Long",
            "phone": "+1 (781) 846-9236",
            "text": "Where is my order?",
        },
    )
    (delivery,) = opened["deliveries"]
    assert delivery["status"] == "done"
    ticket_id = int(delivery["ticket_ref"]["ticket_id"])
    ticket = fake.tickets[ticket_id]
    assert ticket.participants == [
        {
            "type": "Client",
            "protocolType": "WhatsApp",
            "identifier": "17818469236",
            "name": "Luke Long",
        }
    ]
    assert ticket.fields == {"field1": "Order A-1", "field2": "A-1"}
    assert ticket.tags == ["shop"] and ticket.unique_argument == "order:A-1"
    assert ticket.transactions[0]["text"] == "Where is my order?"
    assert ticket.state == "Open"

    changed = post(server, capsys, {"kind": "changed", "order": "A-1", "status": "shipped"})
    assert changed["deliveries"][0]["ticket_ref"] == {"ticket_id": str(ticket_id)}
    assert ticket.fields == {"field1": "Order A-1: shipped", "field2": "A-1", "field4": "shipped"}
    assert ticket.tags == ["shop", "changed"]

    post(server, capsys, {"kind": "reply", "order": "A-1", "text": "It ships today."})
    assert ticket.sent == ["It ships today."]
    post(server, capsys, {"kind": "note", "order": "A-1", "text": "Customer is a VIP"})
    assert ticket.notes == ["Customer is a VIP"]

    closed = post(server, capsys, {"kind": "closed", "order": "A-1", "text": "delivered"})
    assert ticket.state == "Closed" and ticket.notes[-1] == "Closed: delivered"
    assert closed["deliveries"][0]["status"] == "done"
    reopened = post(server, capsys, {"kind": "reopened", "order": "A-1"})
    assert ticket.state == "Open"
    assert reopened["deliveries"][0]["ticket_ref"] == {"ticket_id": str(ticket_id)}
    # one ticket, one token for all six deliveries
    assert [t.id for t in fake.tickets.values() if t.unique_argument == "order:A-1"] == [ticket_id]
    assert len(fake.calls("/token/get")) - tokens == 1


def test_an_update_for_an_unknown_ticket_is_skipped(server, fake, capsys):
    calls = len(fake.calls())
    detail = post(server, capsys, {"kind": "changed", "order": "NOPE", "status": "x"})
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "skipped"
    assert "no ticket found for update_ticket" in delivery["last_error"]
    assert len(fake.calls()) == calls


def test_a_revoked_token_is_renewed_once_and_the_call_repeated(server, fake, capsys):
    post(
        server,
        capsys,
        {"kind": "opened", "order": "B-2", "name": "Ana", "phone": "+56912345678", "text": "hi"},
    )
    fake.revoke_tokens()
    tokens = len(fake.calls("/token/get"))
    detail = post(server, capsys, {"kind": "note", "order": "B-2", "text": "after revoke"})
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "done" and delivery["attempts"] == 1
    assert len(fake.calls("/token/get")) - tokens == 1
    ticket = fake.tickets[int(delivery["ticket_ref"]["ticket_id"])]
    assert ticket.notes == ["after revoke"]
    auths = [c.headers.get("authorization") for c in fake.calls("/tickets/addnote")][-2:]
    assert auths[0] != auths[1]  # refused with the old token, repeated with the new one


def test_a_refused_create_is_dead_with_glassixs_message_and_no_secret(server, fake, capsys):
    _, _, log = server
    fake.fail_next("/tickets/create", 400, {"Message": "The department is inactive."})
    detail = post(
        server,
        capsys,
        {"kind": "opened", "order": "C-3", "name": "Bo", "phone": "+56911111111", "text": "x"},
        status="failed",
    )
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "dead"
    assert delivery["last_error"] == "tickets/create: HTTP 400: The department is inactive."
    everything = json.dumps(detail) + log.read_text()
    for secret in (fake.api_key, fake.api_secret, *fake.tokens):
        assert secret not in everything


def typeform_post(url: str, body: bytes) -> httpx.Response:
    digest = hmac.new(TYPEFORM_SECRET.encode(), body, hashlib.sha256).digest()
    signature = "sha256=" + base64.b64encode(digest).decode()
    return httpx.post(
        f"{url}/hooks/typeform",
        content=body,
        headers={"Content-Type": "application/json", "Typeform-Signature": signature},
    )


def test_the_typeform_example_creates_then_updates_a_mail_ticket(server, fake, capsys):
    url, db, _ = server
    body = SAMPLE.read_bytes()
    response = typeform_post(url, body)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d, what="done"
    )
    assert detail["matched_rules"] == ["typeform-response-to-glassix"]
    ticket = fake.tickets[int(detail["deliveries"][0]["ticket_ref"]["ticket_id"])]
    assert ticket.participants == [
        {
            "type": "Client",
            "protocolType": "Mail",
            "identifier": "joao@example.com",
            "name": "João Müller",
            "subProtocolType": "MailTo",
        }
    ]
    assert ticket.fields == {
        "field1": "Contact us: Billing",
        "field2": "Billing",
        "field3": "pricing-page",
    }
    assert ticket.tags == ["typeform"] and ticket.unique_argument == "typeform:joao@example.com"
    assert "Your name: João Müller" in ticket.transactions[0]["text"]
    assert "Topic: Billing" in ticket.transactions[0]["text"]

    # a second response from the same address updates the open ticket
    again = json.loads(body)
    again["event_id"] = "01HFXTYPEFORMEVT0002"
    again["form_response"]["answers"][2]["choice"]["label"] = "Shipping"
    response = typeform_post(url, json.dumps(again, ensure_ascii=False).encode())
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d, what="done"
    )
    assert detail["deliveries"][0]["ticket_ref"] == {"ticket_id": str(ticket.id)}
    assert (
        ticket.fields["field2"] == "Shipping" and ticket.fields["field1"] == "Contact us: Shipping"
    )
    assert "Topic: Shipping" in ticket.notes[-1]
    assert [t.id for t in fake.tickets.values() if t.unique_argument == ticket.unique_argument] == [
        ticket.id
    ]


def test_try_shows_the_token_and_create_requests_with_secrets_masked(
    tree, fake, capsys, monkeypatch
):
    for name, value in env_of(fake).items():
        monkeypatch.setenv(name, value)
    calls = len(fake.calls())
    args = ["--rules", str(tree / "rules"), "--templates", str(tree / "templates"), "--json"]
    assert main(["try", "typeform", str(SAMPLE), *args]) == 0
    out = capsys.readouterr().out
    for secret in (fake.api_key, fake.api_secret):
        assert secret not in out
    (action,) = json.loads(out)["actions"]
    token, create = action["requests"]
    assert token["method"] == "POST" and token["url"] == f"{fake.api}/token/get"
    assert token["json"] == {
        "apiKey": "[redacted]",
        "apiSecret": "[redacted]",
        "userName": fake.user_name,
    }
    assert create["method"] == "POST" and create["url"] == f"{fake.api}/tickets/create"
    assert create["headers"]["authorization"] == "[redacted]"
    assert create["json"]["participants"][0]["identifier"] == "joao@example.com"
    assert create["json"]["field1"] == "Contact us: Billing"
    assert create["json"]["uniqueArgument"] == "typeform:joao@example.com"
    assert len(fake.calls()) == calls  # a dry run touches no network
