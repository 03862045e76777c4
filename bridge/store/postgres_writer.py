"""Group commit on PostgreSQL: concurrent writes of one process share a transaction.

A write is an operation: a coroutine function of a connection. One task takes a queued
operation, drains whatever else is queued (up to `max_batch`), borrows a connection from the
pool and runs them all in one transaction, so that N concurrent ingests cost one commit (one
WAL flush) instead of N. Callers' futures are settled only after the commit: nothing is
acknowledged before it is durable.

If the batch fails because the database is unavailable, every operation of it fails. If it
fails for any other reason (one operation's bad data, a deadlock with another process), the
batch is rolled back and its operations are run again one transaction each, so that the bad
one fails alone. That costs nothing while all goes well, where a savepoint per operation
would cost two round trips each.

A caller that gave up (cancelled) is skipped, though its operation may still be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store.postgres_connection import (
    Connection,
    Credentials,
    Pool,
    is_unavailable,
    map_error,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 256

Operation = Callable[[Connection], Awaitable[T]]


@dataclass(frozen=True, eq=False)
class _Queued(Generic[T]):
    run: Operation[T]
    future: asyncio.Future[T]


class GroupCommitWriter:
    """Runs queued operations in shared transactions on connections of `pool`."""

    def __init__(
        self, pool: Pool, credentials: Credentials, *, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._pool = pool
        self._credentials = credentials
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Queued[Any] | None] = asyncio.Queue()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._work(), name="postgres-writer")

    async def run(self, operation: Operation[T]) -> T:
        """Run `operation` in the next transaction; return once that transaction committed."""
        if self._stopping:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(operation, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued so far, then stop."""
        if self._stopping:
            raise StoreError("the writer is already stopping")
        self._stopping = True
        self._queue.put_nowait(None)
        await self._task

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Queued[Any]] = []
            item = await self._queue.get()
            while True:
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if batch:
                try:
                    await self._commit(batch)
                except Exception as exc:  # a bug here must not kill the task and hang callers
                    log.exception("postgres writer failed", extra={"action": "store.write"})
                    _fail(batch, StoreError(f"the write failed unexpectedly: {exc}"))

    async def _commit(self, batch: list[_Queued[Any]]) -> None:
        try:
            async with self._pool.connection() as connection:
                try:
                    values = await _in_transaction(connection, batch)
                except Exception as exc:
                    if is_unavailable(exc) or len(batch) == 1 or connection.broken:
                        _fail(batch, self._mapped(exc))
                        return
                    log.info(
                        "a shared transaction failed; running its operations one by one",
                        extra={"action": "store.write_split", "operations": len(batch)},
                    )
                    for queued in batch:
                        await self._alone(connection, queued)
                    return
                for queued, value in zip(batch, values, strict=True):
                    _settle(queued.future, value)
        except psycopg.Error as exc:  # no connection to be had, or it broke on the way back
            _fail(batch, self._mapped(exc))

    async def _alone(self, connection: Connection, queued: _Queued[Any]) -> None:
        try:
            [value] = await _in_transaction(connection, [queued])
        except Exception as exc:
            _fail([queued], self._mapped(exc))
        else:
            _settle(queued.future, value)

    def _mapped(self, exc: Exception) -> Exception:
        """What the callers of a failed operation get: psycopg errors become StoreErrors."""
        if not isinstance(exc, psycopg.Error):
            return exc
        error = map_error(exc, self._credentials)
        if self._credentials.password is None:  # as raise_mapped does
            error.__cause__ = exc
        return error


async def _in_transaction(connection: Connection, batch: list[_Queued[Any]]) -> list[Any]:
    async with connection.transaction():
        return [await queued.run(connection) for queued in batch]


def _fail(batch: list[_Queued[Any]], error: Exception) -> None:
    """Fail the callers still waiting (a settled one's operation committed before)."""
    for queued in batch:
        if queued.future.done():
            continue
        try:  # one exception object per caller: tracebacks are per raise
            copy = type(error)(*error.args)
            copy.__cause__ = error.__cause__
        except Exception:
            copy = error
        queued.future.set_exception(copy)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # the caller was cancelled
        if not future.done():
            future.set_result(value)
