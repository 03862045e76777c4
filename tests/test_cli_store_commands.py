"""The commands that read or steer what is stored (events, show, replay, purge, resume) as a
user runs them: they need the database, not the providers' secrets, and never make one up."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
import respx

from bridge.cli import main
from bridge.config import load_config
from bridge.delivery.worker import Worker
from bridge.exceptions import ConfigError
from bridge.service import load_service
from bridge.store import open_store
from tests.helpers import EXAMPLE, shop_event, write_tree

TREE = {
    "rules/main.yaml": """
        defaults: {dedupe_window: 1d}
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
            ticket:
              subject: "Order {{ body.id }}"
              message: {text: "Where is order {{ body.id }}?"}
    """,
    "templates/.keep": "",
}


def args_for(tree: Path) -> list[str]:
    return ["--rules", str(tree / "rules"), "--templates", str(tree / "templates")]


def ingest_and_work(tree: Path, db: str, payload: dict[str, object]) -> str:
    """Store one event and let a worker (with the secrets set) route and deliver it."""

    async def go() -> str:
        store = open_store(db)
        await store.open()
        try:
            event = shop_event(1, payload)
            [result] = await store.ingest([event], dedupe_window=60, now=event.received_at)
            environ = {**os.environ, "DESK_TOKEN": "desk-token-very-secret"}
            async with httpx.AsyncClient() as client:
                service = load_service(tree / "rules", tree / "templates", environ, client)
                await Worker(service=service, store=store).run_until_idle()
            return result.event_id
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def dead_event(tmp_path, monkeypatch):
    """An event whose delivery died (desk is 127.0.0.1:9, one try), and an environment in
    which the desk's secret is not set, as on an operator's laptop."""
    tree = write_tree(tmp_path, TREE)
    db = f"sqlite:///{tmp_path}/bridge.db"
    event_id = ingest_and_work(tree, db, {"id": "A-1"})
    monkeypatch.delenv("DESK_TOKEN", raising=False)
    return tree, db, event_id


def test_show_prints_the_rendered_ticket_action_of_each_delivery(dead_event, capsys):
    _, db, event_id = dead_event
    assert main(["show", event_id, "--db", db]) == 0
    out = capsys.readouterr().out
    assert "          action:" in out
    assert '"subject": "Order A-1"' in out
    assert '"text": "Where is order A-1?"' in out
    assert '"action": "create_ticket"' in out


def test_replay_of_stored_actions_and_purge_need_no_provider_secret(dead_event, capsys):
    tree, db, event_id = dead_event
    with pytest.raises(ConfigError, match="DESK_TOKEN is not set"):
        load_config(tree / "rules", tree / "templates", os.environ)  # the secret really is unset

    assert main(["replay", "--status", "dead", "--db", db, *args_for(tree)]) == 0
    assert "1 dead deliveries queued again" in capsys.readouterr().out
    assert main(["purge", "--older-than", "30d", "--db", db, *args_for(tree)]) == 0
    assert "purged 0 events" in capsys.readouterr().out
    for command in (["events"], ["show", event_id], ["resume"]):
        assert main([*command, "--db", db]) == 0, command
    # routing an event again renders with the rules, so that one does need them whole
    assert main(["replay", event_id, "--db", db, *args_for(tree)]) == 1
    assert "DESK_TOKEN is not set" in capsys.readouterr().out


def test_purge_reads_the_dedupe_window_without_the_providers(tmp_path, capsys):
    tree = write_tree(tmp_path, {**TREE, "rules/main.yaml": "defaults: {dedupe_window: soon}\n"})
    db = f"sqlite:///{tmp_path}/bridge.db"
    ingest_and_work(write_tree(tmp_path / "other", TREE), db, {"id": "B-1"})
    assert main(["purge", "--older-than", "1d", "--db", db, *args_for(tree)]) == 1
    assert "main.yaml:1: defaults.dedupe_window:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    [
        ["events"],
        ["events", "--json"],
        ["show", "evt_x"],
        ["replay", "--status", "dead"],
        ["replay", "evt_x"],
        ["purge", "--older-than", "1d"],
        ["resume"],
        ["resume", "desk"],
    ],
)
def test_a_read_command_on_a_missing_database_says_so_and_creates_nothing(
    tmp_path, monkeypatch, capsys, command
):
    tree = write_tree(tmp_path, TREE)
    monkeypatch.setenv("DESK_TOKEN", "desk-token-very-secret")
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere" / "bridge.db"
    config = args_for(tree) if command[0] in ("replay", "purge") else []
    assert main([*command, "--db", f"sqlite:///{missing}", *config]) == 1
    err = capsys.readouterr().err
    assert f"no database at {missing}" in err and "BRIDGE_DATABASE_URL" in err
    assert not missing.exists() and not (tmp_path / "bridge.db").exists()
    # the default --db, in a folder with no bridge.db, answers the same and makes none
    monkeypatch.delenv("BRIDGE_DATABASE_URL", raising=False)
    assert main([*command, *config]) == 1
    assert "no database at bridge.db" in capsys.readouterr().err
    assert not (tmp_path / "bridge.db").exists()


def test_the_http_provider_example_works_as_shipped(tmp_path, monkeypatch, capsys):
    rules = shutil.copytree(EXAMPLE / "rules", tmp_path / "rules")
    example = rules / "providers.yaml"
    text = example.read_text()
    start = text.index("  # helpdesk:")
    block = text[start:].splitlines()
    uncommented = [line.replace("  # ", "  ", 1) for line in block if line.startswith("  # ")]
    example.write_text(text[:start] + "\n".join(uncommented) + "\n")
    assert "\n  helpdesk:\n    type: http\n" in example.read_text()
    monkeypatch.setenv("HELPDESK_URL", "http://127.0.0.1:9/api/tickets")
    monkeypatch.setenv("HELPDESK_TOKEN", "helpdesk-token-secret")
    args = ["--rules", str(rules), "--templates", str(EXAMPLE / "templates")]
    assert main(["check", *args]) == 0, capsys.readouterr().out

    # the shipped body template renders the neutral action into valid JSON
    (rules / "rules.yaml").write_text(
        (rules / "rules.yaml").read_text().replace("provider: audit", "provider: helpdesk", 1)
    )
    payload = tmp_path / "form.json"
    payload.write_text(
        json.dumps({"name": "Ana Lima", "email": "ana@example.com", "message": "Hola"})
    )
    with respx.mock(assert_all_called=True) as mock:
        desk = mock.post("http://127.0.0.1:9/api/tickets").respond(201, json={"id": 7})
        code = main(
            ["try", "contact-form", str(payload), "--send", "--header",
             "content-type:application/json", *args]
        )  # fmt: skip
    assert code == 0, capsys.readouterr()
    sent = json.loads(desk.calls.last.request.content)
    assert sent["action"] == "create_ticket"
    assert sent["requester"]["email"] == "ana@example.com"
    assert "Hola" in sent["description"]
    assert desk.calls.last.request.headers["authorization"] == "Bearer helpdesk-token-secret"
