"""The Store contract: what every backend does, through the Store interface only."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.exceptions import StoreError
from bridge.records import (
    DeliveryStatus,
    EventDetail,
    EventStatus,
    IngestResult,
    NewDelivery,
    PurgeCounts,
    Routing,
)
from bridge.store.base import Store

from .conftest import DAY, T0, Run, make_delivery, make_event, result_for

WINDOW = 7 * DAY


def ingest_one(run: Run[Any], store: Store, **fields: Any) -> str:
    now = fields.get("received_at", T0)
    results: list[IngestResult] = run(
        store.ingest([make_event(**fields)], dedupe_window=WINDOW, now=now)
    )
    assert len(results) == 1 and not results[0].duplicate
    return results[0].event_id


def route(
    run: Run[Any],
    store: Store,
    event_id: str,
    deliveries: list[NewDelivery],
    *,
    now: float = T0,
    rules: tuple[str, ...] = ("rule-1",),
) -> None:
    routing = Routing(
        event_id=event_id,
        matched_rules=rules if deliveries else (),
        trace=[{"rule": rule, "matched": True} for rule in rules],
        deliveries=deliveries,
    )
    run(store.save_routing(routing, now=now))


def status_of(run: Run[Any], store: Store, event_id: str) -> EventStatus:
    detail: EventDetail | None = run(store.get_event(event_id))
    assert detail is not None
    return detail.event.status


# -- ingest and dedupe --------------------------------------------------------------------


def test_ingest_stores_the_event_as_accepted(run: Run[Any], store: Store) -> None:
    event = make_event(dedupe_key="k1", raw=b"raw body", headers={"x-a": "1"})
    results = run(store.ingest([event], dedupe_window=WINDOW, now=T0))

    assert results == [IngestResult(event_id=event.id, duplicate=False)]
    detail = run(store.get_event(event.id))
    assert detail is not None
    stored = detail.event
    assert (stored.source, stored.received_at, stored.payload) == ("shop", T0, event.payload)
    assert dict(stored.headers) == {"x-a": "1"}
    assert dict(stored.query) == {"q": "1"}
    assert stored.dedupe_key == "k1"
    assert stored.status is EventStatus.ACCEPTED
    assert stored.has_raw
    assert stored.routed_at is None
    assert detail.deliveries == ()
    assert run(store.get_raw(event.id)) == b"raw body"


def test_a_duplicate_within_the_window_answers_the_first_id_and_stores_nothing(
    run: Run[Any], store: Store
) -> None:
    first = ingest_one(run, store, dedupe_key="k1")
    again = make_event(dedupe_key="k1", received_at=T0 + 60)

    [result] = run(store.ingest([again], dedupe_window=WINDOW, now=T0 + 60))

    assert result == IngestResult(event_id=first, duplicate=True)
    assert run(store.get_event(again.id)) is None
    assert [e.id for e in run(store.list_events())] == [first]


def test_dedupe_keys_are_per_source_and_events_without_a_key_never_collide(
    run: Run[Any], store: Store
) -> None:
    ingest_one(run, store, dedupe_key="k1", source="shop")
    other_source = ingest_one(run, store, dedupe_key="k1", source="crm")
    no_key_1 = ingest_one(run, store)
    no_key_2 = ingest_one(run, store)

    assert len({other_source, no_key_1, no_key_2}) == 3
    assert len(run(store.list_events())) == 4


def test_a_dedupe_key_older_than_the_window_is_forgotten(run: Run[Any], store: Store) -> None:
    first = ingest_one(run, store, dedupe_key="k1")
    later = T0 + WINDOW + 1
    [inside] = run(store.ingest([make_event(dedupe_key="k1")], dedupe_window=WINDOW, now=T0 + 5))
    assert inside.duplicate and inside.event_id == first

    [fresh] = run(
        store.ingest(
            [make_event(dedupe_key="k1", received_at=later)], dedupe_window=WINDOW, now=later
        )
    )
    assert not fresh.duplicate
    assert run(store.get_event(fresh.event_id)) is not None
    # the key now points at the new event
    [again] = run(store.ingest([make_event(dedupe_key="k1")], dedupe_window=WINDOW, now=later + 1))
    assert again == IngestResult(event_id=fresh.event_id, duplicate=True)


def test_a_split_batch_stores_all_its_events_and_finds_duplicates_inside_it(
    run: Run[Any], store: Store
) -> None:
    a = make_event(dedupe_key="a")
    a_again = make_event(dedupe_key="a")
    b = make_event(dedupe_key="b")
    no_key = make_event()

    results = run(store.ingest([a, a_again, b, no_key], dedupe_window=WINDOW, now=T0))

    assert results == [
        IngestResult(event_id=a.id, duplicate=False),
        IngestResult(event_id=a.id, duplicate=True),
        IngestResult(event_id=b.id, duplicate=False),
        IngestResult(event_id=no_key.id, duplicate=False),
    ]
    assert {e.id for e in run(store.list_events())} == {a.id, b.id, no_key.id}


# -- routing -----------------------------------------------------------------------------


def test_claim_unrouted_leases_oldest_first_and_takes_over_a_lapsed_lease(
    run: Run[Any], store: Store
) -> None:
    ids = [ingest_one(run, store, received_at=T0 + i) for i in range(3)]
    now = T0 + 10

    first = run(store.claim_unrouted(now=now, limit=2, lease=30))
    assert [e.id for e in first] == ids[:2]
    assert all(e.status is EventStatus.ACCEPTED for e in first)
    second = run(store.claim_unrouted(now=now + 1, limit=10, lease=30))
    assert [e.id for e in second] == ids[2:]
    assert run(store.claim_unrouted(now=now + 29, limit=10, lease=30)) == []

    taken_over = run(store.claim_unrouted(now=now + 30.5, limit=10, lease=30))
    assert [e.id for e in taken_over] == ids[:2]


def test_a_routed_event_is_not_claimed_again(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    [claimed] = run(store.claim_unrouted(now=T0, limit=10, lease=30))
    route(run, store, claimed.id, [make_delivery(event_id)], now=T0 + 1)

    assert run(store.claim_unrouted(now=T0 + 3600, limit=10, lease=30)) == []


def test_routing_with_no_deliveries_makes_the_event_unmatched(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [], now=T0 + 2, rules=("a", "b"))

    detail = run(store.get_event(event_id))
    assert detail is not None
    assert detail.event.status is EventStatus.UNMATCHED
    assert detail.event.routed_at == T0 + 2
    assert detail.event.matched_rules == ()
    assert [dict(step) for step in detail.event.trace] == [
        {"rule": "a", "matched": True},
        {"rule": "b", "matched": True},
    ]


def test_routing_stores_deliveries_and_keeps_the_event_accepted(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    d1 = make_delivery(event_id, correlate="c1")
    d2 = make_delivery(event_id, provider="glassix")
    route(run, store, event_id, [d1, d2], now=T0 + 1)

    detail = run(store.get_event(event_id))
    assert detail is not None
    assert detail.event.status is EventStatus.ACCEPTED
    assert detail.event.matched_rules == ("rule-1",)
    assert [d.id for d in detail.deliveries] == [d1.id, d2.id]
    stored = detail.deliveries[0]
    assert stored.status is DeliveryStatus.PENDING
    assert stored.action == d1.action
    assert (stored.correlate, stored.provider, stored.rule) == ("c1", "vambe", "rule-1")
    assert (stored.attempts, stored.tries) == (0, 0)
    assert stored.created_at == stored.queued_at == stored.next_attempt_at == T0 + 1


def test_a_dead_delivery_at_routing_fails_the_event(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    dead = make_delivery(event_id, status=DeliveryStatus.DEAD, last_error="render error: x")
    route(run, store, event_id, [dead, make_delivery(event_id)])

    detail = run(store.get_event(event_id))
    assert detail is not None
    assert detail.event.status is EventStatus.FAILED
    assert detail.deliveries[0].last_error == "render error: x"
    assert detail.deliveries[0].next_attempt_at is None
    # a dead delivery is never handed out
    claims = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    assert [c.delivery.id for c in claims] == [detail.deliveries[1].id]


def test_an_event_is_done_once_every_delivery_is_final(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(
        run,
        store,
        event_id,
        [make_delivery(event_id), make_delivery(event_id, status=DeliveryStatus.SKIPPED)],
    )
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    assert status_of(run, store, event_id) is EventStatus.ACCEPTED

    assert run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 1))
    assert status_of(run, store, event_id) is EventStatus.DONE


def test_a_replay_replaces_the_routing_result_and_adds_deliveries(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    first = make_delivery(event_id, status=DeliveryStatus.SKIPPED)
    route(run, store, event_id, [first], rules=("old",))
    assert status_of(run, store, event_id) is EventStatus.DONE

    second = make_delivery(event_id, rule="new")
    route(run, store, event_id, [second], now=T0 + 100, rules=("new",))

    detail = run(store.get_event(event_id))
    assert detail is not None
    assert detail.event.matched_rules == ("new",)
    assert [dict(step) for step in detail.event.trace] == [{"rule": "new", "matched": True}]
    assert detail.event.routed_at == T0 + 100
    assert [d.id for d in detail.deliveries] == [first.id, second.id]
    assert detail.event.status is EventStatus.ACCEPTED


def test_a_replay_that_supersedes_cancels_the_dead_deliveries_only(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    dead = make_delivery(event_id, status=DeliveryStatus.DEAD, last_error="render error: x")
    done = make_delivery(event_id, status=DeliveryStatus.SKIPPED)
    route(run, store, event_id, [dead, done])
    assert status_of(run, store, event_id) is EventStatus.FAILED

    again = make_delivery(event_id)
    routing = Routing(
        event_id=event_id,
        matched_rules=("rule-1",),
        trace=[],
        deliveries=[again],
        supersede_dead=True,
    )
    run(store.save_routing(routing, now=T0 + 5))

    detail = run(store.get_event(event_id))
    assert detail is not None
    by_id = {d.id: d for d in detail.deliveries}
    assert by_id[dead.id].status is DeliveryStatus.CANCELLED
    assert by_id[dead.id].last_error == "superseded by a replay; was: render error: x"
    assert by_id[done.id].status is DeliveryStatus.SKIPPED
    assert by_id[again.id].status is DeliveryStatus.PENDING
    assert detail.event.status is EventStatus.ACCEPTED


def test_routing_an_unknown_event_is_an_error(run: Run[Any], store: Store) -> None:
    with pytest.raises(StoreError):
        route(run, store, "evt_missing", [])


def test_a_refused_routing_writes_nothing(run: Run[Any], store: Store) -> None:
    event = make_event()
    run(store.ingest([event], dedupe_window=WINDOW, now=T0))
    bad = Routing(
        event_id=event.id,
        matched_rules=("r",),
        trace=(),
        deliveries=[make_delivery(event.id), make_delivery("evt_other")],
    )
    with pytest.raises(StoreError):
        run(store.save_routing(bad, now=T0))
    detail = run(store.get_event(event.id))
    assert detail is not None
    assert detail.deliveries == () and detail.event.routed_at is None
    assert detail.event.status is EventStatus.ACCEPTED


# -- claiming deliveries -----------------------------------------------------------------


def test_claim_due_hands_out_in_order_and_keeps_per_key_order(run: Run[Any], store: Store) -> None:
    e1 = ingest_one(run, store)
    e2 = ingest_one(run, store, received_at=T0 + 1)
    create = make_delivery(e1, correlate="k")
    uncorrelated = make_delivery(e1)
    update = make_delivery(e2, correlate="k")  # must wait for `create`
    other_provider = make_delivery(e2, provider="glassix", correlate="k")
    other_key = make_delivery(e2, correlate="j")
    route(run, store, e1, [create, uncorrelated])
    route(run, store, e2, [update, other_provider, other_key])

    claims = run(store.claim_due(now=T0, limit=10, lease=30, events_for=["glassix"]))

    assert [c.delivery.id for c in claims] == [
        create.id,
        uncorrelated.id,
        other_provider.id,
        other_key.id,
    ]
    assert all(c.delivery.status is DeliveryStatus.IN_FLIGHT for c in claims)
    assert len({c.lease_token for c in claims}) == 4
    assert [c.received_at for c in claims] == [T0, T0, T0 + 1, T0 + 1]
    # only the providers named in events_for (the ones rendering as they deliver) get the event
    assert [c.event and c.event.id for c in claims] == [None, None, e2, None]
    # while `create` is in flight, nothing more is due
    assert run(store.claim_due(now=T0 + 1, limit=10, lease=30)) == []

    run(store.finish_attempt(claims[0], result_for(claims[0], DeliveryStatus.DONE), now=T0 + 2))
    [next_claim] = run(store.claim_due(now=T0 + 2, limit=10, lease=30))
    assert next_claim.delivery.id == update.id


def test_claim_due_respects_the_limit_oldest_first(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    deliveries = [make_delivery(event_id) for _ in range(5)]
    route(run, store, event_id, deliveries)

    first = run(store.claim_due(now=T0, limit=2, lease=30))
    rest = run(store.claim_due(now=T0, limit=10, lease=30))

    assert [c.delivery.id for c in first + rest] == [d.id for d in deliveries]


def test_a_retry_waits_for_its_time_and_holds_back_the_rest_of_its_key(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    create = make_delivery(event_id, correlate="k")
    update = make_delivery(event_id, correlate="k")
    route(run, store, event_id, [create, update])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))

    retry = result_for(claim, DeliveryStatus.PENDING, next_attempt_at=T0 + 60, last_error="503")
    assert run(store.finish_attempt(claim, retry, now=T0 + 1))

    assert run(store.claim_due(now=T0 + 59, limit=10, lease=30)) == []
    assert run(store.next_wakeup(now=T0)) == T0 + 60
    [again] = run(store.claim_due(now=T0 + 60, limit=10, lease=30))
    assert again.delivery.id == create.id
    assert (again.delivery.attempts, again.delivery.tries) == (1, 1)
    assert again.delivery.last_error == "503"


def test_a_lapsed_delivery_lease_is_taken_over_and_the_old_claim_is_refused(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [old] = run(store.claim_due(now=T0, limit=10, lease=30))
    assert run(store.claim_due(now=T0 + 30, limit=10, lease=30)) == []  # still held at the edge

    [new] = run(store.claim_due(now=T0 + 31, limit=10, lease=30))
    assert new.delivery.id == old.delivery.id
    assert new.lease_token != old.lease_token

    kept = run(store.finish_attempt(old, result_for(old, DeliveryStatus.DONE), now=T0 + 32))
    assert kept is False
    [stored] = run(store.get_event(event_id)).deliveries
    assert stored.status is DeliveryStatus.IN_FLIGHT
    assert (stored.attempts, stored.tries, stored.attempt_log) == (0, 0, ())
    assert status_of(run, store, event_id) is EventStatus.ACCEPTED

    assert run(store.finish_attempt(new, result_for(new, DeliveryStatus.DONE), now=T0 + 33))
    assert status_of(run, store, event_id) is EventStatus.DONE


def test_a_finished_claim_cannot_be_finished_twice(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    assert run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 1))

    assert not run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DEAD), now=T0 + 2))
    [stored] = run(store.get_event(event_id)).deliveries
    assert stored.status is DeliveryStatus.DONE
    assert stored.attempts == 1


def test_finish_attempt_records_the_attempt_and_the_outcome(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    result = result_for(
        claim, DeliveryStatus.DEAD, started_at=T0 + 1, last_error="400 bad", status_code=400
    )

    assert run(store.finish_attempt(claim, result, now=T0 + 2))

    detail = run(store.get_event(event_id))
    assert detail is not None
    [delivery] = detail.deliveries
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.last_error == "400 bad"
    assert delivery.next_attempt_at is None
    assert (delivery.attempts, delivery.tries) == (1, 1)
    assert list(delivery.attempt_log) == [result.attempt]
    assert detail.event.status is EventStatus.FAILED
    assert run(store.claim_due(now=T0 + 3600, limit=10, lease=30)) == []


# -- the correlate map -----------------------------------------------------------------------


def test_success_writes_the_correlate_map_and_later_claims_see_it(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    create, update, close = (make_delivery(event_id, correlate="chat-1") for _ in range(3))
    other = make_delivery(event_id, correlate="chat-2")
    route(run, store, event_id, [create, update, close, other])

    claims = run(store.claim_due(now=T0, limit=10, lease=30))
    assert [c.delivery.id for c in claims] == [create.id, other.id]
    assert (claims[0].ticket_ref, claims[0].ticket_open) == (None, None)
    done = result_for(claims[0], DeliveryStatus.DONE, ticket_ref={"id": "T-1"}, ticket_open=True)
    run(store.finish_attempt(claims[0], done, now=T0 + 1))

    [second] = run(store.claim_due(now=T0 + 1, limit=10, lease=30))
    assert second.delivery.id == update.id
    assert dict(second.ticket_ref or {}) == {"id": "T-1"}
    assert second.ticket_open is True
    # no new ref: the old one stays; the open state follows
    closed = result_for(second, DeliveryStatus.DONE, ticket_open=False)
    run(store.finish_attempt(second, closed, now=T0 + 2))

    [third] = run(store.claim_due(now=T0 + 2, limit=10, lease=30))
    assert third.delivery.id == close.id
    assert dict(third.ticket_ref or {}) == {"id": "T-1"}
    assert third.ticket_open is False
    detail = run(store.get_event(event_id))
    assert detail is not None
    assert dict(detail.deliveries[0].ticket_ref or {}) == {"id": "T-1"}


def test_only_success_writes_the_correlate_map(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id, correlate="chat-1")])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    dead = result_for(claim, DeliveryStatus.DEAD, ticket_ref={"id": "T-9"}, ticket_open=True)
    run(store.finish_attempt(claim, dead, now=T0 + 1))

    later = ingest_one(run, store, received_at=T0 + 2)
    second = make_delivery(later, correlate="chat-1")
    route(run, store, later, [second], now=T0 + 2)
    [next_claim] = run(store.claim_due(now=T0 + 2, limit=10, lease=30))
    assert next_claim.delivery.id == second.id
    assert (next_claim.ticket_ref, next_claim.ticket_open) == (None, None)


# -- retry -----------------------------------------------------------------------------------


def test_retry_delivery_queues_a_final_delivery_again(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    route(run, store, event_id, [make_delivery(event_id)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DEAD), now=T0 + 1))
    assert status_of(run, store, event_id) is EventStatus.FAILED

    assert run(store.retry_delivery(claim.delivery.id, now=T0 + 100))

    detail = run(store.get_event(event_id))
    assert detail is not None
    [delivery] = detail.deliveries
    assert delivery.status is DeliveryStatus.PENDING
    assert (delivery.attempts, delivery.tries) == (1, 0)
    assert len(delivery.attempt_log) == 1
    assert delivery.queued_at == delivery.next_attempt_at == T0 + 100
    assert detail.event.status is EventStatus.ACCEPTED
    [again] = run(store.claim_due(now=T0 + 100, limit=10, lease=30))
    assert again.delivery.id == claim.delivery.id
    assert again.delivery.action == claim.delivery.action


def test_retry_delivery_refuses_unfinished_and_unknown_deliveries(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    pending = make_delivery(event_id)
    route(run, store, event_id, [pending])

    assert not run(store.retry_delivery(pending.id, now=T0 + 1))
    assert not run(store.retry_delivery("dlv_missing", now=T0 + 1))
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    assert not run(store.retry_delivery(pending.id, now=T0 + 1))  # in flight
    assert run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 2))
    assert not run(store.retry_delivery(pending.id, now=T0 + 3))  # done: never sent twice


# -- reading ---------------------------------------------------------------------------------


def test_list_events_is_newest_first_filtered_and_pages(run: Run[Any], store: Store) -> None:
    shop = [ingest_one(run, store, received_at=T0 + i) for i in range(5)]
    crm = ingest_one(run, store, source="crm", received_at=T0 + 10)
    route(run, store, shop[0], [])  # unmatched

    page1 = run(store.list_events(limit=3))
    page2 = run(store.list_events(limit=3, before=page1[-1].id))
    page3 = run(store.list_events(limit=3, before=page2[-1].id))

    assert [e.id for e in page1 + page2] == [crm, *reversed(shop)]
    assert page3 == []
    assert [e.id for e in run(store.list_events(source="crm"))] == [crm]
    assert [e.id for e in run(store.list_events(source="shop", limit=2))] == [shop[4], shop[3]]
    unmatched = run(store.list_events(status=EventStatus.UNMATCHED))
    assert [e.id for e in unmatched] == [shop[0]]
    accepted = run(store.list_events(source="shop", status=EventStatus.ACCEPTED))
    assert [e.id for e in accepted] == [shop[4], shop[3], shop[2], shop[1]]


def test_get_event_and_get_raw_for_missing_things(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store, raw=None)

    assert run(store.get_event("evt_missing")) is None
    assert run(store.get_raw("evt_missing")) is None
    assert run(store.get_raw(event_id)) is None
    detail = run(store.get_event(event_id))
    assert detail is not None and not detail.event.has_raw


def test_get_event_lists_deliveries_with_their_attempts_in_order(
    run: Run[Any], store: Store
) -> None:
    event_id = ingest_one(run, store)
    first, second = make_delivery(event_id), make_delivery(event_id, provider="glassix")
    route(run, store, event_id, [first, second])
    for number in (1, 2):
        claims = run(store.claim_due(now=T0 + number * 100, limit=10, lease=30))
        for claim in claims:
            status = DeliveryStatus.PENDING if number == 1 else DeliveryStatus.DONE
            result = result_for(claim, status, started_at=T0 + number, next_attempt_at=T0 + 100)
            assert run(store.finish_attempt(claim, result, now=T0 + number * 100))

    detail = run(store.get_event(event_id))
    assert detail is not None
    assert [d.id for d in detail.deliveries] == [first.id, second.id]
    for delivery in detail.deliveries:
        assert [a.number for a in delivery.attempt_log] == [1, 2]
        assert [a.started_at for a in delivery.attempt_log] == [T0 + 1, T0 + 2]
        assert {a.delivery_id for a in delivery.attempt_log} == {delivery.id}


def test_list_deliveries_is_newest_first_and_filtered(run: Run[Any], store: Store) -> None:
    event_id = ingest_one(run, store)
    a = make_delivery(event_id)
    b = make_delivery(event_id, provider="glassix")
    c = make_delivery(event_id, status=DeliveryStatus.DEAD, last_error="render")
    route(run, store, event_id, [a, b, c])

    assert [d.id for d in run(store.list_deliveries())] == [c.id, b.id, a.id]
    assert [d.id for d in run(store.list_deliveries(limit=2))] == [c.id, b.id]
    assert [d.id for d in run(store.list_deliveries(provider="glassix"))] == [b.id]
    dead = run(store.list_deliveries(status=DeliveryStatus.DEAD))
    assert [(d.id, d.last_error) for d in dead] == [(c.id, "render")]
    pending_vambe = run(store.list_deliveries(status=DeliveryStatus.PENDING, provider="vambe"))
    assert [d.id for d in pending_vambe] == [a.id]


# -- purge and wakeup --------------------------------------------------------------------------


def test_purge_deletes_old_finished_events_and_old_dedupe_keys(run: Run[Any], store: Store) -> None:
    old_done = ingest_one(run, store, dedupe_key="a")
    route(run, store, old_done, [make_delivery(old_done)])
    [claim] = run(store.claim_due(now=T0, limit=10, lease=30))
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 1))
    old_unmatched = ingest_one(run, store, dedupe_key="b")
    route(run, store, old_unmatched, [])
    old_pending = ingest_one(run, store)
    route(run, store, old_pending, [make_delivery(old_pending, correlate="x")])
    old_unrouted = ingest_one(run, store)
    new_done = ingest_one(run, store, received_at=T0 + 40 * DAY, dedupe_key="c")
    route(run, store, new_done, [], now=T0 + 40 * DAY)

    counts = run(store.purge(before=T0 + 30 * DAY))

    assert counts == PurgeCounts(events=2, dedupe_keys=2)
    assert run(store.get_event(old_done)) is None
    assert run(store.get_event(old_unmatched)) is None
    assert run(store.get_raw(old_done)) is None
    kept = {e.id for e in run(store.list_events())}
    assert kept == {old_pending, old_unrouted, new_done}
    assert [d.event_id for d in run(store.list_deliveries())] == [old_pending]
    # the purged key can be used again; the younger one still dedupes
    [reused] = run(
        store.ingest([make_event(dedupe_key="a")], dedupe_window=1e12, now=T0 + 41 * DAY)
    )
    assert not reused.duplicate
    [dup] = run(store.ingest([make_event(dedupe_key="c")], dedupe_window=WINDOW, now=T0 + 41 * DAY))
    assert dup == IngestResult(event_id=new_done, duplicate=True)
    assert run(store.purge(before=T0 + 30 * DAY)) == PurgeCounts(events=0, dedupe_keys=0)


def test_next_wakeup_is_the_earliest_due_time(run: Run[Any], store: Store) -> None:
    assert run(store.next_wakeup(now=T0)) is None

    event_id = ingest_one(run, store)
    assert run(store.next_wakeup(now=T0)) == T0  # an unrouted, unleased event is due at once
    run(store.claim_unrouted(now=T0 + 1, limit=10, lease=30))
    assert run(store.next_wakeup(now=T0)) == T0 + 31  # its routing lease runs out

    a, b = make_delivery(event_id), make_delivery(event_id)
    route(run, store, event_id, [a, b], now=T0 + 5)
    assert run(store.next_wakeup(now=T0)) == T0 + 5  # both due at once
    [claim_a] = run(store.claim_due(now=T0 + 6, limit=1, lease=100))
    retry = result_for(claim_a, DeliveryStatus.PENDING, next_attempt_at=T0 + 500)
    run(store.finish_attempt(claim_a, retry, now=T0 + 7))
    [claim_b] = run(store.claim_due(now=T0 + 8, limit=10, lease=100))
    assert claim_b.delivery.id == b.id
    assert run(store.next_wakeup(now=T0)) == T0 + 108  # b's lease, before a's retry

    run(store.finish_attempt(claim_b, result_for(claim_b, DeliveryStatus.DONE), now=T0 + 9))
    assert run(store.next_wakeup(now=T0)) == T0 + 500
    [claim_a] = run(store.claim_due(now=T0 + 500, limit=10, lease=100))
    run(store.finish_attempt(claim_a, result_for(claim_a, DeliveryStatus.DONE), now=T0 + 501))
    assert run(store.next_wakeup(now=T0)) is None


def test_ping_answers_on_an_open_store(run: Run[Any], store: Store) -> None:
    assert run(store.ping()) is None
