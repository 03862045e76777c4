"""How a provider-neutral ticket action becomes Vambe's JSON (DESIGN §2.6, the vambe column).

    contact.phone        -> to_phone_number (E.164)     contact.email / name -> email / contact_name
    contact.identifier   -> integration_data.external_id
    subject              -> ticket_metadata.subject     metadata -> ticket_metadata (strings)
    message incoming     -> ticket_metadata.<message_field>
    message outgoing     -> message.content (options.template_id -> message.templateId),
                            ai_generated false
    contact_metadata     -> contact_metadata

Pure functions: an action that cannot be sent raises UnsendableAction, which the adapter turns
into a permanent outcome without calling the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bridge import phones
from bridge.providers.vambe.settings import VambeSettings
from bridge.tickets import Direction, TicketAction


class UnsendableAction(Exception):
    """The rendered action lacks what Vambe requires (a phone, a stage)."""


def phone_number(action: TicketAction) -> str | None:
    """contact.phone in E.164 ("+56 9 1234-5678" -> "+56912345678"; bridge.phones decides
    what is a phone number), or None when the action has none."""
    if action.contact.phone is None:
        return None
    phone = phones.for_provider(action.contact.phone)
    if phone is None:
        raise UnsendableAction(
            f"contact.phone {action.contact.phone!r} is not a phone number "
            "(E.164 expected, e.g. +56912345678; the e164 filter makes one)"
        )
    return phone


def stage_id(action: TicketAction, settings: VambeSettings) -> str:
    value = _string(action.options.get("stage_id")) or settings.stage_id
    if not value:
        raise UnsendableAction("no stage_id: set it on the provider or in the rule's options")
    return value


def allow_closed_ticket(action: TicketAction, settings: VambeSettings) -> bool:
    value = action.options.get("allow_closed_ticket", settings.allow_closed_ticket)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


def ticket_metadata(action: TicketAction, settings: VambeSettings) -> dict[str, str]:
    """metadata, subject and the message text (any direction: on an update an outgoing
    message cannot be sent again, so it is kept on the ticket), every value a string."""
    out = {str(key): _string(value) for key, value in action.metadata.items()}
    if action.subject is not None:
        out["subject"] = action.subject
    if action.message is not None:
        out[settings.message_field] = action.message.text
    return out


def create_body(action: TicketAction, settings: VambeSettings, *, phone: str) -> dict[str, Any]:
    """The body of POST /api/public/ticket/open/{channel}/{phoneId}."""
    body: dict[str, Any] = {"to_phone_number": phone, "stage_id": stage_id(action, settings)}
    if action.contact.name is not None:
        body["contact_name"] = action.contact.name
    if action.contact.email is not None:
        body["email"] = action.contact.email
    if action.contact_metadata:
        body["contact_metadata"] = dict(action.contact_metadata)
    metadata = {str(k): _string(v) for k, v in action.metadata.items()}
    if action.subject is not None:
        metadata["subject"] = action.subject
    message = action.message
    if message is not None and message.direction is not Direction.OUTGOING:
        metadata[settings.message_field] = message.text
    if metadata:
        body["ticket_metadata"] = metadata
    if action.contact.identifier is not None:
        body["integration_data"] = {"external_id": action.contact.identifier}
    template = _string(action.options.get("template_id"))
    if template:
        body["message"] = {"templateId": template, "ai_generated": False}
    elif message is not None and message.direction is Direction.OUTGOING:
        body["message"] = {"content": message.text, "ai_generated": False}
    return body


def metadata_body(
    target: Mapping[str, str], metadata: Mapping[str, str], *, allow_closed: bool
) -> dict[str, Any]:
    """The body of POST /api/public/ticket/metadata; `target` is exactly one identifier."""
    body: dict[str, Any] = {**target, "metadata": dict(metadata)}
    if allow_closed:
        body["allow_closed_ticket"] = True
    return body


def _string(value: Any) -> str:
    """Vambe's ticket metadata holds strings: numbers and booleans as JSON writes them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
