"""What `ticketbridge try` has the Chatwoot / Cloud Chat API answer instead of the network: a
helpdesk that has never seen the customer, in the Application API's answer shapes.

Contact searches find nobody (only what an earlier request of the same delivery created), so a
create shows the search by each of the contact's keys, then `POST /contacts` (chatwoot) and
`POST /conversations`, as a first delivery sends them. A create answers the record it made,
with made-up ids (STUB_CONTACT_ID, STUB_CONVERSATION_ID); Cloud Chat's create makes a contact
from the one key it was given, with no name, as the fake helpdesk of the tests does. A call on
a contact or conversation that no earlier request created answers 404, as for a stranger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bridge.providers.dryrun import sent_object

STUB_CONTACT_ID = 1
STUB_CONVERSATION_ID = 1
STUB_MESSAGE_ID = 1
STUB_SOURCE_ID = "stub-source-id"
NOT_FOUND = {"error": "Resource could not be found"}
#: Cloud Chat's create names its contact with one of these (DESIGN §2.6)
CLOUDCHAT_KEYS = ("contact_identifier", "contact_email", "contact_phone_number")
_FIELDS = ("name", "email", "phone_number", "identifier")


def _path(request: httpx.Request) -> str:
    """The path below /api/v1/accounts/{id}/, e.g. `contacts/search`."""
    return request.url.path.split("/api/v1/accounts/", 1)[-1].partition("/")[2]


def _contact(fields: Mapping[str, Any], inbox_id: int) -> dict[str, Any]:
    contact: dict[str, Any] = {"id": STUB_CONTACT_ID}
    contact.update({key: fields.get(key) or None for key in _FIELDS})
    contact["name"] = fields.get("name") or ""
    contact["custom_attributes"] = dict(fields.get("custom_attributes") or {})
    contact["contact_inboxes"] = [{"source_id": STUB_SOURCE_ID, "inbox": {"id": inbox_id}}]
    return contact


def _updated(contact: dict[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """PUT /contacts/{id}: the fields sent replace, custom_attributes merge (as Chatwoot)."""
    attributes = {**contact["custom_attributes"], **(body.get("custom_attributes") or {})}
    fields = {key: body[key] for key in _FIELDS if key in body}
    return {**contact, **fields, "custom_attributes": attributes}


def _cloudchat_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    for key in CLOUDCHAT_KEYS:
        if body.get(key):
            return {key.removeprefix("contact_"): body[key]}
    return {}


def _state(
    earlier: Sequence[httpx.Request], inbox_id: int
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The contact and the conversation the earlier requests of this delivery created."""
    contact: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    for request in earlier:
        path, body = _path(request), sent_object(request)
        if request.method == "POST" and path == "contacts":
            contact = _contact(body, inbox_id)
        elif request.method == "PUT" and contact and path == f"contacts/{STUB_CONTACT_ID}":
            contact = _updated(contact, body)
        elif request.method == "POST" and path == "conversations":
            fields = _cloudchat_fields(body)
            if fields:
                contact = _contact(fields, inbox_id)
            conversation = _conversation(body, inbox_id)
    return contact, conversation


def _conversation(body: Mapping[str, Any], inbox_id: int) -> dict[str, Any]:
    return {
        "id": STUB_CONVERSATION_ID,
        "inbox_id": body.get("inbox_id", inbox_id),
        "status": body.get("status", "open"),
        "custom_attributes": dict(body.get("custom_attributes") or {}),
        "additional_attributes": dict(body.get("additional_attributes") or {}),
        "labels": [],
    }


def _with_sender(conversation: dict[str, Any], contact: dict[str, Any] | None) -> dict[str, Any]:
    sender = {k: v for k, v in (contact or {}).items() if k != "contact_inboxes"}
    return {**conversation, "meta": {"sender": sender}} if sender else conversation


def _found(q: str, contact: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fuzzy search of the fake helpdesk: `q` in any of the contact's fields."""
    if contact is None or not q:
        return []
    values = (str(contact.get(key) or "").lower() for key in _FIELDS)
    return [contact] if any(q.lower() in value for value in values) else []


def dry_run_answer(
    request: httpx.Request, *, earlier: Sequence[httpx.Request], inbox_id: int
) -> httpx.Response:
    contact, conversation = _state(earlier, inbox_id)
    method, path, body = request.method, _path(request), sent_object(request)
    contact_path = f"contacts/{STUB_CONTACT_ID}"
    conversation_path = f"conversations/{STUB_CONVERSATION_ID}"
    if method == "GET" and path == "contacts/search":
        found = _found(request.url.params.get("q", ""), contact)
        return httpx.Response(200, json={"meta": {"count": len(found)}, "payload": found})
    if method == "POST" and path == "contacts":
        created = _contact(body, inbox_id)
        contact_inbox = {"source_id": STUB_SOURCE_ID, "inbox": {"id": body.get("inbox_id")}}
        return httpx.Response(
            200, json={"payload": {"contact": created, "contact_inbox": contact_inbox}}
        )
    if method == "POST" and path == "conversations":
        fields = _cloudchat_fields(body)
        sender = _contact(fields, inbox_id) if fields else contact
        return httpx.Response(200, json=_with_sender(_conversation(body, inbox_id), sender))
    if contact is not None and path.startswith(contact_path):
        rest = path.removeprefix(contact_path)
        if method == "PUT" and rest == "":
            return httpx.Response(200, json={"payload": _updated(contact, body)})
        if method == "POST" and rest == "/contact_inboxes":
            inbox = {"id": body.get("inbox_id")}
            return httpx.Response(200, json={"source_id": STUB_SOURCE_ID, "inbox": inbox})
        if method == "GET" and rest == "/conversations":
            mine = [_with_sender(conversation, contact)] if conversation else []
            return httpx.Response(200, json={"payload": mine})
    if conversation is not None and path.startswith(conversation_path):
        return _on_conversation(method, path.removeprefix(conversation_path), body, conversation)
    return httpx.Response(404, json=NOT_FOUND)


def _on_conversation(
    method: str, rest: str, body: Mapping[str, Any], conversation: dict[str, Any]
) -> httpx.Response:
    """The calls on the conversation this delivery created, answered as Chatwoot does."""
    if method == "GET" and rest == "":
        return httpx.Response(200, json=conversation)
    if method == "POST" and rest == "/labels":
        return httpx.Response(200, json={"payload": list(body.get("labels") or [])})
    if method == "POST" and rest == "/custom_attributes":
        attributes = dict(body.get("custom_attributes") or {})
        return httpx.Response(200, json={"custom_attributes": attributes})
    if method == "POST" and rest == "/toggle_status":
        payload = {
            "success": True,
            "current_status": body.get("status"),
            "conversation_id": conversation["id"],
        }
        return httpx.Response(200, json={"meta": {}, "payload": payload})
    if method == "POST" and rest == "/messages":
        message = {
            "id": STUB_MESSAGE_ID,
            "content": body.get("content"),
            "message_type": body.get("message_type", "outgoing"),
            "private": bool(body.get("private", False)),
        }
        return httpx.Response(200, json=message)
    if method == "POST" and rest == "/assignments":
        return httpx.Response(200, json={"id": body.get("assignee_id", body.get("team_id"))})
    return httpx.Response(404, json=NOT_FOUND)
