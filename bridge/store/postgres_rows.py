"""Records to SQL parameters and rows back to records, for the PostgreSQL store.

Rows arrive as dicts (psycopg's dict_row). Records become parameters exactly as for SQLite
(the same functions, re-exported from sqlite_rows: they hold no SQLite in them), so both
backends store the same JSON text and refuse the same records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.store.base import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EventStatus,
    HoldState,
    ProviderHold,
    StoredEvent,
)
from bridge.store.sqlite_rows import (
    attempt_params,
    delivery_params,
    dumps,
    dumps_optional,
    event_params,
)

__all__ = [
    "ATTEMPT_COLUMNS",
    "DELIVERY_COLUMNS",
    "EVENT_COLUMNS",
    "FINAL",
    "QUEUED",
    "UNFINISHED",
    "attempt_from_row",
    "attempt_params",
    "delivery_from_row",
    "delivery_params",
    "dumps",
    "dumps_optional",
    "event_from_row",
    "event_params",
    "hold_from_row",
    "loads_optional",
]

Row = Mapping[str, Any]


def sql_list(statuses: Sequence[DeliveryStatus]) -> str:
    """A literal `('a', 'b')` for `status IN ...` (enum values only, never user input)."""
    return "(" + ", ".join(f"'{status.value}'" for status in statuses) + ")"


FINAL = sql_list([status for status in DeliveryStatus if status.is_final])
UNFINISHED = sql_list([DeliveryStatus.PENDING, DeliveryStatus.WAITING, DeliveryStatus.IN_FLIGHT])
QUEUED = sql_list([DeliveryStatus.PENDING, DeliveryStatus.WAITING])


def key_order(alias: str) -> str:
    """The place of delivery `alias` in its (provider, correlate) key's queue: by its event's
    arrival, then by creation. Not by creation alone: workers in several processes route at
    once, and one may store a later webhook's deliveries before another stores an earlier's."""
    return f"({alias}.event_received_at, {alias}.event_id, {alias}.seq)"


# Read from `events AS ev`.
EVENT_COLUMNS = (
    "ev.id, ev.source, ev.received_at, ev.headers, ev.query, ev.payload, ev.content_type, "
    "ev.dedupe_key, ev.status, ev.routed_at, ev.matched_rules, ev.trace, "
    "ev.raw IS NOT NULL AS has_raw"
)

# Read from `deliveries AS d`. A waiting delivery's blocked_by is the one just before it in
# its key's queue, looked up when read (it changes as the key's deliveries finish).
DELIVERY_COLUMNS = f"""
d.seq, d.id, d.event_id, d.rule, d.provider, d.action, d.correlate, d.status, d.attempts,
d.tries, d.created_at, d.queued_at, d.next_attempt_at, d.last_error, d.ticket_ref,
CASE WHEN d.status = '{DeliveryStatus.WAITING.value}' THEN (
    SELECT e.id FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND {key_order("e")} < {key_order("d")} AND e.status IN {UNFINISHED}
    ORDER BY e.event_received_at DESC, e.event_id DESC, e.seq DESC LIMIT 1)
ELSE d.blocked_by END AS blocked_by
"""
ATTEMPT_COLUMNS = (
    "delivery_id, number, started_at, duration, outcome, status_code, error, response_excerpt"
)


def event_from_row(row: Row) -> StoredEvent:
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


def delivery_from_row(row: Row, attempt_log: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        rule=row["rule"],
        provider=row["provider"],
        action=loads_optional(row["action"]),
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
    )


def hold_from_row(row: Row) -> ProviderHold:
    return ProviderHold(
        provider=row["provider"],
        state=HoldState(row["state"]),
        since=row["since"],
        until=row["until"],
        reason=row["reason"],
    )


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        delivery_id=row["delivery_id"],
        number=row["number"],
        started_at=row["started_at"],
        duration=row["duration"],
        outcome=row["outcome"],
        status_code=row["status_code"],
        error=row["error"],
        response_excerpt=row["response_excerpt"],
    )


def loads_optional(text: str | None) -> Any:
    return None if text is None else json.loads(text)
