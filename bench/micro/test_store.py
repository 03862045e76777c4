"""The store's hot writes on a real SQLite file, through its public async API: the receiver's
ingest, the worker's claim_due and finish_attempt.

Each round is one call (or one group of concurrent calls) driven to its end on the benchmark's
event loop; setup that is not timed (fresh events, a backlog topped up, claims and their
results made) runs between rounds through benchmark.pedantic. `extra_info["items"]` says how
many events or deliveries one round handles: the figure per item is the round's over it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pytest_benchmark.fixture import BenchmarkFixture

from bench.micro.rounds import timed_rounds
from bench.micro.workload import Backlog, Loop, Product
from bench.product import PROVIDER
from bridge.records import AttemptResult, Claim, DeliveryStatus, IngestResult, NewEvent
from bridge.store import Store

CONCURRENT = 32  # requests in flight at once under the bench's load (wrk -c32)
ROUNDS = 60


def test_ingest_one_request(
    benchmark: BenchmarkFixture,
    product: Callable[[int], Product],
    store: Store,
    loop: Loop,
) -> None:
    """One request's event stored alone: its own transaction and commit (fsync, FULL)."""
    loaded = product(10)
    window = loaded.service.config.defaults.dedupe_window
    stored_ids: list[str] = []
    answers: list[list[IngestResult]] = []

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        events = loaded.new_events(1, now=time.time())
        stored_ids.extend(event.id for event in events)
        return (events,), {}

    def ingest(events: list[NewEvent]) -> list[IngestResult]:
        answer = loop.run(store.ingest(events, dedupe_window=window, now=events[0].received_at))
        answers.append(answer)
        return answer

    benchmark.extra_info["items"] = 1
    timed_rounds(benchmark, ingest, setup=fresh, rounds=ROUNDS * 4)

    assert [r.event_id for answer in answers for r in answer] == stored_ids
    assert not any(r.duplicate for answer in answers for r in answer)
    assert loop.run(store.queue_stats()).unrouted == len(stored_ids)


def test_ingest_concurrent_requests(
    benchmark: BenchmarkFixture,
    product: Callable[[int], Product],
    store: Store,
    loop: Loop,
) -> None:
    """CONCURRENT requests' events stored at once, as under the load: concurrent ingest calls
    of one event each, which the group-commit writer puts in shared transactions."""
    loaded = product(10)
    window = loaded.service.config.defaults.dedupe_window
    stored_ids: list[str] = []
    answers: list[list[IngestResult]] = []

    def fresh() -> tuple[tuple[Any, ...], dict[str, Any]]:
        events = loaded.new_events(CONCURRENT, now=time.time())
        stored_ids.extend(event.id for event in events)
        return (events,), {}

    async def each(events: list[NewEvent]) -> list[list[IngestResult]]:
        return await asyncio.gather(
            *(store.ingest([e], dedupe_window=window, now=e.received_at) for e in events)
        )

    def ingest(events: list[NewEvent]) -> list[list[IngestResult]]:
        answer = loop.run(each(events))
        answers.extend(answer)
        return answer

    benchmark.extra_info["items"] = CONCURRENT
    timed_rounds(benchmark, ingest, setup=fresh, rounds=ROUNDS)

    assert [r.event_id for answer in answers for r in answer] == stored_ids
    assert not any(r.duplicate for answer in answers for r in answer)
    assert loop.run(store.queue_stats()).unrouted == len(stored_ids)


def test_claim_due(benchmark: BenchmarkFixture, backlog: Backlog) -> None:
    """One claim of a batch (the provider's room) from BACKLOG due deliveries. Between rounds
    the batch claimed is finished done and the backlog topped up again, untimed."""
    batches: list[list[Claim]] = []

    def refill() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if batches:
            backlog.check(batches[-1])
            assert all(backlog.finish(batches[-1], backlog.results(batches[-1])))
        backlog.top_up()
        return (), {}

    def claim() -> list[Claim]:
        claims = backlog.claim()
        batches.append(claims)
        return claims

    benchmark.extra_info["items"] = backlog.batch
    timed_rounds(benchmark, claim, setup=refill, rounds=ROUNDS)

    for claims in batches:
        backlog.check(claims)
    claimed = [c.delivery.id for claims in batches for c in claims]
    assert len(set(claimed)) == len(claimed), "a delivery was handed out twice"


def test_finish_attempt(benchmark: BenchmarkFixture, backlog: Backlog) -> None:
    """A claimed batch finished done (the log provider's outcome, decided as the worker
    decides it), each claim's finish_attempt concurrent as the worker's tasks are. Between
    rounds a batch is claimed from the backlog, topped up again, untimed."""
    kept: list[list[bool]] = []

    def claimed() -> tuple[tuple[Any, ...], dict[str, Any]]:
        backlog.top_up()
        claims = backlog.claim()
        backlog.check(claims)
        results = backlog.results(claims)
        assert all(r.status is DeliveryStatus.DONE and r.ticket_ref for r in results)
        return (claims, results), {}

    def finish(claims: list[Claim], results: list[AttemptResult]) -> list[bool]:
        done = backlog.finish(claims, results)
        kept.append(done)
        return done

    benchmark.extra_info["items"] = backlog.batch
    timed_rounds(benchmark, finish, setup=claimed, rounds=ROUNDS)

    assert kept and all(done == [True] * backlog.batch for done in kept)
    stats = backlog.loop.run(backlog.store.queue_stats())
    assert stats.deliveries.get((PROVIDER, DeliveryStatus.DONE)) == backlog.finished
    assert stats.deliveries.get((PROVIDER, DeliveryStatus.IN_FLIGHT), 0) == 0
    assert stats.deliveries.get((PROVIDER, DeliveryStatus.PENDING)) == backlog.due
