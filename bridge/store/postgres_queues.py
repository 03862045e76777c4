"""A correlate key's queue on PostgreSQL: the order of a (provider, correlate) key's
deliveries, and the statuses that keep it (DESIGN §3.2, §3.3). Used by routing
(postgres_queries), the delivery step (postgres_deliveries) and retries (postgres_admin).

As on SQLite, the order is kept by statuses written in the same transactions that change a
key: a delivery queued behind an unfinished one of its key is `waiting`; the head finishing
done or skipped makes the next one `pending`; the head dying kills the rest of the queue, each
naming it in `blocked_by`. What SQLite gets from its single writer, PostgreSQL gets from a
lock and one rule more, because here several processes write at once:

- A key's queue is in the order its webhooks arrived (postgres_rows.key_order: the event's
  received_at and id, then seq), not in the order deliveries were stored: routers in two
  processes may store the later webhook's deliveries first. A keyed delivery may not go
  while an event that arrived before its own is unrouted (it may bring an earlier action for
  the key); routing that event puts its deliveries ahead of any pending later ones, which
  then wait. An event whose router died holds the keyed deliveries of later events back
  until its routing lease runs out and another worker routes it.
- Changing a key's queue takes the key's lock: `pg_advisory_xact_lock` on a 64-bit hash of
  `provider|correlate`, held to the end of the transaction. save_routing (which adds to the
  queue and decides waiting or pending), finish_attempt (which releases or kills the next
  ones) and retry_delivery (which queues a dead one again ahead of the rest) take it first,
  so for one key they run one after another. Without it, routing a new delivery while the
  head finishes could leave the new one waiting behind a head that no longer releases anyone
  (each transaction missing the other's uncommitted row). Advisory locks rather than row
  locks because the thing to lock is the key, which has no row of its own until its first
  delivery; a hash collision between two keys only makes them wait for each other.
- Claiming (postgres_deliveries) needs no key lock: only the head of a key is ever `pending`
  (or in flight), and whatever stops a row being the head (a retry or a late routing queueing
  one ahead of it) changes that row's own status, which PostgreSQL checks again once the
  claim holds the row. As a last guard, nothing of a key may go while another of it is in
  flight under a live lease.

Locks are taken in one order everywhere, so that transactions do not deadlock: key locks
(sorted), then delivery rows, then event rows (sorted, when their statuses are recomputed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bridge.store.base import DeliveryStatus, EventStatus
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_rows import FINAL, QUEUED, UNFINISHED, Row, key_order

PENDING = DeliveryStatus.PENDING.value
WAITING = DeliveryStatus.WAITING.value
IN_FLIGHT = DeliveryStatus.IN_FLIGHT.value
DEAD = DeliveryStatus.DEAD.value

# A keyed delivery `d` may not go (MAY_GO) while it is behind its key: a delivery before it in
# its key's queue is unfinished ...
BEHIND_ITS_KEY = f"""
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND {key_order("e")} < {key_order("d")} AND e.status IN {UNFINISHED})
"""
# ... or while another of its key is in flight under a live lease (which the queue's order
# makes impossible, unless two routers of one event both stored deliveries after a lease
# ran out: never two at once, even then) ...
_KEY_IN_FLIGHT = f"""
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS f
    WHERE f.provider = d.provider AND f.correlate = d.correlate AND f.seq <> d.seq
      AND f.status = '{IN_FLIGHT}' AND f.lease_until >= %(now)s)
"""
# ... or while an event that arrived before its own is not routed yet: that event may bring
# an action for the same key, which must go first. Routing takes milliseconds; an event whose
# router died holds the keyed deliveries of later events until its routing lease runs out.
_EARLIER_UNROUTED = """
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM events AS u
    WHERE u.routed_at IS NULL AND (u.received_at, u.id) < (d.event_received_at, d.event_id))
"""
MAY_GO = f"NOT ({BEHIND_ITS_KEY}) AND NOT ({_KEY_IN_FLIGHT}) AND NOT ({_EARLIER_UNROUTED})"

# -- the key lock --------------------------------------------------------------------------

# one statement for any number of keys, locked in the order given (sorted by the caller)
_LOCK_KEYS = """
SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) FROM unnest(%s::text[]) AS name
"""


async def lock_keys(connection: Connection, keys: Iterable[tuple[str, str]]) -> None:
    """Hold these (provider, correlate) keys until the transaction ends."""
    names = sorted({f"{provider}|{correlate}" for provider, correlate in keys})
    if names:
        await connection.execute(_LOCK_KEYS, (names,))


# -- changing a queue ----------------------------------------------------------------------

# The key's first unfinished delivery, if it is waiting, may go now.
_RELEASE_NEXT = f"""
UPDATE deliveries SET status = '{PENDING}', next_attempt_at = %(now)s
WHERE status = '{WAITING}' AND id = (
    SELECT id FROM deliveries
    WHERE provider = %(provider)s AND correlate = %(correlate)s AND status IN {UNFINISHED}
    ORDER BY event_received_at, event_id, seq LIMIT 1)
"""
# Read from `deliveries AS d`: the queued ones after the delivery held as %(...)s.
AFTER_IT = f"""
d.provider = %(provider)s AND d.correlate = %(correlate)s
AND {key_order("d")} > (%(event_received_at)s, %(event_id)s, %(seq)s)
"""
_KILL_FOLLOWERS = f"""
UPDATE deliveries AS d SET status = '{DEAD}', blocked_by = %(id)s, next_attempt_at = NULL,
                           last_error = %(message)s
WHERE {AFTER_IT} AND d.status IN {QUEUED}
RETURNING d.event_id
"""


async def release_next(
    connection: Connection, provider: str, correlate: str, *, now: float
) -> None:
    """Call with the key locked."""
    await connection.execute(
        _RELEASE_NEXT, {"provider": provider, "correlate": correlate, "now": now}
    )


async def kill_followers(
    connection: Connection, held: Row, *, delivery_id: str, message: str
) -> set[str]:
    """Kill the rest of the key's queue; the events they belong to."""
    params = {**held, "id": delivery_id, "message": message}
    killed = await (await connection.execute(_KILL_FOLLOWERS, params)).fetchall()
    return {row["event_id"] for row in killed}


_SETTLE = f"""
UPDATE deliveries AS d
SET status = CASE WHEN {BEHIND_ITS_KEY} THEN '{WAITING}' ELSE '{PENDING}' END
WHERE d.id = ANY(%s::text[]) AND d.status IN {QUEUED}
"""
# Pending deliveries of the same key that are after one of the settled ones in the queue
# (their events arrived later, but were routed first) wait behind it.
_HOLD_BACK_LATER = f"""
UPDATE deliveries AS d SET status = '{WAITING}'
FROM deliveries AS s
WHERE s.id = ANY(%(ids)s::text[]) AND s.status IN {QUEUED}
  AND d.provider = s.provider AND d.correlate = s.correlate
  AND {key_order("d")} > {key_order("s")}
  AND d.status = '{PENDING}' AND d.id <> ALL(%(ids)s::text[])
"""


async def settle_queued(connection: Connection, delivery_ids: Sequence[str]) -> None:
    """Queued deliveries just added or queued again: each is waiting while a delivery before
    it in its key's queue is unfinished, else pending; pending ones after it now wait for it.
    Call with the deliveries' keys locked."""
    if delivery_ids:
        ids = list(delivery_ids)
        await connection.execute(_SETTLE, (ids,))
        await connection.execute(_HOLD_BACK_LATER, {"ids": ids})


# The event's status follows its deliveries: none -> unmatched, any dead -> failed,
# all final -> done, else accepted (and accepted while not routed at all).
_RECOMPUTE_STATUS = f"""
UPDATE events AS ev SET status = (
    SELECT CASE
        WHEN ev.routed_at IS NULL THEN '{EventStatus.ACCEPTED.value}'
        WHEN count(*) = 0 THEN '{EventStatus.UNMATCHED.value}'
        WHEN count(*) FILTER (WHERE d.status = '{DEAD}') > 0 THEN '{EventStatus.FAILED.value}'
        WHEN count(*) FILTER (WHERE d.status IN {FINAL}) = count(*)
            THEN '{EventStatus.DONE.value}'
        ELSE '{EventStatus.ACCEPTED.value}'
    END
    FROM deliveries AS d WHERE d.event_id = ev.id
)
WHERE ev.id = %s
"""


async def recompute_event_statuses(connection: Connection, event_ids: Iterable[str]) -> None:
    """One event at a time, in id order: every transaction locks event rows in one order."""
    for event_id in sorted(set(event_ids)):
        await connection.execute(_RECOMPUTE_STATUS, (event_id,))
