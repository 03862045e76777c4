"""The Store contract for what the overview and /metrics read: events by time, the queue by
provider and status, and activity per time bucket."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.exceptions import StoreError
from bridge.records import Activity, Claim, DeliveryStatus, QueueStats
from bridge.store.base import Store

from .conftest import T0, Run, make_delivery, result_for
from .test_contract import ingest_one, route

PENDING, WAITING, IN_FLIGHT = (
    DeliveryStatus.PENDING,
    DeliveryStatus.WAITING,
    DeliveryStatus.IN_FLIGHT,
)
DONE, DEAD = DeliveryStatus.DONE, DeliveryStatus.DEAD


def claim_all(run: Run[Any], store: Store, *, now: float) -> dict[str, Claim]:
    claims: list[Claim] = run(store.claim_due(now=now, limit=100, lease=3600))
    return {claim.delivery.id: claim for claim in claims}


def finish(
    run: Run[Any],
    store: Store,
    claim: Claim,
    status: DeliveryStatus,
    *,
    at: float,
    next_attempt_at: float | None = None,
) -> None:
    """One attempt of `claim`, started at `at` (it lasts 0.25 s), ending the delivery so."""
    result = result_for(claim, status, started_at=at, next_attempt_at=next_attempt_at)
    assert run(store.finish_attempt(claim, result, now=at + 1))


# -- list_events by time ------------------------------------------------------------------


def test_list_events_bounds_received_at_since_inclusive_until_exclusive(
    run: Run[Any], store: Store
) -> None:
    ids = [ingest_one(run, store, received_at=T0 + 10 * i) for i in range(4)]
    crm = ingest_one(run, store, received_at=T0 + 15, source="crm")

    def listed(**filters: Any) -> list[str]:
        return [event.id for event in run(store.list_events(**filters))]

    assert listed(since=T0 + 10, until=T0 + 30) == [ids[2], crm, ids[1]]
    assert listed(since=T0 + 20) == [ids[3], ids[2]]
    assert listed(until=T0 + 10) == [ids[0]]
    assert listed(since=T0 + 10, until=T0 + 30, source="shop") == [ids[2], ids[1]]
    assert listed(since=T0 + 10, until=T0 + 30, limit=1) == [ids[2]]
    assert listed(since=T0 + 10, until=T0 + 30, before=ids[2]) == [crm, ids[1]]
    assert listed(since=T0 + 30, until=T0 + 30) == []


# -- queue_stats ----------------------------------------------------------------------------


def test_queue_stats_of_an_empty_store(run: Run[Any], store: Store) -> None:
    assert run(store.queue_stats()) == QueueStats(deliveries={}, unrouted=0, oldest_unfinished=None)


def test_queue_stats_counts_per_provider_and_status_and_the_oldest_work_left(
    run: Run[Any], store: Store
) -> None:
    # finished work: one done, one dead (its event is failed, but nothing is left to do)
    finished = ingest_one(run, store, received_at=T0)
    done = make_delivery(finished)
    dead = make_delivery(finished, provider="glassix")
    route(run, store, finished, [done, dead])
    claims = claim_all(run, store, now=T0)
    finish(run, store, claims[done.id], DONE, at=T0)
    finish(run, store, claims[dead.id], DEAD, at=T0)
    # work left: one in flight, one waiting behind it, one pending, one event not routed
    busy = ingest_one(run, store, received_at=T0 + 10)
    first, second = make_delivery(busy, correlate="k"), make_delivery(busy, correlate="k")
    route(run, store, busy, [first, second])
    claims = claim_all(run, store, now=T0 + 20)
    assert list(claims) == [first.id]
    queued = ingest_one(run, store, received_at=T0 + 20)
    pending = make_delivery(queued, provider="glassix")
    route(run, store, queued, [pending], now=T0 + 25)
    unrouted = ingest_one(run, store, received_at=T0 + 30)

    stats = run(store.queue_stats())

    assert stats == QueueStats(
        deliveries={
            ("vambe", DONE): 1,
            ("glassix", DEAD): 1,
            ("vambe", IN_FLIGHT): 1,
            ("vambe", WAITING): 1,
            ("glassix", PENDING): 1,
        },
        unrouted=1,
        oldest_unfinished=T0 + 10,
    )
    assert all(isinstance(status, DeliveryStatus) for _, status in stats.deliveries)

    # the busy event's work ends: the oldest work left is the queued event's
    finish(run, store, claims[first.id], DONE, at=T0 + 21)
    claims = claim_all(run, store, now=T0 + 30)
    assert set(claims) == {second.id, pending.id}
    finish(run, store, claims[second.id], DONE, at=T0 + 30)
    assert run(store.queue_stats()).oldest_unfinished == T0 + 20

    # then the queued event's: only the unrouted event is left
    finish(run, store, claims[pending.id], DONE, at=T0 + 30)
    stats = run(store.queue_stats())
    assert (stats.unrouted, stats.oldest_unfinished) == (1, T0 + 30)

    # routed with nothing to do: everything is final
    route(run, store, unrouted, [], now=T0 + 40)
    assert run(store.queue_stats()) == QueueStats(
        deliveries={("vambe", DONE): 3, ("glassix", DEAD): 1, ("glassix", DONE): 1},
        unrouted=0,
        oldest_unfinished=None,
    )


def test_an_unrouted_event_older_than_any_queued_delivery_is_the_oldest_work(
    run: Run[Any], store: Store
) -> None:
    ingest_one(run, store, received_at=T0 + 5)
    routed = ingest_one(run, store, received_at=T0 + 10)
    route(run, store, routed, [make_delivery(routed)])

    stats = run(store.queue_stats())

    assert (stats.unrouted, stats.oldest_unfinished) == (1, T0 + 5)
    assert stats.deliveries == {("vambe", PENDING): 1}


# -- activity -------------------------------------------------------------------------------


def test_activity_counts_per_bucket_with_zeros_and_edges(run: Run[Any], store: Store) -> None:
    ingest_one(run, store, received_at=T0 - 1)  # before `since`
    at_start = ingest_one(run, store, received_at=T0)
    ingest_one(run, store, received_at=T0 + 59.5)
    ingest_one(run, store, received_at=T0 + 120)  # on an edge: the later bucket's
    ingest_one(run, store, received_at=T0 + 300)  # at `until`: left out
    retried = make_delivery(at_start)
    on_edge = make_delivery(at_start, provider="glassix")
    dead = make_delivery(at_start, provider="zendesk")
    route(run, store, at_start, [retried, on_edge, dead])

    claims = claim_all(run, store, now=T0)
    # a failure in the first bucket, then the success in the fourth: counted once, there
    finish(run, store, claims[retried.id], PENDING, at=T0 + 10, next_attempt_at=T0 + 185)
    # ends at T0 + 60 exactly: the second bucket's
    finish(run, store, claims[on_edge.id], DONE, at=T0 + 59.75)
    # dead: never delivered
    finish(run, store, claims[dead.id], DEAD, at=T0 + 30)
    [claim] = claim_all(run, store, now=T0 + 185).values()
    finish(run, store, claim, DONE, at=T0 + 185)

    activity = run(store.activity(since=T0, until=T0 + 300, bucket=60))

    assert activity == [
        Activity(start=T0, received=2, delivered=0),
        Activity(start=T0 + 60, received=0, delivered=1),
        Activity(start=T0 + 120, received=1, delivered=0),
        Activity(start=T0 + 180, received=0, delivered=1),
        Activity(start=T0 + 240, received=0, delivered=0),
    ]


def test_activity_of_a_quiet_range_is_all_zeros_and_the_last_bucket_may_be_short(
    run: Run[Any], store: Store
) -> None:
    ingest_one(run, store, received_at=T0 + 130)

    activity = run(store.activity(since=T0, until=T0 + 150, bucket=60))

    assert activity == [
        Activity(start=T0, received=0, delivered=0),
        Activity(start=T0 + 60, received=0, delivered=0),
        Activity(start=T0 + 120, received=1, delivered=0),
    ]
    quiet = run(store.activity(since=T0 + 1000, until=T0 + 2000, bucket=60))
    assert [a.start for a in quiet] == [T0 + 1000 + 60 * i for i in range(17)]
    assert all(a.received == a.delivered == 0 for a in quiet)


def test_activity_of_an_empty_range_is_empty_and_a_bucket_must_be_positive(
    run: Run[Any], store: Store
) -> None:
    assert run(store.activity(since=T0, until=T0, bucket=60)) == []
    assert run(store.activity(since=T0 + 1, until=T0, bucket=60)) == []
    for bucket in (0.0, -60.0):
        with pytest.raises(StoreError):
            run(store.activity(since=T0, until=T0 + 60, bucket=bucket))
