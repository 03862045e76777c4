"""Cloud Chat and Chatwoot end to end: real webhooks into a real server whose cloudchat and
chatwoot providers point at fake Chatwoot APIs; and `ticketbridge try` on the shipped example."""

from __future__ import annotations

import json
import shutil
from typing import Any

import httpx
import pytest

from bridge.cli import main
from tests.fakes.chatwoot import FakeChatwoot
from tests.helpers import EXAMPLE, running_server, settled_event, write_tree

CC_TOKEN = "cc-secret-token-456"
CW_TOKEN = "cw-secret-token-789"

RULES = """
providers:
  cc:
    type: cloudchat
    base_url: "{cc}"
    account_id: 1
    inbox_id: "12"
    api_access_token: "${{CC_TOKEN}}"
    retry: {{base: 50ms, cap: 100ms, max_attempts: 5}}
  cw:
    type: chatwoot
    base_url: "{cw}"
    account_id: "1"
    inbox_id: 12
    api_access_token: "${{CW_TOKEN}}"
    custom_attributes_merge: server
    retry: {{base: 50ms, cap: 100ms, max_attempts: 5}}
sources:
  desk:
    verify: {{type: none}}
rules:
  - name: cc-open
    source: desk
    when: {{body.kind: open}}
    action: create_ticket
    provider: cc
    ticket:
      contact: {{name: "{{{{ body.name }}}}", email: "{{{{ body.email }}}}"}}
      subject: "Order {{{{ body.order }}}}"
      message: "{{{{ body.text }}}}"
      metadata: {{order: "{{{{ body.order }}}}"}}
      tags: [web]
      correlate: "order-{{{{ body.order }}}}"
  - name: cc-update
    source: desk
    when: {{body.kind: update}}
    action: update_ticket
    provider: cc
    ticket:
      metadata: {{stage: "{{{{ body.stage }}}}"}}
      tags: [vip]
      message: {{text: "{{{{ body.text }}}}", direction: outgoing}}
      correlate: "order-{{{{ body.order }}}}"
  - name: cc-note
    source: desk
    when: {{body.kind: note}}
    action: add_note
    provider: cc
    ticket:
      message: "{{{{ body.text }}}}"
      correlate: "order-{{{{ body.order }}}}"
  - name: cc-close
    source: desk
    when: {{body.kind: close}}
    action: close_ticket
    provider: cc
    ticket:
      message: {{text: "{{{{ body.text }}}}", direction: note}}
      correlate: "order-{{{{ body.order }}}}"
  - name: cc-reopen
    source: desk
    when: {{body.kind: reopen}}
    action: reopen_ticket
    provider: cc
    ticket:
      correlate: "order-{{{{ body.order }}}}"
  - name: cw-open
    source: desk
    when: {{body.kind: cw-open}}
    action: create_ticket
    provider: cw
    ticket:
      contact:
        name: "{{{{ body.name }}}}"
        email: "{{{{ body.email }}}}"
        phone: "{{{{ body.phone }}}}"
      contact_metadata: {{plan: "{{{{ body.plan }}}}"}}
      subject: "Order {{{{ body.order }}}}"
      message: "{{{{ body.text }}}}"
      metadata: {{order: "{{{{ body.order }}}}"}}
      correlate: "cw-{{{{ body.order }}}}"
  - name: cw-update
    source: desk
    when: {{body.kind: cw-update}}
    action: update_ticket
    provider: cw
    ticket:
      metadata: {{stage: "{{{{ body.stage }}}}"}}
      correlate: "cw-{{{{ body.order }}}}"
"""


@pytest.fixture(scope="module")
def fakes():
    with (
        FakeChatwoot(flavour="cloudchat", token=CC_TOKEN).running() as cc,
        FakeChatwoot(flavour="chatwoot", token=CW_TOKEN, supports_merge=True).running() as cw,
    ):
        yield cc, cw


@pytest.fixture(scope="module")
def server(tmp_path_factory, fakes):
    cc, cw = fakes
    root = write_tree(
        tmp_path_factory.mktemp("chatwoot"),
        {"rules/main.yaml": RULES.format(cc=cc.url, cw=cw.url)},
    )
    (root / "templates").mkdir()
    db = f"sqlite:///{root / 'bridge.db'}"
    log = root / "server.log"
    env = {"CC_TOKEN": CC_TOKEN, "CW_TOKEN": CW_TOKEN}
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, env=env, log=log
    ) as url:
        yield url, db, log


def send(server, capsys, payload: dict[str, Any], expect: str = "done") -> dict[str, Any]:
    """Post one event, wait until it is done, check its delivery ended `expect`; its
    `show --json` detail."""
    url, db, _ = server
    response = httpx.post(f"{url}/hooks/desk", json=payload)
    assert response.status_code == 202
    event_id = response.json()["event_id"]

    detail = settled_event(capsys, db, event_id)
    assert detail["status"] == "done", detail["deliveries"]
    assert [d["status"] for d in detail["deliveries"]] == [expect]
    return detail


def made_for(fake: FakeChatwoot, correlate: str) -> list[dict[str, Any]]:
    """The fake's conversations the bridge created for a correlate key."""
    return [
        c
        for c in fake.conversations.values()
        if c["additional_attributes"].get("ticketbridge_correlate") == correlate
    ]


def test_cloudchat_create_update_note_close_reopen(server, fakes, capsys):
    cc, _ = fakes
    order = {"order": "A-1"}
    detail = send(
        server,
        capsys,
        {
            "kind": "open",
            "name": "Ana Souza",
            "email": "ana@example.com",
            "text": "Where is A-1?",
            **order,
        },
    )
    (conversation,) = made_for(cc, "order-A-1")
    contact = cc.contacts[conversation["contact_id"]]
    assert (contact["email"], contact["name"]) == ("ana@example.com", "Ana Souza")
    assert conversation["inbox_id"] == 12 and conversation["status"] == "open"
    assert conversation["custom_attributes"] == {"order": "A-1", "subject": "Order A-1"}
    assert conversation["labels"] == ["web"]
    assert conversation["messages"][0]["content"] == "Where is A-1?"
    assert conversation["messages"][0]["message_type"] == "incoming"
    (delivery,) = detail["deliveries"]
    assert delivery["ticket_ref"] == {
        "ticket_id": "1",
        "conversation_id": "1",
        "contact_id": str(contact["id"]),
        "url": f"{cc.url}/app/accounts/1/conversations/1",
    }
    create = cc.calls("POST", "conversations")[0].json
    assert create["contact_email"] == "ana@example.com" and create["inbox_id"] == 12

    send(server, capsys, {"kind": "update", "stage": "paid", "text": "Payment received.", **order})
    # the fake replaces custom attributes like older Chatwoot: the adapter merged them itself
    assert conversation["custom_attributes"] == {
        "order": "A-1",
        "subject": "Order A-1",
        "stage": "paid",
    }
    assert conversation["labels"] == ["web", "vip"]
    assert conversation["messages"][-1]["message_type"] == "outgoing"

    send(server, capsys, {"kind": "note", "text": "Checked with the warehouse.", **order})
    assert conversation["messages"][-1]["private"] is True
    assert conversation["messages"][-1]["content"] == "Checked with the warehouse."

    detail = send(server, capsys, {"kind": "close", "text": "Delivered.", **order})
    assert conversation["status"] == "resolved"
    assert conversation["messages"][-1] == {
        **conversation["messages"][-1],
        "private": True,
        "content": "Delivered.",
    }
    assert detail["deliveries"][0]["ticket_ref"]["conversation_id"] == str(conversation["id"])

    send(server, capsys, {"kind": "reopen", **order})
    assert conversation["status"] == "open"
    assert len(made_for(cc, "order-A-1")) == 1  # every action found the one conversation
    assert {r.headers["api_access_token"] for r in cc.requests} == {CC_TOKEN}


def test_chatwoot_creates_the_contact_once_and_merges_on_the_server(server, fakes, capsys):
    _, cw = fakes
    person = {"name": "Bo Diaz", "email": "bo@example.com", "phone": "+56961234567"}
    send(
        server, capsys, {"kind": "cw-open", "order": "B-1", "plan": "gold", "text": "Hi", **person}
    )
    send(
        server,
        capsys,
        {"kind": "cw-open", "order": "B-2", "plan": "vip", "text": "Again", **person},
    )
    (contact,) = cw.contacts.values()
    assert contact["custom_attributes"] == {"plan": "vip"}  # written at create, then merged
    assert len(cw.calls("POST", "contacts")) == 1
    first, second = cw.conversations.values()
    assert first["contact_id"] == second["contact_id"] == contact["id"]
    assert second["custom_attributes"] == {"order": "B-2", "subject": "Order B-2"}
    send(server, capsys, {"kind": "cw-update", "order": "B-1", "stage": "won"})
    assert first["custom_attributes"] == {"order": "B-1", "subject": "Order B-1", "stage": "won"}
    assert cw.calls("POST", r"conversations/1/custom_attributes")[-1].json == {
        "custom_attributes": {"stage": "won"},
        "merge": True,
    }


def test_a_failed_follow_up_is_retried_without_a_second_conversation(server, fakes, capsys):
    cc, _ = fakes
    cc.fail_next("POST", r"conversations/\d+/labels", 503, {"error": "busy"})
    detail = send(
        server,
        capsys,
        {"kind": "open", "name": "Cy", "email": "cy@example.com", "text": "Hello", "order": "C-1"},
    )
    mine = made_for(cc, "order-C-1")
    assert len(mine) == 1 and mine[0]["labels"] == ["web"]
    (delivery,) = detail["deliveries"]
    assert [a["error"] for a in delivery["attempt_log"]] == ["HTTP 503: busy", None]
    assert delivery["ticket_ref"]["conversation_id"] == str(mine[0]["id"])


def test_no_token_reaches_the_server_log(server, fakes, capsys):
    _, _, log = server
    detail = send(server, capsys, {"kind": "note", "text": "x", "order": "none"}, expect="skipped")
    assert detail["deliveries"][0]["last_error"] == (
        "no ticket found for add_note "
        "(none in the correlate map, and no contact identifier, email or phone)"
    )
    text = log.read_text()
    assert '"action": "attempt"' in text or '"action":"attempt"' in text
    assert CC_TOKEN not in text and CW_TOKEN not in text


def test_try_on_the_example_shows_the_requests_with_the_token_masked(tmp_path, capsys, monkeypatch):
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    rules.mkdir()
    shutil.copy(EXAMPLE / "rules" / "cloudchat.yaml", rules / "cloudchat.yaml")
    shutil.copytree(EXAMPLE / "templates" / "cloudchat", templates / "cloudchat")
    sample = EXAMPLE / "rules" / "samples" / "website-form" / "support-request.json"
    monkeypatch.setenv("CLOUDCHAT_TOKEN", "cc-live-token-abcdef")
    monkeypatch.setenv("CLOUDCHAT_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CLOUDCHAT_INBOX_ID", "7")
    code = main(
        [
            "try",
            "website-form",
            str(sample),
            "--rules",
            str(rules),
            "--templates",
            str(templates),
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "cc-live-token-abcdef" not in out
    (action,) = json.loads(out)["actions"]
    requests = action["requests"]
    api = "http://127.0.0.1:9/api/v1/accounts/1"
    # a customer Cloud Chat has never seen: searched by e-mail, then by phone, then created
    # by the conversation, labelled, and given the name the create could not carry
    assert [(r["method"], r["url"]) for r in requests] == [
        ("GET", f"{api}/contacts/search?q=ana.souza%40example.com"),
        ("GET", f"{api}/contacts/search?q=%2B5511912345678"),
        ("POST", f"{api}/conversations"),
        ("POST", f"{api}/conversations/1/labels"),
        ("PUT", f"{api}/contacts/1"),
    ]
    assert {r["headers"]["api_access_token"] for r in requests} == {"[redacted]"}
    assert all(r["answer"]["stubbed"] for r in requests)
    assert [r["answer"]["json"]["payload"] for r in requests[:2]] == [[], []]
    create = requests[2]["json"]
    assert create["inbox_id"] == 7
    assert create["contact_email"] == "ana.souza@example.com"
    assert create["message"]["message_type"] == "incoming"
    assert create["message"]["content"].startswith("Olá, meu pedido 1001 ainda não chegou.")
    assert create["custom_attributes"] == {
        "page": "https://shop.example.com/contato",
        "source": "website-form",
        "subject": "Pedido 1001 não chegou",
    }
    assert create["additional_attributes"]["ticketbridge_delivery"] == action["delivery_id"]
    assert requests[2]["answer"]["json"]["meta"]["sender"]["name"] == ""
    assert requests[3]["json"] == {"labels": ["website-form"]}
    assert requests[4]["json"] == {"name": "Ana Souza"}
