"""Records to SQL parameters and rows back to records: the same for both backends, so both
store the same JSON text and refuse the same records. A row is anything read by column name
(sqlite3.Row, psycopg's dict_row); the columns are named in queries.sql.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from bridge.exceptions import StoreError
from bridge.folding import folded_event_ids
from bridge.records import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EventStatus,
    HoldState,
    NewDelivery,
    NewEvent,
    ProviderHold,
    StoredEvent,
)
from bridge.tickets import TicketAction


class ReadRow(Protocol):
    """A row read by column name: sqlite3.Row, a psycopg dict row."""

    def __getitem__(self, key: str, /) -> Any: ...


def dumps(value: Any) -> str:
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store a value that is not JSON: {exc}") from exc


def dumps_optional(value: Any | None) -> str | None:
    return None if value is None else dumps(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# one encoder for every value stored: json.dumps with options builds a new one per call
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)
_ATTEMPT_FIELDS = tuple(field.name for field in dataclasses.fields(Attempt))


def event_params(event: NewEvent) -> dict[str, Any]:
    # the body once: a raw body that is the payload's own text (a JSON body) is not stored again
    raw_is_payload = event.raw is not None and event.raw == event.payload.encode("utf-8")
    return {
        "id": event.id,
        "source": event.source,
        "received_at": event.received_at,
        "headers": dumps(event.headers),
        "query": dumps(event.query),
        "payload": event.payload,
        "raw": None if event.raw is None or raw_is_payload else bytes(event.raw),
        "raw_is_payload": raw_is_payload,
        "content_type": event.content_type,
        "dedupe_key": event.dedupe_key,
        "status": EventStatus.ACCEPTED.value,
    }


def delivery_params(delivery: NewDelivery, *, now: float) -> dict[str, Any]:
    if delivery.status is DeliveryStatus.IN_FLIGHT:
        raise StoreError(f"delivery {delivery.id}: a new delivery cannot be in flight")
    queued = delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.WAITING)
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "rule": delivery.rule,
        "provider": delivery.provider,
        "action": action_text(delivery.action),
        "correlate": delivery.correlate,
        "status": delivery.status.value,
        "created_at": now,
        "next_attempt_at": now if queued else None,
        "last_error": delivery.last_error,
        "fold_until": None,
        "folded": None,
        "folded_into": None,
    }


def attempt_params(attempt: Attempt, *, delivery_id: str) -> dict[str, Any]:
    # field by field: dataclasses.asdict deep-copies every value, ten times the cost (a
    # third of the writer thread's Python when finishing attempts, bench/micro)
    params = {name: getattr(attempt, name) for name in _ATTEMPT_FIELDS}
    params["delivery_id"] = delivery_id
    return params


def event_from_row(row: ReadRow) -> StoredEvent:
    return StoredEvent(
        id=row["id"],
        source=row["source"],
        received_at=row["received_at"],
        headers=json.loads(row["headers"]),
        query=json.loads(row["query"]),
        payload=row["payload"],
        content_type=row["content_type"],
        dedupe_key=row["dedupe_key"],
        status=EventStatus(row["status"]),
        routed_at=row["routed_at"],
        matched_rules=tuple(json.loads(row["matched_rules"])),
        trace=tuple(json.loads(row["trace"])),
        has_raw=bool(row["has_raw"]),
    )


def delivery_from_row(row: ReadRow, attempt_log: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        rule=row["rule"],
        provider=row["provider"],
        action=action_from_text(row["action"]),
        correlate=row["correlate"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        tries=row["tries"],
        created_at=row["created_at"],
        queued_at=row["queued_at"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        ticket_ref=loads_optional(row["ticket_ref"]),
        attempt_log=tuple(attempt_log),
        blocked_by=row["blocked_by"],
        moved_from=row["moved_from"],
        folded=tuple(folded_event_ids(json.loads(row["folded"]))) if row["folded"] else (),
        folded_into=row["folded_into"],
    )


def hold_from_row(row: ReadRow) -> ProviderHold:
    return ProviderHold(
        provider=row["provider"],
        state=HoldState(row["state"]),
        since=row["since"],
        until=row["until"],
        reason=row["reason"],
    )


def attempt_from_row(row: ReadRow) -> Attempt:
    return Attempt(**{field.name: row[field.name] for field in dataclasses.fields(Attempt)})


def action_text(action: TicketAction | None) -> str | None:
    """A delivery's action as stored (TicketAction.to_json as JSON text)."""
    return None if action is None else dumps(action.to_json())


def action_from_text(text: str | None) -> TicketAction | None:
    return None if text is None else TicketAction.from_json(json.loads(text))


def loads_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)
