"""A fake Awal Chat developer API: signed requests only, conversations by phone, tickets.

It checks what the real API documents: every required header, the client id and workspace
domain, the HMAC-SHA256 signature (computed here on its own, from the docs: METHOD + PATH
relative to /api/developer + ?QUERY + TIMESTAMP + BODY), a timestamp near now, the
`phone_number_id` query parameter, and each endpoint's required fields; mistakes get the API's
error shape (`{"error", "message", "details", "request_id"}`). Sending a text to an unknown
number creates the contact and its conversation; openTicket on a conversation with an open
ticket is a 409. Run it with `FakeAwalChat(...).running()` (real uvicorn, own thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving

PREFIX = "/api/developer"
REQUIRED_HEADERS = ("accept", "x-awal-signature-256", "x-timestamp", "x-domain", "x-client-id")
TOLERANCE = 300  # seconds either side of now


@dataclass
class Received:
    method: str
    path: str  # relative to /api/developer
    query: str
    headers: dict[str, str]
    json: Any


@dataclass
class Ticket:
    id: int
    status: str  # opened | closed


@dataclass
class Conversation:
    id: int
    phone: str
    name: str
    email: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def open_ticket(self) -> Ticket | None:
        return next((t for t in self.tickets if t.status == "opened"), None)


def error(status: int, code: str, message: str, **details: str) -> JSONResponse:
    body = {"error": code, "message": message, "details": details, "request_id": "req_fake"}
    return JSONResponse(body, status_code=status)


@dataclass
class FakeAwalChat:
    client_id: str = "client-1"
    domain: str = "acme"
    hmac_secret: str = "awal-fake-secret"
    phone_number_id: str = "123456789012345"
    requests: list[Received] = field(default_factory=list)
    rejected: list[tuple[Received, int, str]] = field(default_factory=list)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    # answers to give before any checking, in order: (status, headers, body)
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""  # the API root: http://127.0.0.1:PORT/api/developer
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _ticket_ids: Iterator[int] = field(default_factory=lambda: itertools.count(101))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- state, for tests -----------------------------------------------------------------

    def add_conversation(self, phone: str, name: str = "") -> Conversation:
        with self._lock:
            conversation = Conversation(id=next(self._ids), phone=phone, name=name)
            self.conversations[conversation.id] = conversation
            return conversation

    def by_phone(self, phone: str) -> Conversation | None:
        return next((c for c in self.conversations.values() if c.phone == phone), None)

    def answer_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.script.append((status, headers or {}, body))

    # --- checks ---------------------------------------------------------------------------

    def _auth(self, request: Request, raw: bytes) -> JSONResponse | None:
        missing = [h for h in REQUIRED_HEADERS if not request.headers.get(h)]
        if missing:
            return error(400, "missing_headers", f"Missing headers: {', '.join(missing)}")
        if request.headers["x-client-id"] != self.client_id:
            return error(401, "authentication_failed", "Invalid client id")
        if request.headers["x-domain"] != self.domain:
            return error(401, "authentication_failed", "Unknown workspace domain")
        timestamp = request.headers["x-timestamp"]
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > TOLERANCE:
            return error(401, "authentication_failed", "Timestamp outside the allowed window")
        path = request.url.path.removeprefix(PREFIX)
        query = f"?{request.url.query}" if request.url.query else ""
        message = f"{request.method}{path}{query}{timestamp}".encode() + raw
        digest = hmac.new(self.hmac_secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers["x-awal-signature-256"], f"sha256={digest}"):
            return error(401, "authentication_failed", "Invalid HMAC signature")
        if request.query_params.get("phone_number_id") != self.phone_number_id:
            return error(
                400, "validation_failed", "Validation failed", phone_number_id="is invalid"
            )
        return None

    # --- endpoints ------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        received = Received(
            request.method,
            request.url.path.removeprefix(PREFIX),
            request.url.query,
            dict(request.headers),
            body,
        )
        with self._lock:
            self.requests.append(received)
            if self.script:
                status, headers, payload = self.script.pop(0)
                return JSONResponse(payload, status_code=status, headers=headers)
            answer = self._auth(request, raw) or self._route(request.method, received)
            if answer.status_code >= 400:
                self.rejected.append((received, answer.status_code, bytes(answer.body).decode()))
            return answer

    def _route(self, method: str, received: Received) -> JSONResponse:
        path, body = received.path, received.json
        if method == "GET" and path == "/conversations":
            return self._search(received)
        if method == "GET" and path.startswith("/conversations/"):
            conversation = self._conversation(path.rsplit("/", 1)[1])
            if conversation is None:
                return error(404, "resource_not_found", "Conversation not found")
            data = {"id": conversation.id, "phone": conversation.phone, "name": conversation.name}
            return JSONResponse({"status": True, "data": {**data, "messages": []}})
        if method == "POST" and path == "/w/message/text":
            return self._send_text(body)
        if method == "POST" and path.startswith("/wechat/chat/events/"):
            return self._ticket(path.rsplit("/", 1)[1], body)
        return error(404, "resource_not_found", f"No route {method} {path}")

    def _search(self, received: Received) -> JSONResponse:
        term = parse_qs(received.query).get("searchTerm", [""])[0].lower()
        found = [
            {"id": c.id, "phone": c.phone, "name": c.name, "status": "opened"}
            for c in self.conversations.values()
            if term in c.phone or term in c.name.lower()
        ]
        return JSONResponse(
            {"status": True, "data": found, "meta": {"total": len(found), "unread_total": 0}}
        )

    def _send_text(self, body: Any) -> JSONResponse:
        if not isinstance(body, dict):
            return error(400, "validation_failed", "Validation failed", body="must be JSON")
        problems = {k: "is required" for k in ("phone", "body") if not body.get(k)}
        if problems:
            return error(400, "validation_failed", "Validation failed", **problems)
        phone, text = str(body["phone"]), str(body["body"])
        if not phone.isdigit():
            return error(400, "invalid_phone_number", "Invalid phone number format")
        if len(text) > 4096:
            return error(400, "validation_failed", "Validation failed", body="too long")
        conversation = self.by_phone(phone)
        if conversation is None:  # a first message creates the contact and its conversation
            conversation = Conversation(
                id=next(self._ids), phone=phone, name=body.get("name") or phone
            )
            conversation.email = body.get("email")
            self.conversations[conversation.id] = conversation
        number = sum(len(c.messages) for c in self.conversations.values()) + 1
        conversation.messages.append({"id": number, "content": text, "direction": "outbound"})
        message = {"id": number, "messageId": f"wamid.{number}", "status": "sent"}
        return JSONResponse({"status": True, "message": {**message, "timestamp": 1704124800}})

    def _ticket(self, id_text: str, body: Any) -> JSONResponse:
        route = body.get("route") if isinstance(body, dict) else None
        if route not in ("openTicket", "closeTicket"):
            return error(400, "validation_failed", "Validation failed", route="is invalid")
        conversation = self._conversation(id_text)
        if conversation is None:
            return error(404, "resource_not_found", "Conversation not found")
        ticket = conversation.open_ticket
        if route == "openTicket":
            if ticket is not None:
                return error(409, "conflict", "Ticket already open")
            ticket = Ticket(id=next(self._ticket_ids), status="opened")
            conversation.tickets.append(ticket)
            text = "Ticket opened successfully"
        else:
            if ticket is None:
                return error(400, "validation_failed", "No open ticket on this conversation")
            ticket.status = "closed"
            text = "Ticket closed successfully"
        data = {"ticket_id": ticket.id, "conversation_id": conversation.id, "status": ticket.status}
        return JSONResponse({"status": True, "message": text, "data": data})

    def _conversation(self, id_text: str) -> Conversation | None:
        return self.conversations.get(int(id_text)) if id_text.isdigit() else None

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeAwalChat]:
        app = Starlette(
            routes=[Route("/api/developer/{path:path}", self._handle, methods=["GET", "POST"])]
        )
        with serving(app, what="the fake Awal Chat") as url:
            self.url = url + PREFIX
            yield self
