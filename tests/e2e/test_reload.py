"""Live configuration reload through the real server (SIGHUP and POST /admin/api/reload):
a good configuration takes effect for new events at once, a bad one is refused with every
problem while the running one goes on, and what was routed before keeps its action."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, server_process, worker_process, write_tree

TOKEN = "reload-admin-token-7"


def _write(root: Path, helpdesk: FakeProvider, subject: str, **extra: Any) -> None:
    document = {
        "providers": {
            "desk": {"type": "http", "url": f"{helpdesk.url}/tickets", "concurrency": 1},
        },
        "sources": {"shop": {"verify": {"type": "none"}}},
        "rules": [
            {
                "name": "order",
                "source": "shop",
                "action": "create_ticket",
                "provider": "desk",
                "ticket": {"subject": subject + " {{ body.id }}"},
            }
        ],
        **extra,
    }
    write_tree(root, {"rules/main.yaml": yaml.safe_dump(document), "templates/.keep": ""})


def _serve(root: Path, **extra: Any) -> Any:
    return server_process(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{root / 'bridge.db'}",
        env={"BRIDGE_ADMIN_TOKEN": TOKEN},
        log=root / "serve.log",
        **extra,
    )


def _admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/admin/api", headers={"Authorization": f"Bearer {TOKEN}"})


def _subjects(helpdesk: FakeProvider) -> dict[str, str]:
    """Each ticket's subject by the order id it was made for."""
    return {r.json["subject"].split()[-1]: r.json["subject"] for r in helpdesk.tickets}


def _post(url: str, order: str) -> None:
    assert httpx.post(f"{url}/hooks/shop", json={"id": order}).status_code == 202


def test_a_good_configuration_takes_effect_at_once_and_a_bad_one_is_refused(tmp_path):
    with FakeProvider().running() as helpdesk:
        _write(tmp_path, helpdesk, "v1")
        with _serve(tmp_path) as server, _admin(server.url) as admin:
            _post(server.url, "a")
            poll(lambda: "a" in _subjects(helpdesk), what="the first ticket")

            _write(tmp_path, helpdesk, "v2")
            answer = admin.post("/reload")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"status": "reloaded", "sources": 1, "rules": 1, "providers": 1}
            _post(server.url, "b")
            poll(lambda: "b" in _subjects(helpdesk), what="the ticket after the reload")

            _write(tmp_path, helpdesk, "v3", defaults={"dedupe_windw": "1d"})
            refused = admin.post("/reload")
            assert refused.status_code == 422
            (problem,) = refused.json()["problems"]
            assert problem["path"] == "defaults.dedupe_windw"
            assert problem["file"].endswith("main.yaml") and problem["line"] > 0
            assert "unknown key 'dedupe_windw'" in problem["message"]
            _post(server.url, "c")  # the running configuration goes on
            poll(lambda: "c" in _subjects(helpdesk), what="the ticket after the refusal")
        lines = [json.loads(line) for line in server.log.read_text().splitlines()]
    assert _subjects(helpdesk) == {"a": "v1 a", "b": "v2 b", "c": "v2 c"}
    refusals = [line for line in lines if line.get("outcome") == "refused"]
    assert refusals and refusals[0]["level"] == "error"
    assert any("dedupe_windw" in text for text in refusals[0]["problems"])


def test_sighup_reloads_serve_and_worker_and_routed_deliveries_keep_their_action(tmp_path):
    with FakeProvider().running() as helpdesk:
        _write(tmp_path, helpdesk, "old")
        with _serve(tmp_path) as server, _admin(server.url) as admin:
            with helpdesk.holding():  # one call in flight (concurrency 1), one queued behind it
                _post(server.url, "first")
                poll(lambda: helpdesk.held == 1, what="the first call in flight")
                _post(server.url, "second")
                second = admin.get("/events", params={"limit": 1}).json()["events"][0]["id"]
                poll(
                    lambda: admin.get(f"/events/{second}").json()["deliveries"],
                    what="the second event routed",
                )
                _write(tmp_path, helpdesk, "new")
                os.kill(server.process.pid, signal.SIGHUP)
                poll(
                    lambda: '"outcome": "reloaded"' in server.log.read_text(),
                    what="serve to reload on SIGHUP",
                )
            _post(server.url, "third")
            poll(lambda: len(helpdesk.tickets) == 3, what="three tickets")
            assert server.process.poll() is None  # SIGHUP no longer ends serve
        assert _subjects(helpdesk) == {
            "first": "old first",
            "second": "old second",
            "third": "new third",
        }

        with worker_process(
            rules=tmp_path / "rules",
            templates=tmp_path / "templates",
            db=f"sqlite:///{tmp_path / 'bridge.db'}",
            log=tmp_path / "worker.log",
        ) as worker:
            os.kill(worker.process.pid, signal.SIGHUP)
            poll(
                lambda: '"outcome": "reloaded"' in worker.log.read_text(),
                what="the worker to reload on SIGHUP",
            )
            assert worker.process.poll() is None
