"""What `ticketbridge try` has Vambe's public API answer instead of the network: an account
that has never seen the customer, in Vambe's answer shapes.

`ticket/open` creates the contact and its active ticket and answers its id (STUB_CONTACT_ID,
made up). Everything that addresses a contact (ticket metadata by contact id or number, close,
info, contact metadata) finds only the one an earlier request of the same delivery opened, and
answers a stranger with Vambe's 404, so an update of an unknown customer goes where a first
delivery goes: `on_missing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from bridge.providers.dryrun import sent_object

STUB_CONTACT_ID = "00000000-0000-4000-8000-00000000d7e1"


@dataclass(frozen=True, kw_only=True)
class _Opened:
    phone: str
    name: str | None
    email: str | None
    active: bool


def _parts(request: httpx.Request) -> list[str]:
    """The path below /api/public, split: ["ticket", "open", "web-whatsapp", "qr-main"]."""
    return request.url.path.partition("/api/public/")[2].strip("/").split("/")


def _not_found(message: str) -> httpx.Response:
    return httpx.Response(404, json={"statusCode": 404, "message": message})


def _opened(earlier: Sequence[httpx.Request]) -> _Opened | None:
    """The contact an earlier request of this delivery opened a ticket for, if any."""
    contact: _Opened | None = None
    for request in earlier:
        parts, body = _parts(request), sent_object(request)
        if request.method == "POST" and parts[:2] == ["ticket", "open"]:
            contact = _Opened(
                phone=str(body.get("to_phone_number") or ""),
                name=body.get("contact_name"),
                email=body.get("email"),
                active=True,
            )
        elif contact and request.method == "POST" and parts[:3] == ["ticket", "close", "contact"]:
            contact = replace(contact, active=False)
    return contact


def _addresses(body: dict[str, Any], contact: _Opened) -> bool:
    return body.get("ai_contact_id") == STUB_CONTACT_ID or (
        bool(contact.phone) and body.get("contact_number") == contact.phone
    )


def dry_run_answer(request: httpx.Request, *, earlier: Sequence[httpx.Request]) -> httpx.Response:
    method, parts, body = request.method, _parts(request), sent_object(request)
    contact = _opened(earlier)
    if method == "GET" and parts == ["pipeline"]:
        return httpx.Response(200, json=[])
    if method == "POST" and parts[:2] == ["ticket", "open"]:
        return httpx.Response(200, json={"aiContactId": STUB_CONTACT_ID, "status": "ok"})
    if method == "POST" and parts == ["ticket", "metadata"]:
        if contact is None or not _addresses(body, contact):
            return _not_found("Active ticket not found for contact")
        if not contact.active and body.get("allow_closed_ticket") is not True:
            return _not_found("Active ticket not found for contact")
        return httpx.Response(200, json={"status": "ok"})
    if method == "POST" and parts[:3] == ["ticket", "close", "contact"]:
        if not (contact and contact.active and parts[3:] == [STUB_CONTACT_ID]):
            return _not_found("Active ticket not found for contact")
        return httpx.Response(200, json={"status": "ok"})
    if method == "GET" and parts[::2] == ["contact", "info"]:
        if contact is None or parts[1] != STUB_CONTACT_ID:
            return _not_found("Contact not found")
        info = {
            "id": STUB_CONTACT_ID,
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "platform": "whatsapp",
            "chat_status": "UNATTENDED" if contact.active else "CLOSED",
        }
        return httpx.Response(200, json=info)
    if method == "POST" and parts[::2] == ["contact", "update-metadata"]:
        if contact is None or parts[1] != STUB_CONTACT_ID:
            return _not_found("Contact not found")
        return httpx.Response(200, json={"status": "ok"})
    return _not_found(f"Cannot {method} {request.url.path}")
