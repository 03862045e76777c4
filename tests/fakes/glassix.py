"""A fake Glassix (REST API v1.2): tokens, tickets, fields, tags, state, messages and notes.

It checks what the real API documents (facts file `providers/glassix.md`): /token/get wants
apiKey, apiSecret and userName of a known user; every other call a live bearer token; a
ticket needs at least one participant with a known protocolType and an identifier (digits
only, no '+', on phone channels); a closed ticket takes no message. Errors answer Glassix's
shape, {"Message": "..."}. It records every request and keeps the tickets' state.

Run it with `FakeGlassix(...).running()`: real uvicorn on a free 127.0.0.1 port, in a thread;
`api` is the base_url to configure (`http://127.0.0.1:<port>/api/v1.2`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving

PREFIX = "/api/v1.2"
PROTOCOLS = {
    "SMS",
    "WhatsApp",
    "Mail",
    "Web",
    "FBmessenger",
    "WebViaSMS",
    "TelegramBot",
    "FacebookFeed",
    "InstagramFeed",
    "PhoneCall",
    "Viber",
    "AppleBusinessChat",
    "GoogleBusinessMessages",
    "GoogleBusinessReviews",
}
PHONE = {"SMS", "WhatsApp", "WebViaSMS", "PhoneCall"}
STATES = {"Open", "Closed", "Pending", "Snoozed"}
FIELD_KEYS = {f"field{n}" for n in range(1, 11)} | {"uniqueArgument", "details"}


@dataclass
class Received:
    method: str
    path: str  # below /api/v1.2, e.g. /tickets/create
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class Ticket:
    id: int
    participants: list[dict[str, Any]]
    fields: dict[str, Any]
    tags: list[str]
    unique_argument: str | None
    state: str = "Open"
    transactions: list[dict[str, Any]] = field(default_factory=list)  # from the create
    sent: list[str] = field(default_factory=list)  # tickets/send
    notes: list[str] = field(default_factory=list)  # tickets/addnote

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "participants": self.participants,
            "tags": self.tags,
            "uniqueArgument": self.unique_argument,
            "transactions": self.transactions,
            **self.fields,
        }


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


@dataclass
class FakeGlassix:
    api_key: str = "0c7b6d1e-5b36-4a4f-9b7e-2f1f4d5c9a11"
    api_secret: str = "glassix-fake-secret-9f8e"
    user_name: str = "api@acme.example"
    expires_in: int = 10800
    requests: list[Received] = field(default_factory=list)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)  # live tokens
    issued: int = 0
    # answers to give instead of the real one, by path prefix: (status, body, headers)
    script: list[tuple[str, int, Any, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api(self) -> str:
        return self.url + PREFIX

    def fail_next(
        self, path: str, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """The next request whose path starts with `path` gets this answer instead."""
        with self._lock:
            self.script.append((path, status, body, headers or {}))

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def calls(self, prefix: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    # -- the app -------------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return JSONResponse({"Message": "The request is invalid."}, status_code=400)
        path = request.url.path.removeprefix(PREFIX)
        with self._lock:
            self.requests.append(
                Received(
                    request.method, path, dict(request.query_params), dict(request.headers), body
                )
            )
            for i, (prefix, status, payload, headers) in enumerate(self.script):
                if path.startswith(prefix):
                    del self.script[i]
                    return JSONResponse(payload, status_code=status, headers=headers)
            try:
                status, answer = self._answer(request, path, body)
            except _Refused as refused:
                return JSONResponse({"Message": refused.message}, status_code=refused.status)
        return JSONResponse(answer, status_code=status)

    def _answer(self, request: Request, path: str, body: Any) -> tuple[int, Any]:
        if path == "/token/get" and request.method == "POST":
            return 200, self._token(body)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            raise _Refused(401, "Authorization has been denied for this request.")
        parts = path.strip("/").split("/")
        if parts == ["tickets", "create"] and request.method == "POST":
            return 200, self._create(body)
        if len(parts) != 3 or parts[0] != "tickets" or not parts[2].isdigit():
            raise _Refused(404, f"No HTTP resource was found that matches {path}.")
        verb, ticket = parts[1], self.tickets.get(int(parts[2]))
        if ticket is None:
            raise _Refused(404, f"Ticket {parts[2]} was not found.")
        handlers = {
            ("PUT", "setfields"): self._setfields,
            ("POST", "addtags"): self._addtags,
            ("POST", "send"): self._send,
            ("POST", "addnote"): self._addnote,
            ("GET", "get"): lambda t, b: t.to_json(),
        }
        if (request.method, verb) == ("PUT", "setstate"):
            return 200, self._setstate(ticket, request.query_params.get("nextState"))
        handler = handlers.get((request.method, verb))
        if handler is None:
            raise _Refused(405, f"The requested resource does not support {request.method}.")
        return 200, handler(ticket, body)

    def _token(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not all(
            body.get(k) for k in ("apiKey", "apiSecret", "userName")
        ):
            raise _Refused(400, "apiKey, apiSecret and userName are required.")
        if (body["apiKey"], body["apiSecret"], body["userName"]) != (
            self.api_key,
            self.api_secret,
            self.user_name,
        ):
            raise _Refused(401, "Invalid credentials.")
        self.issued += 1
        token = f"fake-access-token-{self.issued}"
        self.tokens.add(token)
        return {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in}

    def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refused(400, "The request is invalid.")
        participants = body.get("participants")
        if not isinstance(participants, list) or not participants:
            raise _Refused(400, "At least one participant is required.")
        for p in participants:
            if p.get("type") not in ("Client", "User"):
                raise _Refused(400, f"Invalid participant type {p.get('type')!r}.")
            if p.get("protocolType") not in PROTOCOLS:
                raise _Refused(400, f"Invalid protocolType {p.get('protocolType')!r}.")
            identifier = str(p.get("identifier") or "")
            if not identifier or (p["protocolType"] in PHONE and not identifier.isdigit()):
                raise _Refused(400, f"Invalid identifier {identifier!r}.")
        for t in body.get("transactions") or []:
            if not t.get("text") or not t.get("fromParticipant", {}).get("identifier"):
                raise _Refused(400, "A transaction needs text and fromParticipant.")
        number = 1000 + len(self.tickets) + 1
        ticket = Ticket(
            id=number,
            participants=participants,
            fields={k: v for k, v in body.items() if k.startswith("field") or k == "details"},
            tags=list(body.get("tags") or []),
            unique_argument=body.get("uniqueArgument"),
            state=body.get("state", "Open"),
            transactions=list(body.get("transactions") or []),
        )
        self.tickets[number] = ticket
        return ticket.to_json()

    def _setfields(self, ticket: Ticket, body: Any) -> None:
        if not isinstance(body, dict) or not body or set(body) - FIELD_KEYS:
            raise _Refused(400, "The request is invalid.")
        for key, value in body.items():
            if key == "uniqueArgument":
                ticket.unique_argument = value
            else:
                ticket.fields[key] = value
        return None

    def _addtags(self, ticket: Ticket, body: Any) -> list[str]:
        if not isinstance(body, list) or not all(isinstance(t, str) for t in body):
            raise _Refused(400, "The request body must be an array of tags.")
        ticket.tags.extend(t for t in body if t not in ticket.tags)
        return ticket.tags

    def _setstate(self, ticket: Ticket, state: str | None) -> dict[str, Any]:
        if state not in STATES:
            raise _Refused(400, f"Invalid nextState {state!r}.")
        ticket.state = state
        return {"message": f"Ticket state changed to {state}"}

    def _send(self, ticket: Ticket, body: Any) -> dict[str, Any]:
        text = _text(body)
        if ticket.state != "Open":
            raise _Refused(400, "Messages can only be sent to an open ticket.")
        ticket.sent.append(text)
        return {"id": len(ticket.sent), "type": "Message", "text": text}

    def _addnote(self, ticket: Ticket, body: Any) -> dict[str, Any]:
        ticket.notes.append(_text(body))
        return {"id": len(ticket.notes), "type": "Note"}

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeGlassix]:
        methods = ["GET", "POST", "PUT", "DELETE"]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])
        with serving(app, what="the fake Glassix") as url:
            self.url = url
            yield self


def _text(body: Any) -> str:
    if not isinstance(body, dict) or not (body.get("text") or body.get("html")):
        raise _Refused(400, "text or html is required.")
    return str(body.get("text") or body.get("html"))
