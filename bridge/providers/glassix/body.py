"""Glassix request bodies from a neutral ticket action (DESIGN §2.6): pure functions.

contact.phone    -> participant identifier, digits only (phone channels)
contact.email    -> participant identifier (Mail), else the participant name
contact.name     -> participant name
contact.identifier -> participant identifier (other channels); uniqueArgument if no correlate
subject          -> field1
metadata         -> field2..field10, as the provider's `fields` maps them
tags             -> tags (create) / addtags
message incoming -> transactions[] from the client (create)
options          -> protocol (overrides the provider's), culture, details
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge import phones
from bridge.tickets import TicketAction

PROTOCOLS = (
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
)
PHONE_PROTOCOLS = frozenset({"SMS", "WhatsApp", "WebViaSMS", "PhoneCall"})
FIELDS = tuple(f"field{n}" for n in range(2, 11))  # field1 is the subject
OPTIONS = ("protocol", "culture", "details")
DEFAULT_PROTOCOL = "WhatsApp"


@dataclass(frozen=True, kw_only=True)
class GlassixSettings:
    workspace: str
    api_key: str
    api_secret: str
    user_name: str
    base_url: str
    protocol: str = DEFAULT_PROTOCOL
    culture: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # metadata key -> field2..field10


class BodyError(ValueError):
    """The action cannot be said in Glassix's terms (a permanent outcome)."""


def contact_key(protocol: str) -> str:
    """The contact field that identifies the customer on `protocol`."""
    if protocol in PHONE_PROTOCOLS:
        return "phone"
    return "email" if protocol == "Mail" else "identifier"


def protocol_of(action: TicketAction, settings: GlassixSettings) -> str:
    protocol = str(action.options.get("protocol") or settings.protocol)
    if protocol not in PROTOCOLS:
        raise BodyError(f"unknown Glassix protocol {protocol!r} (one of: {', '.join(PROTOCOLS)})")
    return protocol


def unknown_options(options: Mapping[str, Any]) -> list[str]:
    return sorted(str(key) for key in options if key not in OPTIONS)


def participant(action: TicketAction, protocol: str) -> dict[str, Any]:
    contact = action.contact
    key = contact_key(protocol)
    raw = getattr(contact, key)
    identifier = phones.digits(raw) if key == "phone" else raw
    if not identifier:
        raise BodyError(f"a {protocol} ticket needs contact.{key} (the participant identifier)")
    out: dict[str, Any] = {"type": "Client", "protocolType": protocol, "identifier": identifier}
    name = contact.name if protocol == "Mail" else (contact.name or contact.email)
    if name:
        out["name"] = name
    if protocol == "Mail":
        out["subProtocolType"] = "MailTo"
    return out


def create_body(
    action: TicketAction, settings: GlassixSettings, *, event_id: str, with_message: bool
) -> dict[str, Any]:
    """POST /tickets/create; `with_message` puts the message in as the client's transaction."""
    if unknown := unknown_options(action.options):
        raise BodyError(
            f"unknown Glassix option(s): {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    protocol = protocol_of(action, settings)
    client = participant(action, protocol)
    body: dict[str, Any] = {"participants": [client]}
    body.update(fields_body(action, settings))
    culture = action.options.get("culture") or settings.culture
    if culture:
        body["culture"] = str(culture)
    if action.tags:
        body["tags"] = list(action.tags)
    body["uniqueArgument"] = action.correlate or action.contact.identifier or event_id
    if with_message and action.message is not None:
        body["transactions"] = [
            {
                "fromParticipant": {"identifier": client["identifier"], "type": "Client"},
                "text": action.message.text,
                "type": "Message",
            }
        ]
    return body


def fields_body(action: TicketAction, settings: GlassixSettings) -> dict[str, Any]:
    """field1 (subject), the mapped metadata fields and details: the setfields body."""
    body: dict[str, Any] = {}
    if action.subject:
        body["field1"] = action.subject
    for key, value in action.metadata.items():
        target = settings.fields.get(key)
        if target is None:
            raise BodyError(
                f"metadata key {key!r} has no Glassix field: map it in the provider's "
                f"fields ({key}: field2..field10)"
            )
        body[target] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    details = action.options.get("details")
    if details:
        if not isinstance(details, Mapping):
            raise BodyError("options.details must be a mapping ({source: {title, uri}, ...})")
        body["details"] = dict(details)
    return body
