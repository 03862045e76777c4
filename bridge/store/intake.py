"""What the receiver and the worker's routing step ask of the store: ingest, claim the events
not routed yet, store a routing. Steps (bridge.store.steps) over the statements of queries.sql.

Dedupe holds across processes because the key is claimed by an upsert on dedupe's primary key.
Routing takes the locks of its deliveries' keys (queues.lock_keys) before it adds to their
queues, and puts each delivery in its key's queue by its event's arrival, whichever router
stores it first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge import folding
from bridge.config.model import Fold
from bridge.exceptions import StoreError
from bridge.records import DeliveryStatus, IngestResult, Routing, StoredEvent
from bridge.store.queues import lock_keys, recompute_event_statuses, settle_queued
from bridge.store.rows import (
    action_from_text,
    action_text,
    delivery_params,
    dumps,
    event_from_row,
    loads_optional,
)
from bridge.store.steps import Step, execute, first, many, rows
from bridge.tickets import TicketAction, sent_elsewhere


@dataclass(frozen=True)
class Arrival:
    """One event to ingest: its row, and the dedupe window at the time it arrived."""

    event: dict[str, Any]
    window: float
    now: float


def ingest(arrivals: Sequence[Arrival]) -> Step[list[IngestResult]]:
    """Each event stored, or the id of the event inside its window that has its dedupe key
    (an earlier one of the same batch included); the new ones written by one statement."""
    results = []
    new = []
    for arrival in arrivals:
        event, now = arrival.event, arrival.now
        key = event["dedupe_key"]
        if key is not None:
            held_by = yield from _first_with_key(event, key, since=now - arrival.window, now=now)
            if held_by is not None:
                results.append(IngestResult(event_id=held_by, duplicate=True))
                continue
        new.append(event)
        results.append(IngestResult(event_id=event["id"], duplicate=False))
    yield from many("insert_event", new)
    if new:
        yield from execute("notify_work")
    return results


def _first_with_key(
    event: dict[str, Any], key: str, *, since: float, now: float
) -> Step[str | None]:
    """None when `event` took the key; else the id of the event inside the window that has it."""
    params = {"source": event["source"], "key": key, "id": event["id"], "now": now, "since": since}
    for _ in range(3):  # a purge may delete the key between the two statements: try again
        if (yield from first("claim_dedupe", **params)) is not None:
            return None
        held = yield from first("first_with_key", **params)
        if held is not None:
            return str(held["event_id"])
    raise StoreError(f"dedupe key {key!r} of source {event['source']!r} keeps changing")


def claim_unrouted(*, now: float, limit: int, lease: float) -> Step[list[StoredEvent]]:
    found = yield from rows("claim_unrouted", now=now, limit=limit, until=now + lease)
    events = [event_from_row(row) for row in found]
    return sorted(events, key=lambda event: (event.received_at, event.id))


@dataclass
class Planned:
    """A delivery of a routing about to be inserted: its row, and its action typed, which
    following a moved ticket and folding may change (writing it into the row)."""

    row: dict[str, Any]
    action: TicketAction | None

    def replace_action(self, action: TicketAction) -> None:
        self.action = action
        self.row["action"] = action_text(action)


def follow_moved_tickets(planned: list[Planned]) -> Step[None]:
    """Deliveries for a key whose ticket a fallback took to another provider go there."""
    if not planned:
        return
    found = yield from rows(
        "moved_keys",
        providers=sorted({p.row["provider"] for p in planned}),
        correlates=sorted({p.row["correlate"] for p in planned}),
    )
    moved = {(row["provider"], row["correlate"]): row["moved_to"] for row in found}
    for p in planned:
        to = moved.get((p.row["provider"], p.row["correlate"]))
        if to is not None and p.action is not None:
            p.row["provider"] = to
            p.replace_action(sent_elsewhere(p.action, to=to, why=None))


def fold(
    delivery: dict[str, Any], action: TicketAction, rule_fold: Fold, *, arrived: float, now: float
) -> Step[None]:
    """Storm folding of a new delivery (bridge/folding.py), its row `delivery`, its key
    locked: it goes as it is and opens a window, becomes a note held until the window closes,
    or is skipped into the latest note, which it joins."""
    found = yield from first(
        "latest_fold",
        provider=delivery["provider"],
        correlate=delivery["correlate"],
        rule=delivery["rule"],
    )
    latest = None
    if found is not None:
        latest = folding.Latest(
            id=found["id"],
            queued_unsent=bool(found["queued_unsent"]),
            fold_until=found["fold_until"],
            folded=loads_optional(found["folded"]),
            action=action_from_text(found["action"]),
        )
    step = folding.step(latest, arrived=arrived, fold=rule_fold)
    if latest is None or step is folding.Step.OPEN:
        delivery["fold_until"] = arrived + rule_fold.window
        return
    event = {"event_id": delivery["event_id"], "arrived": arrived}
    if step is folding.Step.JOIN:
        assert latest.folded is not None
        folded = folding.joined(latest.folded, action, **event)
    else:
        folded = folding.started(latest, action, **event)
    full = len(folded["events"]) >= rule_fold.max
    until = arrived if full else latest.fold_until  # a full note closes the window, and goes
    due = now if full else latest.fold_until
    note = action_text(folding.note(folded, action))
    if step is folding.Step.JOIN:
        yield from execute(
            "join_fold", id=latest.id, folded=dumps(folded), action=note, fold_until=until, due=due
        )
        count = len(folded["events"])
        delivery.update(
            status=DeliveryStatus.SKIPPED.value,
            next_attempt_at=None,
            folded_into=latest.id,
            last_error=f"folded into {latest.id}, a note of {count} events for this ticket",
        )
    else:
        delivery.update(action=note, folded=dumps(folded), fold_until=until, next_attempt_at=due)


def save_routing(routing: Routing, *, now: float) -> Step[bool]:
    return (yield from save_routings([routing], now=now))[0]


def save_routings(routings: Sequence[Routing], *, now: float) -> Step[list[bool]]:
    """Each routing's deliveries stored and queued, its event marked routed; False for one
    left out because another router stored its event's routing first (only_if_unrouted).
    A batch takes about as many statements as one routing: the worker routes by the batch."""
    planned = {
        r.event_id: [Planned(delivery_params(d, now=now), d.action) for d in r.deliveries]
        for r in routings
    }
    if len(planned) != len(routings):
        raise StoreError("two routings of one event in one batch")
    correlated = [p for ps in planned.values() for p in ps if p.row["correlate"] is not None]
    yield from follow_moved_tickets(correlated)
    yield from lock_keys((p.row["provider"], p.row["correlate"]) for p in correlated)
    found = yield from rows("events_to_route", ids=sorted(planned))
    arrived = {row["id"]: row["received_at"] for row in found}
    routed = {row["id"] for row in found if row["routed_at"] is not None}
    for routing in routings:
        if routing.event_id not in arrived:
            raise StoreError(f"there is no event {routing.event_id} to route")
    kept = [r for r in routings if not (r.only_if_unrouted and r.event_id in routed)]
    deliveries = []
    for routing in kept:
        event_id = routing.event_id
        if routing.supersede_dead:
            yield from execute("supersede_dead", event_id=event_id)
        for new, p in zip(routing.deliveries, planned[event_id], strict=True):
            foldable = p.row["correlate"] is not None and new.status is DeliveryStatus.PENDING
            if new.fold is not None and foldable and p.action is not None:
                yield from fold(p.row, p.action, new.fold, arrived=arrived[event_id], now=now)
            deliveries.append({**p.row, "event_received_at": arrived[event_id]})
    yield from many("insert_delivery", deliveries)
    # the keyed ones take their places in their keys' queues; a waiting one without a key has
    # nothing to wait behind (settled, it is pending)
    waiting = DeliveryStatus.WAITING.value
    yield from settle_queued(
        [d["id"] for d in deliveries if d["correlate"] is not None or d["status"] == waiting]
    )
    yield from many(
        "mark_routed",
        [
            {
                "now": now,
                "matched_rules": dumps(list(routing.matched_rules)),
                "trace": dumps(list(routing.trace)),
                "event_id": routing.event_id,
            }
            for routing in kept
        ],
    )
    yield from recompute_event_statuses(routing.event_id for routing in kept)
    if deliveries:
        yield from execute("notify_work")
    saved = {routing.event_id for routing in kept}
    return [routing.event_id in saved for routing in routings]
