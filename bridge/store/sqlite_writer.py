"""The one thread that writes to SQLite, committing concurrent operations together.

A write is an operation: a function of the write connection, run on the writer thread. The
writer takes one queued operation, drains whatever else is queued (up to `max_batch`), and
runs them all in one transaction, each inside its own SAVEPOINT, so that an operation that
raises is rolled back alone while the others go on. It commits once and only then settles the
callers' futures: nothing is acknowledged before it is durable. If the commit fails, every
operation of the batch fails and none of it is kept.

Futures are settled on their own event loop (`call_soon_threadsafe`); a caller that gave up
(cancelled) is skipped, though its operation may still have been committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store.sqlite_connection import map_error

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 512


@dataclass(frozen=True, eq=False)
class _Operation(Generic[T]):
    run: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


@dataclass(frozen=True, eq=False)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class GroupCommitWriter:
    """Owns the write connection (and closes it when stopped)."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "sqlite-writer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._connection = connection
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Operation[Any] | _Stop] = queue.SimpleQueue()
        self._lock = threading.Lock()  # no operation is queued behind the stop
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` in the next transaction; return once that transaction committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._stopping:
                raise StoreUnavailable("the store is closed")
            self._queue.put(_Operation(operation, loop, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued so far, then stop the thread and close the connection."""
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._stopping:
                raise StoreError("the writer is already stopping")
            self._stopping = True
            self._queue.put(_Stop(loop, stopped))
        await stopped
        self._thread.join()  # it has settled `stopped`: it is about to return

    # -- on the writer thread --------------------------------------------------------------

    def _work(self) -> None:
        stop: _Stop | None = None
        while stop is None:
            batch: list[_Operation[Any]] = []
            item = self._queue.get()
            while True:
                if isinstance(item, _Stop):
                    stop = item
                    break
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._commit(batch)
                except Exception:  # a bug here must not kill the thread and hang callers
                    log.exception("sqlite writer failed", extra={"action": "store.write"})
                    _abandon(self._connection)
                    _fail(batch, StoreError, "the write failed unexpectedly")
        try:
            self._connection.close()
        except sqlite3.Error:
            log.exception("closing the write connection failed", extra={"action": "store.close"})
        _settle(stop.loop, stop.future, None, None)

    def _commit(self, batch: list[_Operation[Any]]) -> None:
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            failure = map_error(exc)
            _fail(batch, type(failure), str(failure), cause=exc)
            return
        outcomes: list[tuple[_Operation[Any], Any, Exception | None]] = []
        for index, operation in enumerate(batch):
            savepoint = f"op_{index}"
            try:
                connection.execute(f"SAVEPOINT {savepoint}")
                value = operation.run(connection)
                connection.execute(f"RELEASE {savepoint}")
            except Exception as exc:
                error = _mapped(exc)
                if not _roll_back_to(connection, savepoint):
                    # SQLite gave up the whole transaction (I/O error, disk full, ...): what
                    # the batch wrote so far is gone, so every operation of it fails.
                    _abandon(connection)
                    kind = type(error) if isinstance(error, StoreError) else StoreError
                    _fail(batch, kind, f"the transaction was rolled back: {error}", cause=exc)
                    return
                outcomes.append((operation, None, error))
            else:
                outcomes.append((operation, value, None))
        try:
            connection.commit()
        except Exception as exc:
            _abandon(connection)
            failure = map_error(exc) if isinstance(exc, sqlite3.Error) else StoreError(str(exc))
            _fail(batch, type(failure), f"commit failed: {failure}", cause=exc)
            return
        for operation, value, failed in outcomes:
            _settle(operation.loop, operation.future, value, failed)


def _roll_back_to(connection: sqlite3.Connection, savepoint: str) -> bool:
    """Undo one operation; False when there is no transaction left to keep."""
    if not connection.in_transaction:
        return False
    try:
        connection.execute(f"ROLLBACK TO {savepoint}")
        connection.execute(f"RELEASE {savepoint}")
    except sqlite3.Error:
        return False
    return True


def _abandon(connection: sqlite3.Connection) -> None:
    try:
        if connection.in_transaction:
            connection.rollback()
    except sqlite3.Error:
        log.exception("rollback failed", extra={"action": "store.rollback"})


def _mapped(exc: Exception) -> Exception:
    """What the caller of a failed operation gets: sqlite3 errors become StoreErrors."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = map_error(exc)
    error.__cause__ = exc
    return error


def _fail(
    batch: list[_Operation[Any]],
    kind: type[Exception],
    message: str,
    *,
    cause: BaseException | None = None,
) -> None:
    for operation in batch:  # one exception object per caller: tracebacks are per raise
        error = kind(message)
        error.__cause__ = cause
        _settle(operation.loop, operation.future, None, error)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    value: Any,
    error: BaseException | None,
) -> None:
    def apply() -> None:
        if future.done():  # the caller was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(apply)
