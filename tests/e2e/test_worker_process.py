"""A receiver-only server and a separate `ticketbridge worker` process on one SQLite file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx

from bridge.cli import main
from tests.helpers import poll, running_server, write_tree

CONFIG = {
    "rules/main.yaml": """
        providers:
          audit: {type: log}
        sources:
          shop: {verify: {type: none}}
        rules:
          - name: order
            source: shop
            action: create_ticket
            provider: audit
            ticket: {subject: "Order {{ body.id }}"}
    """,
}


def status(capsys, db, event_id):
    assert main(["show", event_id, "--db", db, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["status"]


def test_receiver_only_stores_and_a_separate_worker_delivers(tmp_path, capsys):
    root = write_tree(tmp_path, CONFIG)
    db = f"sqlite:///{tmp_path / 'bridge.db'}"
    rules, templates = root / "rules", root / "templates"
    templates.mkdir()
    with running_server(
        rules=rules, templates=templates, db=db, log=tmp_path / "serve.log", extra=["--no-worker"]
    ) as url:
        event_id = httpx.post(f"{url}/hooks/shop", json={"id": 1}).json()["event_id"]
        # nobody delivers while only the receiver runs
        assert status(capsys, db, event_id) == "accepted"

        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bridge",
                    "worker",
                    "--rules",
                    str(rules),
                    "--templates",
                    str(templates),
                    "--db",
                    db,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            poll(lambda: status(capsys, db, event_id) == "done", timeout=15, what="the worker")
            # the worker polls the store, so events stored later are found too
            second = httpx.post(f"{url}/hooks/shop", json={"id": 2}).json()["event_id"]
            poll(lambda: status(capsys, db, second) == "done", timeout=15, what="the second event")
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=20)
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert '"action": "worker_start"' in (tmp_path / "worker.log").read_text()
