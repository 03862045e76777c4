"""What `ticketbridge try` pretends Awal Chat answered (no network): plausible answers for
every call the adapter chains, so a dry run shows each request a delivery would send. The
phone search finds a conversation, so a dry create shows search, openTicket and the message."""

from __future__ import annotations

import json
from typing import Any

import httpx

DRY_CONVERSATION_ID = 1
DRY_TICKET_ID = 1


def dry_run_answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path.rstrip("/")
    if request.method == "GET" and path.endswith("/conversations"):
        phone = request.url.params.get("searchTerm", "")
        item = {"id": DRY_CONVERSATION_ID, "phone": phone, "name": "dry run", "status": "opened"}
        return httpx.Response(200, json={"status": True, "data": [item], "meta": {"total": 1}})
    if request.method == "GET" and "/conversations/" in path:
        conversation = path.rsplit("/", 1)[1]
        data = {"id": conversation, "phone": "0", "status": "opened", "messages": []}
        return httpx.Response(200, json={"status": True, "data": data})
    if path.endswith("/w/message/text"):
        message = {"id": 1, "messageId": "wamid.dry-run", "status": "sent", "timestamp": 0}
        return httpx.Response(200, json={"status": True, "message": message})
    if "/wechat/chat/events/" in path:
        route = _json(request).get("route")
        status = "closed" if route == "closeTicket" else "opened"
        ticket: dict[str, Any] = {
            "ticket_id": DRY_TICKET_ID,
            "conversation_id": path.rsplit("/", 1)[1],
            "status": status,
        }
        return httpx.Response(200, json={"status": True, "message": "dry run", "data": ticket})
    return httpx.Response(200, json={"status": True})


def _json(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
