"""Opening SQLite connections the way the store needs them, and mapping sqlite3's errors.

Every sqlite3 error the store meets goes through `map_error`, so none reaches a caller:
the database being unreachable (cannot open, disk I/O, disk full, read-only, locked for
longer than the busy timeout) is StoreUnavailable; anything else is StoreError.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bridge.exceptions import StoreError, StoreUnavailable

SYNCHRONOUS_MODES = frozenset({"NORMAL", "FULL", "EXTRA"})

_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_PERM,
    }
)
# Errors raised without a result code (by Python, or by a wrapped connection) are
# recognised by their message.
_UNAVAILABLE_MESSAGES = (
    "unable to open",
    "disk i/o",
    "database is locked",
    "database or disk is full",
    "readonly database",
    "closed database",
)


def map_error(exc: sqlite3.Error) -> StoreError:
    """The StoreError to raise in place of `exc` (raise it `from exc`)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        unavailable = code & 0xFF in _UNAVAILABLE_CODES
    else:
        message = str(exc).lower()
        unavailable = any(text in message for text in _UNAVAILABLE_MESSAGES)
    if unavailable:
        return StoreUnavailable(f"SQLite database unavailable: {exc}")
    return StoreError(f"SQLite error: {exc}")


def connect(
    path: Path,
    *,
    factory: type[sqlite3.Connection],
    synchronous: str,
    busy_timeout: float,
    read_only: bool,
) -> sqlite3.Connection:
    """A connection in autocommit mode (the store begins and commits explicitly), WAL,
    foreign keys on, rows as sqlite3.Row, usable from whichever single thread owns it."""
    if synchronous not in SYNCHRONOUS_MODES:
        raise StoreError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the directory of {path}: {exc}") from exc
    try:
        connection = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=factory,
        )
    except sqlite3.Error as exc:
        raise map_error(exc) from exc
    with closed_on_error(connection):
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if not read_only:
            (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot use WAL for {path} (journal_mode is {mode})")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA foreign_keys = ON")
        if read_only:
            connection.execute("PRAGMA query_only = ON")
    return connection


@contextlib.contextmanager
def closed_on_error(connection: sqlite3.Connection) -> Iterator[None]:
    """Close `connection` if the block fails; sqlite3 errors leave as StoreError."""
    try:
        yield
    except BaseException as exc:
        connection.close()
        if isinstance(exc, sqlite3.Error):
            raise map_error(exc) from exc
        raise


def split_statements(sql: str) -> Iterator[str]:
    """The statements of a migration, one at a time (each must end its line with `;`)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    leftover = [line for line in buffer.splitlines() if line.strip()]
    if any(not line.lstrip().startswith("--") for line in leftover):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {buffer.strip()}")
