"""`serve --processes N`: N receiver processes on one port, sharing one store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from bridge.store import open_store
from tests.helpers import server_process, write_tree

CONFIG = {
    "rules/main.yaml": """
        sources:
          shop: {verify: {type: none}}
        providers:
          audit: {type: log}
        rules:
          - name: order
            source: shop
            action: create_ticket
            provider: audit
            ticket: {subject: "Order {{ body.id }}"}
    """,
}


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent's pid, after the name and the state
            found.append(int(stat.parent.name))
    return found


def test_two_processes_answer_on_one_port_and_store_everything(tmp_path: Path) -> None:
    root = write_tree(tmp_path, CONFIG)
    (root / "templates").mkdir()
    db = f"sqlite:///{tmp_path}/bridge.db"
    with server_process(
        rules=root / "rules",
        templates=root / "templates",
        db=db,
        log=tmp_path / "serve.log",
        extra=["--no-worker", "--processes", "2"],
    ) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = [client.post("/hooks/shop", json={"id": n}) for n in range(40)]
        assert [answer.status_code for answer in answers] == [202] * 40
        assert len(_children(server.process.pid)) >= 2  # uvicorn's supervisor and its two
        assert server.terminate() == 0

    async def stored() -> int:
        store = open_store(db, create=False)
        await store.open()
        try:
            return len(await store.list_events(limit=100))
        finally:
            await store.close()

    assert asyncio.run(stored()) == 40


def test_a_bad_configuration_stops_before_any_process_starts(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"rules/main.yaml": "rules: [{name: x}]\n"})
    (root / "templates").mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bridge",
            "serve",
            "--rules",
            str(root / "rules"),
            "--templates",
            str(root / "templates"),
            "--db",
            f"sqlite:///{tmp_path}/b.db",
            "--processes",
            "2",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "main.yaml:1: rules[0]: missing required key 'provider'" in done.stdout
    assert not (tmp_path / "b.db").exists()
