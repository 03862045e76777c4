"""`replay` when what it makes or retries is dead at once: it says which delivery and why, as
stored and with no secret, and exits 1."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.cli import main
from bridge.delivery.worker import Worker
from bridge.service import load_service
from bridge.store import open_store
from tests.helpers import shop_event, write_tree

DESK_TOKEN = "desk-token-very-secret"

TREE = {
    "rules/main.yaml": """
        providers:
          desk:
            type: http
            url: "http://127.0.0.1:9/tickets"
            headers: {Authorization: "Bearer ${DESK_TOKEN}"}
            retry: {max_attempts: 1}
        sources:
          shop: {verify: {type: none}}
        rules:
          - name: order
            source: shop
            action: create_ticket
            provider: desk
            ticket: {subject: "Order {{ body.id }}"}
            continue: true
          - name: callback
            source: shop
            action: create_ticket
            provider: desk
            ticket:
              subject: "Call about {{ body.id }}"
              message: {text: {template: callback.txt.j2}}
    """,
    "templates/callback.txt.j2": """
        Please call the customer back on
        {{ body.phone | e164 }}
    """,
}

# not a phone number, and a configured secret: what the render error quotes must be masked
PAYLOAD = {"id": "R-1", "phone": DESK_TOKEN}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str, str]:
    """The configuration's options, a SQLite file with one stored event, and its id."""
    monkeypatch.setenv("DESK_TOKEN", DESK_TOKEN)
    root = write_tree(tmp_path, TREE)
    db = f"sqlite:///{tmp_path / 'bridge.db'}"

    async def ingest() -> str:
        store = open_store(db)
        await store.open()
        try:
            event = shop_event(1, PAYLOAD)
            [result] = await store.ingest([event], dedupe_window=60, now=event.received_at)
            return result.event_id
        finally:
            await store.close()

    config = ["--rules", str(root / "rules"), "--templates", str(root / "templates")]
    return config, db, asyncio.run(ingest())


def deliveries(capsys: pytest.CaptureFixture[str], db: str, event_id: str) -> dict[str, Any]:
    """The event's deliveries by rule (the newest of each), as `show --json` gives them."""
    assert main(["show", event_id, "--db", db, "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    return {d["rule"]: d for d in detail["deliveries"]}


def test_replay_names_the_new_delivery_that_is_dead_and_why_and_exits_1(setup, capsys):
    config, db, event_id = setup
    assert main(["replay", event_id, "--db", db, *config]) == 1
    out, err = capsys.readouterr()
    dead = deliveries(capsys, db, event_id)["callback"]
    assert dead["status"] == "dead"
    assert "new deliveries: " in out and dead["id"] in out  # it was routed all the same
    assert err.startswith("ticketbridge: 1 new deliveries are dead, their tickets did not render")
    # which one, and why: the message as stored, with the template, line and value
    assert f"  {dead['id']} (event {event_id}, rule callback, provider desk): " in err
    assert err.rstrip("\n").endswith(dead["last_error"])
    assert "callback.txt.j2, line 2: e164: '[redacted]' is not a phone number" in err
    assert DESK_TOKEN not in out + err + json.dumps(dead)

    # once the template renders, a replay supersedes the dead one and says nothing more
    template = Path(config[3]) / "callback.txt.j2"
    template.write_text("Please call the customer back\n")
    assert main(["replay", event_id, "--db", db, *config]) == 0
    assert capsys.readouterr().err == ""
    assert deliveries(capsys, db, event_id)["callback"]["status"] == "pending"


def test_retrying_dead_deliveries_names_those_it_cannot_queue_and_exits_1(setup, capsys):
    config, db, event_id = setup

    async def work() -> None:  # a worker: the order dies at 127.0.0.1:9, the callback at once
        async with httpx.AsyncClient() as client:
            rules, templates = Path(config[1]), Path(config[3])
            service = load_service(rules, templates, os.environ, client)
            store = open_store(db)
            await store.open()
            try:
                await Worker(service=service, store=store).run_until_idle()
            finally:
                await store.close()

    asyncio.run(work())
    before = deliveries(capsys, db, event_id)
    assert [before[rule]["status"] for rule in ("order", "callback")] == ["dead", "dead"]

    assert main(["replay", "--status", "dead", "--db", db]) == 1
    out, err = capsys.readouterr()
    assert out == "1 dead deliveries queued again\n"
    callback = before["callback"]
    assert err == (
        "ticketbridge: 1 dead deliveries never rendered, replay their events instead:\n"
        f"  {callback['id']} (event {event_id}, rule callback, provider desk): "
        f"{callback['last_error']}\n"
    )
    assert "[redacted]" in err and DESK_TOKEN not in err
    after = deliveries(capsys, db, event_id)
    assert after["order"]["status"] == "pending" and after["callback"]["status"] == "dead"
