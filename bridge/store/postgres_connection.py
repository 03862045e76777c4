"""Connecting to PostgreSQL the way the store needs it, and mapping psycopg's errors.

Every psycopg error the store meets goes through `map_error`, so none reaches a caller: the
server being unreachable or unable to work (any failure to connect, be it refused, a wrong
database name or credentials; gone, shutting down, out of connections, disk or I/O trouble,
a read-only standby after a failover, a statement cancelled by a timeout, no pooled
connection free in time) is StoreUnavailable, which the receiver answers with 503; anything
else is StoreError. A message never carries the URL's password: `Credentials` knows it and
scrubs it, and when the URL has one, the mapped error is raised without its psycopg cause
(whose attributes hold the connection's parameters).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import NoReturn, TypeAlias
from urllib.parse import quote, urlsplit

import psycopg
import psycopg_pool
from psycopg.abc import Buffer
from psycopg.rows import DictRow, dict_row
from psycopg.types.string import StrDumperUnknown

from bridge.exceptions import StoreError, StoreUnavailable

Connection: TypeAlias = psycopg.AsyncConnection[DictRow]
Pool: TypeAlias = psycopg_pool.AsyncConnectionPool[Connection]

# SQLSTATE classes and codes that mean "the database cannot do work now", not "this is wrong"
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
_UNAVAILABLE_CODES = frozenset({"25006"})  # read_only_sql_transaction: a standby
_REDACTED = "***"
_PASSWORD = re.compile(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))")


@dataclass(frozen=True)
class Credentials:
    """What of a connection string may be shown, and the secret that must not be."""

    conninfo: str = field(repr=False)
    shown: str  # postgresql://user@host:port/dbname, never the password
    password: str | None = field(repr=False)

    @classmethod
    def of(cls, conninfo: str) -> Credentials:
        try:
            parts = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error:
            parts = {}
        password = parts.get("password")
        if not password and "://" in conninfo:
            with contextlib.suppress(ValueError):
                password = urlsplit(conninfo).password
        if not password:  # a key=value string libpq could not read: find it as it is written
            written = _PASSWORD.search(conninfo)
            password = written and (written.group(1) or written.group(2))
        user, host = parts.get("user"), parts.get("host") or "localhost"
        port, dbname = parts.get("port"), parts.get("dbname")
        shown = "postgresql://" + (f"{user}@" if user else "") + str(host)
        shown += (f":{port}" if port else "") + (f"/{dbname}" if dbname else "")
        return cls(conninfo=conninfo, shown=shown, password=str(password) if password else None)

    def scrub(self, text: str) -> str:
        text = text.replace(self.conninfo, self.shown)
        if self.password:  # as given, and as written in a URL
            for form in sorted({self.password, quote(self.password, safe="")}, key=len)[::-1]:
                text = text.replace(form, _REDACTED)
        return text


def map_error(exc: BaseException, credentials: Credentials) -> StoreError:
    """The StoreError to raise in place of `exc`; `raise_mapped` raises it."""
    message = credentials.scrub(str(exc).strip()) or type(exc).__name__
    if is_unavailable(exc):
        return StoreUnavailable(f"PostgreSQL at {credentials.shown} unavailable: {message}")
    return StoreError(f"PostgreSQL error: {message}")


def raise_mapped(exc: BaseException, credentials: Credentials) -> NoReturn:
    """Raise the mapped error `from exc`; from nothing when the URL has a password, since
    psycopg's errors carry the connection's parameters (password included) as attributes."""
    error = map_error(exc, credentials)
    if credentials.password is not None:
        raise error from None
    raise error from exc


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed | psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    code = exc.sqlstate
    if code is None:  # raised by libpq on our side: connecting failed, the server went away
        return True
    return code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES


class NulSafeStrDumper(StrDumperUnknown):
    """PostgreSQL text cannot hold NUL; a sender's body can (a dedupe key, a provider's
    answer). It is stored as U+FFFD, so the value still compares equal to itself."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd"))


def _nul_safe(connection: psycopg.AsyncConnection[DictRow]) -> None:
    connection.adapters.register_dumper(str, NulSafeStrDumper)


async def _configure(connection: Connection) -> None:
    _nul_safe(connection)


async def connect(credentials: Credentials, *, timeout: float) -> Connection:
    """One connection outside the pool (migrations hold a session lock on it)."""
    try:
        connection = await psycopg.AsyncConnection.connect(
            credentials.conninfo,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=max(1, round(timeout)),
        )
    except psycopg.Error as exc:
        raise_mapped(exc, credentials)
    _nul_safe(connection)
    return connection


def make_pool(
    credentials: Credentials,
    *,
    min_size: int,
    max_size: int,
    timeout: float,
    name: str,
) -> Pool:
    """A pool of autocommit connections returning dict rows (not yet open). Every write
    begins its own transaction; a statement alone is its own."""
    return psycopg_pool.AsyncConnectionPool(
        credentials.conninfo,
        connection_class=psycopg.AsyncConnection[DictRow],
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": max(1, round(timeout)),
        },
        configure=_configure,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        name=name,
        open=False,
    )
