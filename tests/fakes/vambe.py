"""A fake Vambe public API: the endpoints the `vambe` adapter calls, with Vambe's rules.

It checks `x-api-key`, the path's channel and phone id, the required body fields (answering
Vambe's NestJS error shape `{"statusCode": ..., "message": ...}`), records every request and
keeps state: contacts by phone, each with its tickets (stage, metadata, open or closed).
Run it with `FakeVambe(...).running()` (real uvicorn on a free 127.0.0.1 port, in a thread).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving

PIPELINES = [
    {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "name": "Support",
        "description": "Customer care",
        "stages": [
            {"id": "650e8400-e29b-41d4-a716-446655440001", "name": "New", "description": ""},
            {"id": "650e8400-e29b-41d4-a716-446655440002", "name": "Disputes", "description": ""},
        ],
    },
    {
        "id": "550e8400-e29b-41d4-a716-446655440100",
        "name": "Sales",
        "description": "",
        "stages": [{"id": "650e8400-e29b-41d4-a716-446655440101", "name": "New"}],
    },
]
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class Ticket:
    id: str
    stage_id: str
    metadata: dict[str, str]
    integration_data: dict[str, Any]
    message: dict[str, Any] | None
    open: bool = True


@dataclass
class Contact:
    id: str
    phone: str
    name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def active(self) -> Ticket | None:
        return next((t for t in reversed(self.tickets) if t.open), None)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


@dataclass
class FakeVambe:
    api_key: str = "vk_test_fake_key_123"
    phones: dict[str, set[str]] = field(
        default_factory=lambda: {"web-whatsapp": {"qr-main"}, "whatsapp": {"1234567890"}}
    )
    requests: list[Received] = field(default_factory=list)
    contacts: dict[str, Contact] = field(default_factory=dict)  # by id
    # answers to give before the real behaviour, in order: (status, headers, body)
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.script.append((status, headers or {}, body))

    def by_phone(self, phone: str) -> Contact | None:
        digits = re.sub(r"\D", "", phone)
        return next((c for c in self.contacts.values() if c.phone == digits), None)

    # -- the app ------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(
                Received(request.method, request.url.path, dict(request.headers), body)
            )
            if self.script:
                status, headers, payload = self.script.pop(0)
                return JSONResponse(
                    payload
                    if payload is not None
                    else {"statusCode": status, "message": "scripted"},
                    status_code=status,
                    headers=headers,
                )
            if request.headers.get("x-api-key") != self.api_key:
                return _error(401, "Unauthorized")
            return self._route(request.method, request.url.path, body)

    def _route(self, method: str, path: str, body: Any) -> Response:
        parts = path.strip("/").split("/")
        if parts[:2] != ["api", "public"]:
            return _error(404, f"Cannot {method} {path}")
        rest = parts[2:]
        if method == "GET" and rest == ["pipeline"]:
            return JSONResponse(PIPELINES)
        if method == "POST" and len(rest) == 4 and rest[:2] == ["ticket", "open"]:
            return self._open(rest[2], rest[3], body)
        if method == "POST" and rest == ["ticket", "metadata"]:
            return self._metadata(body)
        if method == "POST" and len(rest) == 4 and rest[:3] == ["ticket", "close", "contact"]:
            return self._close(rest[3])
        if method == "GET" and len(rest) == 3 and rest[0] == "contact" and rest[2] == "info":
            return self._info(rest[1])
        if method == "POST" and len(rest) == 3 and rest[::2] == ["contact", "update-metadata"]:
            return self._contact_metadata(rest[1], body)
        return _error(404, f"Cannot {method} {path}")

    def _open(self, channel: str, phone_id: str, body: Any) -> Response:
        if phone_id not in self.phones.get(channel, set()):
            return _error(404, "Phone not found")
        if not isinstance(body, dict):
            return _error(400, "Body must be a JSON object")
        phone = body.get("to_phone_number")
        if not isinstance(phone, str | int) or not re.fullmatch(r"\+?\d{6,15}", str(phone)):
            return _error(400, "to_phone_number must be a valid phone number")
        stage = body.get("stage_id")
        if not isinstance(stage, str) or not stage:
            return _error(400, "stage_id must be a UUID")
        if stage not in {s["id"] for p in PIPELINES for s in p["stages"]}:
            return _error(404, "Stage not found")
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or not EMAIL.fullmatch(email)):
            return _error(400, "email must be an email")
        for key in ("contact_metadata", "ticket_metadata", "integration_data"):
            if key in body and not isinstance(body[key], dict):
                return _error(400, f"{key} must be an object")
        message = body.get("message")
        if message is not None and (
            not isinstance(message, dict) or not isinstance(message.get("ai_generated"), bool)
        ):
            return _error(400, "message.ai_generated must be a boolean value")
        contact = self.by_phone(str(phone))
        if contact is None:
            contact = Contact(id=str(uuid.uuid4()), phone=re.sub(r"\D", "", str(phone)))
            self.contacts[contact.id] = contact
        contact.name = body.get("contact_name", contact.name)
        contact.email = email or contact.email
        contact.metadata.update(body.get("contact_metadata", {}))
        contact.tickets.append(
            Ticket(
                id=str(uuid.uuid4()),
                stage_id=stage,
                metadata=dict(body.get("ticket_metadata", {})),
                integration_data=dict(body.get("integration_data", {})),
                message=message,
            )
        )
        return JSONResponse({"aiContactId": contact.id, "status": "ok"})

    def _metadata(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return _error(400, "Body must be a JSON object")
        given = [k for k in ("ticket_id", "ai_contact_id", "contact_number") if body.get(k)]
        if len(given) != 1:
            return _error(400, "You must provide ticket_id, ai_contact_id, or contact_number")
        metadata = body.get("metadata")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            return _error(400, "metadata must be an object of strings")
        contact = (
            self.contacts.get(body["ai_contact_id"])
            if given == ["ai_contact_id"]
            else self.by_phone(str(body["contact_number"]))
            if given == ["contact_number"]
            else None
        )
        ticket = contact.active if contact else None
        if ticket is None and contact is not None and body.get("allow_closed_ticket") is True:
            ticket = contact.tickets[-1] if contact.tickets else None
        if ticket is None:
            return _error(404, "Active ticket not found for contact")
        ticket.metadata.update(metadata)
        return JSONResponse({"status": "ok"})

    def _close(self, contact_id: str) -> Response:
        contact = self.contacts.get(contact_id)
        ticket = contact.active if contact else None
        if ticket is None:
            return _error(404, "Active ticket not found for contact")
        ticket.open = False
        return JSONResponse({"status": "ok"})

    def _info(self, contact_id: str) -> Response:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return _error(404, "Contact not found")
        active = contact.active
        return JSONResponse(
            {
                "id": contact.id,
                "name": contact.name,
                "email": contact.email,
                "phone": contact.phone,
                "platform": "whatsapp",
                "chat_status": "UNATTENDED" if active else "CLOSED",
                "metadata": contact.metadata,
                "active_ticket_v2": {"id": active.id, "current_stage_id": active.stage_id}
                if active
                else None,
            }
        )

    def _contact_metadata(self, contact_id: str, body: Any) -> Response:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return _error(404, "Contact not found")
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            return _error(400, "metadata must be an object")
        contact.metadata.update(body["metadata"])
        return JSONResponse({"status": "ok"})

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeVambe]:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        with serving(app, what="the fake Vambe") as url:
            self.url = url
            yield self
