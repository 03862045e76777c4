"""What `ticketbridge try` has Awal Chat answer instead of the network: a workspace that has
never seen the customer, in the developer API's answer shapes.

The phone search finds no conversation until an earlier request of the same delivery sent the
number its first message (which, as on Awal Chat, starts the conversation: id
STUB_CONVERSATION_ID, made up), so a create shows search, message, search, openTicket, as a
first delivery sends them. openTicket answers the ticket it opened (STUB_TICKET_ID), or 409 when
this delivery already opened one; a conversation no earlier request started answers 404.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from bridge.providers.dryrun import sent_object

STUB_CONVERSATION_ID = 1
STUB_TICKET_ID = 1
STUB_MESSAGE_ID = 1
_CONVERSATIONS = "/conversations"
_SEND_TEXT = "/w/message/text"
_TICKET_EVENTS = "/wechat/chat/events/"
_OURS = f"{_TICKET_EVENTS}{STUB_CONVERSATION_ID}"


@dataclass(frozen=True, kw_only=True)
class _Started:
    phone: str
    name: str
    ticket: str | None  # opened | closed, when this delivery opened one


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


def _error(status: int, code: str, message: str) -> httpx.Response:
    body = {"error": code, "message": message, "details": {}, "request_id": "req_stub"}
    return httpx.Response(status, json=body)


def _started(earlier: Sequence[httpx.Request]) -> _Started | None:
    """The conversation the earlier requests of this delivery started, and its ticket."""
    conversation: _Started | None = None
    for request in earlier:
        path, body = request.url.path.rstrip("/"), sent_object(request)
        if request.method == "POST" and path.endswith(_SEND_TEXT) and conversation is None:
            phone = _digits(body.get("phone"))
            conversation = _Started(phone=phone, name=str(body.get("name") or phone), ticket=None)
        elif conversation and request.method == "POST" and path.endswith(_OURS):
            route, is_open = body.get("route"), conversation.ticket == "opened"
            if route == "openTicket" and not is_open:
                conversation = replace(conversation, ticket="opened")
            elif route == "closeTicket" and is_open:
                conversation = replace(conversation, ticket="closed")
    return conversation


def dry_run_answer(request: httpx.Request, *, earlier: Sequence[httpx.Request]) -> httpx.Response:
    path = request.url.path.rstrip("/")
    conversation = _started(earlier)
    if request.method == "GET" and path.endswith(_CONVERSATIONS):
        term = _digits(request.url.params.get("searchTerm"))
        found = []
        if conversation is not None and term and term in conversation.phone:
            found.append(
                {
                    "id": STUB_CONVERSATION_ID,
                    "phone": conversation.phone,
                    "name": conversation.name,
                    "status": "opened",
                }
            )
        meta = {"total": len(found), "unread_total": 0}
        return httpx.Response(200, json={"status": True, "data": found, "meta": meta})
    if request.method == "POST" and path.endswith(_SEND_TEXT):
        message = {"id": STUB_MESSAGE_ID, "messageId": "wamid.stub", "status": "sent"}
        return httpx.Response(200, json={"status": True, "message": {**message, "timestamp": 0}})
    target = path.rsplit("/", 1)[1]
    if conversation is None or target != str(STUB_CONVERSATION_ID):
        return _error(404, "resource_not_found", "Conversation not found")
    if request.method == "GET" and path.endswith(f"{_CONVERSATIONS}/{target}"):
        data = {"id": STUB_CONVERSATION_ID, "phone": conversation.phone, "name": conversation.name}
        return httpx.Response(200, json={"status": True, "data": {**data, "messages": []}})
    if request.method == "POST" and _TICKET_EVENTS in path:
        return _ticket_event(sent_object(request).get("route"), conversation)
    return _error(404, "resource_not_found", f"No route {request.method} {path}")


def _ticket_event(route: Any, conversation: _Started) -> httpx.Response:
    if route == "openTicket":
        if conversation.ticket == "opened":
            return _error(409, "conflict", "Ticket already open")
        status, text = "opened", "Ticket opened successfully"
    elif route == "closeTicket":
        if conversation.ticket != "opened":
            return _error(400, "validation_failed", "No open ticket on this conversation")
        status, text = "closed", "Ticket closed successfully"
    else:
        return _error(400, "validation_failed", "Validation failed")
    data = {
        "ticket_id": STUB_TICKET_ID,
        "conversation_id": STUB_CONVERSATION_ID,
        "status": status,
    }
    return httpx.Response(200, json={"status": True, "message": text, "data": data})
