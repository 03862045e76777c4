"""What the worker's delivery step asks of SQLite: claiming due deliveries, renewing leases,
finishing an attempt (with what it means for the rest of its correlate key), provider holds,
and when to wake next. Plain functions of a connection, like sqlite_queries.

Per-key order (DESIGN §3.2, §3.3) is kept by statuses written in the same transactions that
change a key: a delivery queued behind an unfinished one of its (provider, correlate) key is
`waiting`; the head finishing done or skipped makes the next one `pending`; the head dying
kills the rest of the key's queue, each naming it in `blocked_by`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.config import RateLimit
from bridge.limits import refill, whole
from bridge.store.base import Claim, DeliveryStatus, EventStatus, ProviderHold
from bridge.store.sqlite_pacing import SAVE_BUCKET, bucket, hold_provider
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

PENDING = DeliveryStatus.PENDING.value
WAITING = DeliveryStatus.WAITING.value
IN_FLIGHT = DeliveryStatus.IN_FLIGHT.value
DEAD = DeliveryStatus.DEAD.value

# Delivery `d` is behind its key while an earlier delivery of its (provider, correlate) is
# unfinished.
BEHIND_ITS_KEY = f"""
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate AND e.seq < d.seq
      AND e.status IN {UNFINISHED})
"""
_NOT_HELD = "d.provider NOT IN (SELECT provider FROM provider_holds WHERE until > :now)"

# -- claiming ----------------------------------------------------------------------------

# Due (or in flight with a lapsed lease), not behind its key, not held; oldest first.
_DUE = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries AS d
WHERE ((d.status IN {QUEUED} AND d.next_attempt_at <= :now)
       OR (d.status = '{IN_FLIGHT}' AND d.lease_until < :now))
  AND NOT ({BEHIND_ITS_KEY}) AND {_NOT_HELD} {{which}}
ORDER BY d.seq LIMIT :limit
"""
_ONE_PROVIDER = "AND d.provider = :provider"
_OTHER_PROVIDERS = "AND d.provider NOT IN (SELECT value FROM json_each(:named))"
_LEASE = (
    f"UPDATE deliveries SET status = '{IN_FLIGHT}', lease_until = ?, lease_token = ? WHERE seq = ?"
)
_EVENT = f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?"
_TICKET = "SELECT ticket_ref, open FROM tickets WHERE provider = ? AND correlate = ?"


def claim_due(
    connection: sqlite3.Connection,
    *,
    now: float,
    limit: int,
    lease: float,
    per_provider: Mapping[str, int] | None,
    rates: Mapping[str, RateLimit],
) -> list[Claim]:
    rows: list[sqlite3.Row] = []
    if per_provider is None:
        rows = _due(connection, "", now=now, limit=limit)
    else:
        for provider, room in per_provider.items():
            take = min(room, limit - len(rows))
            rate = rates.get(provider)
            tokens = 0.0
            if rate is not None and take > 0:
                tokens = refill(bucket(connection, provider), rate, now=now)
                take = min(take, whole(tokens))
            if take > 0:
                claimed = _due(connection, _ONE_PROVIDER, now=now, limit=take, provider=provider)
                rows += claimed
                if rate is not None and claimed:
                    connection.execute(SAVE_BUCKET, (provider, tokens - len(claimed), now))
        rest = limit - len(rows)
        if rest > 0:  # providers not named: ones removed from the configuration since
            named = json.dumps(list(per_provider))
            rows += _due(connection, _OTHER_PROVIDERS, now=now, limit=rest, named=named)
    return [_lease(connection, row, now=now, lease=lease) for row in rows]


def _due(connection: sqlite3.Connection, which: str, **params: Any) -> list[sqlite3.Row]:
    return connection.execute(_DUE.format(which=which), params).fetchall()


def _lease(connection: sqlite3.Connection, row: sqlite3.Row, *, now: float, lease: float) -> Claim:
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
    return Claim(
        delivery=dataclasses.replace(delivery, status=DeliveryStatus.IN_FLIGHT),
        event=event,
        lease_token=token,
        ticket_ref=ticket_ref,
        ticket_open=ticket_open,
    )


_EXTEND = f"""
UPDATE deliveries SET lease_until = ? WHERE id = ? AND lease_token = ? AND status = '{IN_FLIGHT}'
"""


def extend_leases(
    connection: sqlite3.Connection, claims: Sequence[tuple[str, str]], *, until: float
) -> None:
    connection.executemany(_EXTEND, [(until, id_, token) for id_, token in claims])


# -- finishing ---------------------------------------------------------------------------

_HELD = f"""
SELECT seq, event_id, rule, provider, correlate FROM deliveries
WHERE id = ? AND lease_token = ? AND status = '{IN_FLIGHT}'
"""
_INSERT_ATTEMPT = f"""
INSERT INTO attempts ({ATTEMPT_COLUMNS})
VALUES (:delivery_id, :number, :started_at, :duration, :outcome, :status_code, :error,
        :response_excerpt)
"""
_FINISH = """
UPDATE deliveries
SET attempts = attempts + 1, tries = tries + :spent, status = :status,
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
    spends_try: bool,
    next_attempt_at: float | None,
    last_error: str | None,
    ticket_ref: str | None,
    ticket_open: bool | None,
    hold: ProviderHold | None,
    now: float,
) -> bool:
    held = connection.execute(_HELD, (delivery_id, lease_token)).fetchone()
    if held is None:
        return False
    if hold is not None:
        hold_provider(connection, hold)
    connection.execute(_INSERT_ATTEMPT, attempt)
    connection.execute(
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
    provider, correlate = held["provider"], held["correlate"]
    if correlate is not None:
        if status is DeliveryStatus.DONE and (ticket_ref is not None or ticket_open is not None):
            is_open = None if ticket_open is None else int(ticket_open)
            connection.execute(_UPSERT_TICKET, (provider, correlate, ticket_ref, is_open, now))
        if status in (DeliveryStatus.DONE, DeliveryStatus.SKIPPED):
            release_next(connection, provider, correlate, now=now)
        elif status is DeliveryStatus.DEAD:
            message = (
                f"not sent: {delivery_id} (rule {held['rule']}), an earlier action for the "
                f"same ticket, is dead: {last_error or 'no reason recorded'}"
            )
            _kill_followers(connection, held, delivery_id=delivery_id, message=message)
    recompute_event_status(connection, held["event_id"])
    return True


# The key's first unfinished delivery, if it is waiting, may go now.
_RELEASE_NEXT = f"""
UPDATE deliveries SET status = '{PENDING}', next_attempt_at = :now
WHERE status = '{WAITING}' AND id = (
    SELECT id FROM deliveries
    WHERE provider = :provider AND correlate = :correlate AND status IN {UNFINISHED}
    ORDER BY seq LIMIT 1)
"""
_KILL_FOLLOWERS = f"""
UPDATE deliveries SET status = '{DEAD}', blocked_by = :id, next_attempt_at = NULL,
                      last_error = :message
WHERE provider = :provider AND correlate = :correlate AND seq > :seq AND status IN {QUEUED}
RETURNING event_id
"""


def release_next(
    connection: sqlite3.Connection, provider: str, correlate: str, *, now: float
) -> None:
    connection.execute(_RELEASE_NEXT, {"provider": provider, "correlate": correlate, "now": now})


def _kill_followers(
    connection: sqlite3.Connection, held: sqlite3.Row, *, delivery_id: str, message: str
) -> None:
    params = {
        "id": delivery_id,
        "message": message,
        "provider": held["provider"],
        "correlate": held["correlate"],
        "seq": held["seq"],
    }
    events = {row[0] for row in connection.execute(_KILL_FOLLOWERS, params).fetchall()}
    for event_id in events:
        recompute_event_status(connection, event_id)


_SETTLE = f"""
UPDATE deliveries AS d
SET status = CASE WHEN {BEHIND_ITS_KEY} THEN '{WAITING}' ELSE '{PENDING}' END
WHERE d.id = ? AND d.status IN {QUEUED}
"""


def settle_queued(connection: sqlite3.Connection, delivery_ids: Sequence[str]) -> None:
    """A queued delivery is waiting while its key has an earlier unfinished one, else pending."""
    connection.executemany(_SETTLE, [(id_,) for id_ in delivery_ids])


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


def recompute_event_status(connection: sqlite3.Connection, event_id: str) -> None:
    connection.execute(_RECOMPUTE_STATUS, (event_id,))


# -- waking ------------------------------------------------------------------------------

# The first queued delivery of each status that may go (read in due order, so a long backlog
# is not scanned), the earliest delivery lease, the earliest routing lease (or arrival, for
# an event nobody leased yet), the end of the earliest hold.
_FIRST_QUEUED = f"""
SELECT * FROM (
    SELECT d.next_attempt_at AS due FROM deliveries AS d
    WHERE d.status = '{{status}}' AND d.next_attempt_at IS NOT NULL AND NOT ({BEHIND_ITS_KEY})
      AND {_NOT_HELD} AND d.provider NOT IN (SELECT value FROM json_each(:skip))
    ORDER BY d.next_attempt_at LIMIT 1)
"""
_NEXT_WAKEUP = f"""
SELECT min(due) FROM (
    {_FIRST_QUEUED.format(status=PENDING)}
    UNION ALL
    {_FIRST_QUEUED.format(status=WAITING)}
    UNION ALL
    SELECT min(lease_until) FROM deliveries WHERE status = '{IN_FLIGHT}'
    UNION ALL
    SELECT min(coalesce(route_lease_until, received_at)) FROM events WHERE routed_at IS NULL
    UNION ALL
    SELECT min(until) FROM provider_holds WHERE until > :now
)
"""


def next_wakeup(connection: sqlite3.Connection, *, now: float, skip: Sequence[str]) -> float | None:
    due = connection.execute(_NEXT_WAKEUP, {"now": now, "skip": json.dumps(list(skip))}).fetchone()
    return None if due[0] is None else float(due[0])
