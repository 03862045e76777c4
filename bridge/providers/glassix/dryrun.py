"""What `ticketbridge try` has the Glassix API answer instead of the network: a workspace
that has never seen the customer, in Glassix's answer shapes.

`token/get` grants a stub token; `tickets/create` answers the ticket it made, with a made-up
id (STUB_TICKET_ID), and the calls after it (send, addnote, addtags, setfields, setstate, get)
act on that ticket. Glassix cannot look a ticket up by contact, so any other ticket id is one
the workspace does not have: Glassix's 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bridge.providers.dryrun import sent_json, sent_object

STUB_TICKET_ID = 1
STUB_TOKEN = "stub-access-token"


def _parts(request: httpx.Request) -> list[str]:
    """The path below the API root (base_url), split: ["tickets", "send", "1"]."""
    parts = request.url.path.strip("/").split("/")
    starts = [i for i, part in enumerate(parts) if part in ("token", "tickets")]
    return parts[starts[-1] :] if starts else parts


def _created(earlier: Sequence[httpx.Request]) -> dict[str, Any] | None:
    """The ticket an earlier request of this delivery created, as Glassix shows it."""
    for request in earlier:
        if request.method == "POST" and _parts(request) == ["tickets", "create"]:
            return _ticket(sent_object(request))
    return None


def _ticket(body: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in body.items() if k.startswith("field") or k == "details"}
    return {
        "id": STUB_TICKET_ID,
        "state": body.get("state", "Open"),
        "participants": body.get("participants") or [],
        "tags": list(body.get("tags") or []),
        "uniqueArgument": body.get("uniqueArgument"),
        "transactions": list(body.get("transactions") or []),
        **fields,
    }


def dry_run_answer(request: httpx.Request, *, earlier: Sequence[httpx.Request]) -> httpx.Response:
    method, parts = request.method, _parts(request)
    if method == "POST" and parts == ["token", "get"]:
        grant = {"access_token": STUB_TOKEN, "token_type": "bearer", "expires_in": 10800}
        return httpx.Response(200, json=grant)
    if method == "POST" and parts == ["tickets", "create"]:
        return httpx.Response(200, json=_ticket(sent_object(request)))
    ticket = _created(earlier)
    if len(parts) != 3 or parts[0] != "tickets":
        return httpx.Response(
            404, json={"Message": f"No HTTP resource matches {request.url.path}."}
        )
    if ticket is None or parts[2] != str(STUB_TICKET_ID):
        return httpx.Response(404, json={"Message": f"Ticket {parts[2]} was not found."})
    verb, body = parts[1], sent_object(request)
    if verb == "send":
        text = body.get("text") or body.get("html")
        return httpx.Response(200, json={"id": 1, "type": "Message", "text": text})
    if verb == "addnote":
        return httpx.Response(200, json={"id": 1, "type": "Note"})
    if verb == "addtags":
        tags = sent_json(request)
        added = [t for t in tags if t not in ticket["tags"]] if isinstance(tags, list) else []
        return httpx.Response(200, json=ticket["tags"] + added)
    if verb == "setstate":
        state = request.url.params.get("nextState")
        return httpx.Response(200, json={"message": f"Ticket state changed to {state}"})
    if verb == "setfields":
        return httpx.Response(200, json=None)
    return httpx.Response(200, json=ticket)
