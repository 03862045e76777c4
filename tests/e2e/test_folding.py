"""Storm folding, end to end: a burst of webhooks for one order reaches a fake helpdesk as
one create and one note."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, show_event, write_tree


@pytest.fixture
def helpdesk():
    with FakeProvider().running() as fake:
        yield fake


@pytest.fixture
def server(tmp_path, helpdesk):
    root = write_tree(
        tmp_path,
        {
            "rules/main.yaml": f"""
                providers:
                  desk: {{type: http, url: "{helpdesk.url}/tickets"}}
                sources:
                  crm: {{verify: {{type: none}}}}
                rules:
                  - name: deal-changed
                    source: crm
                    action: create_ticket
                    provider: desk
                    fold: {{window: 2s, max: 50}}
                    ticket:
                      subject: "Deal {{{{ body.deal }}}}"
                      metadata: {{stage: "{{{{ body.stage }}}}"}}
                      correlate: "deal-{{{{ body.deal }}}}"
            """,
        },
    )
    db = f"sqlite:///{tmp_path / 'bridge.db'}"
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, log=tmp_path / "server.log"
    ) as url:
        yield url, db


def test_a_burst_for_one_ticket_is_one_create_and_one_note(server, helpdesk, capsys):
    url, db = server
    stages = ["new", "qualified", "qualified", "proposal", "won", "won"]
    events = []
    for stage in stages:
        response = httpx.post(f"{url}/hooks/crm", json={"deal": 7, "stage": stage})
        assert response.status_code == 202
        events.append(response.json()["event_id"])

    note_event = poll(
        lambda: (d := show_event(capsys, db, events[1]))["status"] == "done" and d,
        timeout=15,
        what="the note delivered",
    )

    create, note = helpdesk.requests
    assert create.json["action"] == "create_ticket"
    assert create.json["metadata"] == {"stage": "new"}
    assert note.json["action"] == "add_note"
    text = note.json["message"]["text"]
    assert text.startswith("5 more events for this ticket, folded into one note")
    assert "metadata.stage: 'new' -> 'qualified'" in text
    assert text.count("nothing changed") == 2
    (delivery,) = note_event["deliveries"]
    assert delivery["folded"] == events[1:]
    for event_id in events[2:]:
        (skipped,) = show_event(capsys, db, event_id)["deliveries"]
        assert (skipped["status"], skipped["folded_into"]) == ("skipped", delivery["id"])
    assert len(helpdesk.requests) == 2  # nothing else was sent for the burst
