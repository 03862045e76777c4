"""PostgresStore: the Store on PostgreSQL, for several replicas sharing one database.

The driver is psycopg 3 with psycopg_pool (bench/README.md, "Choosing the PostgreSQL driver",
says why). Every operation borrows a connection from one pool per process and runs in its own
transaction, except ingests: concurrent ones share a transaction (group commit,
bridge.store.postgres_writer), so N webhooks arriving together cost one commit. Receivers and
workers in other processes work on the same tables at once; how claims stay right across
them is told in bridge.store.postgres_deliveries, how per-key order does in
postgres_queues. The SQL of each operation lives beside it in postgres_queries (ingest,
routing), postgres_deliveries, postgres_queues, postgres_pacing (holds, rate buckets) and
postgres_admin; the schema in migrations/postgres/*.sql, applied at open() under an advisory
lock (postgres_migrations).

The URL is libpq's: `postgresql://user:password@host:5432/dbname?sslmode=require`, with
`options=-csearch_path%3Dschema` to keep the tables in a schema of their own. Errors name
the server as `postgresql://user@host:port/dbname`, never with the password.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import psycopg

from bridge.config import RateLimit
from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store import postgres_admin as admin
from bridge.store import postgres_deliveries as deliveries
from bridge.store import postgres_pacing as pacing
from bridge.store import postgres_queries as queries
from bridge.store import postgres_stats as stats
from bridge.store.base import (
    Activity,
    AttemptResult,
    Claim,
    Delivery,
    DeliveryStatus,
    EventDetail,
    EventStatus,
    IngestResult,
    NewEvent,
    ProviderHold,
    PurgeCounts,
    QueueStats,
    Routing,
    Store,
    StoredEvent,
)
from bridge.store.postgres_connection import (
    Connection,
    Credentials,
    Pool,
    connect,
    make_pool,
    raise_mapped,
)
from bridge.store.postgres_migrations import apply_migrations, load_migrations
from bridge.store.postgres_rows import (
    attempt_params,
    delivery_params,
    dumps,
    dumps_optional,
    event_params,
)
from bridge.store.postgres_writer import DEFAULT_MAX_BATCH, GroupCommitWriter

T = TypeVar("T")
Operation = Callable[[Connection], Awaitable[T]]

PURGE_CHUNK = 500  # rows per purge transaction, so that a big purge holds no lock for long


class PostgresStore(Store):
    """The Store on the PostgreSQL database at `url` (a libpq URL or key=value string)."""

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        timeout: float = 5.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._credentials = Credentials.of(url)
        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)
        if not 1 <= min_connections <= max_connections:
            raise StoreError("need 1 <= min_connections <= max_connections")
        if timeout <= 0 or max_batch < 1:
            raise StoreError("timeout must be positive and max_batch at least 1")
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._timeout = timeout
        self._max_batch = max_batch
        self._pool: Pool | None = None
        self._writer: GroupCommitWriter | None = None

    @property
    def url(self) -> str:
        """Where the store is, without the password."""
        return self._credentials.shown

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("the store is already open")
        await self._migrate()
        pool = make_pool(
            self._credentials,
            min_size=self._min_connections,
            max_size=self._max_connections,
            timeout=self._timeout,
            name="ticketbridge",
        )
        try:
            await pool.open(wait=True, timeout=self._timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise_mapped(exc, self._credentials)
        self._pool = pool
        self._writer = GroupCommitWriter(pool, self._credentials, max_batch=self._max_batch)

    async def _migrate(self) -> None:
        connection = await connect(self._credentials, timeout=self._timeout)
        try:
            await apply_migrations(connection, load_migrations(), now=time.time())
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)
        finally:
            await connection.close()

    async def close(self) -> None:
        """Commit what is queued, then close the pool. Closing twice is harmless."""
        writer, self._writer = self._writer, None
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            if writer is not None:
                await writer.close()
        finally:
            await pool.close()

    async def _write(self, operation: Operation[T]) -> T:
        """Run `operation` in a transaction of its own."""
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        try:
            async with self._pool.connection() as connection, connection.transaction():
                return await operation(connection)
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)

    async def _read(self, operation: Operation[T]) -> T:
        """Run `operation`, one statement, on its own (a statement is its own snapshot)."""
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        try:
            async with self._pool.connection() as connection:
                return await operation(connection)
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)

    async def _snapshot(self, operation: Operation[T]) -> T:
        """Run `operation`, several reads, on one snapshot."""

        async def in_snapshot(connection: Connection) -> T:
            await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return await operation(connection)

        return await self._write(in_snapshot)

    async def ping(self) -> None:
        try:
            await self._read(queries.ping)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            raise StoreUnavailable(str(exc)) from exc

    # -- the receiver ------------------------------------------------------------------------

    async def ingest(
        self, events: Sequence[NewEvent], *, dedupe_window: float, now: float
    ) -> list[IngestResult]:
        if not events:
            return []
        writer = self._writer
        if writer is None:
            raise StoreUnavailable("the store is not open")
        rows = [event_params(event) for event in events]
        return await writer.run(
            functools.partial(queries.ingest, events=rows, window=dedupe_window, now=now)
        )

    # -- routing -----------------------------------------------------------------------------

    async def claim_unrouted(self, *, now: float, limit: int, lease: float) -> list[StoredEvent]:
        if limit <= 0:
            return []
        return await self._write(
            functools.partial(queries.claim_unrouted, now=now, limit=limit, lease=lease)
        )

    async def save_routing(self, routing: Routing, *, now: float) -> bool:
        for delivery in routing.deliveries:
            if delivery.event_id != routing.event_id:
                raise StoreError(
                    f"delivery {delivery.id} belongs to event {delivery.event_id}, "
                    f"not {routing.event_id}"
                )
        return await self._write(
            functools.partial(
                queries.save_routing,
                event_id=routing.event_id,
                matched_rules=dumps(list(routing.matched_rules)),
                trace=dumps(list(routing.trace)),
                deliveries=[delivery_params(d, now=now) for d in routing.deliveries],
                supersede_dead=routing.supersede_dead,
                only_if_unrouted=routing.only_if_unrouted,
                now=now,
            )
        )

    # -- delivery ----------------------------------------------------------------------------

    async def claim_due(
        self,
        *,
        now: float,
        limit: int,
        lease: float,
        per_provider: Mapping[str, int] | None = None,
        rates: Mapping[str, RateLimit] | None = None,
    ) -> list[Claim]:
        if limit <= 0:
            return []
        return await self._write(
            functools.partial(
                deliveries.claim_due,
                now=now,
                limit=limit,
                lease=lease,
                per_provider=None if per_provider is None else dict(per_provider),
                rates=dict(rates or {}),
            )
        )

    async def next_token_at(self, provider: str, rate: RateLimit, *, now: float) -> float:
        return await self._read(
            functools.partial(pacing.next_token, provider=provider, rate=rate, now=now)
        )

    async def extend_leases(self, claims: Sequence[Claim], *, until: float) -> None:
        if claims:
            held = [(claim.delivery.id, claim.lease_token) for claim in claims]
            await self._write(functools.partial(deliveries.extend_leases, claims=held, until=until))

    async def finish_attempt(self, claim: Claim, result: AttemptResult, *, now: float) -> bool:
        delivery_id = claim.delivery.id
        if result.attempt.delivery_id != delivery_id:
            raise StoreError(
                f"attempt of {result.attempt.delivery_id} given for delivery {delivery_id}"
            )
        if result.status in (DeliveryStatus.IN_FLIGHT, DeliveryStatus.WAITING):
            raise StoreError(f"an attempt cannot end with the delivery {result.status.value}")
        next_attempt_at = None
        if result.status is DeliveryStatus.PENDING:
            next_attempt_at = now if result.next_attempt_at is None else result.next_attempt_at
        return await self._write(
            functools.partial(
                deliveries.finish_attempt,
                delivery_id=delivery_id,
                lease_token=claim.lease_token,
                key=(claim.delivery.provider, claim.delivery.correlate),
                attempt=attempt_params(result.attempt, delivery_id=delivery_id),
                status=result.status,
                spends_try=result.spends_try,
                next_attempt_at=next_attempt_at,
                last_error=result.last_error,
                ticket_ref=dumps_optional(result.ticket_ref),
                ticket_open=result.ticket_open,
                hold=result.hold,
                now=now,
            )
        )

    async def next_wakeup(self, *, now: float, skip: Sequence[str] = ()) -> float | None:
        return await self._read(functools.partial(deliveries.next_wakeup, now=now, skip=list(skip)))

    # -- provider holds ----------------------------------------------------------------------

    async def hold_provider(self, hold: ProviderHold) -> None:
        await self._write(functools.partial(pacing.hold_provider, hold=hold))

    async def release_provider(self, provider: str) -> bool:
        return await self._write(functools.partial(pacing.release_provider, provider=provider))

    async def provider_holds(self) -> dict[str, ProviderHold]:
        return await self._read(pacing.provider_holds)

    # -- reading and steering ----------------------------------------------------------------

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
        return await self._read(
            functools.partial(
                admin.list_events,
                source=source,
                status=status,
                limit=limit,
                before=before,
                since=since,
                until=until,
            )
        )

    async def queue_stats(self) -> QueueStats:
        return await self._read(stats.queue_stats)

    async def activity(self, *, since: float, until: float, bucket: float) -> list[Activity]:
        return await self._read(
            functools.partial(stats.activity, since=since, until=until, bucket=bucket)
        )

    async def get_event(self, event_id: str) -> EventDetail | None:
        return await self._snapshot(functools.partial(admin.get_event, event_id=event_id))

    async def get_raw(self, event_id: str) -> bytes | None:
        return await self._read(functools.partial(admin.get_raw, event_id=event_id))

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        return await self._read(functools.partial(admin.get_delivery, delivery_id=delivery_id))

    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        provider: str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        return await self._read(
            functools.partial(admin.list_deliveries, status=status, provider=provider, limit=limit)
        )

    async def retry_delivery(self, delivery_id: str, *, now: float) -> bool:
        return await self._write(
            functools.partial(admin.retry_delivery, delivery_id=delivery_id, now=now)
        )

    async def purge(
        self, *, before: float | None, dedupe_before: float | None = None
    ) -> PurgeCounts:
        events = keys = 0
        while True:  # in chunks, each its own transaction
            purged_events, purged_keys = await self._write(
                functools.partial(
                    admin.purge_some,
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
                functools.partial(admin.drop_some_bodies, before=before, limit=PURGE_CHUNK)
            )
            dropped += some
            if some < PURGE_CHUNK:
                return dropped
