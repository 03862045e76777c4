"""What the operator's surfaces ask of PostgreSQL: reading events and deliveries, retrying a
delivery, purging old events. Coroutine functions of a connection, like postgres_queries.
"""

from __future__ import annotations

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
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_pacing import provider_holds
from bridge.store.postgres_queues import lock_keys, recompute_event_statuses, settle_queued
from bridge.store.postgres_rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    attempt_from_row,
    delivery_from_row,
    event_from_row,
    sql_list,
)

_EVENT = f"SELECT {EVENT_COLUMNS} FROM events AS ev WHERE ev.id = %s"


async def list_events(
    connection: Connection,
    *,
    source: str | None,
    status: EventStatus | None,
    limit: int,
    before: str | None,
    since: float | None = None,
    until: float | None = None,
) -> list[StoredEvent]:
    where, params = _filters(
        ("ev.source = %s", source),
        ("ev.status = %s", None if status is None else status.value),
        ("ev.id < %s", before),
        ("ev.received_at >= %s", since),
        ("ev.received_at < %s", until),
    )
    sql = f"SELECT {EVENT_COLUMNS} FROM events AS ev {where} ORDER BY ev.id DESC LIMIT %s"
    cursor = await connection.execute(sql, (*params, limit))
    return [event_from_row(row) for row in await cursor.fetchall()]


async def get_event(connection: Connection, event_id: str) -> EventDetail | None:
    """Call inside a repeatable-read transaction: its reads are one snapshot."""
    row = await (await connection.execute(_EVENT, (event_id,))).fetchone()
    if row is None:
        return None
    log: defaultdict[str, list[Attempt]] = defaultdict(list)
    attempts = await connection.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE event_id = %s) ORDER BY number, id",
        (event_id,),
    )
    for attempt in await attempts.fetchall():
        log[attempt["delivery_id"]].append(attempt_from_row(attempt))
    deliveries = await connection.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d WHERE d.event_id = %s ORDER BY d.seq",
        (event_id,),
    )
    found = tuple(delivery_from_row(d, log.get(d["id"], ())) for d in await deliveries.fetchall())
    holds = await provider_holds(connection)
    return EventDetail(
        event=event_from_row(row),
        deliveries=found,
        holds={d.provider: holds[d.provider] for d in found if d.provider in holds},
    )


async def get_raw(connection: Connection, event_id: str) -> bytes | None:
    cursor = await connection.execute("SELECT raw FROM events WHERE id = %s", (event_id,))
    row = await cursor.fetchone()
    return None if row is None or row["raw"] is None else bytes(row["raw"])


async def get_delivery(connection: Connection, delivery_id: str) -> Delivery | None:
    """Call inside a repeatable-read transaction: its reads are one snapshot."""
    cursor = await connection.execute(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d WHERE d.id = %s", (delivery_id,)
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    attempts = await connection.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = %s ORDER BY number, id",
        (delivery_id,),
    )
    return delivery_from_row(row, [attempt_from_row(a) for a in await attempts.fetchall()])


async def list_deliveries(
    connection: Connection,
    *,
    status: DeliveryStatus | None,
    provider: str | None,
    limit: int,
) -> list[Delivery]:
    where, params = _filters(
        ("d.status = %s", None if status is None else status.value), ("d.provider = %s", provider)
    )
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries AS d {where} ORDER BY d.seq DESC LIMIT %s"
    cursor = await connection.execute(sql, (*params, limit))
    return [delivery_from_row(row) for row in await cursor.fetchall()]


_KEY = "SELECT provider, correlate FROM deliveries WHERE id = %s"
# a done delivery is not sent again: that would make a second ticket
RETRYABLE = sql_list([DeliveryStatus.DEAD, DeliveryStatus.SKIPPED, DeliveryStatus.CANCELLED])
_RETRY = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.PENDING.value}', tries = 0, queued_at = %(now)s,
    next_attempt_at = %(now)s, lease_until = NULL, lease_token = NULL, blocked_by = NULL
WHERE id = %(id)s AND status IN {RETRYABLE}
RETURNING event_id
"""
# the deliveries its death killed queue again (behind it: settle_queued makes them wait)
_REQUEUE_FOLLOWERS = f"""
UPDATE deliveries
SET status = '{DeliveryStatus.PENDING.value}', tries = 0, queued_at = %(now)s,
    next_attempt_at = %(now)s, blocked_by = NULL, last_error = NULL
WHERE blocked_by = %(id)s AND status = '{DeliveryStatus.DEAD.value}'
RETURNING id, event_id
"""
_BLOCKER = f"""
SELECT b.id FROM deliveries AS d JOIN deliveries AS b ON b.id = d.blocked_by
WHERE d.id = %s AND d.status = '{DeliveryStatus.DEAD.value}'
  AND b.status = '{DeliveryStatus.DEAD.value}'
"""


async def retry_delivery(connection: Connection, delivery_id: str, *, now: float) -> bool:
    key = await (await connection.execute(_KEY, (delivery_id,))).fetchone()
    if key is None:
        return False
    if key["correlate"] is not None:  # the blocker chain stays on this key
        await lock_keys(connection, [(key["provider"], key["correlate"])])
    # a delivery killed by an earlier one's death is retried from that one, to keep the order
    seen = {delivery_id}
    while blocker := await (await connection.execute(_BLOCKER, (delivery_id,))).fetchone():
        if blocker["id"] in seen:
            break
        delivery_id = blocker["id"]
        seen.add(delivery_id)
    retried = await (await connection.execute(_RETRY, {"id": delivery_id, "now": now})).fetchone()
    if retried is None:
        return False
    cursor = await connection.execute(_REQUEUE_FOLLOWERS, {"id": delivery_id, "now": now})
    followers = await cursor.fetchall()
    # they wait behind what is before them in the key's queue, and later pending ones of the
    # key wait behind them
    await settle_queued(connection, [delivery_id, *(row["id"] for row in followers)])
    await recompute_event_statuses(
        connection, {retried["event_id"], *(row["event_id"] for row in followers)}
    )
    return True


# Routed events whose deliveries are all final (an unrouted event still has work to do).
_PURGEABLE = f"""
SELECT id FROM events AS ev
WHERE received_at < %s AND routed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.event_id = ev.id AND d.status NOT IN {FINAL})
ORDER BY id LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_PURGE_ATTEMPTS = """
DELETE FROM attempts
WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ANY(%s::text[]))
"""
_PURGE_DELIVERIES = "DELETE FROM deliveries WHERE event_id = ANY(%s::text[])"
_PURGE_EVENTS = "DELETE FROM events WHERE id = ANY(%s::text[])"
_PURGE_DEDUPE = """
DELETE FROM dedupe WHERE (source, key) IN
    (SELECT source, key FROM dedupe WHERE created_at < %s LIMIT %s FOR UPDATE SKIP LOCKED)
"""


async def purge_some(
    connection: Connection,
    *,
    before: float | None,
    dedupe_before: float | None,
    limit: int,
) -> tuple[int, int]:
    """Purge up to `limit` events and `limit` dedupe keys; return how many of each."""
    ids: list[str] = []
    if before is not None:
        cursor = await connection.execute(_PURGEABLE, (before, limit))
        ids = [row["id"] for row in await cursor.fetchall()]
    if ids:
        await connection.execute(_PURGE_ATTEMPTS, (ids,))
        await connection.execute(_PURGE_DELIVERIES, (ids,))
        await connection.execute(_PURGE_EVENTS, (ids,))
    keys = 0
    if dedupe_before is not None:
        keys = (await connection.execute(_PURGE_DEDUPE, (dedupe_before, limit))).rowcount
    return len(ids), keys


_DROP_BODIES = """
UPDATE events SET raw = NULL WHERE id IN
    (SELECT id FROM events WHERE received_at < %s AND raw IS NOT NULL LIMIT %s
     FOR UPDATE SKIP LOCKED)
"""


async def drop_some_bodies(connection: Connection, *, before: float, limit: int) -> int:
    return (await connection.execute(_DROP_BODIES, (before, limit))).rowcount


def _filters(*pairs: tuple[str, Any]) -> tuple[str, list[Any]]:
    clauses = [clause for clause, value in pairs if value is not None]
    params = [value for _, value in pairs if value is not None]
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
