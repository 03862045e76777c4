"""What the operator's surfaces ask of SQLite: reading events and deliveries, retrying a
delivery, purging old events. Plain functions of a connection, like sqlite_queries.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from bridge.store.base import (
    Attempt,
    Delivery,
    DeliveryStatus,
    EventDetail,
    EventStatus,
    StoredEvent,
)
from bridge.store.sqlite_deliveries import recompute_event_status, settle_queued
from bridge.store.sqlite_pacing import provider_holds
from bridge.store.sqlite_rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    attempt_from_row,
    delivery_from_row,
    event_from_row,
    sql_list,
)

_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"


def list_events(
    connection: sqlite3.Connection,
    *,
    source: str | None,
    status: EventStatus | None,
    limit: int,
    before: str | None,
    since: float | None = None,
    until: float | None = None,
) -> list[StoredEvent]:
    where, params = _filters(
        ("source = ?", source),
        ("status = ?", None if status is None else status.value),
        ("id < ?", before),
        ("received_at >= ?", since),
        ("received_at < ?", until),
    )
    sql = f"SELECT {EVENT_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT ?"
    return [event_from_row(row) for row in connection.execute(sql, (*params, limit))]


def get_event(connection: sqlite3.Connection, event_id: str) -> EventDetail | None:
    row = connection.execute(_EVENT, (event_id,)).fetchone()
    if row is None:
        return None
    log: defaultdict[str, list[Attempt]] = defaultdict(list)
    attempts = connection.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE event_id = ?) ORDER BY number, id",
        (event_id,),
    )
    for attempt in attempts:
        log[attempt["delivery_id"]].append(attempt_from_row(attempt))
    deliveries = connection.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d WHERE d.event_id = ? ORDER BY d.seq",
        (event_id,),
    )
    found = tuple(delivery_from_row(d, log.get(d["id"], ())) for d in deliveries)
    holds = provider_holds(connection)
    return EventDetail(
        event=event_from_row(row),
        deliveries=found,
        holds={d.provider: holds[d.provider] for d in found if d.provider in holds},
    )


def get_raw(connection: sqlite3.Connection, event_id: str) -> bytes | None:
    row = connection.execute("SELECT raw FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def get_delivery(connection: sqlite3.Connection, delivery_id: str) -> Delivery | None:
    row = connection.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d WHERE d.id = ?", (delivery_id,)
    ).fetchone()
    if row is None:
        return None
    attempts = connection.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY number, id",
        (delivery_id,),
    )
    return delivery_from_row(row, [attempt_from_row(a) for a in attempts])


def list_deliveries(
    connection: sqlite3.Connection,
    *,
    status: DeliveryStatus | None,
    provider: str | None,
    limit: int,
) -> list[Delivery]:
    where, params = _filters(
        ("d.status = ?", None if status is None else status.value), ("d.provider = ?", provider)
    )
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d {where} ORDER BY d.seq DESC LIMIT ?"
    return [delivery_from_row(row) for row in connection.execute(sql, (*params, limit))]


# a done delivery is not sent again: that would make a second ticket
RETRYABLE = sql_list([DeliveryStatus.DEAD, DeliveryStatus.SKIPPED, DeliveryStatus.CANCELLED])
_RETRY = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.PENDING.value}', tries = 0, queued_at = :now,
    next_attempt_at = :now, lease_until = NULL, lease_token = NULL, blocked_by = NULL
WHERE id = :id AND status IN {RETRYABLE}
RETURNING event_id
"""
# the deliveries its death killed queue again (behind it: settle_queued makes them wait)
_REQUEUE_FOLLOWERS = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.PENDING.value}', tries = 0, queued_at = :now,
    next_attempt_at = :now, blocked_by = NULL, last_error = NULL
WHERE blocked_by = :id AND status = '{DeliveryStatus.DEAD.value}'
RETURNING id, event_id
"""
# later queued deliveries of the key wait behind the retried one
_HOLD_BACK_LATER = f"""
UPDATE deliveries SET status = '{DeliveryStatus.WAITING.value}'
WHERE provider = :provider AND correlate = :correlate AND seq > :seq
  AND status = '{DeliveryStatus.PENDING.value}'
"""
_BLOCKER = f"""
SELECT b.id FROM deliveries AS d JOIN deliveries AS b ON b.id = d.blocked_by
WHERE d.id = ? AND d.status = '{DeliveryStatus.DEAD.value}'
  AND b.status = '{DeliveryStatus.DEAD.value}'
"""


def retry_delivery(connection: sqlite3.Connection, delivery_id: str, *, now: float) -> bool:
    # a delivery killed by an earlier one's death is retried from that one, to keep the order
    seen = {delivery_id}
    while (blocker := connection.execute(_BLOCKER, (delivery_id,)).fetchone()) is not None:
        if blocker[0] in seen:
            break
        delivery_id = blocker[0]
        seen.add(delivery_id)
    retried = connection.execute(_RETRY, {"id": delivery_id, "now": now}).fetchone()
    if retried is None:
        return False
    followers = connection.execute(_REQUEUE_FOLLOWERS, {"id": delivery_id, "now": now}).fetchall()
    key = connection.execute(
        "SELECT seq, provider, correlate FROM deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    if key["correlate"] is not None:
        connection.execute(_HOLD_BACK_LATER, dict(key))
    settle_queued(connection, [delivery_id, *(row["id"] for row in followers)])
    for event_id in {retried["event_id"], *(row["event_id"] for row in followers)}:
        recompute_event_status(connection, event_id)
    return True


# Routed events whose deliveries are all final (an unrouted event still has work to do).
_PURGEABLE = f"""
SELECT id FROM events AS e
WHERE received_at < ? AND routed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.event_id = e.id AND d.status NOT IN {FINAL})
LIMIT ?
"""


def purge_some(
    connection: sqlite3.Connection,
    *,
    before: float | None,
    dedupe_before: float | None,
    limit: int,
) -> tuple[int, int]:
    """Purge up to `limit` events and `limit` dedupe keys; return how many of each."""
    ids: list[tuple[str]] = []
    if before is not None:
        ids = [(row[0],) for row in connection.execute(_PURGEABLE, (before, limit))]
    connection.executemany(
        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?)",
        ids,
    )
    connection.executemany("DELETE FROM deliveries WHERE event_id = ?", ids)
    connection.executemany("DELETE FROM events WHERE id = ?", ids)
    keys = 0
    if dedupe_before is not None:
        keys = connection.execute(
            "DELETE FROM dedupe WHERE rowid IN "
            "(SELECT rowid FROM dedupe WHERE created_at < ? LIMIT ?)",
            (dedupe_before, limit),
        ).rowcount
    return len(ids), keys


def drop_some_bodies(connection: sqlite3.Connection, *, before: float, limit: int) -> int:
    return connection.execute(
        "UPDATE events SET raw = NULL WHERE id IN "
        "(SELECT id FROM events WHERE received_at < ? AND raw IS NOT NULL LIMIT ?)",
        (before, limit),
    ).rowcount


def _filters(*pairs: tuple[str, Any]) -> tuple[str, list[Any]]:
    clauses = [clause for clause, value in pairs if value is not None]
    params = [value for _, value in pairs if value is not None]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
