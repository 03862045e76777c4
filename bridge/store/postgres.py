"""PostgresStore: the Store on PostgreSQL, for several replicas sharing one database; a thin
driver of bridge.store.store.SQLStore.

The driver is psycopg 3 with psycopg_pool (bench/README.md, "Choosing the PostgreSQL driver",
says why). Every operation borrows a connection from one pool per process and runs its step in
a transaction of its own, except ingests: concurrent ones share a transaction (group commit,
bridge.store.writer), so N webhooks arriving together cost one commit. If such a batch fails
because the database is unavailable, every write of it fails; for any other reason (one
write's bad data, a deadlock with another process) it is rolled back and its writes run again
one transaction each, so that the bad one fails alone (no savepoint per write: that would cost
two round trips each while all goes well). How claims and per-key order stay right across
processes is told in bridge.store.claims and bridge.store.queues; the schema is applied at
open() under an advisory lock (bridge.store.schema). Workers of every process wake when work
is committed anywhere: the steps that make new work NOTIFY, and `listen` LISTENs on a
connection of its own.

The URL is libpq's: `postgresql://user:password@host:5432/dbname?sslmode=require`, with
`options=-csearch_path%3Dschema` to keep the tables in a schema of their own. Errors name
the server as `postgresql://user@host:port/dbname`, never with the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, cast

import psycopg
import psycopg_pool

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store import autovacuum
from bridge.store.postgres_connection import (
    Connection,
    Credentials,
    Pool,
    connect,
    is_unavailable,
    make_pool,
    map_error,
    raise_mapped,
)
from bridge.store.schema import apply_migrations, load_migrations
from bridge.store.statements import STATEMENTS
from bridge.store.steps import Query, Request, Result, Step
from bridge.store.store import SQLStore
from bridge.store.writer import Batch, GroupCommitWriter, I, Outcome, R, Write, failed

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 256
CHANNEL = "ticketbridge"  # what queries.sql's notify_work notifies
UNREACHABLE_WAIT = 0.5  # seconds a request waits for a connection while the database is down
LISTEN_RETRY = 1.0  # seconds before listening again after a lost connection; doubling, up to
LISTEN_RETRY_CAP = 30.0
_SQL = STATEMENTS["postgres"]
_NOTHING = Result(rows=[], rowcount=0)


async def drive(connection: Connection, step: Step[T]) -> T:
    """Run `step` to its end on `connection`; psycopg errors are thrown into it, and leave."""
    try:
        request = next(step)
        while True:
            try:
                result = await _execute(connection, request)
            except psycopg.Error as exc:
                request = step.throw(exc)
            else:
                request = step.send(result)
    except StopIteration as done:
        return cast(T, done.value)


async def _execute(connection: Connection, request: Request) -> Result:
    if not isinstance(request, Query):  # no parameters: one simple query, many statements
        await connection.execute(request.sql.encode(), prepare=False)
        return _NOTHING
    sql = _SQL[request.name]
    if not sql:
        return _NOTHING
    if request.many is not None:
        async with connection.cursor() as cursor:
            await cursor.executemany(sql, request.many)
            return Result(rows=[], rowcount=cursor.rowcount)
    # A statement given a list is planned for it each time, never prepared: psycopg prepares
    # a statement from its fifth run and PostgreSQL then keeps a generic plan, which, made
    # when the tickets table was small, looked keys up by provider alone and filtered every
    # ticket of it by correlate (bench history: the cost per event grew 6.7x with 1,000,000
    # finished events). These run once per batch, so the planning is cheap beside them.
    listed = any(isinstance(value, list) for value in request.params.values())
    cursor = await connection.execute(sql, request.params, prepare=False if listed else None)
    found = await cursor.fetchall() if cursor.description else []
    return Result(rows=list(found), rowcount=cursor.rowcount)


class PostgresStore(SQLStore):
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
        self._wakes: list[Callable[[], None]] = []
        self._listener: asyncio.Task[None] | None = None
        self._reachable = True  # False from a failure for want of the database to a success
        self._connection_errors = 0  # the pool's failed connection attempts, when last seen

    @property
    def url(self) -> str:
        """Where the store is, without the password."""
        return self._credentials.shown

    async def open(self) -> None:
        if self._pool is not None:
            raise StoreError("the store is already open")
        connection = await connect(self._credentials, timeout=self._timeout)
        try:
            await drive(connection, apply_migrations(load_migrations("postgres"), now=time.time()))
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)
        finally:
            await connection.close()
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
        self._writer = GroupCommitWriter(self._commit, max_batch=self._max_batch, name="postgres")
        if self._wakes:
            self._start_listening()

    async def close(self) -> None:
        """Commit what is queued, then close the pool. Closing twice is harmless."""
        writer, self._writer = self._writer, None
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if pool is None:
            return
        try:
            if writer is not None:
                await writer.close()
        finally:
            await pool.close()

    def listen(self, wake: Callable[[], None]) -> None:
        self._wakes.append(wake)
        if self._pool is not None and self._listener is None:
            self._start_listening()

    def _start_listening(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name="postgres-listen"
        )

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, calling the wakes on every notification; a
        lost connection is opened again (a second later, then less often), and the wakes are
        called once it is back, for whatever was committed while it was gone."""
        pause = LISTEN_RETRY
        while True:
            try:
                connection = await connect(self._credentials, timeout=self._timeout)
            except StoreError as exc:
                log.warning("cannot listen for new work", extra={"error": str(exc)})
            else:
                try:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    pause = LISTEN_RETRY
                    self._wake()
                    async for _ in connection.notifies():
                        self._wake()
                except psycopg.Error as exc:
                    log.warning("stopped listening for new work", extra={"error": str(exc)})
                finally:
                    await connection.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, LISTEN_RETRY_CAP)

    def _wake(self) -> None:
        for wake in self._wakes:
            wake()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection. While the database is down (the last try failed for want of
        it) a request waits UNREACHABLE_WAIT for one, not the whole timeout: the pool keeps
        reconnecting on its own, and a receiver answers 503 at once rather than after 5 s
        per queued batch (measured: up to 10 s while PostgreSQL was stopped)."""
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        wait = self._timeout if self._reachable else min(self._timeout, UNREACHABLE_WAIT)
        try:
            async with self._pool.connection(timeout=wait) as connection:
                yield connection
        except psycopg.Error as exc:
            if is_unavailable(exc) and not self._only_busy(exc):
                self._reachable = False
            raise
        self._reachable = True

    def _only_busy(self, exc: psycopg.Error) -> bool:
        """A pool timeout with no failed connection attempt since the last one: the pool's
        connections are all in use (load), not the database gone; the next request waits the
        whole timeout again. (Once down, only a success brings the whole wait back.)"""
        if not isinstance(exc, psycopg_pool.PoolTimeout) or self._pool is None:
            return False
        errors = self._pool.get_stats().get("connections_errors", 0)
        busy = errors == self._connection_errors
        self._connection_errors = errors
        return busy

    async def _write(self, write: Write[T]) -> T:
        """Run the step in a transaction of its own."""
        try:
            async with self._connection() as connection, connection.transaction():
                return await drive(connection, write())
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)

    async def _batch(self, batch: Batch[I, R]) -> list[R]:
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        return await self._writer.run(batch)

    async def _read(self, write: Write[T]) -> T:
        """Run the step, one statement, on its own (a statement is its own snapshot)."""
        try:
            async with self._connection() as connection:
                return await drive(connection, write())
        except psycopg.Error as exc:
            raise_mapped(exc, self._credentials)

    async def tend_tables(self) -> autovacuum.Tended:
        return await self._read(autovacuum.tend)  # no transaction: VACUUM runs in none

    async def _snapshot(self, write: Write[T]) -> T:
        """Run the step, several reads, on one snapshot."""

        def in_snapshot() -> Step[T]:
            yield Query("repeatable_read")
            return (yield from write())

        return await self._write(in_snapshot)

    async def _commit(self, batch: Sequence[Write[Any]]) -> list[Outcome]:
        try:
            async with self._connection() as connection:
                try:
                    return await _in_transaction(connection, batch)
                except Exception as exc:
                    if is_unavailable(exc) or len(batch) == 1 or connection.broken:
                        return failed(len(batch), self._mapped(exc))
                    log.info(
                        "a shared transaction failed; running its writes one by one",
                        extra={"action": "store.write_split", "operations": len(batch)},
                    )
                    outcomes: list[Outcome] = []
                    for write in batch:
                        try:
                            outcomes += await _in_transaction(connection, [write])
                        except Exception as alone:
                            outcomes += failed(1, self._mapped(alone))
                    return outcomes
        except (psycopg.Error, StoreUnavailable) as exc:  # no connection, or it broke on return
            return failed(len(batch), self._mapped(exc))

    def _mapped(self, exc: Exception) -> Exception:
        """What the callers of a failed write get: psycopg errors become StoreErrors."""
        if not isinstance(exc, psycopg.Error):
            return exc
        error = map_error(exc, self._credentials)
        if self._credentials.password is None:  # as raise_mapped does
            error.__cause__ = exc
        return error


async def _in_transaction(connection: Connection, batch: Sequence[Write[Any]]) -> list[Outcome]:
    async with connection.transaction():
        return [(await drive(connection, write()), None) for write in batch]
