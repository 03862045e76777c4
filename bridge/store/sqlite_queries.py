"""What the receiver and the worker ask of SQLite: ingest, routing, claiming and finishing
deliveries (the reading and steering of operators is in sqlite_admin).

Plain functions of an open connection, with the SQL beside them. Writes run on the writer
thread inside its transaction (bridge.store.sqlite_writer); reads run on the read connection
inside a read transaction, so that each sees one snapshot. sqlite3 errors pass through here;
the caller maps them.
"""

from __future__ import annotations

import dataclasses
import secrets
import sqlite3
from collections.abc import Sequence
from typing import Any

from bridge.exceptions import StoreError
from bridge.store.base import (
    Claim,
    DeliveryStatus,
    EventStatus,
    IngestResult,
    StoredEvent,
)
from bridge.store.sqlite_rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    QUEUED,
    UNFINISHED,
    delivery_from_row,
    event_from_row,
    loads_optional,
)

# -- the receiver ------------------------------------------------------------------------

_FIND_DEDUPE = "SELECT event_id FROM dedupe WHERE source = ? AND key = ? AND created_at > ?"
_INSERT_EVENT = """
INSERT INTO events (id, source, received_at, headers, query, payload, raw, content_type,
                    dedupe_key, status)
VALUES (:id, :source, :received_at, :headers, :query, :payload, :raw, :content_type,
        :dedupe_key, :status)
"""
_UPSERT_DEDUPE = """
INSERT INTO dedupe (source, key, event_id, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (source, key) DO UPDATE SET event_id = excluded.event_id,
                                        created_at = excluded.created_at
"""


def ingest(
    connection: sqlite3.Connection, events: Sequence[dict[str, Any]], *, window: float, now: float
) -> list[IngestResult]:
    results = []
    for event in events:
        key = event["dedupe_key"]
        if key is not None:
            since = now - window
            first = connection.execute(_FIND_DEDUPE, (event["source"], key, since)).fetchone()
            if first is not None:
                results.append(IngestResult(event_id=first[0], duplicate=True))
                continue
        connection.execute(_INSERT_EVENT, event)
        if key is not None:
            connection.execute(_UPSERT_DEDUPE, (event["source"], key, event["id"], now))
        results.append(IngestResult(event_id=event["id"], duplicate=False))
    return results


# -- routing -----------------------------------------------------------------------------

_UNROUTED = f"""
SELECT {EVENT_COLUMNS} FROM events
WHERE routed_at IS NULL AND (route_lease_until IS NULL OR route_lease_until < :now)
ORDER BY received_at, id LIMIT :limit
"""
_INSERT_DELIVERY = """
INSERT INTO deliveries (id, event_id, rule, provider, action, correlate, status, created_at,
                        queued_at, next_attempt_at, last_error)
VALUES (:id, :event_id, :rule, :provider, :action, :correlate, :status, :created_at,
        :created_at, :next_attempt_at, :last_error)
"""
_MARK_ROUTED = """
UPDATE events SET routed_at = ?, matched_rules = ?, trace = ?, route_lease_until = NULL
WHERE id = ?
"""
# The event's status follows its deliveries: none -> unmatched, any dead -> failed,
# all final -> done, else accepted (and accepted while not routed at all).
_RECOMPUTE_STATUS = f"""
UPDATE events SET status = (
    SELECT CASE
        WHEN events.routed_at IS NULL THEN '{EventStatus.ACCEPTED.value}'
        WHEN count(*) = 0 THEN '{EventStatus.UNMATCHED.value}'
        WHEN sum(d.status = '{DeliveryStatus.DEAD.value}') > 0 THEN '{EventStatus.FAILED.value}'
        WHEN sum(d.status IN {FINAL}) = count(*) THEN '{EventStatus.DONE.value}'
        ELSE '{EventStatus.ACCEPTED.value}'
    END
    FROM deliveries AS d WHERE d.event_id = events.id
)
WHERE id = ?
"""


_SUPERSEDE = f"""
UPDATE deliveries SET status = '{DeliveryStatus.CANCELLED.value}',
       last_error = 'superseded by a replay; was: ' || COALESCE(last_error, 'dead')
WHERE event_id = ? AND status = '{DeliveryStatus.DEAD.value}'
"""


def claim_unrouted(
    connection: sqlite3.Connection, *, now: float, limit: int, lease: float
) -> list[StoredEvent]:
    rows = connection.execute(_UNROUTED, {"now": now, "limit": limit}).fetchall()
    connection.executemany(
        "UPDATE events SET route_lease_until = ? WHERE id = ?",
        [(now + lease, row["id"]) for row in rows],
    )
    return [event_from_row(row) for row in rows]


def save_routing(
    connection: sqlite3.Connection,
    *,
    event_id: str,
    matched_rules: str,
    trace: str,
    deliveries: Sequence[dict[str, Any]],
    supersede_dead: bool,
    now: float,
) -> None:
    if connection.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
        raise StoreError(f"there is no event {event_id} to route")
    if supersede_dead:
        connection.execute(_SUPERSEDE, (event_id,))
    connection.executemany(_INSERT_DELIVERY, deliveries)
    connection.execute(_MARK_ROUTED, (now, matched_rules, trace, event_id))
    recompute_event_status(connection, event_id)


def recompute_event_status(connection: sqlite3.Connection, event_id: str) -> None:
    connection.execute(_RECOMPUTE_STATUS, (event_id,))


# -- delivery ----------------------------------------------------------------------------

# Delivery `d` waits while an earlier delivery of its (provider, correlate) is unfinished.
_BEHIND_ITS_KEY = f"""
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate AND e.seq < d.seq
      AND e.status IN {UNFINISHED})
"""
# Due, oldest first, and not behind its key.
_DUE = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries AS d
WHERE ((d.status IN {QUEUED} AND d.next_attempt_at <= :now)
       OR (d.status = '{DeliveryStatus.IN_FLIGHT.value}' AND d.lease_until < :now))
  AND NOT ({_BEHIND_ITS_KEY})
ORDER BY d.seq LIMIT :limit
"""
_LEASE = f"""
UPDATE deliveries SET status = '{DeliveryStatus.IN_FLIGHT.value}', lease_until = ?,
                      lease_token = ?
WHERE seq = ?
"""
_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"
_TICKET = "SELECT ticket_ref, open FROM tickets WHERE provider = ? AND correlate = ?"


def claim_due(
    connection: sqlite3.Connection, *, now: float, limit: int, lease: float
) -> list[Claim]:
    claims = []
    for row in connection.execute(_DUE, {"now": now, "limit": limit}).fetchall():
        token = secrets.token_hex(16)
        connection.execute(_LEASE, (now + lease, token, row["seq"]))
        delivery = delivery_from_row(row)
        event = event_from_row(connection.execute(_EVENT, (delivery.event_id,)).fetchone())
        ticket_ref: dict[str, str] | None = None
        ticket_open: bool | None = None
        if delivery.correlate is not None:
            known = connection.execute(_TICKET, (delivery.provider, delivery.correlate)).fetchone()
            if known is not None:
                ticket_ref = loads_optional(known["ticket_ref"])
                ticket_open = None if known["open"] is None else bool(known["open"])
        claims.append(
            Claim(
                delivery=dataclasses.replace(delivery, status=DeliveryStatus.IN_FLIGHT),
                event=event,
                lease_token=token,
                ticket_ref=ticket_ref,
                ticket_open=ticket_open,
            )
        )
    return claims


_HELD = f"""
SELECT event_id, provider, correlate FROM deliveries
WHERE id = ? AND lease_token = ? AND status = '{DeliveryStatus.IN_FLIGHT.value}'
"""
_INSERT_ATTEMPT = f"""
INSERT INTO attempts ({ATTEMPT_COLUMNS})
VALUES (:delivery_id, :number, :started_at, :duration, :outcome, :status_code, :error,
        :response_excerpt)
"""
_FINISH = """
UPDATE deliveries
SET attempts = attempts + 1, tries = tries + 1, status = :status,
    next_attempt_at = :next_attempt_at, last_error = :last_error,
    ticket_ref = coalesce(:ticket_ref, ticket_ref), lease_until = NULL, lease_token = NULL
WHERE id = :id
"""
_UPSERT_TICKET = """
INSERT INTO tickets (provider, correlate, ticket_ref, open, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (provider, correlate) DO UPDATE
SET ticket_ref = coalesce(excluded.ticket_ref, tickets.ticket_ref),
    open = coalesce(excluded.open, tickets.open),
    updated_at = excluded.updated_at
"""


def finish_attempt(
    connection: sqlite3.Connection,
    *,
    delivery_id: str,
    lease_token: str,
    attempt: dict[str, Any],
    status: DeliveryStatus,
    next_attempt_at: float | None,
    last_error: str | None,
    ticket_ref: str | None,
    ticket_open: bool | None,
    now: float,
) -> bool:
    held = connection.execute(_HELD, (delivery_id, lease_token)).fetchone()
    if held is None:
        return False
    connection.execute(_INSERT_ATTEMPT, attempt)
    connection.execute(
        _FINISH,
        {
            "id": delivery_id,
            "status": status.value,
            "next_attempt_at": next_attempt_at,
            "last_error": last_error,
            "ticket_ref": ticket_ref,
        },
    )
    correlate = held["correlate"]
    if (
        status is DeliveryStatus.DONE
        and correlate is not None
        and (ticket_ref is not None or ticket_open is not None)
    ):
        is_open = None if ticket_open is None else int(ticket_open)
        connection.execute(_UPSERT_TICKET, (held["provider"], correlate, ticket_ref, is_open, now))
    recompute_event_status(connection, held["event_id"])
    return True


# The first queued delivery of each status that is not behind its key (read in due order, so
# a long backlog is not scanned), the earliest delivery lease, the earliest routing lease (or
# arrival, for an event nobody leased yet).
_FIRST_QUEUED = f"""
SELECT * FROM (
    SELECT d.next_attempt_at AS due FROM deliveries AS d
    WHERE d.status = '{{status}}' AND d.next_attempt_at IS NOT NULL AND NOT ({_BEHIND_ITS_KEY})
    ORDER BY d.next_attempt_at LIMIT 1)
"""
_NEXT_WAKEUP = f"""
SELECT min(due) FROM (
    {_FIRST_QUEUED.format(status=DeliveryStatus.PENDING.value)}
    UNION ALL
    {_FIRST_QUEUED.format(status=DeliveryStatus.WAITING.value)}
    UNION ALL
    SELECT min(lease_until) FROM deliveries WHERE status = '{DeliveryStatus.IN_FLIGHT.value}'
    UNION ALL
    SELECT min(coalesce(route_lease_until, received_at)) FROM events WHERE routed_at IS NULL
)
"""


def next_wakeup(connection: sqlite3.Connection) -> float | None:
    due = connection.execute(_NEXT_WAKEUP).fetchone()[0]
    return None if due is None else float(due)


def ping(connection: sqlite3.Connection) -> None:
    connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
