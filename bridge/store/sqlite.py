"""SQLiteStore: the embedded Store, on one SQLite file in WAL mode.

Writes go through one writer thread that commits concurrent operations together (group
commit, bridge.store.sqlite_writer): a caller's write returns only once its transaction is
durable. Reads run on a second connection on a single-thread executor, so they never queue
behind writes in Python, and WAL lets them read while the writer writes. The SQL of each
operation lives in bridge.store.sqlite_queries; the schema in migrations/sqlite/*.sql.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from bridge.config import RateLimit
from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store import sqlite_admin as admin
from bridge.store import sqlite_deliveries as deliveries
from bridge.store import sqlite_pacing as pacing
from bridge.store import sqlite_queries as queries
from bridge.store import sqlite_stats as stats
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
from bridge.store.sqlite_connection import SYNCHRONOUS_MODES, closed_on_error, connect, map_error
from bridge.store.sqlite_migrations import apply_migrations, load_migrations
from bridge.store.sqlite_rows import (
    attempt_params,
    delivery_params,
    dumps,
    dumps_optional,
    event_params,
)
from bridge.store.sqlite_writer import DEFAULT_MAX_BATCH, GroupCommitWriter

T = TypeVar("T")

PURGE_CHUNK = 500  # rows per purge transaction, so that ingests interleave with a big purge


class SQLiteStore(Store):
    """The Store on the SQLite file at `path` (created, with its directory, if missing)."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
        busy_timeout: float = 5.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            raise StoreError("the SQLite store needs a file path (not :memory: or a URI)")
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise StoreError(
                f"synchronous={synchronous!r}: expected one of {sorted(SYNCHRONOUS_MODES)}"
            )
        if busy_timeout <= 0 or max_batch < 1:
            raise StoreError("busy_timeout must be positive and max_batch at least 1")
        self._path = Path(path)
        self._synchronous = synchronous.upper()
        self._factory = connection_factory
        self._busy_timeout = busy_timeout
        self._max_batch = max_batch
        self._writer: GroupCommitWriter | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_pool: ThreadPoolExecutor | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def synchronous(self) -> str:
        return self._synchronous

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            raise StoreError("the store is already open")
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        try:
            writer_connection = await loop.run_in_executor(pool, self._open_write_connection)
            try:
                reader = await loop.run_in_executor(
                    pool, functools.partial(self._connect, read_only=True)
                )
            except BaseException:
                writer_connection.close()
                raise
        except BaseException:
            pool.shutdown(wait=True)
            raise
        self._read_pool = pool
        self._reader = reader
        self._writer = GroupCommitWriter(writer_connection, max_batch=self._max_batch)

    async def close(self) -> None:
        """Commit what is queued, then close both connections. Closing twice is harmless."""
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        pool, self._read_pool = self._read_pool, None
        if writer is None:
            return
        try:
            await writer.close()
        finally:
            if reader is not None and pool is not None:
                await asyncio.get_running_loop().run_in_executor(pool, reader.close)
            if pool is not None:
                pool.shutdown(wait=True)

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        return connect(
            self._path,
            factory=self._factory,
            synchronous=self._synchronous,
            busy_timeout=self._busy_timeout,
            read_only=read_only,
        )

    def _open_write_connection(self) -> sqlite3.Connection:
        connection = self._connect(read_only=False)
        with closed_on_error(connection):
            apply_migrations(connection, load_migrations(), now=time.time())
        return connection

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        return await self._writer.run(operation)

    async def _read(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        reader, pool = self._reader, self._read_pool
        if reader is None or pool is None:
            raise StoreUnavailable("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(
            pool, _in_read_transaction, reader, operation
        )

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
        rows = [event_params(event) for event in events]
        return await self._write(
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
        return await self._read(functools.partial(admin.get_event, event_id=event_id))

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


def _in_read_transaction(
    connection: sqlite3.Connection, operation: Callable[[sqlite3.Connection], T]
) -> T:
    """Run on the reader thread: one snapshot for the whole read."""
    try:
        connection.execute("BEGIN")
        try:
            return operation(connection)
        finally:
            connection.rollback()
    except sqlite3.Error as exc:
        raise map_error(exc) from exc
