"""What the receiver and the worker's routing step ask of PostgreSQL: ingest and routing (the
delivery step is in postgres_deliveries, the reading and steering of operators in
postgres_admin).

Coroutine functions of a connection, with the SQL beside them, each run inside a transaction
the store opened. psycopg errors pass through here; the store maps them.

Several processes may ingest and route at once. Dedupe holds across them because the key is
claimed by an upsert on dedupe's primary key, not by a look-up then an insert: of two
transactions inserting one key, the second waits for the first and then sees its row.
Routing takes the advisory locks of its deliveries' keys (postgres_queues.lock_keys)
before it adds to their queues, and puts each delivery in its key's queue by its event's
arrival (postgres_rows.key_order), whichever router stores it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.exceptions import StoreError
from bridge.store.base import DeliveryStatus, IngestResult, StoredEvent
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_queues import lock_keys, recompute_event_statuses, settle_queued
from bridge.store.postgres_rows import EVENT_COLUMNS, event_from_row

# -- the receiver ------------------------------------------------------------------------

# Take the key: new, or older than the window (then it points at the new event from now on).
# No row back: the key is held by an event inside the window.
_CLAIM_DEDUPE = """
INSERT INTO dedupe AS dd (source, key, event_id, created_at)
VALUES (%(source)s, %(key)s, %(id)s, %(now)s)
ON CONFLICT (source, key) DO UPDATE SET event_id = excluded.event_id,
                                        created_at = excluded.created_at
WHERE dd.created_at <= %(since)s
RETURNING event_id
"""
_FIRST = "SELECT event_id FROM dedupe WHERE source = %(source)s AND key = %(key)s"
_INSERT_EVENT = """
INSERT INTO events (id, source, received_at, headers, query, payload, raw, content_type,
                    dedupe_key, status)
VALUES (%(id)s, %(source)s, %(received_at)s, %(headers)s, %(query)s, %(payload)s, %(raw)s,
        %(content_type)s, %(dedupe_key)s, %(status)s)
"""


async def ingest(
    connection: Connection, events: Sequence[dict[str, Any]], *, window: float, now: float
) -> list[IngestResult]:
    results = []
    for event in events:
        key = event["dedupe_key"]
        if key is not None:
            first = await _first_with_key(connection, event, key, since=now - window, now=now)
            if first is not None:
                results.append(IngestResult(event_id=first, duplicate=True))
                continue
        await connection.execute(_INSERT_EVENT, event)
        results.append(IngestResult(event_id=event["id"], duplicate=False))
    return results


async def _first_with_key(
    connection: Connection, event: dict[str, Any], key: str, *, since: float, now: float
) -> str | None:
    """None when `event` took the key; else the id of the event inside the window that has it."""
    params = {"source": event["source"], "key": key, "id": event["id"], "now": now, "since": since}
    for _ in range(3):  # a purge may delete the key between the two statements: try again
        if await (await connection.execute(_CLAIM_DEDUPE, params)).fetchone() is not None:
            return None
        first = await (await connection.execute(_FIRST, params)).fetchone()
        if first is not None:
            return str(first["event_id"])
    raise StoreError(f"dedupe key {key!r} of source {event['source']!r} keeps changing")


# -- routing -----------------------------------------------------------------------------

_CLAIM_UNROUTED = f"""
WITH due AS (
    SELECT id FROM events
    WHERE routed_at IS NULL AND (route_lease_until IS NULL OR route_lease_until < %(now)s)
    ORDER BY received_at, id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE events AS ev SET route_lease_until = %(until)s FROM due WHERE ev.id = due.id
RETURNING {EVENT_COLUMNS}
"""
_INSERT_DELIVERY = """
INSERT INTO deliveries (id, event_id, event_received_at, rule, provider, action, correlate,
                        status, created_at, queued_at, next_attempt_at, last_error)
VALUES (%(id)s, %(event_id)s, %(event_received_at)s, %(rule)s, %(provider)s, %(action)s,
        %(correlate)s, %(status)s, %(created_at)s, %(created_at)s, %(next_attempt_at)s,
        %(last_error)s)
"""
_MARK_ROUTED = """
UPDATE events SET routed_at = %s, matched_rules = %s, trace = %s, route_lease_until = NULL
WHERE id = %s
"""
_ROUTED_AT = "SELECT received_at, routed_at FROM events WHERE id = %s"
_ROUTED_AT_LOCKED = _ROUTED_AT + " FOR UPDATE"
_SUPERSEDE = f"""
UPDATE deliveries SET status = '{DeliveryStatus.CANCELLED.value}',
       last_error = 'superseded by a replay; was: ' || COALESCE(last_error, 'dead')
WHERE event_id = %s AND status = '{DeliveryStatus.DEAD.value}'
"""


async def claim_unrouted(
    connection: Connection, *, now: float, limit: int, lease: float
) -> list[StoredEvent]:
    cursor = await connection.execute(
        _CLAIM_UNROUTED, {"now": now, "limit": limit, "until": now + lease}
    )
    events = [event_from_row(row) for row in await cursor.fetchall()]
    return sorted(events, key=lambda event: (event.received_at, event.id))


async def save_routing(
    connection: Connection,
    *,
    event_id: str,
    matched_rules: str,
    trace: str,
    deliveries: Sequence[dict[str, Any]],
    supersede_dead: bool,
    only_if_unrouted: bool,
    now: float,
) -> bool:
    correlated = [d for d in deliveries if d["correlate"] is not None]
    await lock_keys(connection, [(d["provider"], d["correlate"]) for d in correlated])
    # Of two routers whose leases overlapped, the second waits here for the first to commit,
    # then reads the event as the first left it: routed.
    found = _ROUTED_AT_LOCKED if only_if_unrouted else _ROUTED_AT
    row = await (await connection.execute(found, (event_id,))).fetchone()
    if row is None:
        raise StoreError(f"there is no event {event_id} to route")
    if only_if_unrouted and row["routed_at"] is not None:
        return False
    if supersede_dead:
        await connection.execute(_SUPERSEDE, (event_id,))
    if deliveries:
        rows = [{**d, "event_received_at": row["received_at"]} for d in deliveries]
        async with connection.cursor() as cursor:
            await cursor.executemany(_INSERT_DELIVERY, rows)
    await settle_queued(connection, [d["id"] for d in correlated])
    await connection.execute(_MARK_ROUTED, (now, matched_rules, trace, event_id))
    await recompute_event_statuses(connection, [event_id])
    return True


async def ping(connection: Connection) -> None:
    await connection.execute("SELECT max(version) FROM schema_migrations")
