"""A correlate key's queue: the order of a (provider, correlate) key's deliveries, and what an
attempt's end or an operator's retry means for it and for the events (DESIGN §3.2, §3.3).
Written once, as steps, for both databases.

The order is kept by statuses written in the same transactions that change a key:
- A key's queue is in the order its webhooks arrived: the event's received_at and id, then the
  delivery's seq (`key_order` in queries.sql), not the order deliveries were stored: routers in
  two processes may store the later webhook's deliveries first. A keyed delivery may not go
  while an event that arrived before its own is unrouted (`may_go`).
- A delivery queued behind an unfinished one of its key is `waiting`, and a waiting one is
  always behind one (so claims and wake-ups read pending ones only); the head ending done or
  skipped makes the next one `pending`, and so does the head moving to a fallback; the head
  dying kills the rest of the queue, each naming it in `blocked_by`; retrying it queues them
  again behind it.
- Changing a key's queue takes the key's lock first (on PostgreSQL `pg_advisory_xact_lock` of
  a hash of `provider|correlate`; SQLite's one writer needs none): routing, finishing and
  retrying one key run one after another. Claiming needs none: only a key's head is ever
  pending, and whatever stops a row being the head changes that row's own status, which
  PostgreSQL checks again once the claim holds the row.

Locks are taken in one order everywhere, so that transactions do not deadlock: key locks
(sorted), then delivery rows, then event rows (sorted, when their statuses are recomputed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.exceptions import StoreError
from bridge.ids import new_id
from bridge.records import AttemptResult, Claim, DeliveryStatus, FallBack
from bridge.store.pacing import hold_provider
from bridge.store.rows import (
    ReadRow,
    action_from_text,
    action_text,
    attempt_params,
    dumps_optional,
)
from bridge.store.steps import Step, execute, first, many, rows
from bridge.tickets import sent_elsewhere

MOVE_CHUNK = 500  # deliveries of a held provider moved to its fallback in one transaction


def lock_keys(keys: Iterable[tuple[str, str]]) -> Step[None]:
    """Hold these (provider, correlate) keys until the transaction ends."""
    names = sorted({f"{provider}|{correlate}" for provider, correlate in keys})
    if names:
        yield from execute("lock_keys", names=names)


def settle_queued(delivery_ids: Sequence[str]) -> Step[None]:
    """Queued deliveries just added or queued again: each is waiting while a delivery before
    it in its key's queue is unfinished, else pending; pending ones after it now wait for it.
    Call with the deliveries' keys locked."""
    if delivery_ids:
        yield from execute("settle_queued", ids=list(delivery_ids))
        yield from execute("hold_back_later", ids=list(delivery_ids))


def recompute_event_statuses(event_ids: Iterable[str]) -> Step[None]:
    """One event at a time, in id order: every transaction locks event rows in one order."""
    for event_id in sorted(set(event_ids)):
        yield from execute("recompute_event_status", event_id=event_id)


@dataclass(frozen=True)
class Finish:
    """One attempt's end to store (finish_attempt's arguments)."""

    claim: Claim
    result: AttemptResult
    now: float

    @property
    def common(self) -> bool:
        """Done, skipped or to be tried again, holding no provider and moving nothing: the
        end nearly every attempt has, which finish_attempts writes for many at once."""
        result = self.result
        return (
            result.hold is None
            and result.fallback is None
            and result.status is not DeliveryStatus.DEAD
        )


def finish_attempts(finishes: Sequence[Finish]) -> Step[list[bool]]:
    """finish_attempt of common ends (Finish.common) that came together (the group-commit
    writer merges them), each answer as finish_attempt's: one statement of each kind for
    all of them. Locks in the one order: keys, delivery rows, event rows."""
    if not all(finish.common for finish in finishes):
        raise StoreError("finish_attempts takes common ends only")
    yield from lock_keys(
        (f.claim.delivery.provider, f.claim.delivery.correlate)
        for f in finishes
        if f.claim.delivery.correlate is not None
    )
    found = yield from rows("held_deliveries", ids=[f.claim.delivery.id for f in finishes])
    held = {row["id"]: row for row in found if row["status"] == DeliveryStatus.IN_FLIGHT.value}
    mine = [
        f
        for f in finishes
        if f.claim.delivery.id in held
        and held[f.claim.delivery.id]["lease_token"] == f.claim.lease_token
    ]
    yield from _finish_common(mine)
    yield from recompute_event_statuses(held[f.claim.delivery.id]["event_id"] for f in mine)
    kept = {f.claim.delivery.id for f in mine}
    return [finish.claim.delivery.id in kept for finish in finishes]


def _finish_common(finishes: Sequence[Finish]) -> Step[None]:
    """What finish_attempt writes for a common end, for each of `finishes` (held by them)."""
    yield from many(
        "insert_attempt",
        [attempt_params(f.result.attempt, delivery_id=f.claim.delivery.id) for f in finishes],
    )
    yield from many("finish_delivery", [_finished(f) for f in finishes])
    yield from _key_moves_on([f for f in finishes if f.claim.delivery.correlate is not None])


def _key_moves_on(finishes: Sequence[Finish]) -> Step[None]:
    """For keyed attempts that did not die: the correlate map learns what a done one says of
    its ticket, and the next delivery of the key may go after a done or skipped one."""
    done, skipped = DeliveryStatus.DONE, DeliveryStatus.SKIPPED
    yield from many(
        "upsert_ticket",
        [
            {
                "provider": f.claim.delivery.provider,
                "correlate": f.claim.delivery.correlate,
                "ticket_ref": dumps_optional(f.result.ticket_ref),
                "open": f.result.ticket_open,
                "now": f.now,
            }
            for f in finishes
            if f.result.status is done
            and (f.result.ticket_ref is not None or f.result.ticket_open is not None)
        ],
    )
    yield from many(
        "release_next",
        [
            {
                "provider": f.claim.delivery.provider,
                "correlate": f.claim.delivery.correlate,
                "now": f.now,
            }
            for f in finishes
            if f.result.status in (done, skipped)
        ],
    )


def _finished(finish: Finish) -> dict[str, Any]:
    """finish_delivery's parameters for `finish`."""
    result = finish.result
    next_attempt_at = None
    if result.status is DeliveryStatus.PENDING:
        next_attempt_at = finish.now if result.next_attempt_at is None else result.next_attempt_at
    return {
        "id": finish.claim.delivery.id,
        "spent": int(result.spends_try),
        "status": result.status.value,
        "next_attempt_at": next_attempt_at,
        "last_error": result.last_error,
        "ticket_ref": dumps_optional(result.ticket_ref),
    }


def finish_attempt(claim: Claim, result: AttemptResult, *, now: float) -> Step[bool]:
    delivery_id = claim.delivery.id
    status = result.status
    finish = Finish(claim, result, now)
    provider, correlate = claim.delivery.provider, claim.delivery.correlate  # never changes
    fallback = result.fallback
    if correlate is not None:
        yield from lock_keys(
            [(provider, correlate), *([(fallback.to, correlate)] if fallback else [])]
        )
    held = yield from first("held_delivery", id=delivery_id, token=claim.lease_token)
    if held is None:
        return False
    if result.hold is not None:
        yield from hold_provider(result.hold)
    yield from execute("insert_attempt", **attempt_params(result.attempt, delivery_id=delivery_id))
    yield from execute("finish_delivery", **_finished(finish))
    events = {held["event_id"]}
    # where it stands in its key's queue: what comes after it follows it, or dies with it
    place = {
        "id": delivery_id,
        "provider": provider,
        "correlate": correlate,
        "event_received_at": held["event_received_at"],
        "event_id": held["event_id"],
        "seq": held["seq"],
    }
    if fallback is not None:  # it and what waits behind it on its key go to the fallback
        moving = yield from rows("movable_from_dead", **place, limit=MOVE_CHUNK)
        events |= yield from move_deliveries(moving, fallback, now=now)
    elif correlate is not None:
        if status is not DeliveryStatus.DEAD:
            yield from _key_moves_on([finish])
        else:
            message = (
                f"not sent: {delivery_id} (rule {held['rule']}), an earlier action for the "
                f"same ticket, is dead: {result.last_error or 'no reason recorded'}"
            )
            killed = yield from rows("kill_followers", **place, message=message)
            events |= {row["event_id"] for row in killed}
    yield from recompute_event_statuses(events)
    return True


def fall_back_provider(provider: str, fallback: FallBack, *, now: float) -> Step[int]:
    """Send what is queued for the held `provider` to its fallback (up to MOVE_CHUNK)."""
    found = yield from rows("movable_of_provider", provider=provider, limit=MOVE_CHUNK)
    keys = {row["correlate"] for row in found if row["correlate"] is not None}
    if not found:
        return 0
    yield from lock_keys([(p, key) for key in keys for p in (provider, fallback.to)])
    found = yield from rows("movable_of_provider", provider=provider, limit=MOVE_CHUNK)
    found = [row for row in found if row["correlate"] is None or row["correlate"] in keys]
    yield from recompute_event_statuses((yield from move_deliveries(found, fallback, now=now)))
    return len(found)


def move_deliveries(found: Sequence[ReadRow], fallback: FallBack, *, now: float) -> Step[set[str]]:
    """Send `found` (in their keys' order, keys locked) to `fallback.to` instead: each is
    cancelled naming the delivery that replaces it, which queues on the same key there; the
    correlate map remembers where each key went. Returns their events, whose statuses the
    caller recomputes."""
    replacing = []
    for row in found:
        moved = new_id("dlv")
        message = f"sent to {fallback.to} instead, as {moved}: {fallback.why}"
        yield from execute("cancel_moved", id=row["id"], message=message)
        action = action_from_text(row["action"])
        assert action is not None  # movable: only deliveries with an action move
        yield from execute(
            "insert_moved",
            id=moved,
            event_id=row["event_id"],
            event_received_at=row["event_received_at"],
            rule=row["rule"],
            provider=fallback.to,
            action=action_text(sent_elsewhere(action, to=fallback.to, why=fallback.why)),
            correlate=row["correlate"],
            now=now,
            moved_from=row["id"],
        )
        if row["correlate"] is not None:
            replacing.append(moved)
    for provider, correlate in dict.fromkeys(
        (row["provider"], row["correlate"]) for row in found if row["correlate"] is not None
    ):
        yield from execute(
            "move_ticket", provider=provider, correlate=correlate, moved_to=fallback.to, now=now
        )
        # what stays (a delivery moved here once is not moved on) is first in the key's queue
        yield from execute("settle_head", provider=provider, correlate=correlate)
    yield from settle_queued(replacing)
    if found:
        yield from execute("notify_work")
    return {row["event_id"] for row in found}


def retry_delivery(delivery_id: str, *, now: float) -> Step[bool]:
    key = yield from first("delivery_key", id=delivery_id)
    if key is None:
        return False
    if key["correlate"] is not None:  # the blocker chain stays on this key
        yield from lock_keys([(key["provider"], key["correlate"])])
    # a delivery killed by an earlier one's death is retried from that one, to keep the order
    seen = {delivery_id}
    while (blocker := (yield from first("blocker", id=delivery_id))) is not None:
        if blocker["id"] in seen:
            break
        delivery_id = blocker["id"]
        seen.add(delivery_id)
    retried = yield from first("retry", id=delivery_id, now=now)
    if retried is None:
        return False
    followers = yield from rows("requeue_followers", id=delivery_id, now=now)
    # they wait behind what is before them in the key's queue, and later pending ones of the
    # key wait behind them
    yield from settle_queued([delivery_id, *(row["id"] for row in followers)])
    yield from recompute_event_statuses(
        {retried["event_id"], *(row["event_id"] for row in followers)}
    )
    yield from execute("notify_work")
    return True
