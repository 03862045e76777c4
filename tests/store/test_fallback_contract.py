"""The Store contract for a provider's fallback: a dead delivery and its key's queue move to
the fallback in order, a held provider's queue moves, and later routings of a moved key
follow it there."""

from __future__ import annotations

import dataclasses
from typing import Any

from bridge.records import DeliveryStatus, EventStatus, FallBack, HoldState, ProviderHold
from bridge.store.base import Store
from bridge.tickets import OnMissing

from .conftest import T0, Run, make_delivery, result_for
from .test_contract import ingest_one, route
from .test_delivery_contract import three_on_one_key

CANCELLED, PENDING, WAITING = (
    DeliveryStatus.CANCELLED,
    DeliveryStatus.PENDING,
    DeliveryStatus.WAITING,
)
TO_SPARE = FallBack(to="spare", why="vambe did not take it: HTTP 422")


def deliveries_of(run: Run[Any], store: Store, *event_ids: str) -> list[Any]:
    return [d for e in event_ids for d in run(store.get_event(e)).deliveries]


def test_a_dead_delivery_moves_with_its_keys_queue_in_order(run: Run[Any], store: Store) -> None:
    events, (create, update, close) = three_on_one_key(run, store)
    [claim] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    dead = dataclasses.replace(
        result_for(claim, DeliveryStatus.DEAD, last_error="HTTP 422"), fallback=TO_SPARE
    )

    assert run(store.finish_attempt(claim, dead, now=T0 + 11))

    found = deliveries_of(run, store, *events)
    old = {d.id: d for d in found if d.provider == "vambe"}
    new = [d for d in found if d.provider == "spare"]
    assert {d.status for d in old.values()} == {CANCELLED}
    assert [d.moved_from for d in new] == [create, update, close]
    assert [d.status for d in new] == [PENDING, WAITING, WAITING]
    assert all(d.id in (old[d.moved_from].last_error or "") for d in new)
    assert all("sent to spare instead" in (d.last_error or "") for d in old.values())
    action = new[0].action
    assert action is not None and action.message is not None
    assert action.provider == "spare" and action.on_missing is OnMissing.CREATE
    assert action.message.text == "[ticketbridge] vambe did not take it: HTTP 422"
    assert old[create].attempts == 1  # its attempt is kept
    assert [run(store.get_event(e)).event.status for e in events] == [EventStatus.ACCEPTED] * 3

    order = []
    for step in range(3):  # the key's order holds at the fallback
        [next_claim] = run(store.claim_due(now=T0 + 20 + step, limit=10, lease=30))
        order.append(next_claim.delivery.moved_from)
        done = result_for(next_claim, DeliveryStatus.DONE)
        run(store.finish_attempt(next_claim, done, now=T0 + 20 + step))
    assert order == [create, update, close]
    assert [run(store.get_event(e)).event.status for e in events] == [EventStatus.DONE] * 3


def test_later_routings_of_a_moved_key_follow_it(run: Run[Any], store: Store) -> None:
    first = ingest_one(run, store, received_at=T0)
    route(run, store, first, [make_delivery(first, correlate="order-1")])
    [claim] = run(store.claim_due(now=T0 + 1, limit=10, lease=30))
    dead = dataclasses.replace(result_for(claim, DeliveryStatus.DEAD), fallback=TO_SPARE)
    run(store.finish_attempt(claim, dead, now=T0 + 2))

    later = ingest_one(run, store, received_at=T0 + 3)
    other_key = make_delivery(later, correlate="order-2")
    route(run, store, later, [make_delivery(later, correlate="order-1"), other_key], now=T0 + 3)

    by_key = {d.correlate: d for d in deliveries_of(run, store, later)}
    assert by_key["order-1"].provider == "spare"
    assert by_key["order-1"].moved_from is None  # routed there, not moved: no note
    assert by_key["order-1"].action is not None
    assert by_key["order-1"].action.message is None
    assert by_key["order-1"].status is WAITING  # behind the moved create at the fallback
    assert by_key["order-2"].provider == "vambe"


def test_a_held_providers_queue_moves_some_at_a_time(run: Run[Any], store: Store) -> None:
    events = [ingest_one(run, store, received_at=T0 + i) for i in range(3)]
    for event_id, correlate in zip(events, ["a", "a", None], strict=True):
        route(run, store, event_id, [make_delivery(event_id, correlate=correlate)])
    pause = ProviderHold(
        provider="vambe", state=HoldState.PAUSED, since=T0, until=T0 + 900, reason="HTTP 401"
    )
    run(store.hold_provider(pause))

    assert run(store.fall_back_provider("vambe", TO_SPARE, now=T0 + 700)) == 3
    assert run(store.fall_back_provider("vambe", TO_SPARE, now=T0 + 701)) == 0

    found = deliveries_of(run, store, *events)
    moved = [d for d in found if d.provider == "spare"]
    assert [d.status for d in moved] == [PENDING, WAITING, PENDING]
    assert {d.status for d in found if d.provider == "vambe"} == {CANCELLED}
    # a moved delivery moves once: the fallback's own troubles do not send it on
    assert run(store.fall_back_provider("spare", TO_SPARE, now=T0 + 702)) == 0
    claims = run(store.claim_due(now=T0 + 703, limit=10, lease=30))
    assert {c.delivery.provider for c in claims} == {"spare"}


def test_a_delivery_a_fallback_leaves_first_in_its_queue_is_pending_and_goes(
    run: Run[Any], store: Store
) -> None:
    # vambe's queue for order-1: its own delivery, then one desk sent it (moved once: it stays)
    first, second = (ingest_one(run, store, received_at=T0 + i) for i in range(2))
    route(run, store, first, [make_delivery(first, correlate="order-1")])
    route(run, store, second, [make_delivery(second, provider="desk", correlate="order-1")])
    claims = {c.delivery.provider: c for c in run(store.claim_due(now=T0 + 1, limit=10, lease=30))}
    to_vambe = FallBack(to="vambe", why="desk did not take it: HTTP 422")
    dead = result_for(claims["desk"], DeliveryStatus.DEAD, last_error="HTTP 422")
    run(
        store.finish_attempt(
            claims["desk"], dataclasses.replace(dead, fallback=to_vambe), now=T0 + 2
        )
    )
    [moved_in] = [d for d in deliveries_of(run, store, second) if d.provider == "vambe"]
    assert (moved_in.status, moved_in.blocked_by) == (WAITING, claims["vambe"].delivery.id)

    # vambe's own dies and goes to spare; what desk sent stays, first in vambe's queue now
    dead = result_for(claims["vambe"], DeliveryStatus.DEAD, last_error="HTTP 422")
    run(
        store.finish_attempt(
            claims["vambe"], dataclasses.replace(dead, fallback=TO_SPARE), now=T0 + 3
        )
    )

    left = run(store.get_delivery(moved_in.id))
    assert (left.status, left.blocked_by) == (PENDING, None)
    claimed = run(store.claim_due(now=T0 + 4, limit=10, lease=30))
    assert moved_in.id in {c.delivery.id for c in claimed}
