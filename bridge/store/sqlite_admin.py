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
from bridge.store.sqlite_queries import recompute_event_status
from bridge.store.sqlite_rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    attempt_from_row,
    delivery_from_row,
    event_from_row,
)

_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"


def list_events(
    connection: sqlite3.Connection,
    *,
    source: str | None,
    status: EventStatus | None,
    limit: int,
    before: str | None,
) -> list[StoredEvent]:
    where, params = _filters(
        ("source = ?", source),
        ("status = ?", None if status is None else status.value),
        ("id < ?", before),
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
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ? ORDER BY seq", (event_id,)
    )
    return EventDetail(
        event=event_from_row(row),
        deliveries=tuple(delivery_from_row(d, log.get(d["id"], ())) for d in deliveries),
    )


def get_raw(connection: sqlite3.Connection, event_id: str) -> bytes | None:
    row = connection.execute("SELECT raw FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def list_deliveries(
    connection: sqlite3.Connection,
    *,
    status: DeliveryStatus | None,
    provider: str | None,
    limit: int,
) -> list[Delivery]:
    where, params = _filters(
        ("status = ?", None if status is None else status.value), ("provider = ?", provider)
    )
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries {where} ORDER BY seq DESC LIMIT ?"
    return [delivery_from_row(row) for row in connection.execute(sql, (*params, limit))]


_RETRY = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.PENDING.value}', tries = 0, queued_at = :now,
    next_attempt_at = :now, lease_until = NULL, lease_token = NULL
WHERE id = :id AND status IN {FINAL}
"""


def retry_delivery(connection: sqlite3.Connection, delivery_id: str, *, now: float) -> bool:
    row = connection.execute(
        "SELECT event_id FROM deliveries WHERE id = ?", (delivery_id,)
    ).fetchone()
    if row is None or connection.execute(_RETRY, {"id": delivery_id, "now": now}).rowcount == 0:
        return False
    recompute_event_status(connection, row["event_id"])
    return True


# Routed events whose deliveries are all final (an unrouted event still has work to do).
_PURGEABLE = f"""
SELECT id FROM events AS e
WHERE received_at < ? AND routed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.event_id = e.id AND d.status NOT IN {FINAL})
LIMIT ?
"""


def purge_some(connection: sqlite3.Connection, *, before: float, limit: int) -> tuple[int, int]:
    """Purge up to `limit` events and `limit` dedupe keys; return how many of each."""
    ids = [(row[0],) for row in connection.execute(_PURGEABLE, (before, limit))]
    connection.executemany(
        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?)",
        ids,
    )
    connection.executemany("DELETE FROM deliveries WHERE event_id = ?", ids)
    connection.executemany("DELETE FROM events WHERE id = ?", ids)
    keys = connection.execute(
        "DELETE FROM dedupe WHERE rowid IN (SELECT rowid FROM dedupe WHERE created_at < ? LIMIT ?)",
        (before, limit),
    ).rowcount
    return len(ids), keys


def _filters(*pairs: tuple[str, Any]) -> tuple[str, list[Any]]:
    clauses = [clause for clause, value in pairs if value is not None]
    params = [value for _, value in pairs if value is not None]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
