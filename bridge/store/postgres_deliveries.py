"""What the worker's delivery step asks of PostgreSQL: claiming due deliveries, renewing
leases, finishing an attempt (with what it means for the rest of its correlate key), and when
to wake next. Coroutine functions of a connection, like postgres_queries.

Claiming locks rows: the claim is one `UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP
LOCKED)`, so a row another transaction holds is passed over, never waited for; two workers
never get the same delivery, and a lapsed lease is taken over by exactly one of them. Which
deliveries of a correlate key may go, and the key lock that finishing takes, are told in
postgres_queues; holds and rate buckets in postgres_pacing.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.config import RateLimit
from bridge.limits import refill, whole
from bridge.store.base import Claim, DeliveryStatus, ProviderHold
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_pacing import NOT_HELD, hold_provider, locked_bucket, save_bucket
from bridge.store.postgres_queues import (
    IN_FLIGHT,
    MAY_GO,
    PENDING,
    WAITING,
    kill_followers,
    lock_keys,
    recompute_event_statuses,
    release_next,
)
from bridge.store.postgres_rows import (
    ATTEMPT_COLUMNS,
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    QUEUED,
    Row,
    delivery_from_row,
    event_from_row,
    loads_optional,
)

# -- claiming ----------------------------------------------------------------------------

# Due (or in flight with a lapsed lease), free to go by its key, not held; oldest first; rows
# another transaction holds are passed over.
_CLAIM = f"""
WITH due AS (
    SELECT d.seq FROM deliveries AS d
    WHERE ((d.status IN {QUEUED} AND d.next_attempt_at <= %(now)s)
           OR (d.status = '{IN_FLIGHT}' AND d.lease_until < %(now)s))
      AND {MAY_GO} AND {NOT_HELD} {{which}}
    ORDER BY d.seq LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED)
UPDATE deliveries AS d
SET status = '{IN_FLIGHT}', lease_until = %(until)s,
    lease_token = %(token)s::text || '.' || d.seq::text
FROM due WHERE d.seq = due.seq
RETURNING d.lease_token, {DELIVERY_COLUMNS}
"""
_ONE_PROVIDER = "AND d.provider = %(provider)s"
_OTHER_PROVIDERS = "AND d.provider <> ALL(%(named)s::text[])"
_EVENTS = f"SELECT {EVENT_COLUMNS} FROM events AS ev WHERE ev.id = ANY(%s::text[])"
_TICKETS = """
SELECT t.provider, t.correlate, t.ticket_ref, t.open FROM tickets AS t
JOIN unnest(%s::text[], %s::text[]) AS k (provider, correlate)
  ON t.provider = k.provider AND t.correlate = k.correlate
"""


async def claim_due(
    connection: Connection,
    *,
    now: float,
    limit: int,
    lease: float,
    per_provider: Mapping[str, int] | None,
    rates: Mapping[str, RateLimit],
) -> list[Claim]:
    token = secrets.token_hex(16)  # each row's token is this, a dot and its seq
    params: dict[str, Any] = {"now": now, "until": now + lease, "token": token}
    rows: list[Row] = []
    if per_provider is None:
        rows = await _claim(connection, "", **params, limit=limit)
    else:
        # the buckets this claim may spend from, locked in name order (two claims locking
        # two buckets in opposite orders would deadlock)
        paced = sorted(p for p, room in per_provider.items() if room > 0 and p in rates)
        buckets = {p: await locked_bucket(connection, p, rates[p], now=now) for p in paced}
        for provider, room in per_provider.items():
            take = min(room, limit - len(rows))
            rate = rates.get(provider)
            tokens = 0.0
            if rate is not None and take > 0:
                tokens = refill(buckets[provider], rate, now=now)
                take = min(take, whole(tokens))
            if take > 0:
                claimed = await _claim(
                    connection, _ONE_PROVIDER, **params, limit=take, provider=provider
                )
                rows += claimed
                if rate is not None and claimed:
                    await save_bucket(connection, provider, tokens=tokens - len(claimed), now=now)
        rest = limit - len(rows)
        if rest > 0:  # providers not named: ones removed from the configuration since
            rows += await _claim(
                connection, _OTHER_PROVIDERS, **params, limit=rest, named=list(per_provider)
            )
    return await _claims(connection, rows)


async def _claim(connection: Connection, which: str, **params: Any) -> list[Row]:
    cursor = await connection.execute(_CLAIM.format(which=which), params)
    return sorted(await cursor.fetchall(), key=lambda row: int(row["seq"]))


async def _claims(connection: Connection, rows: list[Row]) -> list[Claim]:
    """The claims of the leased rows, with their events and what the correlate map knows."""
    if not rows:
        return []
    event_ids = sorted({row["event_id"] for row in rows})
    cursor = await connection.execute(_EVENTS, (event_ids,))
    events = {row["id"]: event_from_row(row) for row in await cursor.fetchall()}
    keys = sorted({(row["provider"], row["correlate"]) for row in rows if row["correlate"]})
    known: dict[tuple[str, str], Row] = {}
    if keys:
        providers, correlates = [k[0] for k in keys], [k[1] for k in keys]
        cursor = await connection.execute(_TICKETS, (providers, correlates))
        known = {(t["provider"], t["correlate"]): t for t in await cursor.fetchall()}
    claims = []
    for row in rows:
        delivery = delivery_from_row(row)
        ticket = known.get((delivery.provider, delivery.correlate or ""))
        claims.append(
            Claim(
                delivery=dataclasses.replace(delivery, status=DeliveryStatus.IN_FLIGHT),
                event=events[delivery.event_id],
                lease_token=row["lease_token"],
                ticket_ref=None if ticket is None else loads_optional(ticket["ticket_ref"]),
                ticket_open=None if ticket is None else ticket["open"],
            )
        )
    return claims


_EXTEND = f"""
UPDATE deliveries SET lease_until = %s
WHERE id = %s AND lease_token = %s AND status = '{IN_FLIGHT}'
"""


async def extend_leases(
    connection: Connection, claims: Sequence[tuple[str, str]], *, until: float
) -> None:
    async with connection.cursor() as cursor:
        await cursor.executemany(_EXTEND, [(until, id_, token) for id_, token in claims])


# -- finishing ---------------------------------------------------------------------------

_HELD = f"""
SELECT seq, event_id, event_received_at, rule, provider, correlate FROM deliveries
WHERE id = %s AND lease_token = %s AND status = '{IN_FLIGHT}'
FOR UPDATE
"""
_INSERT_ATTEMPT = f"""
INSERT INTO attempts ({ATTEMPT_COLUMNS})
VALUES (%(delivery_id)s, %(number)s, %(started_at)s, %(duration)s, %(outcome)s,
        %(status_code)s, %(error)s, %(response_excerpt)s)
"""
_FINISH = """
UPDATE deliveries
SET attempts = attempts + 1, tries = tries + %(spent)s, status = %(status)s,
    next_attempt_at = %(next_attempt_at)s, last_error = %(last_error)s,
    ticket_ref = coalesce(%(ticket_ref)s, ticket_ref), lease_until = NULL, lease_token = NULL
WHERE id = %(id)s
"""
_UPSERT_TICKET = """
INSERT INTO tickets AS t (provider, correlate, ticket_ref, open, updated_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (provider, correlate) DO UPDATE
SET ticket_ref = coalesce(excluded.ticket_ref, t.ticket_ref),
    open = coalesce(excluded.open, t.open),
    updated_at = excluded.updated_at
"""


async def finish_attempt(
    connection: Connection,
    *,
    delivery_id: str,
    lease_token: str,
    key: tuple[str, str | None],
    attempt: dict[str, Any],
    status: DeliveryStatus,
    spends_try: bool,
    next_attempt_at: float | None,
    last_error: str | None,
    ticket_ref: str | None,
    ticket_open: bool | None,
    hold: ProviderHold | None,
    now: float,
) -> bool:
    provider, correlate = key  # as claimed: a delivery's key never changes
    if correlate is not None:
        await lock_keys(connection, [(provider, correlate)])
    held = await (await connection.execute(_HELD, (delivery_id, lease_token))).fetchone()
    if held is None:
        return False
    if hold is not None:
        await hold_provider(connection, hold)
    await connection.execute(_INSERT_ATTEMPT, attempt)
    await connection.execute(
        _FINISH,
        {
            "id": delivery_id,
            "spent": int(spends_try),
            "status": status.value,
            "next_attempt_at": next_attempt_at,
            "last_error": last_error,
            "ticket_ref": ticket_ref,
        },
    )
    events = {held["event_id"]}
    if correlate is not None:
        if status is DeliveryStatus.DONE and (ticket_ref is not None or ticket_open is not None):
            await connection.execute(
                _UPSERT_TICKET, (provider, correlate, ticket_ref, ticket_open, now)
            )
        if status in (DeliveryStatus.DONE, DeliveryStatus.SKIPPED):
            await release_next(connection, provider, correlate, now=now)
        elif status is DeliveryStatus.DEAD:
            message = (
                f"not sent: {delivery_id} (rule {held['rule']}), an earlier action for the "
                f"same ticket, is dead: {last_error or 'no reason recorded'}"
            )
            killed = await kill_followers(
                connection, held, delivery_id=delivery_id, message=message
            )
            events |= killed
    await recompute_event_statuses(connection, events)
    return True


# -- waking ------------------------------------------------------------------------------

# The first queued delivery of each status that may go (read in due order, so a long backlog
# is not scanned), the earliest delivery lease, the earliest routing lease (or arrival, for
# an event nobody leased yet), the end of the earliest hold.
_FIRST_QUEUED = f"""
(SELECT d.next_attempt_at AS due FROM deliveries AS d
 WHERE d.status = '{{status}}' AND d.next_attempt_at IS NOT NULL AND {MAY_GO}
   AND {NOT_HELD} AND d.provider <> ALL(%(skip)s::text[])
 ORDER BY d.next_attempt_at LIMIT 1)
"""
_NEXT_WAKEUP = f"""
SELECT min(due) AS due FROM (
    {_FIRST_QUEUED.format(status=PENDING)}
    UNION ALL
    {_FIRST_QUEUED.format(status=WAITING)}
    UNION ALL
    SELECT min(lease_until) FROM deliveries WHERE status = '{IN_FLIGHT}'
    UNION ALL
    SELECT min(coalesce(route_lease_until, received_at)) FROM events WHERE routed_at IS NULL
    UNION ALL
    SELECT min(until) FROM provider_holds WHERE until > %(now)s
) AS wakeups
"""


async def next_wakeup(connection: Connection, *, now: float, skip: Sequence[str]) -> float | None:
    cursor = await connection.execute(_NEXT_WAKEUP, {"now": now, "skip": list(skip)})
    row = await cursor.fetchone()
    return None if row is None or row["due"] is None else float(row["due"])
