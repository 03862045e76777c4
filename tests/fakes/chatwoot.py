"""A fake Chatwoot / Cloud Chat Application API: the calls the cloudchat / chatwoot adapter
makes, with state (contacts, contact-inboxes, conversations, labels, messages), the server's
checks (token, account, inbox, required fields, unique contacts, E.164 phones, incoming
messages only in API inboxes) answered with Chatwoot's error shapes, and a record of every
request. `flavour="cloudchat"` also takes Cloud Chat's contact_identifier / contact_email /
contact_phone_number create (finding or creating the contact).

Run it with `FakeChatwoot(...).running()`: real uvicorn on a free 127.0.0.1 port, in a thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
STATUSES = ("open", "resolved", "pending", "snoozed")
NOT_FOUND = {"error": "Resource could not be found"}


@dataclass
class Received:
    method: str
    path: str  # below /api/v1/accounts/{id}/, e.g. "conversations/1/labels"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


def _require(condition: Any, status: int, body: dict[str, Any]) -> None:
    if not condition:
        raise Reject(status, body)


@dataclass
class FakeChatwoot:
    flavour: str = "cloudchat"  # or "chatwoot": no contact_* create fields
    token: str = "cw-secret-token-123"
    account_id: int = 1
    inbox_id: int = 12
    api_inbox: bool = True  # Channel::Api: the only inbox type taking incoming messages
    supports_merge: bool = False  # custom_attributes `merge: true` (newer Chatwoot)
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    contact_inboxes: list[dict[str, Any]] = field(default_factory=list)
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)
    # (method, path regex, status, body, headers): answered instead, once, in order
    failures: list[tuple[str, str, int, Any, dict[str, str]]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test helpers ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.failures.append((method, path, status, body, headers or {}))

    def add_contact(self, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._new_contact(fields)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Received]:
        return [
            r
            for r in list(self.requests)
            if (method is None or r.method == method)
            and (path is None or re.fullmatch(path, r.path))
        ]

    # -- state -------------------------------------------------------------------------------

    def _new_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        contact = {
            "id": 300 + next(self._ids),
            "name": fields.get("name") or "",
            "email": fields.get("email"),
            "phone_number": fields.get("phone_number"),
            "identifier": fields.get("identifier"),
            "custom_attributes": dict(fields.get("custom_attributes") or {}),
        }
        self.contacts[contact["id"]] = contact
        return contact

    def _contact_inbox(
        self, contact_id: int, inbox_id: int, source_id: str | None = None
    ) -> dict[str, Any]:
        for item in self.contact_inboxes:
            if item["contact_id"] == contact_id and item["inbox_id"] == inbox_id:
                return item
        item = {
            "contact_id": contact_id,
            "inbox_id": inbox_id,
            "source_id": source_id or f"src-{contact_id}-{inbox_id}",
        }
        self.contact_inboxes.append(item)
        return item

    def _contact_json(
        self, contact: dict[str, Any], *, with_inboxes: bool = True
    ) -> dict[str, Any]:
        out = dict(contact)
        if with_inboxes:
            out["contact_inboxes"] = [
                {"source_id": ci["source_id"], "inbox": {"id": ci["inbox_id"], "name": "Website"}}
                for ci in self.contact_inboxes
                if ci["contact_id"] == contact["id"]
            ]
        return out

    def _conversation_json(self, conversation: dict[str, Any]) -> dict[str, Any]:
        contact = self.contacts[conversation["contact_id"]]
        out = {k: v for k, v in conversation.items() if k not in ("contact_id", "messages")}
        out["account_id"] = self.account_id
        out["meta"] = {"sender": self._contact_json(contact, with_inboxes=False)}
        return json.loads(json.dumps(out))

    def _conversation(self, display_id: str) -> dict[str, Any]:
        conversation = self.conversations.get(int(display_id)) if display_id.isdigit() else None
        _require(conversation, 404, NOT_FOUND)
        assert conversation is not None
        return conversation

    def _inbox(self, value: Any) -> int:
        _require(value is not None and str(value).isdigit(), 422, {"error": "inbox_id is required"})
        _require(int(value) == self.inbox_id, 404, NOT_FOUND)
        return int(value)

    def _check_contact_fields(self, fields: dict[str, Any], skip: int | None = None) -> None:
        phone = fields.get("phone_number")
        if phone:
            _require(
                E164.match(str(phone)),
                422,
                {
                    "message": "Phone number should be in e164 format",
                    "attributes": ["phone_number"],
                },
            )
        for key in ("email", "phone_number", "identifier"):
            value = fields.get(key)
            taken = any(c.get(key) == value for c in self.contacts.values() if c["id"] != skip)
            label = key.replace("_", " ").capitalize()
            _require(
                not value or not taken,
                422,
                {"message": f"{label} has already been taken", "attributes": [key]},
            )

    # -- endpoints ---------------------------------------------------------------------------

    def search_contacts(self, body: Any, query: dict[str, str], *_: str) -> Any:
        q = (query.get("q") or "").lower()
        _require(q, 422, {"error": "Specify search string with parameter q"})
        found = [
            self._contact_json(c)
            for c in self.contacts.values()
            if (c.get("email") or c.get("phone_number") or c.get("identifier"))
            and any(
                q in str(c.get(k) or "").lower()
                for k in ("name", "email", "phone_number", "identifier")
            )
        ]
        return {"meta": {"count": len(found)}, "payload": found}

    def create_contact(self, body: Any, *_: Any) -> Any:
        inbox = self._inbox(body.get("inbox_id"))
        self._check_contact_fields(body)
        contact = self._new_contact(body)
        contact_inbox = self._contact_inbox(contact["id"], inbox)
        return {
            "payload": {
                "contact": self._contact_json(contact),
                "contact_inbox": {
                    "source_id": contact_inbox["source_id"],
                    "inbox": {"id": inbox, "name": "Website"},
                },
            }
        }

    def update_contact(self, body: Any, query: Any, contact_id: str) -> Any:
        contact = self.contacts.get(int(contact_id))
        _require(contact, 404, NOT_FOUND)
        assert contact is not None
        self._check_contact_fields(body, skip=contact["id"])
        for key in ("name", "email", "phone_number", "identifier"):
            if key in body:
                contact[key] = body[key]
        contact["custom_attributes"] = {
            **contact["custom_attributes"],
            **(body.get("custom_attributes") or {}),
        }
        return {"payload": self._contact_json(contact)}

    def add_contact_inbox(self, body: Any, query: Any, contact_id: str) -> Any:
        _require(int(contact_id) in self.contacts, 404, NOT_FOUND)
        inbox = self._inbox(body.get("inbox_id"))
        item = self._contact_inbox(int(contact_id), inbox, body.get("source_id"))
        return {"source_id": item["source_id"], "inbox": {"id": inbox, "name": "Website"}}

    def contact_conversations(self, body: Any, query: Any, contact_id: str) -> Any:
        _require(int(contact_id) in self.contacts, 404, NOT_FOUND)
        mine = [c for c in self.conversations.values() if c["contact_id"] == int(contact_id)]
        return {"payload": [self._conversation_json(c) for c in mine]}

    def create_conversation(self, body: Any, *_: Any) -> Any:
        inbox = self._inbox(body.get("inbox_id"))
        keys = [
            k
            for k in ("contact_identifier", "contact_email", "contact_phone_number")
            if body.get(k)
        ]
        if self.flavour == "cloudchat" and keys:
            field_name = keys[0].removeprefix("contact_")
            value = body[keys[0]]
            contact = next((c for c in self.contacts.values() if c.get(field_name) == value), None)
            if contact is None:
                self._check_contact_fields({field_name: value})
                contact = self._new_contact({field_name: value})
            contact_inbox = self._contact_inbox(contact["id"], inbox)
        elif body.get("contact_id") is not None:
            contact = self.contacts.get(int(body["contact_id"]))
            _require(contact, 404, NOT_FOUND)
            assert contact is not None
            contact_inbox = self._contact_inbox(contact["id"], inbox, body.get("source_id"))
        else:
            source = body.get("source_id")
            _require(source, 422, {"error": "source_id is required"})
            found = [ci for ci in self.contact_inboxes if ci["source_id"] == source]
            _require(found, 404, NOT_FOUND)
            contact_inbox = found[0]
        status = body.get("status", "open")
        _require(
            status in ("open", "resolved", "pending"), 422, {"error": f"invalid status {status}"}
        )
        message = body.get("message")
        if message is not None:
            self._check_message(message)
        display_id = len(self.conversations) + 1
        conversation = {
            "id": display_id,
            "inbox_id": inbox,
            "contact_id": contact_inbox["contact_id"],
            "status": status,
            "custom_attributes": dict(body.get("custom_attributes") or {}),
            "additional_attributes": dict(body.get("additional_attributes") or {}),
            "labels": [],
            "messages": [],
            "assignee_id": body.get("assignee_id"),
            "team_id": body.get("team_id"),
        }
        if message is not None:
            conversation["messages"].append(self._message(message))
        self.conversations[display_id] = conversation
        return self._conversation_json(conversation)

    def show_conversation(self, body: Any, query: Any, cid: str) -> Any:
        return self._conversation_json(self._conversation(cid))

    def custom_attributes(self, body: Any, query: Any, cid: str) -> Any:
        conversation = self._conversation(cid)
        attributes = body.get("custom_attributes")
        _require(isinstance(attributes, dict), 422, {"error": "custom_attributes is required"})
        if self.supports_merge and body.get("merge") is True:
            conversation["custom_attributes"] = {**conversation["custom_attributes"], **attributes}
        else:
            conversation["custom_attributes"] = dict(attributes)
        return {"custom_attributes": conversation["custom_attributes"]}

    def set_labels(self, body: Any, query: Any, cid: str) -> Any:
        conversation = self._conversation(cid)
        labels = body.get("labels")
        _require(isinstance(labels, list), 422, {"error": "labels is required"})
        conversation["labels"] = list(labels)
        return {"payload": conversation["labels"]}

    def get_labels(self, body: Any, query: Any, cid: str) -> Any:
        return {"payload": self._conversation(cid)["labels"]}

    def toggle_status(self, body: Any, query: Any, cid: str) -> Any:
        conversation = self._conversation(cid)
        status = body.get("status")
        if status is None:  # Chatwoot toggles open <-> resolved without one
            status = "resolved" if conversation["status"] == "open" else "open"
        _require(status in STATUSES, 422, {"error": f"invalid status {status}"})
        conversation["status"] = status
        payload = {"success": True, "current_status": status, "conversation_id": int(cid)}
        return {"meta": {}, "payload": payload}

    def post_message(self, body: Any, query: Any, cid: str) -> Any:
        conversation = self._conversation(cid)
        self._check_message(body)
        message = self._message(body)
        conversation["messages"].append(message)
        if message["message_type"] == "incoming" and conversation["status"] == "resolved":
            conversation["status"] = "open"  # a customer's message reopens the conversation
        return message

    def assign(self, body: Any, query: Any, cid: str) -> Any:
        conversation = self._conversation(cid)
        _require(
            "assignee_id" in body or "team_id" in body, 422, {"error": "assignee_id or team_id"}
        )
        key = "assignee_id" if "assignee_id" in body else "team_id"
        conversation[key] = body[key]
        return {"id": body[key]}

    def _check_message(self, message: Any) -> None:
        _require(
            isinstance(message, dict) and message.get("content"),
            422,
            {"error": "content is required"},
        )
        kind = message.get("message_type", "outgoing")
        _require(kind in ("incoming", "outgoing"), 422, {"error": f"invalid message_type {kind}"})
        _require(
            kind != "incoming" or self.api_inbox,
            422,
            {"error": "Incoming messages are only allowed in Api inboxes"},
        )

    def _message(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": 900 + next(self._ids),
            "content": body["content"],
            "message_type": body.get("message_type", "outgoing"),
            "private": bool(body.get("private", False)),
        }

    # -- the app -----------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"contacts/search", self.search_contacts),
            ("POST", r"contacts", self.create_contact),
            ("PUT", r"contacts/(\d+)", self.update_contact),
            ("POST", r"contacts/(\d+)/contact_inboxes", self.add_contact_inbox),
            ("GET", r"contacts/(\d+)/conversations", self.contact_conversations),
            ("POST", r"conversations", self.create_conversation),
            ("GET", r"conversations/(\d+)", self.show_conversation),
            ("POST", r"conversations/(\d+)/custom_attributes", self.custom_attributes),
            ("POST", r"conversations/(\d+)/labels", self.set_labels),
            ("GET", r"conversations/(\d+)/labels", self.get_labels),
            ("POST", r"conversations/(\d+)/toggle_status", self.toggle_status),
            ("POST", r"conversations/(\d+)/messages", self.post_message),
            ("POST", r"conversations/(\d+)/assignments", self.assign),
        ]

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return JSONResponse({"error": "invalid JSON"}, status_code=400)
        path = request.path_params["rest"]
        received = Received(
            request.method,
            path,
            dict(request.query_params),
            dict(request.headers),
            body if raw else None,
        )
        with self._lock:
            self.requests.append(received)
            try:
                return self._answer(request, path, body if isinstance(body, dict) else {})
            except Reject as reject:
                return JSONResponse(reject.body, status_code=reject.status)

    def _answer(self, request: Request, path: str, body: dict[str, Any]) -> Response:
        for i, (method, pattern, status, payload, headers) in enumerate(self.failures):
            if method == request.method and re.fullmatch(pattern, path):
                del self.failures[i]
                return JSONResponse(
                    payload if payload is not None else {}, status_code=status, headers=headers
                )
        _require(
            request.headers.get("api_access_token") == self.token,
            401,
            {"error": "Invalid Access Token"},
        )
        _require(
            request.path_params["account"] == str(self.account_id),
            401,
            {"error": "You are not authorized to access this account"},
        )
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return JSONResponse(handler(body, dict(request.query_params), *match.groups()))
        raise Reject(404, NOT_FOUND)

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeChatwoot]:
        route = Route(
            "/api/v1/accounts/{account}/{rest:path}",
            self._handle,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        )
        with serving(Starlette(routes=[route]), what="the fake Chatwoot") as url:
            self.url = url
            yield self
