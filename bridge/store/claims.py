"""The worker's delivery step: claiming due deliveries under leases, renewing the leases, and
when to wake next. Steps, written once for both databases.

A claim is one statement, `UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)` on PostgreSQL:
a row another transaction holds is passed over, never waited for; two workers never get the
same delivery, and a lapsed lease is taken over by exactly one of them. Which deliveries of a
correlate key may go is told in bridge.store.queues.

Budgeting, when the worker names its providers: each gets at most its room, and a
rate-limited one at most the whole tokens its bucket holds (refilled to now), spent in this
transaction; deliveries of providers not named (removed from the configuration since) fill
what is left of `limit`.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bridge.config import RateLimit
from bridge.records import Claim, DeliveryStatus
from bridge.store.buckets import refill, whole
from bridge.store.pacing import locked_bucket, save_bucket
from bridge.store.rows import ReadRow, delivery_from_row, event_from_row, loads_optional
from bridge.store.steps import Query, Step, rows


def claim_due(
    now: float,
    limit: int,
    lease: float,
    per_provider: Mapping[str, int] | None,
    rates: Mapping[str, RateLimit],
    events_for: Collection[str] = frozenset(),
) -> Step[list[Claim]]:
    token = secrets.token_hex(16)  # each row's token is this, a dot and its seq
    params: dict[str, Any] = {"now": now, "until": now + lease, "token": token}
    claimed: list[ReadRow] = []
    if per_provider is None:
        claimed = yield from _claim("claim_due_all", **params, limit=limit)
    else:
        # the buckets this claim may spend from, locked in name order (two claims locking
        # two buckets in opposite orders would deadlock)
        paced = sorted(p for p, room in per_provider.items() if room > 0 and p in rates)
        buckets = {}
        for provider in paced:
            buckets[provider] = yield from locked_bucket(provider, rates[provider], now=now)
        for provider, room in per_provider.items():
            take = min(room, limit - len(claimed))
            rate = rates.get(provider)
            tokens = 0.0
            if rate is not None and take > 0:
                tokens = refill(buckets[provider], rate, now=now)
                take = min(take, whole(tokens))
            if take > 0:
                some = yield from _claim("claim_due_one", **params, limit=take, provider=provider)
                claimed += some
                if rate is not None and some:
                    yield from save_bucket(provider, tokens=tokens - len(some), now=now)
        if limit > len(claimed):  # providers not named: ones removed from the configuration
            # since (usually there are none), each claimed as a named one is
            found = yield from rows("unnamed_providers", named=list(per_provider))
            for provider in (row["provider"] for row in found):
                rest = limit - len(claimed)
                if rest <= 0:
                    break
                claimed += yield from _claim(
                    "claim_due_one", **params, limit=rest, provider=provider
                )
    return (yield from _claims(claimed, events_for))


def _claim(name: str, **params: Any) -> Step[list[ReadRow]]:
    found = yield Query(name, params)
    return sorted(found.rows, key=lambda row: int(row["seq"]))


def _claims(claimed: list[ReadRow], events_for: Collection[str]) -> Step[list[Claim]]:
    """The claims of the leased rows, with what the correlate map knows, and the events of
    those whose provider is in `events_for`."""
    if not claimed:
        return []
    event_ids = sorted({row["event_id"] for row in claimed if row["provider"] in events_for})
    events = {}
    if event_ids:
        found = yield from rows("events_by_id", ids=event_ids)
        events = {row["id"]: event_from_row(row) for row in found}
    keys = {(row["provider"], row["correlate"]) for row in claimed if row["correlate"]}
    known: dict[tuple[str, str], ReadRow] = {}
    if keys:
        tickets = yield from rows(
            "tickets_of_keys",
            providers=sorted({p for p, _ in keys}),
            correlates=sorted({c for _, c in keys}),
        )
        known = {(t["provider"], t["correlate"]): t for t in tickets}
    claims = []
    for row in claimed:
        delivery = delivery_from_row(row)
        ticket = known.get((delivery.provider, delivery.correlate or ""))
        is_open = None if ticket is None else ticket["open"]
        claims.append(
            Claim(
                delivery=dataclasses.replace(delivery, status=DeliveryStatus.IN_FLIGHT),
                received_at=row["event_received_at"],
                event=events[delivery.event_id] if delivery.provider in events_for else None,
                lease_token=row["lease_token"],
                ticket_ref=None if ticket is None else loads_optional(ticket["ticket_ref"]),
                ticket_open=None if is_open is None else bool(is_open),
            )
        )
    return claims


def extend_leases(claims: Sequence[Claim], *, until: float) -> Step[None]:
    held = [{"until": until, "id": c.delivery.id, "token": c.lease_token} for c in claims]
    if held:
        yield Query("extend_lease", many=held)


def next_wakeup(*, now: float, skip: Sequence[str]) -> Step[float | None]:
    found = yield from rows("next_wakeup", now=now, skip=list(skip))
    due = found[0]["due"] if found else None
    return None if due is None else float(due)
