"""The vambe provider end to end: real server, real webhooks, a fake Vambe with Vambe's rules.

One server serves two configurations side by side: a test one (source `shop`, verify none)
and the repository's own example (rules/vambe.yaml: Stripe disputes to Vambe), pointed at
the fake through its environment variables.
"""

from __future__ import annotations

import hmac
import json
import shutil
import time

import httpx
import pytest

from bridge.cli import main
from tests.fakes.vambe import FakeVambe
from tests.helpers import EXAMPLE, running_server, settled_event, write_tree

KEY = "vk_e2e_Key_do_not_leak_77"
STAGE = "650e8400-e29b-41d4-a716-446655440001"
OTHER_STAGE = "650e8400-e29b-41d4-a716-446655440002"
STRIPE_SECRET = "whsec_vambe_e2e_secret"

CONFIG = f"""
providers:
  vambe:
    type: vambe
    base_url: "${{VAMBE_TEST_URL}}"
    api_key: "${{VAMBE_API_KEY}}"
    phone_id: qr-main
    stage_id: {STAGE}
    message_field: detalle
    retry: {{base: 50ms, cap: 100ms, max_attempts: 4}}
  vambe-official:
    type: vambe
    base_url: "${{VAMBE_TEST_URL}}"
    api_key: "${{VAMBE_API_KEY}}"
    channel: whatsapp
    phone_id: 1234567890
sources:
  shop:
    verify: {{type: none}}
    dedupe_key: body.id
rules:
  - name: open
    source: shop
    when: {{body.kind: open}}
    action: create_ticket
    provider: vambe
    ticket:
      contact:
        name: "{{{{ body.name }}}}"
        email: "{{{{ body.email }}}}"
        phone: "{{{{ body.phone | e164('CL') }}}}"
        identifier: "{{{{ body.customer }}}}"
      subject: "Order {{{{ body.order }}}}"
      message: {{text: {{template: order.txt.j2}}}}
      metadata: {{order: "{{{{ body.order }}}}", total: "{{{{ body.total }}}}"}}
      contact_metadata: {{plan: "{{{{ body.plan }}}}"}}
      correlate: "order-{{{{ body.order }}}}"
  - name: update
    source: shop
    when: {{body.kind: update}}
    action: update_ticket
    provider: vambe
    ticket:
      metadata: {{status: "{{{{ body.status }}}}"}}
      contact_metadata: {{plan: "{{{{ body.plan | default('', true) }}}}"}}
      correlate: "order-{{{{ body.order }}}}"
  - name: close
    source: shop
    when: {{body.kind: close}}
    action: close_ticket
    provider: vambe
    ticket:
      metadata: {{resolution: "{{{{ body.resolution }}}}"}}
      correlate: "order-{{{{ body.order }}}}"
  - name: reopen
    source: shop
    when: {{body.kind: reopen}}
    action: reopen_ticket
    provider: vambe
    ticket:
      message: {{text: "We reopened your order {{{{ body.order }}}}", direction: outgoing}}
      options: {{stage_id: {OTHER_STAGE}}}
      correlate: "order-{{{{ body.order }}}}"
  - name: greet
    source: shop
    when: {{body.kind: greet}}
    action: create_ticket
    provider: vambe-official
    ticket:
      contact: {{phone: "{{{{ body.phone }}}}"}}
      options: {{stage_id: {OTHER_STAGE}, template_id: tpl_welcome}}
      correlate: "greet-{{{{ body.phone }}}}"
"""


@pytest.fixture(scope="module")
def vambe():
    with FakeVambe(api_key=KEY).running() as fake:
        yield fake


@pytest.fixture(scope="module")
def tree(tmp_path_factory, vambe):
    root = write_tree(
        tmp_path_factory.mktemp("vambe"),
        {
            "rules/test.yaml": CONFIG,
            "templates/order.txt.j2": "Order {{ body.order }}: {{ body.note }}\n",
        },
    )
    # the repository's example, as shipped
    shutil.copy(EXAMPLE / "rules" / "vambe.yaml", root / "rules" / "vambe.yaml")
    shutil.copytree(
        EXAMPLE / "rules" / "samples" / "stripe-vambe", root / "rules/samples/stripe-vambe"
    )
    shutil.copytree(EXAMPLE / "templates" / "vambe", root / "templates" / "vambe")
    return root


ENV = {
    "VAMBE_API_KEY": KEY,
    "VAMBE_PHONE_ID": "qr-main",
    "VAMBE_STAGE_ID": OTHER_STAGE,
    "STRIPE_VAMBE_WEBHOOK_SECRET": STRIPE_SECRET,
}


@pytest.fixture(scope="module")
def server(tree, vambe):
    env = {**ENV, "VAMBE_TEST_URL": vambe.url, "VAMBE_BASE_URL": vambe.url}
    db = f"sqlite:///{tree / 'bridge.db'}"
    log = tree / "server.log"
    with running_server(
        rules=tree / "rules", templates=tree / "templates", db=db, env=env, log=log
    ) as url:
        yield url, db, log


def post(url, **body):
    response = httpx.post(f"{url}/hooks/shop", json=body)
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


def test_create_update_close_reopen(server, vambe, capsys):
    url, db, log = server
    opened = post(
        url,
        id="e1",
        kind="open",
        order="A-1",
        name="Ana Pérez",
        email="ana@example.com",
        phone="9 8765 4321",
        customer="cus_1",
        plan="pro",
        total=42,
        note="late",
    )
    detail = settled_event(capsys, db, opened)
    assert detail["status"] == "done"
    (delivery,) = detail["deliveries"]
    contact = vambe.by_phone("+56987654321")
    assert contact is not None
    assert delivery["ticket_ref"] == {"contact_id": contact.id}
    assert (contact.name, contact.email, contact.metadata) == (
        "Ana Pérez",
        "ana@example.com",
        {"plan": "pro"},
    )
    (ticket,) = contact.tickets
    assert ticket.open and ticket.stage_id == STAGE
    assert ticket.metadata == {
        "order": "A-1",
        "total": "42",
        "subject": "Order A-1",
        "detalle": "Order A-1: late",
    }
    assert ticket.integration_data == {"external_id": "cus_1"}
    assert ticket.message is None  # an incoming message is metadata, nothing is sent

    updated = settled_event(
        capsys, db, post(url, id="e2", kind="update", order="A-1", status="paid")
    )
    assert updated["deliveries"][0]["status"] == "done"
    assert ticket.metadata["status"] == "paid" and ticket.metadata["order"] == "A-1"
    update_call = vambe.requests[-1]
    assert update_call.path == "/api/public/ticket/metadata"
    assert update_call.json == {"ai_contact_id": contact.id, "metadata": {"status": "paid"}}

    closed = settled_event(
        capsys, db, post(url, id="e3", kind="close", order="A-1", resolution="ok")
    )
    assert closed["deliveries"][0]["status"] == "done"
    assert not ticket.open and ticket.metadata["resolution"] == "ok"
    assert vambe.requests[-1].path == f"/api/public/ticket/close/contact/{contact.id}"

    # closing again: Vambe has no active ticket, so on_missing (skip) decides
    again = settled_event(capsys, db, post(url, id="e4", kind="close", order="A-1", resolution="x"))
    assert again["status"] == "done"
    assert again["deliveries"][0]["status"] == "skipped"
    assert "Active ticket not found for contact" in again["deliveries"][0]["last_error"]

    reopened = settled_event(capsys, db, post(url, id="e5", kind="reopen", order="A-1"))
    assert reopened["deliveries"][0]["status"] == "done"
    assert len(contact.tickets) == 2
    new = contact.tickets[-1]
    assert new.open and new.stage_id == OTHER_STAGE
    assert new.message == {"content": "We reopened your order A-1", "ai_generated": False}
    # the phone came from Vambe's contact info: the reopen event had none
    assert [r.path for r in vambe.requests[-2:]] == [
        f"/api/public/contact/{contact.id}/info",
        "/api/public/ticket/open/web-whatsapp/qr-main",
    ]

    # an update now lands on the new ticket, with the contact's metadata too
    settled_event(
        capsys, db, post(url, id="e6", kind="update", order="A-1", status="new", plan="max")
    )
    assert new.metadata == {"status": "new"} and ticket.metadata["status"] == "paid"
    assert contact.metadata == {"plan": "max"}
    assert KEY not in log.read_text()


def test_official_channel_with_a_template(server, vambe, capsys):
    url, db, _ = server
    detail = settled_event(capsys, db, post(url, id="g1", kind="greet", phone="+56922223333"))
    assert detail["deliveries"][0]["status"] == "done"
    call = next(r for r in reversed(vambe.requests) if "/ticket/open/" in r.path)
    assert call.path == "/api/public/ticket/open/whatsapp/1234567890"
    assert call.headers["x-api-key"] == KEY
    assert call.json == {
        "to_phone_number": "+56922223333",
        "stage_id": OTHER_STAGE,
        "message": {"templateId": "tpl_welcome", "ai_generated": False},
    }


def test_retryable_then_done_and_permanent_with_vambes_message(server, vambe, capsys):
    url, db, _ = server
    vambe.fail_next(503, {"statusCode": 503, "message": "Service Unavailable"})
    vambe.fail_next(429, {"statusCode": 429, "message": "ThrottlerException"}, {"Retry-After": "0"})
    retried = settled_event(
        capsys,
        db,
        post(
            url,
            id="r1",
            kind="open",
            order="R-1",
            name="Bo",
            email="bo@example.com",
            phone="+56933334444",
            customer="c",
            plan="p",
            total=1,
            note="n",
        ),
    )
    (delivery,) = retried["deliveries"]
    assert delivery["status"] == "done"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 429, 200]
    assert delivery["attempt_log"][0]["error"] == "HTTP 503: Service Unavailable"

    dead = settled_event(
        capsys,
        db,
        post(
            url,
            id="r2",
            kind="open",
            order="R-2",
            name="Cy",
            email="not-an-email",
            phone="+56944445555",
            customer="c",
            plan="p",
            total=1,
            note="n",
        ),
    )
    (delivery,) = dead["deliveries"]
    assert dead["status"] == "failed" and delivery["status"] == "dead"
    assert delivery["last_error"] == "HTTP 400: email must be an email"
    assert vambe.by_phone("+56944445555") is None


def stripe_post(url: str, sample: str) -> str:
    body = (EXAMPLE / "rules" / "samples" / "stripe-vambe" / sample).read_bytes()
    t = str(int(time.time()))
    digest = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + body, "sha256").hexdigest()
    response = httpx.post(
        f"{url}/hooks/stripe-vambe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={digest}"},
    )
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


def test_the_example_opens_and_closes_a_vambe_ticket_for_a_stripe_dispute(server, vambe, capsys):
    url, db, _ = server
    opened = settled_event(capsys, db, stripe_post(url, "dispute-created.json"))
    assert opened["matched_rules"] == ["stripe-vambe-dispute-opened"]
    assert opened["deliveries"][0]["status"] == "done"
    contact = vambe.by_phone("+56961234567")
    assert contact is not None
    ticket = contact.tickets[-1]
    assert ticket.stage_id == OTHER_STAGE  # VAMBE_STAGE_ID
    assert ticket.metadata["charge"] == "ch_3QfxVambe000000001"
    assert ticket.metadata["amount"] == "CLP4,200"
    assert ticket.metadata["message"].startswith("Stripe dispute dp_1QfxVambe000000001")
    assert ticket.integration_data == {"external_id": "ch_3QfxVambe000000001"}

    closed = settled_event(capsys, db, stripe_post(url, "dispute-closed.json"))
    assert closed["deliveries"][0]["status"] == "done"
    assert not ticket.open and ticket.metadata["dispute_status"] == "won"


def test_try_shows_the_exact_request_with_the_key_masked(tree, vambe, capsys, monkeypatch):
    for name, value in {**ENV, "VAMBE_TEST_URL": vambe.url}.items():
        monkeypatch.setenv(name, value)
    payload = tree / "open.json"
    payload.write_text(
        json.dumps(
            {
                "id": "t1",
                "kind": "open",
                "order": "T-1",
                "name": "Di",
                "email": "di@example.com",
                "phone": "+56955556666",
                "customer": "cus_9",
                "plan": "pro",
                "total": 5,
                "note": "hi",
            }
        )
    )
    before = len(vambe.requests)
    args = ["--rules", str(tree / "rules"), "--templates", str(tree / "templates"), "--json"]
    assert main(["try", "shop", str(payload), *args]) == 0
    out = capsys.readouterr().out
    assert KEY not in out
    (action,) = json.loads(out)["actions"]
    (request,) = action["requests"]
    assert request["method"] == "POST"
    assert request["url"] == f"{vambe.url}/api/public/ticket/open/web-whatsapp/qr-main"
    assert request["headers"]["x-api-key"] == "[redacted]"
    assert request["json"] == {
        "to_phone_number": "+56955556666",
        "stage_id": STAGE,
        "contact_name": "Di",
        "email": "di@example.com",
        "contact_metadata": {"plan": "pro"},
        "ticket_metadata": {
            "order": "T-1",
            "total": "5",
            "subject": "Order T-1",
            "detalle": "Order T-1: hi",
        },
        "integration_data": {"external_id": "cus_9"},
    }
    assert action["outcome"]["kind"] == "success"
    assert len(vambe.requests) == before  # no network call without --send


def test_check_renders_the_example_samples(tree, vambe, capsys, monkeypatch):
    for name, value in {**ENV, "VAMBE_TEST_URL": vambe.url}.items():
        monkeypatch.setenv(name, value)
    assert (
        main(["check", "--rules", str(tree / "rules"), "--templates", str(tree / "templates")]) == 0
    )
    out = capsys.readouterr().out
    assert "stripe-vambe/dispute-created.json: stripe-vambe-dispute-opened" in out
    assert "stripe-vambe/dispute-closed.json: stripe-vambe-dispute-closed" in out
