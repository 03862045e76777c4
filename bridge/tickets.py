"""The provider-neutral ticket action (DESIGN §2.4) and the ticket reference it produces."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class ActionKind(enum.StrEnum):
    CREATE_TICKET = "create_ticket"
    UPDATE_TICKET = "update_ticket"
    CLOSE_TICKET = "close_ticket"
    REOPEN_TICKET = "reopen_ticket"
    ADD_NOTE = "add_note"


class Direction(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    NOTE = "note"


class OnExisting(enum.StrEnum):
    UPDATE = "update"
    SKIP = "skip"
    CREATE = "create"


class OnMissing(enum.StrEnum):
    SKIP = "skip"
    CREATE = "create"
    FAIL = "fail"


@dataclass(frozen=True, kw_only=True)
class Contact:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    identifier: str | None = None

    def is_empty(self) -> bool:
        return not (self.name or self.email or self.phone or self.identifier)


@dataclass(frozen=True, kw_only=True)
class Message:
    text: str
    direction: Direction = Direction.INCOMING


@dataclass(frozen=True, kw_only=True)
class TicketAction:
    """What one rule asks one provider to do, rendered and ready to send."""

    action: ActionKind
    provider: str
    contact: Contact = field(default_factory=Contact)
    subject: str | None = None
    message: Message | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    contact_metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    correlate: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    on_existing: OnExisting = OnExisting.UPDATE
    on_missing: OnMissing = OnMissing.SKIP

    def to_json(self) -> dict[str, Any]:
        """A plain dict for storage and display; empty parts are left out."""
        out: dict[str, Any] = {"action": self.action.value, "provider": self.provider}
        contact = {k: v for k, v in vars(self.contact).items() if v is not None}
        if contact:
            out["contact"] = contact
        if self.subject is not None:
            out["subject"] = self.subject
        if self.message is not None:
            out["message"] = {"text": self.message.text, "direction": self.message.direction.value}
        for key in ("metadata", "contact_metadata", "options"):
            value = getattr(self, key)
            if value:
                out[key] = dict(value)
        if self.tags:
            out["tags"] = list(self.tags)
        if self.correlate is not None:
            out["correlate"] = self.correlate
        out["on_existing"] = self.on_existing.value
        out["on_missing"] = self.on_missing.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TicketAction:
        message = data.get("message")
        return cls(
            action=ActionKind(data["action"]),
            provider=data["provider"],
            contact=Contact(**data.get("contact", {})),
            subject=data.get("subject"),
            message=Message(text=message["text"], direction=Direction(message["direction"]))
            if message
            else None,
            metadata=data.get("metadata", {}),
            contact_metadata=data.get("contact_metadata", {}),
            tags=tuple(data.get("tags", ())),
            correlate=data.get("correlate"),
            options=data.get("options", {}),
            on_existing=OnExisting(data.get("on_existing", "update")),
            on_missing=OnMissing(data.get("on_missing", "skip")),
        )


@dataclass(frozen=True, kw_only=True)
class TicketRef:
    """Where a provider put the ticket: the ids exactly as the provider returned them."""

    ticket_id: str | None = None
    contact_id: str | None = None
    conversation_id: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TicketRef:
        return cls(**{k: (str(v) if v is not None else None) for k, v in data.items()})


def sent_elsewhere(original: TicketAction, *, to: str, why: str | None) -> TicketAction:
    """`original` for provider `to` instead: without the first provider's options, creating
    the ticket there if it is missing (a close of a ticket it never had is skipped), and with
    a note saying `why` when given."""
    message = original.message
    if why is not None:
        note = f"[ticketbridge] {why}"
        message = (
            Message(text=f"{message.text}\n\n{note}", direction=message.direction)
            if message
            else Message(text=note, direction=Direction.NOTE)
        )
    closing = original.action is ActionKind.CLOSE_TICKET
    return replace(
        original,
        provider=to,
        message=message,
        options={},
        on_missing=OnMissing.SKIP if closing else OnMissing.CREATE,
    )
