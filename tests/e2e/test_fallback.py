"""A provider's fallback, end to end: a real server and worker, two fake helpdesks."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, show_event, write_tree


@pytest.fixture
def desks():
    with FakeProvider().running() as primary, FakeProvider().running() as spare:
        yield primary, spare


def _provider(url: str, extra: str = "") -> str:
    return (
        f'{{type: http, url: "{url}/tickets", body: {{template: desk.json.j2}},'
        f" retry: {{base: 50ms, cap: 100ms, max_attempts: 3}}{extra}}}"
    )


@pytest.fixture
def server(tmp_path, desks):
    primary, spare = desks
    root = write_tree(
        tmp_path,
        {
            "rules/main.yaml": f"""
                providers:
                  primary: {_provider(primary.url, ", fallback: spare, fallback_after: 1s")}
                  spare: {_provider(spare.url)}
                sources:
                  shop: {{verify: {{type: none}}}}
                rules:
                  - name: order
                    source: shop
                    when: {{body.kind: order}}
                    action: create_ticket
                    provider: primary
                    ticket:
                      subject: "Order {{{{ body.order }}}}"
                      message: {{text: "New order {{{{ body.order }}}}"}}
                      correlate: "order-{{{{ body.order }}}}"
                  - name: shipped
                    source: shop
                    when: {{body.kind: shipped}}
                    action: add_note
                    provider: primary
                    ticket:
                      message: {{text: "Shipped {{{{ body.order }}}}"}}
                      correlate: "order-{{{{ body.order }}}}"
            """,
            "templates/desk.json.j2": """
                {"action": {{ ticket.action | tojson }},
                 "text": {{ (ticket.message.text if ticket.message else "") | tojson }}}
            """,
        },
    )
    db = f"sqlite:///{tmp_path / 'bridge.db'}"
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, log=tmp_path / "server.log"
    ) as url:
        yield url, db


def _send(url: str, **body: str) -> str:
    response = httpx.post(f"{url}/hooks/shop", json=body)
    assert response.status_code == 202
    return str(response.json()["event_id"])


def _done(capsys, db, event_id):
    return poll(
        lambda: (d := show_event(capsys, db, event_id))["status"] == "done" and d,
        timeout=15,
        what=f"{event_id} done",
    )


def test_a_refused_delivery_goes_to_the_fallback_and_later_updates_follow(server, desks, capsys):
    url, db = server
    primary, spare = desks
    primary.answer_next(422, {"message": "requester is invalid"})

    detail = _done(capsys, db, _send(url, kind="order", order="A-1"))

    cancelled, moved = detail["deliveries"]
    assert (cancelled["provider"], cancelled["status"]) == ("primary", "cancelled")
    assert moved["id"] in cancelled["last_error"]
    assert (moved["provider"], moved["status"], moved["moved_from"]) == (
        "spare",
        "done",
        cancelled["id"],
    )
    (created,) = spare.requests
    assert created.json["action"] == "create_ticket"
    assert created.json["text"] == (
        "New order A-1\n\n[ticketbridge] primary did not take it: HTTP 422: requester is invalid"
    )

    # the correlate map remembers where the ticket went: the note follows it, without a note
    note = _done(capsys, db, _send(url, kind="shipped", order="A-1"))
    assert [d["provider"] for d in note["deliveries"]] == ["spare"]
    assert spare.requests[-1].json == {"action": "add_note", "text": "Shipped A-1"}
    assert len(primary.requests) == 1
    # another order still goes to the primary
    _done(capsys, db, _send(url, kind="order", order="B-2"))
    assert len(primary.requests) == 2 and len(spare.requests) == 2


def test_a_paused_providers_queue_goes_to_the_fallback_after_fallback_after(server, desks, capsys):
    url, db = server
    primary, spare = desks
    primary.answer_next(401, {"message": "bad key"})

    detail = _done(capsys, db, _send(url, kind="order", order="C-3"))

    assert [d["provider"] for d in detail["deliveries"]] == ["primary", "spare"]
    (created,) = spare.requests
    assert "[ticketbridge] primary has been paused since" in created.json["text"]
    assert "HTTP 401" in created.json["text"]
    assert len(primary.requests) == 1  # paused: nothing more was sent there
