"""A real server with the admin surface on, in front of a fake helpdesk, and a logged-in
httpx client for its pages (the session cookie is Secure, which httpx keeps to https, so the
client sends it by hand)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, write_tree

ADMIN_TOKEN = "admin-token-5f1c9e7a"
HELPDESK_TOKEN = "hd-secret-token-8d2e4b"
COOKIE = "tb_admin"


def config(root: Path, helpdesk_url: str) -> Path:
    return write_tree(
        root,
        {
            "rules/main.yaml": f"""
                providers:
                  helpdesk:
                    type: http
                    url: "{helpdesk_url}/api/tickets"
                    headers: {{Authorization: "Bearer ${{HELPDESK_TOKEN}}"}}
                    retry: {{base: 50ms, cap: 100ms, max_attempts: 2}}
                  audit: {{type: log}}
                sources:
                  shop:
                    verify: {{type: none}}
                rules:
                  - name: order-ticket
                    source: shop
                    when: {{body.kind: order}}
                    action: create_ticket
                    provider: helpdesk
                    ticket:
                      contact: {{email: "{{{{ body.email }}}}"}}
                      subject: "Order {{{{ body.order }}}}"
                      message: {{text: "{{{{ body.note }}}}"}}
                  - name: audit-note
                    source: shop
                    when: {{body.kind: note}}
                    action: create_ticket
                    provider: audit
                    ticket:
                      subject: "Note {{{{ body.order }}}}"
            """,
            "templates/.keep": "",
        },
    )


@dataclass
class Admin:
    """A running server with BRIDGE_ADMIN_TOKEN set, and what the tests need of it."""

    url: str
    db: str
    log: Path
    helpdesk: FakeProvider

    def client(self, cookie: str | None = None) -> httpx.Client:
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        return httpx.Client(base_url=self.url, headers=headers, follow_redirects=False)

    def login(self) -> httpx.Client:
        """A client with a fresh session."""
        with self.client() as anonymous:
            answer = anonymous.post("/admin/login", data={"token": ADMIN_TOKEN})
        assert answer.status_code == 303, answer.text
        return self.client(answer.cookies[COOKIE])

    def post_event(self, body: dict[str, object], **headers: str) -> str:
        answer = httpx.post(f"{self.url}/hooks/shop", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        event_id: str = answer.json()["event_id"]
        return event_id

    def event_json(self, event_id: str) -> dict[str, object]:
        answer = httpx.get(
            f"{self.url}/admin/api/events/{event_id}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert answer.status_code == 200
        data: dict[str, object] = answer.json()
        return data

    def settled(self, event_id: str) -> dict[str, object]:
        """The event's detail (JSON API) once it is done, failed or unmatched."""
        return poll(
            lambda: (
                (d := self.event_json(event_id))["status"] in ("done", "failed", "unmatched") and d
            ),
            timeout=15,
            what=f"event {event_id} to settle",
        )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def start_admin(root: Path, helpdesk: FakeProvider, *, token: str | None) -> Iterator[Admin]:
    config(root, helpdesk.url)
    db = f"sqlite:///{root / 'bridge.db'}"
    env = {"HELPDESK_TOKEN": HELPDESK_TOKEN}
    if token:
        env["BRIDGE_ADMIN_TOKEN"] = token
    with running_server(
        rules=root / "rules", templates=root / "templates", db=db, env=env, log=root / "server.log"
    ) as url:
        yield Admin(url=url, db=db, log=root / "server.log", helpdesk=helpdesk)


@pytest.fixture(scope="module")
def helpdesk() -> Iterator[FakeProvider]:
    with FakeProvider().running() as fake:
        yield fake


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory, helpdesk: FakeProvider) -> Iterator[Admin]:
    """One server for a module's tests (each test makes its own events)."""
    yield from start_admin(tmp_path_factory.mktemp("admin"), helpdesk, token=ADMIN_TOKEN)
