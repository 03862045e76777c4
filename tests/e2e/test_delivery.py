"""Deliveries through a real server to a fake HTTP helpdesk, retries, and render errors."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, show_event, write_tree


@pytest.fixture
def helpdesk():
    with FakeProvider().running() as fake:
        yield fake


def config(tmp_path, helpdesk_url):
    return write_tree(
        tmp_path,
        {
            "rules/main.yaml": f"""
                providers:
                  helpdesk:
                    type: http
                    url: "{helpdesk_url}/api/tickets/{{{{ ticket.correlate }}}}"
                    headers: {{Authorization: "Bearer ${{HELPDESK_TOKEN}}"}}
                    body: {{template: helpdesk.json.j2}}
                    retry: {{base: 50ms, cap: 100ms, max_attempts: 5}}
                  audit: {{type: log}}
                sources:
                  shop:
                    verify: {{type: none}}
                    dedupe_key: "{{{{ body.order }}}}-{{{{ body.kind }}}}"
                rules:
                  - name: order-ticket
                    source: shop
                    when: {{body.kind: order}}
                    action: create_ticket
                    provider: helpdesk
                    ticket:
                      contact: {{email: "{{{{ body.email }}}}"}}
                      subject: "Order {{{{ body.order }}}}"
                      correlate: "order-{{{{ body.order }}}}"
                  - name: broken-template
                    source: shop
                    when: {{body.kind: broken}}
                    action: create_ticket
                    provider: audit
                    ticket:
                      subject: "ok"
                      message: {{text: {{template: broken.txt.j2}}}}
            """,
            "templates/helpdesk.json.j2": """
                {"subject": {{ ticket.subject | tojson }},
                 "requester": {{ ticket.contact.email | tojson }},
                 "order": {{ body.order | tojson }}}
            """,
            "templates/broken.txt.j2": """
                Hello,
                {{ body.customer.name }}
            """,
        },
    )


@pytest.fixture
def server(tmp_path, helpdesk):
    root = config(tmp_path, helpdesk.url)
    db = f"sqlite:///{tmp_path / 'bridge.db'}"
    env = {"HELPDESK_TOKEN": "hd-secret-token-123"}
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=db,
        env=env,
        log=tmp_path / "server.log",
    ) as url:
        yield url, db, tmp_path / "server.log"


def test_http_delivery_sends_the_rendered_request(server, helpdesk, capsys):
    url, db, log = server
    response = httpx.post(
        f"{url}/hooks/shop", json={"kind": "order", "order": "A-17", "email": "bo@example.com"}
    )
    assert response.status_code == 202
    poll(lambda: helpdesk.requests, what="the helpdesk call")
    (call,) = helpdesk.requests
    assert call.method == "POST"
    assert call.path == "/api/tickets/order-A-17"
    assert call.headers["authorization"] == "Bearer hd-secret-token-123"
    assert call.json == {"subject": "Order A-17", "requester": "bo@example.com", "order": "A-17"}
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d, what="done"
    )
    delivery = detail["deliveries"][0]
    assert call.headers["idempotency-key"] == delivery["id"]
    assert delivery["ticket_ref"] == {"ticket_id": "T-1"}
    assert "hd-secret-token-123" not in log.read_text()


def test_retryable_failures_are_retried_then_delivered_once(server, helpdesk, capsys):
    url, db, _ = server
    helpdesk.answer_next(503, {"message": "maintenance"})
    helpdesk.answer_next(429, {"message": "slow down"}, {"Retry-After": "0"})
    response = httpx.post(
        f"{url}/hooks/shop", json={"kind": "order", "order": "B-2", "email": "x@example.com"}
    )
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d,
        timeout=15,
        what="done",
    )
    (delivery,) = detail["deliveries"]
    assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 429, 201]
    assert delivery["attempt_log"][0]["error"] == "HTTP 503: maintenance"
    assert delivery["attempts"] == 3
    assert len(helpdesk.requests) == 3
    # the same idempotency key on every attempt of the delivery
    assert len({r.headers["idempotency-key"] for r in helpdesk.requests}) == 1


def test_permanent_failure_is_dead_with_the_providers_message(server, helpdesk, capsys):
    url, db, _ = server
    helpdesk.answer_next(422, {"message": "requester is invalid"})
    response = httpx.post(
        f"{url}/hooks/shop", json={"kind": "order", "order": "C-3", "email": "nope"}
    )
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "failed" and d, what="failed"
    )
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "dead"
    assert delivery["last_error"] == "HTTP 422: requester is invalid"
    assert len(helpdesk.requests) == 1


def test_template_error_is_a_dead_delivery_naming_template_and_line(server, helpdesk, capsys):
    url, db, _ = server
    response = httpx.post(f"{url}/hooks/shop", json={"kind": "broken", "order": "D-4"})
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "failed" and d, what="failed"
    )
    (delivery,) = detail["deliveries"]
    assert delivery["status"] == "dead"
    assert delivery["action"] is None
    assert "broken.txt.j2" in delivery["last_error"]
    assert "line 2" in delivery["last_error"]
    assert "customer" in delivery["last_error"]
    assert helpdesk.requests == []
