"""What the receiver and the worker's routing step ask of SQLite: ingest and routing (the
delivery step is in sqlite_deliveries, the reading and steering of operators in sqlite_admin).

Plain functions of an open connection, with the SQL beside them. Writes run on the writer
thread inside its transaction (bridge.store.sqlite_writer); reads run on the read connection
inside a read transaction, so that each sees one snapshot. sqlite3 errors pass through here;
the caller maps them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from bridge.exceptions import StoreError
from bridge.store.base import DeliveryStatus, IngestResult, StoredEvent
from bridge.store.sqlite_deliveries import recompute_event_status, settle_queued
from bridge.store.sqlite_rows import EVENT_COLUMNS, event_from_row

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
    only_if_unrouted: bool,
    now: float,
) -> bool:
    row = connection.execute("SELECT routed_at FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise StoreError(f"there is no event {event_id} to route")
    if only_if_unrouted and row["routed_at"] is not None:
        return False
    if supersede_dead:
        connection.execute(_SUPERSEDE, (event_id,))
    connection.executemany(_INSERT_DELIVERY, deliveries)
    settle_queued(connection, [d["id"] for d in deliveries if d["correlate"] is not None])
    connection.execute(_MARK_ROUTED, (now, matched_rules, trace, event_id))
    recompute_event_status(connection, event_id)
    return True


def ping(connection: sqlite3.Connection) -> None:
    connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
