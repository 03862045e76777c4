"""MemoryStore: the Store's fake, for tests and trials that need a store but no database.

It is not a second implementation of the rules (a second copy would drift, which is what the
store's steps exist to prevent): it runs the very steps and statements of the SQLite driver
on a private in-memory SQLite database, inline on the event loop. No file, no threads, no
group commit: each write is its own transaction, and everything is gone after close(). The
contract tests run against it beside the real backends (tests/store/).
"""

from __future__ import annotations

import sqlite3
import time
from typing import TypeVar

from bridge.exceptions import StoreError, StoreUnavailable
from bridge.store.schema import apply_migrations, load_migrations
from bridge.store.sqlite import drive
from bridge.store.sqlite_connection import map_error
from bridge.store.store import SQLStore
from bridge.store.writer import Batch, I, R, Write

T = TypeVar("T")


class MemoryStore(SQLStore):
    """The Store in this process's memory; open() starts it empty."""

    def __init__(self) -> None:
        self._connection: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self._connection is not None:
            raise StoreError("the store is already open")
        connection = sqlite3.connect(":memory:", isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys = ON")
        drive(connection, apply_migrations(load_migrations("sqlite"), now=time.time()))
        self._connection = connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _write(self, write: Write[T]) -> T:
        """One step in one transaction: committed when it ends, rolled back when it fails."""
        connection = self._connection
        if connection is None:
            raise StoreUnavailable("the store is not open")
        connection.execute("BEGIN IMMEDIATE")
        try:
            value = drive(connection, write())
        except BaseException as exc:
            connection.rollback()
            if isinstance(exc, sqlite3.Error):
                raise map_error(exc) from exc
            raise
        connection.commit()
        return value

    async def _batch(self, batch: Batch[I, R]) -> list[R]:
        return await self._write(batch)

    _read = _write
