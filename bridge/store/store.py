"""SQLStore: the Store written once over steps; a driver (sqlite.py, postgres.py) says only
how a step runs: `_write` (a transaction; on SQLite the group-commit writer's), `_batch`
(a Batch, merged on the group-commit writer with others of its step: ingests, finishes),
`_read` (one statement, or one snapshot on SQLite) and `_snapshot` (several reads on one
snapshot).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

from bridge.config import RateLimit
from bridge.exceptions import StoreError, StoreUnavailable
from bridge.records import (
    Activity,
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    EventDetail,
    EventStatus,
    FallBack,
    IngestResult,
    NewEvent,
    ProviderHold,
    PurgeCounts,
    QueueStats,
    Routing,
    StoredEvent,
)
from bridge.store import claims, intake, pacing, queues, reading, retention
from bridge.store.base import Store
from bridge.store.intake import Arrival
from bridge.store.rows import event_params
from bridge.store.steps import execute
from bridge.store.writer import Batch, I, R, Write

T = TypeVar("T")

PURGE_CHUNK = 500  # rows per purge transaction, so that ingests interleave with a big purge


class SQLStore(Store):
    @abc.abstractmethod
    async def _write(self, write: Write[T]) -> T: ...

    @abc.abstractmethod
    async def _batch(self, batch: Batch[I, R]) -> list[R]:
        """Run a Batch on the group-commit writer, merged with the Batches of its step
        queued meanwhile: ingests, common finishes."""

    @abc.abstractmethod
    async def _read(self, write: Write[T]) -> T: ...

    async def _snapshot(self, write: Write[T]) -> T:
        return await self._read(write)

    async def ping(self) -> None:
        try:
            await self._read(functools.partial(execute, "ping"))
        except StoreUnavailable:
            raise
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def ingest(
        self, events: Sequence[NewEvent], *, dedupe_window: float, now: float
    ) -> list[IngestResult]:
        if not events:
            return []
        arrivals = [Arrival(event_params(event), dedupe_window, now) for event in events]
        return await self._batch(Batch(intake.ingest, arrivals))

    async def claim_unrouted(self, *, now: float, limit: int, lease: float) -> list[StoredEvent]:
        if limit <= 0:
            return []
        return await self._write(
            functools.partial(intake.claim_unrouted, now=now, limit=limit, lease=lease)
        )

    async def save_routing(self, routing: Routing, *, now: float) -> bool:
        return (await self.save_routings([routing], now=now))[0]

    async def save_routings(self, routings: Sequence[Routing], *, now: float) -> list[bool]:
        if not routings:
            return []
        for routing in routings:
            for delivery in routing.deliveries:
                if delivery.event_id != routing.event_id:
                    raise StoreError(
                        f"delivery {delivery.id} belongs to event {delivery.event_id}, "
                        f"not {routing.event_id}"
                    )
        return await self._write(functools.partial(intake.save_routings, routings, now=now))

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        per_provider: Mapping[str, int] | None = None,
        rates: Mapping[str, RateLimit] | None = None,
        events_for: Collection[str] = (),
    ) -> list[Claim]:
        if limit <= 0:
            return []
        step = functools.partial(
            claims.claim_due, now, limit, lease, per_provider, rates or {}, frozenset(events_for)
        )
        return await self._write(step)

    async def next_token_at(self, provider: str, rate: RateLimit, *, now: float) -> float:
        return await self._read(functools.partial(pacing.next_token, provider, rate, now=now))

    async def extend_leases(self, claims_: Sequence[Claim], *, until: float) -> None:
        if claims_:
            await self._write(functools.partial(claims.extend_leases, list(claims_), until=until))

    async def finish_attempt(self, claim: Claim, result: AttemptResult, *, now: float) -> bool:
        delivery_id = claim.delivery.id
        if result.attempt.delivery_id != delivery_id:
            raise StoreError(
                f"attempt of {result.attempt.delivery_id} given for delivery {delivery_id}"
            )
        if result.status in (DeliveryStatus.IN_FLIGHT, DeliveryStatus.WAITING):
            raise StoreError(f"an attempt cannot end with the delivery {result.status.value}")
        finish = queues.Finish(claim, result, now)
        if finish.common:  # with the others that ended meanwhile, for a few statements
            return (await self._batch(Batch(queues.finish_attempts, [finish])))[0]
        return await self._write(functools.partial(queues.finish_attempt, claim, result, now=now))

    async def next_wakeup(self, *, now: float, skip: Sequence[str] = ()) -> float | None:
        return await self._read(functools.partial(claims.next_wakeup, now=now, skip=list(skip)))

    async def hold_provider(self, hold: ProviderHold) -> None:
        await self._write(functools.partial(pacing.hold_provider, hold))

    async def release_provider(self, provider: str) -> bool:
        return await self._write(functools.partial(pacing.release_provider, provider))

    async def provider_holds(self) -> dict[str, ProviderHold]:
        return await self._read(pacing.provider_holds)

    async def fall_back_provider(self, provider: str, fallback: FallBack, *, now: float) -> int:
        return await self._write(
            functools.partial(queues.fall_back_provider, provider, fallback, now=now)
        )

    async def list_events(
        self,
        *,
        source: str | None = None,
        status: EventStatus | None = None,
        limit: int = 50,
        before: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[StoredEvent]:
        step = functools.partial(reading.list_events, source, status, before, since, until)
        return await self._read(functools.partial(step, limit=limit))

    async def queue_stats(self) -> QueueStats:
        return await self._read(reading.queue_stats)

    async def activity(self, *, since: float, until: float, bucket: float) -> list[Activity]:
        return await self._read(
            functools.partial(reading.activity, since=since, until=until, bucket=bucket)
        )

    async def get_event(self, event_id: str) -> EventDetail | None:
        return await self._snapshot(functools.partial(reading.get_event, event_id))

    async def get_raw(self, event_id: str) -> bytes | None:
        return await self._read(functools.partial(reading.get_raw, event_id))

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return await self._snapshot(functools.partial(reading.get_delivery, delivery_id))

    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        provider: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        return await self._read(
            functools.partial(
                reading.list_deliveries, status=status, provider=provider, limit=limit
            )
        )

    async def retry_delivery(self, delivery_id: str, *, now: float) -> bool:
        return await self._write(functools.partial(queues.retry_delivery, delivery_id, now=now))

    async def purge(
        self, *, before: float | None, dedupe_before: float | None = None
    ) -> PurgeCounts:
        events = keys = 0
        while True:  # in chunks, each its own transaction
            purged_events, purged_keys = await self._write(
                functools.partial(
                    retention.purge_some,
                    before=before,
                    dedupe_before=before if dedupe_before is None else dedupe_before,
                    limit=PURGE_CHUNK,
                )
            )
            events += purged_events
            keys += purged_keys
            if purged_events < PURGE_CHUNK and purged_keys < PURGE_CHUNK:
                return PurgeCounts(events=events, dedupe_keys=keys)

    async def drop_bodies(self, *, before: float) -> int:
        dropped = 0
        while True:
            some = await self._write(
                functools.partial(retention.drop_some_bodies, before=before, limit=PURGE_CHUNK)
            )
            dropped += some
            if some < PURGE_CHUNK:
                return dropped
