"""SQLiteStore: the embedded Store, on one SQLite file in WAL mode; a thin driver of
bridge.store.store.SQLStore.

Writes go through the group-commit writer (bridge.store.writer): the steps of a batch run on
one writer thread (a single-thread executor owning the write connection) in one transaction,
each inside its own SAVEPOINT, so that a step that fails is rolled back alone while the
others go on; a caller's write returns only once its transaction is durable. Reads run on a
second connection on another single-thread executor, each inside a read transaction (one
snapshot), so they never queue behind writes, and WAL lets them read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store import intake
from bridge.store.schema import apply_migrations, load_migrations
from bridge.store.sqlite_connection import (
    SYNCHRONOUS_MODES,
    closed_on_error,
    connect,
    map_error,
    split_statements,
)
from bridge.store.statements import STATEMENTS
from bridge.store.steps import Query, Request, Result, Step
from bridge.store.store import SQLStore
from bridge.store.writer import Batch, GroupCommitWriter, I, Outcome, R, Write, failed

T = TypeVar("T")

DEFAULT_MAX_BATCH = 512
_SQL = STATEMENTS["sqlite"]
_NOTHING = Result(rows=[], rowcount=0)


def drive(connection: sqlite3.Connection, step: Step[T]) -> T:
    """Run `step` to its end on `connection`; sqlite3 errors are thrown into it, and leave."""
    try:
        request = next(step)
        while True:
            try:
                result = _execute(connection, request)
            except sqlite3.Error as exc:
                request = step.throw(exc)
            else:
                request = step.send(result)
    except StopIteration as done:
        return cast(T, done.value)


def _execute(connection: sqlite3.Connection, request: Request) -> Result:
    if not isinstance(request, Query):
        for statement in split_statements(request.sql):
            connection.execute(statement)
        return _NOTHING
    sql = _SQL[request.name]
    if not sql:
        return _NOTHING
    if request.many is not None:
        cursor = connection.executemany(sql, [_adapted(params) for params in request.many])
        return Result(rows=[], rowcount=cursor.rowcount)
    cursor = connection.execute(sql, _adapted(request.params))
    found = cursor.fetchall() if cursor.description else []
    return Result(rows=found, rowcount=cursor.rowcount)


def _adapted(params: Mapping[str, Any]) -> dict[str, Any]:
    """A list parameter goes as JSON text (queries.sql reads it with json_each)."""
    return {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in params.items()}


class SQLiteStore(SQLStore):
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
        self._connection: sqlite3.Connection | None = None  # the writer's
        self._reader: sqlite3.Connection | None = None
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def synchronous(self) -> str:
        return self._synchronous

    async def open(self) -> None:
        if self._writer is not None:
            raise StoreError("the store is already open")
        loop = asyncio.get_running_loop()
        write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        read_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        try:
            connection = await loop.run_in_executor(write_pool, self._open_write_connection)
            try:
                reader = await loop.run_in_executor(
                    read_pool, functools.partial(self._connect, read_only=True)
                )
            except BaseException:
                connection.close()
                raise
        except BaseException:
            write_pool.shutdown(wait=True)
            read_pool.shutdown(wait=True)
            raise
        self._connection, self._reader, self._pools = connection, reader, (write_pool, read_pool)
        waits = int(self._busy_timeout * 1000)
        commit = functools.partial(_commit_on, write_pool, connection, waits)
        self._writer = GroupCommitWriter(commit, max_batch=self._max_batch, name="sqlite")

    async def close(self) -> None:
        """Commit what is queued, then close both connections. Closing twice is harmless."""
        writer, self._writer = self._writer, None
        connection, self._connection = self._connection, None
        reader, self._reader = self._reader, None
        pools, self._pools = self._pools, None
        if writer is None or pools is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await writer.close()
        finally:
            if connection is not None:
                await loop.run_in_executor(pools[0], connection.close)
            if reader is not None:
                await loop.run_in_executor(pools[1], reader.close)
            for pool in pools:
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
            drive(connection, apply_migrations(load_migrations("sqlite"), now=time.time()))
        return connection

    async def _write(self, write: Write[T]) -> T:
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        return await self._writer.run(write)

    async def _batch(self, batch: Batch[I, R]) -> list[R]:
        if self._writer is None:
            raise StoreUnavailable("the store is not open")
        return await self._writer.run(batch)

    async def _read(self, write: Write[T]) -> T:
        reader, pools = self._reader, self._pools
        if reader is None or pools is None:
            raise StoreUnavailable("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(
            pools[1], _in_read_transaction, reader, write
        )


async def _commit_on(
    pool: ThreadPoolExecutor,
    connection: sqlite3.Connection,
    busy_timeout_ms: int,
    batch: Sequence[Write[Any]],
) -> list[Outcome]:
    loop = asyncio.get_running_loop()
    if not all(isinstance(write, Batch) and write.step is intake.ingest for write in batch):
        return await loop.run_in_executor(pool, _commit, connection, batch)
    # A batch of ingests only: the commit's fsync stays on the writer thread, but the inserts,
    # a few tens of microseconds each and never waiting, run here on the loop. Run on the
    # writer thread, each statement hands the GIL back and forth with the loop (profiled: that
    # costs the loop more than the statements themselves). The write lock is taken here too
    # when no other process holds it, and waited for on the writer thread when one does:
    # a trip to the thread for BEGIN let the loop answer the last batch's requests first,
    # and those 1.5 ms between commits were half of each cycle (traced).
    begun = _begin_at_once(connection, busy_timeout_ms)
    if begun is _BUSY:
        begun = await loop.run_in_executor(pool, _begin, connection)
    if begun is not None:
        return failed(len(batch), begun)
    ran = _run_steps(connection, batch)
    if isinstance(ran, Exception):
        return failed(len(batch), ran)
    return await loop.run_in_executor(pool, _finish, connection, ran)


def _commit(connection: sqlite3.Connection, batch: Sequence[Write[Any]]) -> list[Outcome]:
    """On the writer thread: the batch in one transaction, a savepoint per step."""
    begun = _begin(connection)
    if begun is not None:
        return failed(len(batch), begun)
    ran = _run_steps(connection, batch)
    if isinstance(ran, Exception):
        return failed(len(batch), ran)
    return _finish(connection, ran)


_BUSY = StoreUnavailable("another connection holds the write lock")


def _begin_at_once(connection: sqlite3.Connection, busy_timeout_ms: int) -> Exception | None:
    """BEGIN IMMEDIATE without waiting for the lock: _BUSY when another connection has it."""
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return _BUSY if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY else _mapped(exc)
    except sqlite3.Error as exc:
        return _mapped(exc)
    finally:
        connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    return None


def _begin(connection: sqlite3.Connection) -> Exception | None:
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return _mapped(exc)
    return None


def _run_steps(
    connection: sqlite3.Connection, batch: Sequence[Write[Any]]
) -> list[Outcome] | Exception:
    """Each step in a savepoint of the open transaction; the error that failed them all
    when SQLite gave the whole transaction up."""
    outcomes: list[Outcome] = []
    for index, write in enumerate(batch):
        savepoint = f"op_{index}"
        try:
            connection.execute(f"SAVEPOINT {savepoint}")
            value = drive(connection, write())
            connection.execute(f"RELEASE {savepoint}")
        except Exception as exc:
            error = _mapped(exc)
            if not _roll_back_to(connection, savepoint):
                # SQLite gave up the whole transaction (I/O error, disk full, ...): what the
                # batch wrote so far is gone, so every step of it fails.
                _abandon(connection)
                kind = type(error) if isinstance(error, StoreError) else StoreError
                rolled_back = kind(f"the transaction was rolled back: {error}")
                rolled_back.__cause__ = exc
                return rolled_back
            outcomes.append((None, error))
        else:
            outcomes.append((value, None))
    return outcomes


def _finish(connection: sqlite3.Connection, outcomes: list[Outcome]) -> list[Outcome]:
    """Commit what the steps did (the fsync is here)."""
    try:
        connection.commit()
    except Exception as exc:
        _abandon(connection)
        failure = _mapped(exc)
        error = type(failure)(f"commit failed: {failure}")
        error.__cause__ = exc
        return failed(len(outcomes), error)
    return outcomes


def _roll_back_to(connection: sqlite3.Connection, savepoint: str) -> bool:
    """Undo one step; False when there is no transaction left to keep."""
    if not connection.in_transaction:
        return False
    try:
        connection.execute(f"ROLLBACK TO {savepoint}")
        connection.execute(f"RELEASE {savepoint}")
    except sqlite3.Error:
        return False
    return True


def _abandon(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # it gave the transaction up already
            connection.rollback()


def _mapped(exc: Exception) -> Exception:
    """What the caller of a failed step gets: sqlite3 errors become StoreErrors."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = map_error(exc)
    error.__cause__ = exc
    return error


def _in_read_transaction(connection: sqlite3.Connection, write: Callable[[], Step[T]]) -> T:
    """Run on the reader thread: one snapshot for the whole read."""
    try:
        connection.execute("BEGIN")
        try:
            return drive(connection, write())
        finally:
            connection.rollback()
    except sqlite3.Error as exc:
        raise map_error(exc) from exc
