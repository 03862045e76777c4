"""What the micro-benchmarks work on: the load's signed request, the product loaded from its
generated configuration, and a store kept holding a backlog of routed, keyed deliveries.

Everything is made by the product's own code (the source's intake, route_event, the log
provider, decide), so the benchmarks time what users run, on what users store.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from bench.payload import SOURCE
from bench.product import PROVIDER
from bridge.delivery.attempts import decide, prepare
from bridge.delivery.dispatch import route_event
from bridge.delivery.worker import UNCONFIGURED_ROOM
from bridge.ids import new_id
from bridge.providers.base import Outcome
from bridge.records import (
    AttemptResult,
    Claim,
    DeliveryStatus,
    NewEvent,
    Routing,
)
from bridge.service import Service
from bridge.sources.intake import CompiledSource
from bridge.sources.request import RawRequest
from bridge.store import Store

T = TypeVar("T")

_DELIVERIES = (f"bench-delivery-{n}" for n in count())


class Loop:
    """Runs coroutines to their end on one event loop, the store's, from synchronous code.

    Not asyncio.Runner.run: on CPython 3.11 each call puts its SIGINT handler back through
    signal.signal, whose Enum conversion of the old handler (a partial holding the finished
    task) formats the task's repr, result included: tens of µs on a batch of claims, which
    would be timed as the store's."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self._loop = runner.get_loop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)


def fresh_delivery() -> str:
    """An X-GitHub-Delivery never sent before in this run (the source's dedupe key)."""
    return next(_DELIVERIES)


@dataclass(frozen=True, kw_only=True)
class Signed:
    """The load's request: its body and every header the receiver sees but the delivery id."""

    body: bytes
    headers: dict[str, str]

    def request(self, delivery: str) -> RawRequest:
        """The request as bridge.receiver.raw_request makes it (the github preset reads no
        URL), with `delivery` as its X-GitHub-Delivery."""
        return RawRequest(
            method="POST",
            url="",
            headers={**self.headers, "x-github-delivery": delivery},
            query=(),
            body=self.body,
        )


@dataclass(frozen=True, kw_only=True)
class Product:
    """bench/product.py's configuration of `len(service.rules)` rules, loaded."""

    rules: Path
    templates: Path
    service: Service
    signed: Signed

    @property
    def source(self) -> CompiledSource:
        return self.service.sources[SOURCE]

    def new_events(self, number: int, *, now: float) -> list[NewEvent]:
        """`number` events as the receiver makes them of the load's requests, none a
        duplicate of another."""
        events: list[NewEvent] = []
        ids = partial(new_id, "evt", now=now)
        for _ in range(number):
            request = self.signed.request(fresh_delivery())
            events += self.source.intake(request, now=now, new_id=ids).events
        return events


class Backlog:
    """A store holding `size` due deliveries of the `target` provider, each keyed (its rule's
    correlate, unique per event), stored as the worker stores them: events ingested, claimed
    unrouted, routed by route_event, saved. `top_up` brings it back to `size`; `claim` takes
    one batch as the worker does (its provider's room, and UNCONFIGURED_ROOM in all)."""

    def __init__(self, *, product: Product, store: Store, loop: Loop, size: int) -> None:
        self.product = product
        self.store = store
        self.loop = loop
        self.size = size
        self.due = 0  # pending deliveries, by this backlog's count
        self.finished = 0  # deliveries it ended done
        self.batch = product.service.config.providers[PROVIDER].concurrency
        self._rng = random.Random(0)

    @property
    def _service(self) -> Service:
        return self.product.service

    def top_up(self) -> None:
        """Route new events until `size` deliveries are due."""
        while self.due < self.size:
            self._add(min(self.size - self.due, 512))

    def _add(self, number: int) -> None:
        now = time.time()
        defaults = self._service.config.defaults
        events = self.product.new_events(number, now=now)
        ingested = self.loop.run(
            self.store.ingest(events, dedupe_window=defaults.dedupe_window, now=now)
        )
        assert not any(result.duplicate for result in ingested)
        claimed = self.loop.run(
            self.store.claim_unrouted(now=now, limit=number, lease=defaults.lease)
        )
        assert {event.id for event in claimed} == {event.id for event in events}
        ids = partial(new_id, "dlv")
        routings = [  # as Worker.route_pending routes them
            replace(route_event(self._service, event, now=now, new_id=ids), only_if_unrouted=True)
            for event in claimed
        ]
        for routing in routings:
            (delivery,) = routing.deliveries
            assert delivery.status is DeliveryStatus.PENDING and delivery.correlate
        saved = self.loop.run(self._save(routings, now=now))
        assert all(saved)
        self.due += number

    async def _save(self, routings: list[Routing], *, now: float) -> list[bool]:
        return await self.store.save_routings(routings, now=now)  # as Worker.route_pending

    def claim(self) -> list[Claim]:
        """One batch, as Worker.claim_and_start asks for it."""
        claims = self.loop.run(self.claim_due(time.time()))
        self.due -= len(claims)
        return claims

    def check(self, claims: list[Claim], *, expected: int | None = None) -> None:
        """A full batch (or `expected`) of distinct deliveries of the provider, each in flight
        and keyed by its own event (the rule's correlate)."""
        wanted = self.batch if expected is None else expected
        assert len(claims) == wanted, f"claimed {len(claims)} of {wanted}"
        assert len({claim.delivery.id for claim in claims}) == len(claims)
        for claim in claims:
            assert claim.delivery.status is DeliveryStatus.IN_FLIGHT
            assert claim.delivery.provider == PROVIDER and claim.lease_token
            assert claim.delivery.correlate == f"bench:{claim.delivery.event_id}"

    async def claim_due(self, now: float) -> list[Claim]:
        return await self.store.claim_due(
            now=now,
            limit=self.batch + UNCONFIGURED_ROOM,
            lease=self._service.config.defaults.lease,
            per_provider={PROVIDER: self.batch},
            rates={},
        )

    def results(self, claims: list[Claim]) -> list[AttemptResult]:
        """What the worker would store for each claim: the log provider's attempt, decided."""
        return [self.loop.run(self._result(claim)) for claim in claims]

    async def _result(self, claim: Claim) -> AttemptResult:
        config = self._service.config
        started = time.time()
        job = prepare(claim, config=config, now=started)
        assert not isinstance(job, Outcome), job
        outcome = await self._service.providers[PROVIDER].deliver(job)
        return decide(
            claim, outcome, config=config, started=started, now=time.time(), rng=self._rng
        )

    def finish(self, claims: list[Claim], results: list[AttemptResult]) -> list[bool]:
        kept = self.loop.run(self.finish_attempts(claims, results))
        self.finished += sum(kept)
        return kept

    async def finish_attempts(
        self, claims: list[Claim], results: list[AttemptResult]
    ) -> list[bool]:
        """Each claim finished as the worker's delivery tasks finish them: concurrently (they
        share the group-commit writer's transactions)."""
        now = time.time()
        return list(
            await asyncio.gather(
                *(
                    self.store.finish_attempt(claim, result, now=now)
                    for claim, result in zip(claims, results, strict=True)
                )
            )
        )
