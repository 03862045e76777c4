"""Storm folding (a rule's `fold: {window, max}`): a burst of events for one ticket becomes the
first event's delivery and one note listing the rest, instead of one call each.

Decided at routing, with the key (provider, correlate) locked, from the key's latest delivery
of the same rule (`Latest`):
- no open window (none, or its `fold_until` is not after this event's arrival): the delivery
  goes as it is and opens a window, until its arrival + `window`;
- an open window whose latest delivery is a note not yet sent and with room: the event joins
  that note, and its own delivery is stored `skipped`, naming the note;
- any other open window (its first delivery, or a note already sent): the event starts a
  note, held until the window closes.
A note that is full (`max` events) goes at once and closes the window: the next event opens a
new one. A note waits for the deliveries before it on its key, as every delivery does.

A note is an `add_note` whose text lists its events: when each arrived and what changed in
the ticket it rendered (subject, message, tags, metadata) since the one before.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.config.model import Fold
from bridge.tickets import ActionKind, Direction, Message, OnExisting, OnMissing, TicketAction

MAX_SHOWN = 200  # characters of one changed value in a note's list


class Step(enum.Enum):
    OPEN = "open"  # the delivery goes as it is and opens a window
    START_NOTE = "start_note"  # the delivery becomes a note of this one event
    JOIN = "join"  # the event joins the latest note; its own delivery is skipped


@dataclass(frozen=True, kw_only=True)
class Latest:
    """The key's latest delivery of the rule, as far as folding needs it."""

    id: str
    queued_unsent: bool  # pending or waiting, never attempted
    fold_until: float
    folded: Mapping[str, Any] | None  # a note's list (see `note`); None for a window's first
    action: TicketAction | None


def step(latest: Latest | None, *, arrived: float, fold: Fold) -> Step:
    if latest is None or latest.fold_until <= arrived:
        return Step.OPEN
    note_with_room = latest.folded is not None and len(latest.folded["events"]) < fold.max
    return Step.JOIN if note_with_room and latest.queued_unsent else Step.START_NOTE


def started(
    latest: Latest, action: TicketAction, *, event_id: str, arrived: float
) -> dict[str, Any]:
    """A new note's list: this one event, compared with what came before it."""
    if latest.folded is not None:
        base = latest.folded["events"][-1]["fields"]
    else:
        base = fields(latest.action) if latest.action is not None else {}
    return {"base": base, "events": [_entry(action, event_id=event_id, arrived=arrived)]}


def joined(
    folded: Mapping[str, Any], action: TicketAction, *, event_id: str, arrived: float
) -> dict[str, Any]:
    entry = _entry(action, event_id=event_id, arrived=arrived)
    return {"base": folded["base"], "events": [*folded["events"], entry]}


def note(folded: Mapping[str, Any], latest_action: TicketAction) -> TicketAction:
    """The note's action: an add_note on the events' ticket listing them; the latest event's
    contact, so that a missing ticket can be created from it."""
    events = folded["events"]
    first, last = _time(events[0]["received_at"]), _time(events[-1]["received_at"])
    span = f"at {first}" if first == last else f"from {first} to {last}"
    count = f"{len(events)} more event{'s' if len(events) != 1 else ''}"
    lines = [f"{count} for this ticket, folded into one note, {span} UTC:"]
    before = folded["base"]
    for event in events:
        changes = _changes(before, event["fields"]) or "nothing changed"
        lines.append(f"- {_time(event['received_at'])} {event['event_id']}: {changes}")
        before = event["fields"]
    creates = latest_action.action is ActionKind.CREATE_TICKET
    return TicketAction(
        action=ActionKind.ADD_NOTE,
        provider=latest_action.provider,
        contact=latest_action.contact,
        message=Message(text="\n".join(lines), direction=Direction.NOTE),
        correlate=latest_action.correlate,
        on_existing=OnExisting.UPDATE,
        on_missing=OnMissing.CREATE if creates else latest_action.on_missing,
    )


def folded_event_ids(folded: Mapping[str, Any]) -> list[str]:
    return [event["event_id"] for event in folded["events"]]


def fields(action: TicketAction) -> dict[str, str]:
    """What of a rendered ticket a reader compares: subject, message, tags, metadata."""
    out: dict[str, str] = {}
    if action.subject is not None:
        out["subject"] = action.subject
    if action.message is not None:
        out["message"] = action.message.text
    if action.tags:
        out["tags"] = ", ".join(action.tags)
    for key, values in (
        ("metadata", action.metadata),
        ("contact_metadata", action.contact_metadata),
    ):
        for name, value in values.items():
            out[f"{key}.{name}"] = str(value)
    return out


def _entry(action: TicketAction, *, event_id: str, arrived: float) -> dict[str, Any]:
    return {"event_id": event_id, "received_at": arrived, "fields": fields(action)}


def _changes(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    parts = []
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name == "message" and new is not None:
            parts.append(f"message: {_shown(new)}")
        elif old is None:
            parts.append(f"{name}: {_shown(new)}")
        elif new is None:
            parts.append(f"{name}: removed")
        else:
            parts.append(f"{name}: {_shown(old)} -> {_shown(new)}")
    return "; ".join(parts)


def _shown(value: str | None) -> str:
    text = " ".join((value or "").split())
    return f"'{text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + '…'}'"


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")
