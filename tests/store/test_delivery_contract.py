"""The Store contract for the delivery guarantees: per-key order made visible (waiting, dead
behind a dead one, released by a retry), provider holds, per-provider claims, leases kept
alive, attempts that spend no retry budget, and retention of bodies and dedupe keys."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from bridge.config import RateLimit
from bridge.exceptions import StoreError
from bridge.records import (
    DeliveryStatus,
    EventStatus,
    HoldState,
    NewDelivery,
    ProviderHold,
    Routing,
)
from bridge.store.base import Store

from .conftest import DAY, T0, Run, make_delivery, make_event, result_for
from .test_contract import WINDOW, ingest_one, route

PENDING, WAITING, DEAD = DeliveryStatus.PENDING, DeliveryStatus.WAITING, DeliveryStatus.DEAD


def statuses(run: Run[Any], store: Store, *event_ids: str) -> dict[str, DeliveryStatus]:
    found = {}
    for event_id in event_ids:
        for delivery in run(store.get_event(event_id)).deliveries:
            found[delivery.id] = delivery.status
    return found


def delivery(run: Run[Any], store: Store, event_id: str, delivery_id: str) -> Any:
    (found,) = [d for d in run(store.get_event(event_id)).deliveries if d.id == delivery_id]
    return found


def three_on_one_key(run: Run[Any], store: Store) -> tuple[list[str], list[str]]:
    events = [ingest_one(run, store, received_at=T0 + i) for i in range(3)]
    deliveries = [make_delivery(e, correlate="order-1") for e in events]
    for event_id, d in zip(events, deliveries, strict=True):
        route(run, store, event_id, [d])
    return events, [d.id for d in deliveries]


def test_later_actions_of_a_key_wait_and_name_the_one_before_them(
    run: Run[Any], store: Store
) -> None:
    events, (create, update, close) = three_on_one_key(run, store)

    assert statuses(run, store, *events) == {create: PENDING, update: WAITING, close: WAITING}
    assert delivery(run, store, events[1], update).blocked_by == create
    assert delivery(run, store, events[2], close).blocked_by == update
    assert delivery(run, store, events[0], create).blocked_by is None


def test_a_keys_order_is_by_arrival_not_by_routing(run: Run[Any], store: Store) -> None:
    early = ingest_one(run, store, received_at=T0)
    late = ingest_one(run, store, received_at=T0 + 1)
    first, second = (
        make_delivery(early, correlate="order-1"),
        make_delivery(late, correlate="order-1"),
    )
    route(run, store, late, [second])  # the later webhook is routed first
    # the earlier webhook, unrouted, may bring an action for the key: nothing of it goes yet
    assert run(store.claim_due(now=T0 + 10, limit=10, lease=30)) == []

    route(run, store, early, [first])

    assert statuses(run, store, early, late) == {first.id: PENDING, second.id: WAITING}
    assert delivery(run, store, late, second.id).blocked_by == first.id
    [claim] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    assert claim.delivery.id == first.id
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 11))
    [claim] = run(store.claim_due(now=T0 + 11, limit=10, lease=30))
    assert claim.delivery.id == second.id


def test_success_releases_the_next_one_at_once(run: Run[Any], store: Store) -> None:
    events, (create, update, close) = three_on_one_key(run, store)
    [claim] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    retry = result_for(claim, PENDING, next_attempt_at=T0 + 100, last_error="503")
    run(store.finish_attempt(claim, retry, now=T0 + 11))
    assert statuses(run, store, *events)[update] is WAITING  # a retry still holds the key

    [claim] = run(store.claim_due(now=T0 + 100, limit=10, lease=30))
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 101))

    assert statuses(run, store, *events) == {
        create: DeliveryStatus.DONE,
        update: PENDING,
        close: WAITING,
    }
    assert delivery(run, store, events[1], update).next_attempt_at == T0 + 101
    [claim] = run(store.claim_due(now=T0 + 101, limit=10, lease=30))
    assert claim.delivery.id == update


def test_a_skipped_action_releases_the_next_one_too(run: Run[Any], store: Store) -> None:
    events, (_, update, _) = three_on_one_key(run, store)
    [claim] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.SKIPPED), now=T0 + 11))
    assert statuses(run, store, *events)[update] is PENDING


def test_a_dead_action_kills_the_rest_of_its_key_naming_itself(run: Run[Any], store: Store) -> None:
    events, (create, update, close) = three_on_one_key(run, store)
    other = ingest_one(run, store, received_at=T0 + 5)
    other_key = make_delivery(other, correlate="order-2")
    route(run, store, other, [other_key])
    [first, _] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    dead = result_for(first, DEAD, last_error="HTTP 422: bad requester")
    run(store.finish_attempt(first, dead, now=T0 + 11))

    assert statuses(run, store, *events, other) == {
        create: DEAD,
        update: DEAD,
        close: DEAD,
        other_key.id: DeliveryStatus.IN_FLIGHT,
    }
    killed = delivery(run, store, events[2], close)
    assert killed.blocked_by == create
    assert create in (killed.last_error or "")
    assert "HTTP 422: bad requester" in (killed.last_error or "")
    assert killed.attempts == 0
    assert [run(store.get_event(e)).event.status for e in events] == [EventStatus.FAILED] * 3


def test_retrying_the_dead_one_queues_the_ones_it_killed_behind_it(
    run: Run[Any], store: Store
) -> None:
    events, (create, update, close) = three_on_one_key(run, store)
    [first] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    run(store.finish_attempt(first, result_for(first, DEAD, last_error="422"), now=T0 + 11))
    # an action for the key that arrives while it is dead is not held back by a dead one
    late = ingest_one(run, store, received_at=T0 + 20)
    late_note = make_delivery(late, correlate="order-1")
    route(run, store, late, [late_note], now=T0 + 20)
    assert statuses(run, store, late) == {late_note.id: PENDING}

    # retrying a killed one retries from the one that killed it, so the order holds
    assert run(store.retry_delivery(close, now=T0 + 30))

    assert statuses(run, store, *events, late) == {
        create: PENDING,
        update: WAITING,
        close: WAITING,
        late_note.id: WAITING,
    }
    released = delivery(run, store, events[1], update)
    assert (released.last_error, released.tries) == (None, 0)
    assert [run(store.get_event(e)).event.status for e in events] == [EventStatus.ACCEPTED] * 3
    order = []
    for step in range(4):
        [claim] = run(store.claim_due(now=T0 + 40 + step, limit=10, lease=30))
        order.append(claim.delivery.id)
        done = result_for(claim, DeliveryStatus.DONE)
        run(store.finish_attempt(claim, done, now=T0 + 40 + step))
    assert order == [create, update, close, late_note.id]


def test_a_401_attempt_spends_no_try_and_pauses_its_provider_at_once(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    paused = dataclasses.replace(
        result_for(claim, PENDING, last_error="HTTP 401"), spends_try=False
    )

    assert run(store.finish_attempt(claim, paused, now=T0 + 1))

    [stored] = run(store.get_event(event_id)).deliveries
    assert (stored.status, stored.attempts, stored.tries) == (PENDING, 1, 0)
    assert stored.next_attempt_at == T0 + 1
    assert len(stored.attempt_log) == 1


def test_a_held_provider_is_not_claimed_until_the_hold_ends_or_is_released(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    desk, other = make_delivery(event_id, provider="desk"), make_delivery(event_id)
    route(run, store, event_id, [desk, other])
    hold = ProviderHold(
        provider="desk", state=HoldState.PAUSED, since=T0, until=T0 + 900, reason="HTTP 401"
    )
    run(store.hold_provider(hold))

    [claim] = run(store.claim_due(now=T0 + 1, limit=10, lease=30))
    assert claim.delivery.id == other.id
    assert run(store.provider_holds()) == {"desk": hold}
    assert run(store.get_event(event_id)).holds == {"desk": hold}
    # the held provider's due delivery is no reason to wake; the end of the hold is
    assert run(store.next_wakeup(now=T0 + 1)) == T0 + 31  # the other's lease
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 2))
    assert run(store.next_wakeup(now=T0 + 2)) == T0 + 900

    [after] = run(store.claim_due(now=T0 + 900, limit=10, lease=30))
    assert after.delivery.id == desk.id
    run(store.finish_attempt(after, result_for(after, PENDING), now=T0 + 901))
    run(store.hold_provider(dataclasses.replace(hold, until=T0 + 5000)))
    assert run(store.claim_due(now=T0 + 902, limit=10, lease=30)) == []
    assert run(store.release_provider("desk")) is True
    assert run(store.release_provider("desk")) is False
    assert len(run(store.claim_due(now=T0 + 902, limit=10, lease=30))) == 1


def test_claims_per_provider_and_for_providers_not_named(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    slow = [make_delivery(event_id, provider="slow") for _ in range(5)]
    fast = [make_delivery(event_id, provider="fast") for _ in range(3)]
    gone = [make_delivery(event_id, provider="removed") for _ in range(2)]
    route(run, store, event_id, slow + fast + gone)

    claims = run(store.claim_due(now=T0, limit=10, lease=30, per_provider={"slow": 1, "fast": 0}))

    by_provider: dict[str, int] = {}
    for claim in claims:
        by_provider[claim.delivery.provider] = by_provider.get(claim.delivery.provider, 0) + 1
    assert by_provider == {"slow": 1, "removed": 2}
    assert run(store.next_wakeup(now=T0, skip=["slow", "fast"])) == T0 + 30  # leases only
    assert run(store.next_wakeup(now=T0, skip=["fast"])) == T0  # slow has more due


def test_extended_leases_are_not_taken_over(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id), make_delivery(event_id)])
    kept, lapsing = run(store.claim_due(now=T0, limit=10, lease=30))

    run(store.extend_leases([kept], until=T0 + 60))

    [taken] = run(store.claim_due(now=T0 + 31, limit=10, lease=30))
    assert taken.delivery.id == lapsing.delivery.id
    assert run(store.finish_attempt(kept, result_for(kept, DeliveryStatus.DONE), now=T0 + 50))


def test_drop_bodies_forgets_old_raw_bodies_of_routed_events_only(
    run: Run[Any], store: Store
) -> None:
    old = ingest_one(run, store)
    new = ingest_one(run, store, received_at=T0 + 2 * DAY)
    for event_id in (old, new):
        route(run, store, event_id, [])
    unrouted = ingest_one(run, store)  # as old as the old one, its work still to do

    assert run(store.drop_bodies(before=T0 + DAY)) == 1

    assert run(store.get_raw(old)) is None
    assert run(store.get_raw(new)) == b'{"n": 1}'
    assert run(store.get_raw(unrouted)) == b'{"n": 1}'
    assert run(store.get_event(old)).event.payload == '{"n": 1}'  # the parsed body stays


def test_purge_keeps_dedupe_keys_younger_than_dedupe_before(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store, dedupe_key="k")
    route(run, store, event_id, [])

    counts = run(store.purge(before=T0 + 2 * DAY, dedupe_before=T0 - 1))

    assert (counts.events, counts.dedupe_keys) == (1, 0)
    [again] = run(store.ingest([make_event(dedupe_key="k")], dedupe_window=WINDOW, now=T0 + DAY))
    assert again.duplicate


def test_a_rate_limited_provider_gets_only_what_its_shared_bucket_pays_for(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id, provider="desk") for _ in range(6)])
    rate = {"desk": RateLimit(per_second=2, burst=2)}
    room = {"desk": 10}

    first = run(store.claim_due(now=T0, limit=10, lease=30, per_provider=room, rates=rate))
    assert len(first) == 2  # a full bucket: the burst
    # the bucket is in the store: any other process claiming now finds it empty
    assert run(store.claim_due(now=T0, limit=10, lease=30, per_provider=room, rates=rate)) == []
    assert run(store.next_token_at("desk", rate["desk"], now=T0)) == T0 + 0.5

    later = run(store.claim_due(now=T0 + 1, limit=10, lease=30, per_provider=room, rates=rate))
    assert len(later) == 2  # two tokens a second
    assert run(store.next_token_at("desk", rate["desk"], now=T0 + 10)) == T0 + 10


def test_a_worker_whose_routing_lease_ran_out_does_not_route_the_event_twice(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    [slow] = run(store.claim_unrouted(now=T0, limit=10, lease=5))
    [fast] = run(store.claim_unrouted(now=T0 + 6, limit=10, lease=5))  # the lease lapsed
    assert slow.id == fast.id == event_id

    def routing(delivery_count: int) -> Routing:
        return Routing(
            event_id=event_id,
            matched_rules=("rule-1",),
            trace=[],
            deliveries=[make_delivery(event_id) for _ in range(delivery_count)],
            only_if_unrouted=True,
        )

    assert run(store.save_routing(routing(1), now=T0 + 7)) is True
    assert run(store.save_routing(routing(2), now=T0 + 8)) is False

    detail = run(store.get_event(event_id))
    assert len(detail.deliveries) == 1 and detail.event.routed_at == T0 + 7
    # a replay routes a routed event again
    replay = dataclasses.replace(routing(1), only_if_unrouted=False, supersede_dead=True)
    assert run(store.save_routing(replay, now=T0 + 9)) is True
    assert len(run(store.get_event(event_id)).deliveries) == 2


def test_routings_saved_as_a_batch_are_each_what_save_routing_makes(
    run: Run[Any], store: Store
) -> None:
    first, routed, keyed = (ingest_one(run, store, received_at=T0 + i) for i in range(3))
    route(run, store, routed, [make_delivery(routed)])

    def routing(event_id: str, *deliveries: NewDelivery) -> Routing:
        return Routing(
            event_id=event_id,
            matched_rules=("rule-1",) if deliveries else (),
            trace=[],
            deliveries=list(deliveries),
            only_if_unrouted=True,
        )

    # the one routed before is left as it is; an unmatched event is in the batch too
    batch = [
        routing(first),
        routing(routed, make_delivery(routed)),
        routing(keyed, make_delivery(keyed, correlate="k"), make_delivery(keyed, correlate="k")),
    ]
    assert run(store.save_routings(batch, now=T0 + 5)) == [True, False, True]

    details = {e: run(store.get_event(e)) for e in (first, routed, keyed)}
    assert details[first].event.status is EventStatus.UNMATCHED
    assert len(details[routed].deliveries) == 1
    statuses = [d.status for d in details[keyed].deliveries]
    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.WAITING]  # one key's queue
    assert details[keyed].event.routed_at == T0 + 5


def test_attempts_finished_together_are_each_kept_as_alone(run: Run[Any], store: Store) -> None:
    """Concurrent finishes (merged into one step where the store has a group-commit writer):
    each answer and each write as a finish alone, a lost lease included."""
    events = [ingest_one(run, store, received_at=T0 + i) for i in range(3)]
    for event_id in events:
        route(run, store, event_id, [make_delivery(event_id, correlate=f"k-{event_id}")])
    first, lost, retried = run(store.claim_due(now=T0, limit=10, lease=30))
    stale = dataclasses.replace(lost, lease_token="another worker's token")

    async def together() -> list[bool]:
        return list(
            await asyncio.gather(
                store.finish_attempt(
                    first,
                    result_for(first, DeliveryStatus.DONE, ticket_ref={"id": "T-1"}),
                    now=T0 + 1,
                ),
                store.finish_attempt(stale, result_for(lost, DeliveryStatus.DONE), now=T0 + 1),
                store.finish_attempt(
                    retried,
                    result_for(retried, DeliveryStatus.PENDING, next_attempt_at=T0 + 60),
                    now=T0 + 1,
                ),
            )
        )

    assert run(together()) == [True, False, True]
    done, still, waiting = (run(store.get_event(e)) for e in events)
    assert done.event.status is EventStatus.DONE
    assert dict(done.deliveries[0].ticket_ref or {}) == {"id": "T-1"}
    assert len(done.deliveries[0].attempt_log) == 1
    assert still.deliveries[0].status is DeliveryStatus.IN_FLIGHT  # its lease is not theirs
    assert still.deliveries[0].attempt_log == ()
    assert waiting.deliveries[0].status is DeliveryStatus.PENDING
    assert waiting.deliveries[0].next_attempt_at == T0 + 60
    assert waiting.event.status is EventStatus.ACCEPTED


def test_a_batch_of_routings_with_an_unknown_event_stores_none_of_them(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    batch = [
        Routing(event_id=e, matched_rules=(), trace=[], deliveries=[], only_if_unrouted=True)
        for e in (event_id, "evt_unknown")
    ]
    with pytest.raises(StoreError, match="evt_unknown"):
        run(store.save_routings(batch, now=T0))
    assert run(store.get_event(event_id)).event.routed_at is None


def test_a_dedupe_key_with_a_nul_character_is_stored_and_dedupes(
    run: Run[Any], store: Store
) -> None:
    # a sender's JSON may carry "\u0000" in the field the dedupe key is read from
    first = ingest_one(run, store, dedupe_key="order\x001")
    [again] = run(store.ingest([make_event(dedupe_key="order\x001")], dedupe_window=WINDOW, now=T0))
    assert again.duplicate and again.event_id == first


def test_get_delivery_reads_one_with_its_attempts(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    run(store.finish_attempt(claim, result_for(claim, DEAD, last_error="422"), now=T0 + 1))

    found = run(store.get_delivery(claim.delivery.id))

    assert found is not None and found.status is DEAD and found.last_error == "422"
    assert [a.number for a in found.attempt_log] == [1]
    assert run(store.get_delivery("dlv_missing")) is None
